"""Alerts: what a rule hit becomes. An ECS document of `event.kind: alert` that carries the rule,
the ATT&CK mapping, the entities analysts pivot on, and the triggering event itself."""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from soc.detect.correlation import CorrelationHit
from soc.detect.rules import CompiledRule, rule_summary
from soc.ids import stable_id
from soc.store.documents import lookup
from soc.timeutil import format_ts, utcnow

#: Sigma levels -> ECS `event.severity` (the 0-100 scale Elastic Security uses).
SEVERITY = {"informational": 21, "low": 21, "medium": 47, "high": 73, "critical": 99}

#: Entity fields copied from the event to the alert top level, for filters and grouping.
_ENTITIES = ("host", "source", "destination", "user", "process", "organization", "url")
_TECHNIQUE = re.compile(r"attack\.t\d{4}(\.\d{3})?")
#: A field in a rule's `details`: `%name%`.
_PLACEHOLDER = re.compile(r"%([A-Za-z_@][\w.@-]*)%")
#: What separates the segments of a rule's `details` (Hayabusa's separator).
_SEGMENT = "¦"
#: The most of one value, and of the whole, an alert's details show.
_VALUE_CHARS = 300
_DETAILS_CHARS = 1000


def alert_id(rule_id: str, event_id: str) -> str:
    """Deterministic: the same rule on the same event is the same alert, however often replayed."""
    return stable_id("alert", rule_id, event_id)


def build_alert(rule: CompiledRule, event: Mapping[str, Any]) -> dict[str, Any]:
    source_event = event.get("event", {})
    event_id = str(source_event.get("id", ""))
    alert: dict[str, Any] = {
        "@timestamp": event.get("@timestamp") or format_ts(utcnow()),
        "event": {
            "id": alert_id(rule.id, event_id),
            "kind": "alert",
            "module": "sigma",
            "dataset": "soc.alerts",
            "created": format_ts(utcnow()),
            "severity": SEVERITY.get(rule.level, 47),
            "ingested": source_event.get("ingested"),
        },
        "rule": rule_summary(rule),
        "tags": list(rule.tags),
        "message": render_details(rule.details, event) if rule.details else rule.title,
        "events": [dict(event)],
    }
    if rule.techniques or rule.tactics:
        alert["threat"] = {
            "framework": "MITRE ATT&CK",
            "technique": {"id": list(rule.techniques)},
            "tactic": {"name": list(rule.tactics)},
        }
    for name in _ENTITIES:
        if name in event:
            alert[name] = event[name]
    return alert


def render_details(template: str, event: Mapping[str, Any]) -> str:
    """A rule's `details` for one event: each `%field%` replaced by the event's value, the field
    named as stored (`%source.ip%`, `%rule.name%`) or, for a Windows event, as its event data
    names it (`%TargetUserName%`, as Hayabusa's rules write them); "-" where the event has none.
    Segments between `¦` of which no placeholder found a value are left out (`File: %file.path%`
    for an event without a file). One line, each value and the whole cut to a length an alert
    list can show."""
    shown: list[str] = []
    for segment in template.split(_SEGMENT):
        found = 0

        def value(placeholder: re.Match[str]) -> str:
            nonlocal found
            name = placeholder[1]
            text = _text(lookup(event, name))
            if text is None and "." not in name:
                text = _text(lookup(event, f"winlog.event_data.{name}"))
            if text is None:
                return "-"
            found += 1
            return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"

        rendered, placeholders = _PLACEHOLDER.subn(value, segment)
        rendered = " ".join(rendered.split())
        if rendered and (found or not placeholders):
            shown.append(rendered)
    text = f" {_SEGMENT} ".join(shown)
    return text if len(text) <= _DETAILS_CHARS else text[: _DETAILS_CHARS - 1] + "…"


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        items = [text for item in value if (text := _text(item)) is not None]
        return ", ".join(items) if items else None
    if value is None or value == "" or isinstance(value, Mapping):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a correlation's count
    return str(value)


def build_correlation_alert(hit: CorrelationHit) -> dict[str, Any]:
    """A correlation hit as an alert: the group it fired for, the window, the count, and a few
    of the events that made it up (their ids all, up to the engine's cap)."""
    rule = hit.rule
    summary: dict[str, Any] = {
        "id": rule.id,
        "name": rule.title,
        "level": rule.level,
        "ruleset": "sigma",
        "tags": list(rule.tags),
        "type": rule.type,
    }
    if rule.description:
        summary["description"] = rule.description
    alert: dict[str, Any] = {
        "@timestamp": format_ts(datetime.fromtimestamp(hit.last_seen, UTC)),
        "event": {
            "id": hit.id,
            "kind": "alert",
            "module": "sigma",
            "dataset": "soc.alerts",
            "created": format_ts(utcnow()),
            "severity": SEVERITY.get(rule.level, 47),
            "start": format_ts(datetime.fromtimestamp(hit.first_seen, UTC)),
            "end": format_ts(datetime.fromtimestamp(hit.last_seen, UTC)),
        },
        "rule": summary,
        "tags": list(rule.tags),
        "message": rule.title,
        "correlation": {
            "type": rule.type,
            "group": dict(hit.group),
            "value": hit.value,
            "event_ids": list(hit.event_ids),
        },
        "events": [dict(event) for event in hit.events],
    }
    techniques = [t.split(".", 1)[1].upper() for t in rule.tags if _TECHNIQUE.fullmatch(t)]
    if techniques:
        alert["threat"] = {"framework": "MITRE ATT&CK", "technique": {"id": techniques}}
    first = hit.events[0] if hit.events else {}
    for name in _ENTITIES:
        if name in first:
            alert[name] = first[name]
    for path, value in hit.group:
        _set_path(alert, path, value)
    if rule.details:
        alert["message"] = render_details(rule.details, ChainMap(alert, dict(first)))
    return alert


def _set_path(doc: dict[str, Any], path: str, value: str) -> None:
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {} if child is None else {"value": child}
        else:
            child = node[part] = dict(child)  # never write into a copied event's own dict
        node = child
    node[leaf] = value


def grouping_key(alert: Mapping[str, Any]) -> str:
    """The bus key for alerts: rule and host, the default incident grouping (DESIGN.md)."""
    host = alert.get("host", {}).get("name", "") if isinstance(alert.get("host"), dict) else ""
    return f"{alert['rule']['id']}|{host}"
