"""The monthly report: what the SOC saw and did in a calendar month, for one agency or for the
whole province, as a JSON-ready dict, as Markdown for the Department's leadership (Vietnamese by
default) and as CSV rows.

Pure functions: the API gathers the month's figures through the store (already scoped to what
the caller may see) and hands them here as plain values (`MonthlyInputs`). Months are calendar
months in the province's time zone, not in UTC (`month_bounds`).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from soc.incidents.export import excel_csv
from soc.incidents.model import LEVELS, OPEN, STATUSES
from soc.store.documents import lookup
from soc.timeutil import format_ts, parse_ts

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

#: (value, count) as `Store.count_by` answers.
Counts = Sequence[tuple[str, int]]


def _zone(tz: str | tzinfo) -> tzinfo:
    if not isinstance(tz, str):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"timezone: unknown time zone {tz!r}") from exc


def month_bounds(month: str, tz: str | tzinfo = DEFAULT_TIMEZONE) -> tuple[datetime, datetime]:
    """The month `YYYY-MM` as a half-open UTC interval [start, end): local midnight on the 1st
    to local midnight on the 1st of the next month. In Asia/Ho_Chi_Minh (UTC+7) November 2026
    is 2026-10-31T17:00Z to 2026-11-30T17:00Z."""
    found = _MONTH.match(month)
    if not found:
        raise ValueError(f"month: expected YYYY-MM, got {month!r}")
    year, number = int(found.group(1)), int(found.group(2))
    zone = _zone(tz)
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class MonthlyInputs:
    """What the report is computed from; the API fetches each with the caller's scope and the
    month's bounds as the time range.

    `incidents`: every incident created or resolved in the month; a superset is fine (those
    created in the month are the month's incidents, those resolved in it count as resolved in
    the month, the rest are left out) and one listed twice, as pages that overlap may, counts
    once. Counts are `count_by` answers
    over the month: alerts by `rule.level`, `rule.name`, `host.name`, `organization.id` and
    `threat.technique.id`, events by `organization.id` and by source id. `sources`: the
    configured sources (id -> agency); one without events in the month is silent.
    """

    month: str
    events_total: int
    alerts_total: int
    incidents: Sequence[Mapping[str, Any]]
    alerts_by_level: Counts = ()
    alerts_by_rule: Counts = ()
    alerts_by_host: Counts = ()
    alerts_by_agency: Counts = ()
    alerts_by_technique: Counts = ()
    events_by_agency: Counts = ()
    events_by_source: Counts = ()
    sources: Mapping[str, str] = field(default_factory=dict)
    #: The agency reported on; None for the whole province.
    agency: str | None = None
    agency_names: Mapping[str, str] = field(default_factory=dict)
    province: str = ""
    timezone: str = DEFAULT_TIMEZONE


def _checked_counts(name: str, counts: Counts) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for index, pair in enumerate(counts):
        try:
            value, count = pair
        except (TypeError, ValueError):
            raise ValueError(f"{name}[{index}]: expected (value, count), got {pair!r}") from None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"{name}[{index}]: count must be a non-negative integer: {pair!r}")
        out.append((str(value), count))
    return out


def _ranked(counts: Iterable[tuple[str, int]], top: int | None = None) -> list[dict[str, Any]]:
    """Most frequent first, ties by value, so that the same figures give the same report."""
    merged: Counter[str] = Counter()
    for value, count in counts:
        merged[value] += count
    ordered = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
    return [{"value": value, "count": count} for value, count in ordered[:top]]


def _time(incident: Mapping[str, Any], name: str) -> datetime | None:
    value = lookup(incident, "incident." + name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"incident {lookup(incident, 'incident.id')}: {name} is not a timestamp")
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise ValueError(f"incident {lookup(incident, 'incident.id')}: {name}: {exc}") from None


def _seconds(incident: Mapping[str, Any], name: str) -> float | None:
    value = lookup(incident, "incident." + name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"incident {lookup(incident, 'incident.id')}: {name} must be a non-negative number"
        )
    return float(value)


def _durations(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "mean_seconds": statistics.fmean(values) if values else None,
        "median_seconds": statistics.median(values) if values else None,
    }


@dataclass(slots=True)
class _IncidentFigures:
    opened: list[Mapping[str, Any]] = field(default_factory=list)
    resolved_in_month: int = 0
    tta: list[float] = field(default_factory=list)
    ttr: list[float] = field(default_factory=list)


def _incident_figures(
    incidents: Sequence[Mapping[str, Any]], start: datetime, end: datetime, agency: str | None
) -> dict[str, _IncidentFigures]:
    """Per agency: incidents created in the month, with their times to acknowledge and resolve,
    and how many incidents were resolved in the month."""
    figures: dict[str, _IncidentFigures] = {}
    seen: set[str] = set()
    for index, incident in enumerate(incidents):
        ident = lookup(incident, "incident.id")
        if not isinstance(ident, str) or not ident:
            raise ValueError(f"incidents[{index}]: no incident.id")
        if ident in seen:
            continue
        seen.add(ident)
        owner = str(lookup(incident, "organization.id") or "")
        if agency is not None and owner != agency:
            raise ValueError(f"incident {ident} belongs to {owner!r}, not to {agency!r}")
        row = figures.setdefault(owner, _IncidentFigures())
        created = _time(incident, "created") or _time(incident, "first_seen")
        if created is None:
            raise ValueError(f"incident {ident}: neither created nor first_seen is set")
        resolved = _time(incident, "resolved_at")
        if resolved is not None and start <= resolved < end:
            row.resolved_in_month += 1
        if not start <= created < end:
            continue
        status = lookup(incident, "incident.status")
        if status not in STATUSES:
            raise ValueError(f"incident {ident}: unknown status {status!r}")
        row.opened.append(incident)
        for name, values in (("tta_seconds", row.tta), ("ttr_seconds", row.ttr)):
            seconds = _seconds(incident, name)
            if seconds is not None:
                values.append(seconds)
    return figures


def _by(incidents: Iterable[Mapping[str, Any]], name: str, keys: Sequence[str]) -> dict[str, int]:
    counted = Counter(str(lookup(incident, "incident." + name)) for incident in incidents)
    out = {key: counted.pop(key, 0) for key in keys}
    out.update(sorted(counted.items()))
    return out


def _top_incidents(
    incidents: Iterable[Mapping[str, Any]], names: Mapping[str, str], top: int
) -> list[dict[str, Any]]:
    """The most severe incidents, then those with the most alerts."""

    def rank(incident: Mapping[str, Any]) -> tuple[int, int, str]:
        level = lookup(incident, "incident.severity")
        weight = LEVELS.index(level) if level in LEVELS else -1
        count = lookup(incident, "incident.alert_count")
        return (
            -weight,
            -(count if isinstance(count, int) else 0),
            str(lookup(incident, "incident.id")),
        )

    return [
        {
            "id": lookup(incident, "incident.id"),
            "title": lookup(incident, "incident.title"),
            "agency": lookup(incident, "organization.id"),
            "agency_name": names.get(str(lookup(incident, "organization.id"))),
            "severity": lookup(incident, "incident.severity"),
            "status": lookup(incident, "incident.status"),
            "alert_count": lookup(incident, "incident.alert_count"),
            "created": lookup(incident, "incident.created"),
        }
        for incident in sorted(incidents, key=rank)[:top]
    ]


def monthly_report(
    inputs: MonthlyInputs, *, generated_at: datetime, top: int = 10
) -> dict[str, Any]:
    """The month's report as a JSON-serialisable dict (see the module docstring)."""
    if top < 1:
        raise ValueError(f"top: must be at least 1, got {top}")
    start, end = month_bounds(inputs.month, inputs.timezone)
    alerts_by_agency = _checked_counts("alerts_by_agency", inputs.alerts_by_agency)
    events_by_agency = _checked_counts("events_by_agency", inputs.events_by_agency)
    events_by_source = dict(_checked_counts("events_by_source", inputs.events_by_source))
    for name, total in (
        ("events_total", inputs.events_total),
        ("alerts_total", inputs.alerts_total),
    ):
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise ValueError(f"{name}: must be a non-negative integer, got {total!r}")
    figures = _incident_figures(inputs.incidents, start, end, inputs.agency)
    opened = [incident for row in figures.values() for incident in row.opened]
    sources = {
        ident: owner
        for ident, owner in inputs.sources.items()
        if inputs.agency is None or owner == inputs.agency
    }
    silent = sorted(ident for ident in sources if not events_by_source.get(ident))
    alert_levels = _checked_counts("alerts_by_level", inputs.alerts_by_level)
    if inputs.agency is None:
        seen = {a for a, _ in alerts_by_agency} | {a for a, _ in events_by_agency}
        agency_ids = sorted(seen | set(figures) | set(sources.values()))
    else:
        agency_ids = [inputs.agency]
    return {
        "month": inputs.month,
        "timezone": inputs.timezone,
        "start": format_ts(start),
        "end": format_ts(end),
        "agency": inputs.agency,
        "agency_name": inputs.agency_names.get(inputs.agency or "", inputs.agency),
        "province": inputs.province,
        "generated_at": format_ts(generated_at),
        "totals": {
            "events": inputs.events_total,
            "alerts": inputs.alerts_total,
            "incidents": len(opened),
            "incidents_open": sum(1 for i in opened if lookup(i, "incident.status") in OPEN),
            "incidents_resolved_in_month": sum(r.resolved_in_month for r in figures.values()),
            "sources": len(sources),
            "sources_silent": len(silent),
        },
        "incidents_by_status": _by(opened, "status", STATUSES),
        "incidents_by_severity": _by(opened, "severity", LEVELS),
        "alerts_by_severity": {
            **dict.fromkeys(LEVELS, 0),
            **{row["value"]: row["count"] for row in _ranked(alert_levels)},
        },
        "mtta": _durations([s for r in figures.values() for s in r.tta]),
        "mttr": _durations([s for r in figures.values() for s in r.ttr]),
        "top_rules": _ranked(_checked_counts("alerts_by_rule", inputs.alerts_by_rule), top),
        "top_hosts": _ranked(_checked_counts("alerts_by_host", inputs.alerts_by_host), top),
        "techniques": _ranked(_checked_counts("alerts_by_technique", inputs.alerts_by_technique)),
        "top_incidents": _top_incidents(opened, inputs.agency_names, top),
        "agencies": [
            _agency_row(
                agency,
                inputs.agency_names.get(agency, agency),
                dict(events_by_agency).get(agency, 0),
                dict(alerts_by_agency).get(agency, 0),
                figures.get(agency, _IncidentFigures()),
                [s for s, owner in sources.items() if owner == agency],
                silent,
            )
            for agency in agency_ids
        ],
        "silent_sources": [{"id": ident, "agency": sources[ident]} for ident in silent],
    }


def _agency_row(
    agency: str,
    name: str,
    events: int,
    alerts: int,
    figures: _IncidentFigures,
    sources: Sequence[str],
    silent: Sequence[str],
) -> dict[str, Any]:
    severe = {"high", "critical"}
    return {
        "agency": agency,
        "name": name,
        "events": events,
        "alerts": alerts,
        "incidents": len(figures.opened),
        "incidents_open": sum(1 for i in figures.opened if lookup(i, "incident.status") in OPEN),
        "incidents_high_or_critical": sum(
            1 for i in figures.opened if lookup(i, "incident.severity") in severe
        ),
        "incidents_resolved_in_month": figures.resolved_in_month,
        "mtta_mean_seconds": statistics.fmean(figures.tta) if figures.tta else None,
        "mttr_mean_seconds": statistics.fmean(figures.ttr) if figures.ttr else None,
        "sources": len(sources),
        "sources_silent": sum(1 for s in sources if s in silent),
    }


# --- Rendering ---------------------------------------------------------------------------------

_TEXT: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Báo cáo giám sát an toàn thông tin tháng {month}",
        "province": "Toàn tỉnh",
        "scope": "Phạm vi",
        "period": "Thời gian",
        "to": "đến",
        "generated": "Lập lúc",
        "overview": "Tổng quan",
        "metric": "Chỉ số",
        "value": "Giá trị",
        "events": "Sự kiện đã thu thập",
        "alerts": "Cảnh báo",
        "incidents": "Sự cố phát sinh",
        "incidents_open": "Sự cố chưa xử lý xong",
        "incidents_resolved_in_month": "Sự cố xử lý xong trong tháng",
        "sources": "Nguồn nhật ký",
        "sources_silent": "Nguồn nhật ký không gửi dữ liệu",
        "mtta": "Thời gian tiếp nhận (MTTA)",
        "mttr": "Thời gian xử lý (MTTR)",
        "mean": "trung bình",
        "median": "trung vị",
        "seconds": "giây",
        "by_status": "Sự cố theo trạng thái",
        "by_severity": "Sự cố theo mức độ",
        "alerts_by_severity": "Cảnh báo theo mức độ",
        "top_rules": "Luật phát hiện có nhiều cảnh báo nhất",
        "top_hosts": "Máy có nhiều cảnh báo nhất",
        "techniques": "Kỹ thuật tấn công (MITRE ATT&CK)",
        "top_incidents": "Sự cố đáng chú ý",
        "agencies": "Theo cơ quan, đơn vị",
        "silent_sources": "Nguồn nhật ký không gửi dữ liệu trong tháng",
        "status": "Trạng thái",
        "severity": "Mức độ",
        "count": "Số lượng",
        "rule": "Luật",
        "host": "Máy",
        "technique": "Kỹ thuật",
        "id": "Mã",
        "name": "Tiêu đề",
        "agency": "Cơ quan",
        "no_agency": "Chưa xác định cơ quan",
        "alert_count": "Số cảnh báo",
        "created": "Phát sinh",
        "high_or_critical": "Cao/nghiêm trọng",
        "source": "Nguồn",
        "none": "Không có.",
        "new": "Mới",
        "acknowledged": "Đã tiếp nhận",
        "investigating": "Đang điều tra",
        "resolved": "Đã xử lý",
        "false_positive": "Cảnh báo nhầm",
        "informational": "Thông tin",
        "low": "Thấp",
        "medium": "Trung bình",
        "high": "Cao",
        "critical": "Nghiêm trọng",
        "d": "ngày",
        "h": "giờ",
        "min": "phút",
        "s": "giây",
    },
    "en": {
        "title": "Security monitoring report for {month}",
        "province": "Whole province",
        "scope": "Scope",
        "period": "Period",
        "to": "to",
        "generated": "Generated",
        "overview": "Overview",
        "metric": "Metric",
        "value": "Value",
        "events": "Events collected",
        "alerts": "Alerts",
        "incidents": "New incidents",
        "incidents_open": "Incidents still open",
        "incidents_resolved_in_month": "Incidents resolved in the month",
        "sources": "Log sources",
        "sources_silent": "Silent log sources",
        "mtta": "Time to acknowledge (MTTA)",
        "mttr": "Time to resolve (MTTR)",
        "mean": "mean",
        "median": "median",
        "seconds": "seconds",
        "by_status": "Incidents by status",
        "by_severity": "Incidents by severity",
        "alerts_by_severity": "Alerts by severity",
        "top_rules": "Rules with the most alerts",
        "top_hosts": "Hosts with the most alerts",
        "techniques": "Attack techniques (MITRE ATT&CK)",
        "top_incidents": "Notable incidents",
        "agencies": "By agency",
        "silent_sources": "Log sources that sent nothing in the month",
        "status": "Status",
        "severity": "Severity",
        "count": "Count",
        "rule": "Rule",
        "host": "Host",
        "technique": "Technique",
        "id": "ID",
        "name": "Title",
        "agency": "Agency",
        "no_agency": "No agency",
        "alert_count": "Alerts",
        "created": "Opened",
        "high_or_critical": "High/critical",
        "source": "Source",
        "none": "None.",
        "new": "New",
        "acknowledged": "Acknowledged",
        "investigating": "Investigating",
        "resolved": "Resolved",
        "false_positive": "False positive",
        "informational": "Informational",
        "low": "Low",
        "medium": "Medium",
        "high": "High",
        "critical": "Critical",
        "d": "d",
        "h": "h",
        "min": "min",
        "s": "s",
    },
}


def _text(language: str) -> dict[str, str]:
    if language not in _TEXT:
        raise ValueError(f"language must be one of {sorted(_TEXT)}, not {language!r}")
    return _TEXT[language]


def _label(text: Mapping[str, str], key: str) -> str:
    """A status or level in words; an unknown one as it is."""
    return text.get(key, key)


def _number(value: int, language: str) -> str:
    grouped = f"{value:,}"
    return grouped.replace(",", ".") if language == "vi" else grouped


def _duration(seconds: float | None, text: Mapping[str, str]) -> str:
    """The two largest units, `1 giờ 5 phút` / `1 h 5 min`; under a minute in seconds."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if whole >= size or (unit == "s" and not parts):
            amount, whole = divmod(whole, size)
            parts.append(f"{amount} {text[unit]}")
        elif parts:
            break
    return " ".join(parts[:2])


@dataclass(frozen=True, slots=True)
class _Style:
    """How figures are written: words for people (Markdown), raw values for a spreadsheet."""

    language: str
    text: Mapping[str, str]
    for_people: bool

    def number(self, value: int) -> int | str:
        return _number(value, self.language) if self.for_people else value

    def duration(self, seconds: float | None) -> float | str | None:
        if self.for_people:
            return _duration(seconds, self.text)
        return None if seconds is None else round(seconds, 1)

    def duration_label(self, key: str) -> str:
        unit = "" if self.for_people else f" ({self.text['seconds']})"
        return self.text[key] + unit

    def time(self, iso: Any, zone: tzinfo) -> str:
        if not isinstance(iso, str):
            return ""
        moment = parse_ts(iso).astimezone(zone)
        return moment.strftime("%d/%m/%Y %H:%M" if self.language == "vi" else "%Y-%m-%d %H:%M")


Section = tuple[str, list[str], list[list[Any]]]


def _heading(report: Mapping[str, Any], style: _Style) -> list[tuple[str, str]]:
    """Title, then (label, value) for scope, period and time of writing."""
    text = style.text
    year, month = str(report["month"]).split("-")
    shown = f"{month}/{year}" if style.language == "vi" else f"{year}-{month}"
    if report["agency"] is None:
        scope = text["province"] + (f" ({report['province']})" if report["province"] else "")
    else:
        scope = str(report["agency_name"] or report["agency"])
    zone = _zone(report["timezone"])
    first = parse_ts(report["start"]).astimezone(zone)
    last = parse_ts(report["end"]).astimezone(zone) - timedelta(days=1)
    date = "%d/%m/%Y" if style.language == "vi" else "%Y-%m-%d"
    period = f"{first.strftime(date)} {text['to']} {last.strftime(date)} ({report['timezone']})"
    return [
        (text["title"].format(month=shown), ""),
        (text["scope"], scope),
        (text["period"], period),
        (text["generated"], style.time(report["generated_at"], zone)),
    ]


def _overview(report: Mapping[str, Any], style: _Style) -> list[list[Any]]:
    text, totals = style.text, report["totals"]
    rows: list[list[Any]] = [
        [text[key], style.number(totals[key])]
        for key in ("events", "alerts", "incidents", "incidents_open")
    ]
    rows.append(
        [text["incidents_resolved_in_month"], style.number(totals["incidents_resolved_in_month"])]
    )
    for key in ("mtta", "mttr"):
        for kind, name in (("mean", "mean_seconds"), ("median", "median_seconds")):
            label = f"{style.duration_label(key)}, {text[kind]}"
            rows.append([label, style.duration(report[key][name])])
    rows.append([text["sources"], style.number(totals["sources"])])
    rows.append([text["sources_silent"], style.number(totals["sources_silent"])])
    return rows


def _sections(report: Mapping[str, Any], style: _Style) -> list[Section]:
    """The report's tables, each (title, headers, rows), written alike as Markdown and CSV."""
    text = style.text
    zone = _zone(report["timezone"])
    names = {row["agency"]: row["name"] for row in report["agencies"]}

    def counted(name: str) -> list[list[Any]]:
        return [[_label(text, k), style.number(v)] for k, v in report[name].items()]

    def ranked(name: str) -> list[list[Any]]:
        return [[row["value"], style.number(row["count"])] for row in report[name]]

    sections: list[Section] = [
        (text["overview"], [text["metric"], text["value"]], _overview(report, style)),
        (text["by_status"], [text["status"], text["count"]], counted("incidents_by_status")),
        (
            text["by_severity"],
            [text["severity"], text["count"]],
            counted("incidents_by_severity"),
        ),
        (
            text["alerts_by_severity"],
            [text["severity"], text["count"]],
            counted("alerts_by_severity"),
        ),
        (text["top_rules"], [text["rule"], text["alert_count"]], ranked("top_rules")),
        (text["top_hosts"], [text["host"], text["alert_count"]], ranked("top_hosts")),
        (text["techniques"], [text["technique"], text["alert_count"]], ranked("techniques")),
        (
            text["top_incidents"],
            [text[k] for k in ("id", "name", "agency", "severity", "status", "alert_count")]
            + [text["created"]],
            [
                [
                    i["id"],
                    i["title"],
                    i["agency_name"] or i["agency"] or text["no_agency"],
                    _label(text, str(i["severity"])),
                    _label(text, str(i["status"])),
                    style.number(i["alert_count"] or 0),
                    style.time(i["created"], zone),
                ]
                for i in report["top_incidents"]
            ],
        ),
    ]
    if report["agency"] is None:
        sections.append((text["agencies"], *_agency_table(report, style)))
    sections.append(
        (
            text["silent_sources"],
            [text["source"], text["agency"]],
            [
                [source["id"], names.get(source["agency"], source["agency"])]
                for source in report["silent_sources"]
            ],
        )
    )
    return sections


def _agency_table(report: Mapping[str, Any], style: _Style) -> tuple[list[str], list[list[Any]]]:
    text = style.text
    headers = [text["agency"], text["events"], text["alerts"], text["incidents"]]
    headers += [text["incidents_open"], text["high_or_critical"]]
    headers += [text["incidents_resolved_in_month"]]
    headers += [style.duration_label("mtta"), style.duration_label("mttr")]
    headers += [text["sources"], text["sources_silent"]]
    rows = [
        [
            row["name"] or row["agency"] or text["no_agency"],
            style.number(row["events"]),
            style.number(row["alerts"]),
            style.number(row["incidents"]),
            style.number(row["incidents_open"]),
            style.number(row["incidents_high_or_critical"]),
            style.number(row["incidents_resolved_in_month"]),
            style.duration(row["mtta_mean_seconds"]),
            style.duration(row["mttr_mean_seconds"]),
            style.number(row["sources"]),
            style.number(row["sources_silent"]),
        ]
        for row in report["agencies"]
    ]
    return headers, rows


#: Characters that change the meaning of Markdown text (emphasis, links, code, tables, raw
#: HTML): escaped, so that a host or rule name shows as written and cannot inject markup.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!~])")


def _md(value: Any) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def monthly_report_markdown(report: Mapping[str, Any], language: str = "vi") -> str:
    """The report for people: a title, its scope and period, then numbered sections of tables.
    Vietnamese by default (it goes to the Department's leadership)."""
    style = _Style(language, _text(language), for_people=True)
    (title, _), *facts = _heading(report, style)
    lines = [f"# {_md(title)}", ""]
    lines += [f"**{_md(label)}:** {_md(value)}  " for label, value in facts]
    for number, (name, headers, rows) in enumerate(_sections(report, style), start=1):
        lines += ["", f"## {number}. {_md(name)}", ""]
        if rows:
            lines.append("| " + " | ".join(_md(h) for h in headers) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
        else:
            lines.append(_md(style.text["none"]))
    return "\n".join(lines) + "\n"


def monthly_report_rows(report: Mapping[str, Any], language: str = "vi") -> list[list[Any]]:
    """The report as spreadsheet rows: the heading, then each section as a title row, a header
    row and its rows, sections separated by an empty row; figures as plain numbers."""
    style = _Style(language, _text(language), for_people=False)
    (title, _), *facts = _heading(report, style)
    rows: list[list[Any]] = [[title], *([label, value] for label, value in facts)]
    for name, headers, body in _sections(report, style):
        rows += [[], [name], list(headers), *body]
    return rows


def monthly_report_csv(report: Mapping[str, Any], language: str = "vi") -> str:
    """`monthly_report_rows` as an Excel-ready CSV (BOM, CRLF, formulas neutralised)."""
    return excel_csv(monthly_report_rows(report, language))
