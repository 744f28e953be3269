"""Message text: Vietnamese first, English on request, each channel within its limits.

Texts are built from a `Notice` at send time, so that a channel's limit (Zalo OA 2,000
characters, Telegram 4,096, a ZNS parameter's approved length) is applied where it is known, and
the link back to the console always survives a cut.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from soc.config import NotifyParamConfig
from soc.notify.models import Notice
from soc.timeutil import parse_ts

ZALO_TEXT_LIMIT = 2000
TELEGRAM_TEXT_LIMIT = 4096
EMAIL_SUBJECT_LIMIT = 200
_ELLIPSIS = "…"

_SEVERITY = {
    "vi": {
        "informational": "thông tin",
        "low": "thấp",
        "medium": "trung bình",
        "high": "cao",
        "critical": "nghiêm trọng",
    },
    "en": {s: s for s in ("informational", "low", "medium", "high", "critical")},
}
_STATUS = {
    "vi": {
        "new": "mới",
        "acknowledged": "đã tiếp nhận",
        "investigating": "đang điều tra",
        "resolved": "đã xử lý",
        "false_positive": "báo động nhầm",
    },
    "en": {
        "new": "new",
        "acknowledged": "acknowledged",
        "investigating": "investigating",
        "resolved": "resolved",
        "false_positive": "false positive",
    },
}
_HEADLINE = {
    "vi": {
        "new": "Sự cố mới",
        "update": "Sự cố có thêm cảnh báo",
        "digest": "Tổng hợp sự cố",
        "change": "Sự cố thay đổi",
        "test": "Tin nhắn thử",
    },
    "en": {
        "new": "New incident",
        "update": "Incident has new alerts",
        "digest": "Incident digest",
        "change": "Incident changed",
        "test": "Test message",
    },
}
_LABELS = {
    "vi": {
        "severity": "Mức độ",
        "status": "Trạng thái",
        "agency": "Cơ quan",
        "rule": "Luật",
        "details": "Chi tiết",
        "hosts": "Máy",
        "users": "Tài khoản",
        "ips": "Địa chỉ IP",
        "techniques": "Kỹ thuật ATT&CK",
        "alerts": "Số cảnh báo",
        "first_seen": "Lần đầu",
        "last_seen": "Lần cuối",
        "link": "Xem chi tiết",
        "change": "Thay đổi",
    },
    "en": {
        "severity": "Severity",
        "status": "Status",
        "agency": "Agency",
        "rule": "Rule",
        "details": "Details",
        "hosts": "Hosts",
        "users": "Users",
        "ips": "IP addresses",
        "techniques": "ATT&CK techniques",
        "alerts": "Alerts",
        "first_seen": "First seen",
        "last_seen": "Last seen",
        "link": "Open",
        "change": "Change",
    },
}


def incident_url(console_url: str, incident_id: str) -> str:
    return f"{console_url.rstrip('/')}/#/incidents/{incident_id}"


def _local(ts: str, zone: ZoneInfo) -> str:
    try:
        return parse_ts(ts).astimezone(zone).strftime("%H:%M %d/%m/%Y")
    except ValueError:
        return ts


def _lang(notice: Notice) -> str:
    return notice.language if notice.language in _LABELS else "vi"


def headline(notice: Notice) -> str:
    """The one line that says what happened: `[SOC] Sự cố mới (cao): <title>`."""
    lang = _lang(notice)
    severity = _SEVERITY[lang].get(notice.severity, notice.severity)
    return f"[SOC] {_HEADLINE[lang].get(notice.kind, notice.kind)} ({severity}): {notice.title}"


def summary(notice: Notice) -> str:
    """What is new in this message, in one sentence."""
    lang = _lang(notice)
    minutes = max(1, round(notice.window_seconds / 60)) if notice.window_seconds else 0
    if notice.kind == "digest":
        if lang == "vi":
            return (
                f"Thêm {notice.new_alerts} cảnh báo cho sự cố này trong {minutes} phút qua "
                f"(tổng {notice.alert_count})."
            )
        return (
            f"{notice.new_alerts} more alerts on this incident in the last {minutes} min "
            f"({notice.alert_count} in all)."
        )
    if notice.kind == "update":
        if lang == "vi":
            return f"Thêm {notice.new_alerts} cảnh báo (tổng {notice.alert_count})."
        return f"{notice.new_alerts} new alerts ({notice.alert_count} in all)."
    if notice.kind == "change":
        status = _STATUS[lang].get(notice.status, notice.status)
        if lang == "vi":
            return f"Sự cố chuyển sang trạng thái {status} ({notice.change})."
        return f"The incident is now {status} ({notice.change})."
    if notice.kind == "test":
        if lang == "vi":
            return "Kênh thông báo của SOC hoạt động bình thường."
        return "The SOC notification channel works."
    if lang == "vi":
        return f"{notice.alert_count} cảnh báo."
    return f"{notice.alert_count} alerts."


def facts(notice: Notice, zone: ZoneInfo) -> list[tuple[str, str]]:
    """Labelled lines, most important first (cuts drop from the end)."""
    lang = _lang(notice)
    labels = _LABELS[lang]
    rows = [
        (labels["severity"], _SEVERITY[lang].get(notice.severity, notice.severity)),
        (labels["status"], _STATUS[lang].get(notice.status, notice.status)),
        (labels["agency"], notice.agency),
        (labels["rule"], f"{notice.rule_name} ({notice.rule_id})" if notice.rule_id else ""),
        (labels["details"], notice.last_message),
        (labels["hosts"], ", ".join(notice.hosts)),
        (labels["alerts"], str(notice.alert_count)),
        (labels["first_seen"], _local(notice.first_seen, zone) if notice.first_seen else ""),
        (labels["last_seen"], _local(notice.last_seen, zone) if notice.last_seen else ""),
        (labels["users"], ", ".join(notice.users)),
        (labels["ips"], ", ".join(notice.ips)),
        (labels["techniques"], ", ".join(notice.techniques)),
    ]
    return [(label, value) for label, value in rows if value]


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + _ELLIPSIS


def render_text(notice: Notice, zone: ZoneInfo, limit: int) -> str:
    """Plain text within `limit` characters; fact lines are dropped from the end before the
    headline is cut, and the link line is never dropped."""
    lang = _lang(notice)
    link = f"{_LABELS[lang]['link']}: {notice.url}"
    lines = [headline(notice), summary(notice), *(f"{k}: {v}" for k, v in facts(notice, zone))]
    while len(lines) > 1 and len("\n".join([*lines, link])) > limit:
        lines.pop()
    body = "\n".join(lines)
    room = limit - len(link) - 1
    return f"{cut(body, room)}\n{link}" if room > 0 else cut(link, limit)


def render_subject(notice: Notice) -> str:
    return cut(headline(notice), EMAIL_SUBJECT_LIMIT).replace("\n", " ").replace("\r", " ")


def render_html(notice: Notice, zone: ZoneInfo) -> str:
    """A small self-contained HTML body (no remote images or styles: mail readers in air-gapped
    offices fetch nothing)."""
    lang = _lang(notice)
    esc = html.escape
    rows = "".join(
        f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts(notice, zone)
    )
    return (
        f"<!doctype html><html lang='{lang}'><body>"
        f"<h2>{esc(headline(notice))}</h2><p>{esc(summary(notice))}</p>"
        f"<table cellpadding='4'>{rows}</table>"
        f"<p><a href='{esc(notice.url, quote=True)}'>{esc(_LABELS[lang]['link'])}</a></p>"
        "</body></html>"
    )


def _fact(notice: Notice, name: str, zone: ZoneInfo) -> str:
    lang = _lang(notice)
    values: Mapping[str, Any] = {
        "title": notice.title,
        "severity": _SEVERITY[lang].get(notice.severity, notice.severity),
        "status": _STATUS[lang].get(notice.status, notice.status),
        "agency": notice.agency,
        "rule": notice.rule_name,
        "host": ", ".join(notice.hosts),
        "alert_count": notice.alert_count,
        "new_alerts": notice.new_alerts,
        "incident_id": notice.incident_id,
        "first_seen": _local(notice.first_seen, zone) if notice.first_seen else "",
        "last_seen": _local(notice.last_seen, zone) if notice.last_seen else "",
        "url": notice.url,
        "summary": summary(notice),
        "details": notice.last_message,
    }
    if name not in values:
        raise KeyError(name)
    return str(values[name])


ZNS_VALUES = (
    "title", "severity", "status", "agency", "rule", "host", "alert_count", "new_alerts",
    "incident_id", "first_seen", "last_seen", "url", "summary", "details",
)  # fmt: skip


def zns_template_data(
    notice: Notice, params: Sequence[NotifyParamConfig], zone: ZoneInfo
) -> dict[str, str]:
    """The approved template's parameters, each cut to its approved length (Zalo refuses a
    message whose parameter is longer than the template allows)."""
    return {p.name: cut(_fact(notice, p.value, zone), p.max_length) for p in params}


def notice_from_incident(
    incident_doc: Mapping[str, Any],
    *,
    kind: str,
    language: str,
    console_url: str,
    new_alerts: int,
    change: str = "",
    window_seconds: int = 0,
) -> Notice:
    """The facts of an incident document (the contract in soc/incidents) as a Notice."""
    incident = incident_doc.get("incident") or {}
    rule = incident.get("rule") or {}
    related = incident_doc.get("related") or {}
    threat = incident_doc.get("threat") or {}
    technique = threat.get("technique") or {} if isinstance(threat, dict) else {}
    ident = str(incident.get("id") or (incident_doc.get("event") or {}).get("id") or "")
    return Notice(
        kind=kind,
        language=language,
        incident_id=ident,
        title=str(incident.get("title") or rule.get("name") or ident),
        severity=str(incident.get("severity") or "medium"),
        status=str(incident.get("status") or "new"),
        agency=str((incident_doc.get("organization") or {}).get("id") or ""),
        rule_id=str(rule.get("id") or ""),
        rule_name=str(rule.get("name") or ""),
        alert_count=_int(incident.get("alert_count"), 1),
        new_alerts=new_alerts,
        first_seen=str(incident.get("first_seen") or ""),
        last_seen=str(incident.get("last_seen") or ""),
        url=incident_url(console_url, ident),
        hosts=_strings(related.get("hosts")),
        users=_strings(related.get("user")),
        ips=_strings(related.get("ip")),
        techniques=_strings(technique.get("id") if isinstance(technique, dict) else None),
        change=change,
        window_seconds=window_seconds,
        last_message=str(incident.get("last_message") or ""),
    )


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _strings(value: Any, limit: int = 10) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items[:limit]]
