"""Alerts: what a rule hit becomes. An ECS document of `event.kind: alert` that carries the rule,
the ATT&CK mapping, the entities analysts pivot on, and the triggering event itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from soc.detect.rules import CompiledRule, rule_summary
from soc.ids import stable_id
from soc.timeutil import format_ts, utcnow

#: Sigma levels -> ECS `event.severity` (the 0-100 scale Elastic Security uses).
SEVERITY = {"informational": 21, "low": 21, "medium": 47, "high": 73, "critical": 99}

#: Entity fields copied from the event to the alert top level, for filters and grouping.
_ENTITIES = ("host", "source", "destination", "user", "process", "organization", "url")


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
        "message": rule.title,
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


def grouping_key(alert: Mapping[str, Any]) -> str:
    """The bus key for alerts: rule and host, the default incident grouping (DESIGN.md)."""
    host = alert.get("host", {}).get("name", "") if isinstance(alert.get("host"), dict) else ""
    return f"{alert['rule']['id']}|{host}"
