"""An incident as files that leave the platform: a CSV an analyst opens in Excel, and a STIX 2.1
bundle for reporting to the national monitoring centre.

Pure functions over the documents of the incident contract (DESIGN.md, issue 6): the API fetches
the incident, its alerts and their events, and hands them here as dicts.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from soc.store.documents import lookup
from soc.timeutil import parse_ts

#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

#: Excel reads a CSV as the local code page unless it starts with a byte order mark.
BOM = "\ufeff"


def safe_cell(value: Any) -> str:
    """A cell's text, neutralised: a leading formula character gets a single quote before it, so
    a hostile host name or user name such as `=HYPERLINK(...)` stays text in a spreadsheet."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, list | tuple):
        text = "; ".join(safe_text(item) for item in value)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def safe_text(value: Any) -> str:
    """A value inside a joined cell; the cell as a whole is neutralised by `safe_cell`."""
    return "" if value is None else str(value)


def excel_csv(rows: Iterable[Sequence[Any]]) -> str:
    """RFC 4180 CSV (CRLF, quotes doubled, fields with a separator, quote or line break quoted)
    behind a UTF-8 byte order mark, every cell through `safe_cell`. Encode the result as UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return BOM + out.getvalue()


# --- CSV ---------------------------------------------------------------------------------------

_CSV_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Incident",
        "field": "Field",
        "value": "Value",
        "id": "Incident ID",
        "name": "Title",
        "status": "Status",
        "severity": "Severity",
        "agency": "Agency",
        "rule": "Rule",
        "rule_id": "Rule ID",
        "level": "Level",
        "alerts": "Alerts",
        "partial": "{shown} of {total}",
        "first_seen": "First seen (UTC)",
        "last_seen": "Last seen (UTC)",
        "created": "Created (UTC)",
        "updated": "Updated (UTC)",
        "acknowledged_at": "Acknowledged (UTC)",
        "resolved_at": "Resolved (UTC)",
        "tta": "Time to acknowledge (s)",
        "ttr": "Time to resolve (s)",
        "assignee": "Assignee",
        "tags": "Tags",
        "techniques": "ATT&CK techniques",
        "hosts": "Hosts",
        "users": "Users",
        "ips": "IP addresses",
        "comments": "Comments",
        "time": "Time (UTC)",
        "author": "Author",
        "text": "Text",
        "alert_id": "Alert ID",
        "host": "Host",
        "user": "User",
        "source_ip": "Source IP",
        "message": "Message",
        "events": "Events",
        "event_id": "Event ID",
        "dataset": "Dataset",
        "original": "Original record",
    },
    "vi": {
        "title": "Sự cố",
        "field": "Trường",
        "value": "Giá trị",
        "id": "Mã sự cố",
        "name": "Tiêu đề",
        "status": "Trạng thái",
        "severity": "Mức độ",
        "agency": "Cơ quan",
        "rule": "Luật",
        "rule_id": "Mã luật",
        "level": "Mức",
        "alerts": "Cảnh báo",
        "partial": "{shown} trên {total}",
        "first_seen": "Lần đầu (UTC)",
        "last_seen": "Lần cuối (UTC)",
        "created": "Tạo lúc (UTC)",
        "updated": "Cập nhật (UTC)",
        "acknowledged_at": "Tiếp nhận (UTC)",
        "resolved_at": "Xử lý xong (UTC)",
        "tta": "Thời gian tiếp nhận (giây)",
        "ttr": "Thời gian xử lý (giây)",
        "assignee": "Người phụ trách",
        "tags": "Nhãn",
        "techniques": "Kỹ thuật ATT&CK",
        "hosts": "Máy",
        "users": "Người dùng",
        "ips": "Địa chỉ IP",
        "comments": "Ghi chú",
        "time": "Thời gian (UTC)",
        "author": "Người viết",
        "text": "Nội dung",
        "alert_id": "Mã cảnh báo",
        "host": "Máy",
        "user": "Người dùng",
        "source_ip": "IP nguồn",
        "message": "Thông điệp",
        "events": "Sự kiện",
        "event_id": "Mã sự kiện",
        "dataset": "Nguồn dữ liệu",
        "original": "Bản ghi gốc",
    },
}

#: Incident fields of the header block, in order: (label key, dotted path in the document).
_HEADER_FIELDS = (
    ("id", "incident.id"),
    ("name", "incident.title"),
    ("status", "incident.status"),
    ("severity", "incident.severity"),
    ("agency", "organization.id"),
    ("rule_id", "incident.rule.id"),
    ("rule", "incident.rule.name"),
    ("level", "incident.rule.level"),
    ("alerts", "incident.alert_count"),
    ("first_seen", "incident.first_seen"),
    ("last_seen", "incident.last_seen"),
    ("created", "incident.created"),
    ("updated", "incident.updated"),
    ("acknowledged_at", "incident.acknowledged_at"),
    ("resolved_at", "incident.resolved_at"),
    ("tta", "incident.tta_seconds"),
    ("ttr", "incident.ttr_seconds"),
    ("assignee", "incident.assignee"),
    ("tags", "incident.tags"),
    ("techniques", "threat.technique.id"),
    ("hosts", "related.hosts"),
    ("users", "related.user"),
    ("ips", "related.ip"),
)


def _labels(language: str) -> dict[str, str]:
    if language not in _CSV_LABELS:
        raise ValueError(f"language must be one of {sorted(_CSV_LABELS)}, not {language!r}")
    return _CSV_LABELS[language]


def _incident_id(incident: Mapping[str, Any]) -> str:
    ident = lookup(incident, "incident.id")
    if not isinstance(ident, str) or not ident:
        raise ValueError("incident document has no incident.id")
    return ident


def _first_event(alert: Mapping[str, Any]) -> Mapping[str, Any]:
    events = alert.get("events")
    if isinstance(events, list) and events and isinstance(events[0], Mapping):
        return events[0]
    return {}


def _alert_field(alert: Mapping[str, Any], name: str) -> Any:
    """A field of the alert, or of its first triggering event when the alert lacks it."""
    value = lookup(alert, name)
    return lookup(_first_event(alert), name) if value is None else value


def _time_key(doc: Mapping[str, Any]) -> str:
    value = doc.get("@timestamp")
    return value if isinstance(value, str) else ""


def _alerts_title(labels: Mapping[str, str], shown: int, total: Any) -> list[str]:
    """The alerts block's title, saying so when the caller passed only some of the alerts (the
    API's timeline is capped) so that nobody takes the rows for the whole incident."""
    if isinstance(total, int) and total > shown:
        return [labels["alerts"], labels["partial"].format(shown=shown, total=total)]
    return [labels["alerts"]]


def incident_csv(
    incident: Mapping[str, Any],
    alerts: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    *,
    language: str = "en",
) -> str:
    """The incident as one CSV in three blocks separated by an empty row: the incident's fields
    (two columns, label and value), its comments, its alerts, then the events behind them, each
    block under a title row and a header row; alerts and events oldest first.

    The text begins with a UTF-8 byte order mark (Excel then shows Vietnamese correctly); lines
    end in CRLF; cells that a spreadsheet would run as formulas are prefixed with `'`.
    """
    labels = _labels(language)
    _incident_id(incident)
    rows: list[Sequence[Any]] = [[labels["title"]], [labels["field"], labels["value"]]]
    rows += [[labels[key], lookup(incident, path)] for key, path in _HEADER_FIELDS]
    comments = lookup(incident, "incident.comments") or []
    rows += [[], [labels["comments"]], [labels["time"], labels["author"], labels["text"]]]
    rows += [[c.get("at"), c.get("author"), c.get("text")] for c in comments]
    rows += [
        [],
        _alerts_title(labels, len(alerts), lookup(incident, "incident.alert_count")),
        [
            labels["time"],
            labels["alert_id"],
            labels["rule_id"],
            labels["rule"],
            labels["level"],
            labels["severity"],
            labels["host"],
            labels["user"],
            labels["source_ip"],
            labels["message"],
            labels["techniques"],
        ],
    ]
    for alert in sorted(alerts, key=_time_key):
        event = _first_event(alert)
        rows.append(
            [
                alert.get("@timestamp"),
                lookup(alert, "event.id"),
                lookup(alert, "rule.id"),
                lookup(alert, "rule.name"),
                lookup(alert, "rule.level"),
                lookup(alert, "event.severity"),
                _alert_field(alert, "host.name"),
                _alert_field(alert, "user.name"),
                _alert_field(alert, "source.ip"),
                event.get("message") or alert.get("message"),
                lookup(alert, "threat.technique.id"),
            ]
        )
    rows += [
        [],
        [labels["events"]],
        [
            labels["time"],
            labels["event_id"],
            labels["dataset"],
            labels["host"],
            labels["user"],
            labels["source_ip"],
            labels["message"],
            labels["original"],
        ],
    ]
    for event in sorted(events, key=_time_key):
        rows.append(
            [
                event.get("@timestamp"),
                lookup(event, "event.id"),
                lookup(event, "event.dataset"),
                lookup(event, "host.name"),
                lookup(event, "user.name"),
                lookup(event, "source.ip"),
                event.get("message"),
                lookup(event, "event.original"),
            ]
        )
    return excel_csv(rows)


# --- STIX 2.1 ----------------------------------------------------------------------------------

#: Namespace of this platform's STIX ids: uuid5(namespace, what the object stands for), so that
#: exporting the same incident again names every object the same and the receiver updates it.
STIX_NAMESPACE = uuid.UUID("0a60b8e1-10f1-47a3-a067-12f072f0172f")
#: The namespace STIX 2.1 prescribes for cyber-observable ids (section 2.9).
SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
#: `created` of objects that stand for a fixed thing (an organisation, an ATT&CK technique) and
#: never change with an incident: STIX forbids a different `created` for the same id.
REFERENCE_TIME = "2020-01-01T00:00:00.000Z"


def stix_time(value: datetime | str) -> str:
    """A STIX timestamp: UTC, millisecond precision, trailing Z (`created`/`modified` need
    exactly milliseconds, section 3.2)."""
    moment = parse_ts(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _sdo_id(kind: str, *parts: str) -> str:
    """uuid5 over what the object stands for, laid out as a UUIDv4 (version nibble 4): STIX 2.1
    says SDO, SRO and bundle ids SHOULD be version 4, and 122 bits of SHA-1 collide no more
    often than 122 random ones, while re-exports keep their ids."""
    digest = uuid.uuid5(STIX_NAMESPACE, "\x1f".join((kind, *parts)))
    return f"{kind}--{uuid.UUID(bytes=digest.bytes, version=4)}"


def sco_id(kind: str, contributing: Mapping[str, Any]) -> str:
    """A deterministic SCO id as STIX 2.1 section 2.9 defines it: uuid5 over the canonical JSON
    (RFC 8785: sorted keys, no whitespace, UTF-8) of the id-contributing properties."""
    canonical = json.dumps(contributing, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{kind}--{uuid.uuid5(SCO_NAMESPACE, canonical)}"


def _ip_object(value: str) -> dict[str, Any] | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    kind = "ipv4-addr" if address.version == 4 else "ipv6-addr"
    text = str(address)
    return {"type": kind, "spec_version": "2.1", "id": sco_id(kind, {"value": text}), "value": text}


def _user_object(name: str) -> dict[str, Any]:
    return {
        "type": "user-account",
        "spec_version": "2.1",
        "id": sco_id("user-account", {"user_id": name}),
        "user_id": name,
    }


def _strings_at(doc: Mapping[str, Any], name: str) -> list[str]:
    value = lookup(doc, name)
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, str) and item]


#: The platform's own properties, each `x_soc_*` at the top level of the object, declared by an
#: `extension-definition` in the bundle (the STIX 2.1 way to carry custom properties).
EXTENSION_PROPERTIES = (
    "x_soc_incident_id",
    "x_soc_agency",
    "x_soc_status",
    "x_soc_severity",
    "x_soc_severity_score",
    "x_soc_alert_count",
    "x_soc_first_seen",
    "x_soc_last_seen",
    "x_soc_acknowledged_at",
    "x_soc_resolved_at",
    "x_soc_tta_seconds",
    "x_soc_ttr_seconds",
    "x_soc_rule",
    "x_soc_hosts",
    "x_soc_users",
    "x_soc_alert_id",
    "x_soc_rule_id",
)

_EXTENSION_SCHEMA = (
    "Top-level properties of the SOC platform. On incident: x_soc_incident_id (string, the "
    "platform's id), x_soc_agency (string, organization id), x_soc_status (new, acknowledged, "
    "investigating, resolved, false_positive), x_soc_severity (informational, low, medium, high, "
    "critical), x_soc_severity_score (integer 0-100), x_soc_alert_count (integer), "
    "x_soc_first_seen, x_soc_last_seen, x_soc_acknowledged_at, x_soc_resolved_at (timestamps), "
    "x_soc_tta_seconds, x_soc_ttr_seconds (seconds to acknowledge and to resolve), x_soc_rule "
    "(object: id, name, level of the Sigma rule), x_soc_hosts, x_soc_users (lists of strings). "
    "On observed-data: x_soc_alert_id and x_soc_rule_id (strings) of the alert observed."
)


def _extension_definition(producer_ref: str) -> dict[str, Any]:
    return {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": _sdo_id("extension-definition", producer_ref, "soc-platform-fields/1"),
        "created": REFERENCE_TIME,
        "modified": REFERENCE_TIME,
        "created_by_ref": producer_ref,
        "name": "SOC platform incident fields",
        "description": "Incident lifecycle and alert fields of the SOC platform.",
        "schema": _EXTENSION_SCHEMA,
        "version": "1.0.0",
        "extension_types": ["toplevel-property-extension"],
        "extension_properties": list(EXTENSION_PROPERTIES),
    }


class _Bundle:
    """Objects collected once each, in the order first added, with the common properties."""

    def __init__(self, producer_ref: str) -> None:
        self.producer_ref = producer_ref
        self.objects: dict[str, dict[str, Any]] = {}
        self.extension = _extension_definition(producer_ref)

    def add(self, obj: dict[str, Any]) -> str:
        self.objects.setdefault(obj["id"], obj)
        return str(obj["id"])

    def sdo(self, kind: str, ident: str, created: str, modified: str, **props: Any) -> str:
        obj: dict[str, Any] = {
            "type": kind,
            "spec_version": "2.1",
            "id": ident,
            "created": created,
            "modified": modified,
            "created_by_ref": self.producer_ref,
        }
        obj.update({key: value for key, value in props.items() if value not in (None, [], "")})
        custom = [key for key in obj if key.startswith("x_")]
        if custom:
            unknown = set(custom) - set(EXTENSION_PROPERTIES)
            if unknown:
                raise ValueError(f"{kind}: properties {sorted(unknown)} are not declared")
            extension = self.add(self.extension)
            obj["extensions"] = {extension: {"extension_type": "toplevel-property-extension"}}
        return self.add(obj)

    def relate(
        self, source: str, kind: str, target: str, created: str, modified: str, description: str
    ) -> str:
        return self.sdo(
            "relationship",
            _sdo_id("relationship", source, kind, target),
            created,
            modified,
            relationship_type=kind,
            source_ref=source,
            target_ref=target,
            description=description,
        )


def _identity(name: str, key: str, description: str) -> dict[str, Any]:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": _sdo_id("identity", key),
        "created": REFERENCE_TIME,
        "modified": REFERENCE_TIME,
        "name": name,
        "description": description,
        "identity_class": "organization",
        "sectors": ["government-regional"],
    }


def incident_stix(
    incident: Mapping[str, Any],
    alerts: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    *,
    producer: str,
    now: datetime,
    agency_name: str | None = None,
) -> dict[str, Any]:
    """The incident as a STIX 2.1 bundle, published by a `report` at `now`.

    Inside: an `identity` for the producer (the province's SOC) and for the agency; the
    `incident` (a stub SDO in 2.1: name and description, the platform's fields as `x_soc_*`
    properties declared by an `extension-definition`); an `attack-pattern` per ATT&CK
    technique (external id from mitre-attack); a `sighting` of each technique at the agency;
    `observed-data` per alert over the addresses and accounts it involved (`ipv4-addr`,
    `ipv6-addr`, `user-account`); an `indicator` for each publicly routable source address (a
    private address means nothing outside the province); `related-to`, `indicates` and
    `based-on` relationships.

    Ids are derived from what each object stands for (`_sdo_id`, `sco_id`): exporting the
    incident again gives the same ids, and, for the same incident version and `now`, the same
    bundle. `events` are not copied into the bundle (their raw records may hold personal data);
    the alerts name what matters.
    """
    ident = _incident_id(incident)
    if not producer:
        raise ValueError("producer: the name of the exporting SOC is required")
    created = _incident_time(incident, "incident.created", "@timestamp")
    modified = max(created, _incident_time(incident, "incident.updated", "incident.created"))
    published = stix_time(now)

    producer_identity = _identity(producer, "producer\x1f" + producer, "Security operations centre")
    bundle = _Bundle(producer_identity["id"])
    bundle.add(producer_identity)
    agency = str(lookup(incident, "organization.id") or "")
    agency_ref = None
    if agency:
        agency_identity = _identity(
            agency_name or agency, "agency\x1f" + agency, f"Agency {agency}"
        )
        agency_identity["created_by_ref"] = producer_identity["id"]
        agency_ref = bundle.add(agency_identity)

    incident_ref = _add_incident(bundle, incident, ident, created, modified)
    if agency_ref:
        bundle.relate(incident_ref, "related-to", agency_ref, created, modified, "affected agency")
    techniques = _add_techniques(bundle, incident, alerts, incident_ref, created, modified)
    observed = _add_observations(bundle, alerts, incident_ref)
    _add_sightings(bundle, ident, techniques, observed, agency_ref, created, modified)
    _add_indicators(bundle, alerts, techniques, observed, incident_ref, created, modified)

    report_key = (ident, str(lookup(incident, "incident.version") or modified), published)
    title = str(lookup(incident, "incident.title") or ident)
    bundle.sdo(
        "report",
        _sdo_id("report", *report_key),
        published,
        published,
        name=f"Incident {ident}: {title}",
        description=f"Incident reported by {producer}.",
        report_types=["threat-report"],
        published=published,
        object_refs=list(bundle.objects),
    )
    return {
        "type": "bundle",
        "id": _sdo_id("bundle", *report_key),
        "objects": list(bundle.objects.values()),
    }


def _incident_time(incident: Mapping[str, Any], *names: str) -> str:
    """The first of the named timestamps that is set, as a STIX timestamp."""
    for name in names:
        value = lookup(incident, name)
        if value is None:
            continue
        try:
            return stix_time(str(value))
        except ValueError:
            raise ValueError(f"incident {_incident_id(incident)}: {name}: {value!r}") from None
    raise ValueError(f"incident {_incident_id(incident)}: none of {', '.join(names)} is set")


def _add_incident(
    bundle: _Bundle, incident: Mapping[str, Any], ident: str, created: str, modified: str
) -> str:
    def when(name: str) -> str | None:
        if lookup(incident, "incident." + name) is None:
            return None
        return _incident_time(incident, "incident." + name)

    title = str(lookup(incident, "incident.title") or ident)
    hosts = _strings_at(incident, "related.hosts")
    techniques = _strings_at(incident, "threat.technique.id")
    count = lookup(incident, "incident.alert_count")
    description = (
        f"{title}. Status {lookup(incident, 'incident.status')}, severity "
        f"{lookup(incident, 'incident.severity')}, {count} alert(s)"
        f" from {when('first_seen')} to {when('last_seen')}."
    )
    if hosts:
        description += " Hosts: " + ", ".join(hosts) + "."
    if techniques:
        description += " ATT&CK: " + ", ".join(techniques) + "."
    rule = lookup(incident, "incident.rule")
    return bundle.sdo(
        "incident",
        _sdo_id("incident", ident),
        created,
        modified,
        name=title,
        description=description,
        labels=_strings_at(incident, "incident.tags"),
        external_references=[{"source_name": "soc-platform", "external_id": ident}],
        x_soc_incident_id=ident,
        x_soc_agency=lookup(incident, "organization.id"),
        x_soc_status=lookup(incident, "incident.status"),
        x_soc_severity=lookup(incident, "incident.severity"),
        x_soc_severity_score=lookup(incident, "event.severity"),
        x_soc_alert_count=count,
        x_soc_first_seen=when("first_seen"),
        x_soc_last_seen=when("last_seen"),
        x_soc_acknowledged_at=when("acknowledged_at"),
        x_soc_resolved_at=when("resolved_at"),
        x_soc_tta_seconds=lookup(incident, "incident.tta_seconds"),
        x_soc_ttr_seconds=lookup(incident, "incident.ttr_seconds"),
        x_soc_rule=dict(rule) if isinstance(rule, Mapping) else None,
        x_soc_hosts=hosts,
        x_soc_users=_strings_at(incident, "related.user"),
    )


def _add_techniques(
    bundle: _Bundle,
    incident: Mapping[str, Any],
    alerts: Sequence[Mapping[str, Any]],
    incident_ref: str,
    created: str,
    modified: str,
) -> dict[str, str]:
    """An attack-pattern per technique of the incident or its alerts; technique -> its id."""
    names = _strings_at(incident, "threat.technique.id")
    for alert in alerts:
        names += _strings_at(alert, "threat.technique.id")
    refs: dict[str, str] = {}
    for technique in dict.fromkeys(name.upper() for name in names):
        refs[technique] = bundle.sdo(
            "attack-pattern",
            _sdo_id("attack-pattern", technique),
            REFERENCE_TIME,
            REFERENCE_TIME,
            name=technique,
            # No URL: STIX wants a hash beside a URL, and ATT&CK pages change; consumers of
            # ATT&CK key on source name and external id.
            external_references=[{"source_name": "mitre-attack", "external_id": technique}],
        )
        bundle.relate(
            incident_ref,
            "related-to",
            refs[technique],
            created,
            modified,
            f"ATT&CK technique {technique} seen in the incident's alerts",
        )
    return refs


def _alert_observables(bundle: _Bundle, alert: Mapping[str, Any]) -> list[str]:
    refs: list[str] = []
    for name in ("source.ip", "destination.ip"):
        for value in _strings_at(alert, name) or _strings_at(_first_event(alert), name):
            ip = _ip_object(value)
            if ip is not None:
                refs.append(bundle.add(ip))
    for user in _strings_at(alert, "user.name") or _strings_at(_first_event(alert), "user.name"):
        refs.append(bundle.add(_user_object(user)))
    return list(dict.fromkeys(refs))


def _add_observations(
    bundle: _Bundle, alerts: Sequence[Mapping[str, Any]], incident_ref: str
) -> dict[str, tuple[Mapping[str, Any], str]]:
    """observed-data per alert that involved an address or account: alert id -> (alert, ref)."""
    observed: dict[str, tuple[Mapping[str, Any], str]] = {}
    for alert in sorted(alerts, key=_time_key):
        alert_id = lookup(alert, "event.id")
        stamp = alert.get("@timestamp")
        if not isinstance(alert_id, str) or not isinstance(stamp, str):
            raise ValueError(f"alert {alert_id!r}: event.id and @timestamp are required")
        objects = _alert_observables(bundle, alert)
        if not objects:
            continue
        seen = stix_time(stamp)
        first = stix_time(lookup(alert, "event.start") or stamp)
        count = len(_strings_at(alert, "correlation.event_ids")) or len(alert.get("events") or [])
        ref = bundle.sdo(
            "observed-data",
            _sdo_id("observed-data", alert_id),
            seen,
            seen,
            first_observed=min(first, seen),
            last_observed=seen,
            number_observed=max(count, 1),
            object_refs=objects,
            x_soc_alert_id=alert_id,
            x_soc_rule_id=lookup(alert, "rule.id"),
        )
        bundle.relate(incident_ref, "related-to", ref, seen, seen, "alert of the incident")
        observed[alert_id] = (alert, ref)
    return observed


def _add_sightings(
    bundle: _Bundle,
    ident: str,
    techniques: Mapping[str, str],
    observed: Mapping[str, tuple[Mapping[str, Any], str]],
    agency_ref: str | None,
    created: str,
    modified: str,
) -> None:
    """A sighting of each technique at the agency, over the alerts that showed it."""
    for technique, pattern_ref in techniques.items():
        hits = [
            (alert, ref)
            for alert, ref in observed.values()
            if technique in (t.upper() for t in _strings_at(alert, "threat.technique.id"))
        ]
        times = [stix_time(str(alert["@timestamp"])) for alert, _ in hits]
        bundle.sdo(
            "sighting",
            _sdo_id("sighting", ident, technique),
            created,
            modified,
            sighting_of_ref=pattern_ref,
            count=len(hits) or None,
            first_seen=min(times) if times else None,
            last_seen=max(times) if times else None,
            observed_data_refs=[ref for _, ref in hits],
            where_sighted_refs=[agency_ref] if agency_ref else None,
        )


def _add_indicators(
    bundle: _Bundle,
    alerts: Sequence[Mapping[str, Any]],
    techniques: Mapping[str, str],
    observed: Mapping[str, tuple[Mapping[str, Any], str]],
    incident_ref: str,
    created: str,
    modified: str,
) -> None:
    """An indicator per publicly routable source address: the one thing in an incident another
    organisation can look for in its own logs."""
    sources: dict[str, list[Mapping[str, Any]]] = {}
    for alert in sorted(alerts, key=_time_key):
        for value in _strings_at(alert, "source.ip") or _strings_at(
            _first_event(alert), "source.ip"
        ):
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                continue
            if address.is_global:
                sources.setdefault(str(address), []).append(alert)
    for text, hits in sources.items():
        kind = "ipv4-addr" if ipaddress.ip_address(text).version == 4 else "ipv6-addr"
        indicator = bundle.sdo(
            "indicator",
            _sdo_id("indicator", kind, text),
            created,
            modified,
            name=f"Source of attack: {text}",
            description="A publicly routable address that the incident's alerts came from.",
            indicator_types=["malicious-activity"],
            pattern=f"[{kind}:value = '{text}']",
            pattern_type="stix",
            valid_from=stix_time(str(hits[0]["@timestamp"])),
        )
        bundle.relate(incident_ref, "related-to", indicator, created, modified, "attack source")
        for alert in hits:
            alert_id = str(lookup(alert, "event.id"))
            if alert_id in observed:
                bundle.relate(
                    indicator, "based-on", observed[alert_id][1], created, modified, "alert"
                )
            for technique in _strings_at(alert, "threat.technique.id"):
                bundle.relate(
                    indicator,
                    "indicates",
                    techniques[technique.upper()],
                    created,
                    modified,
                    f"address seen in {technique}",
                )
