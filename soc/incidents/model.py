"""The incident document and its lifecycle, as pure functions over dicts.

An incident is an ECS-style document (`event.kind: incident`) whose `incident.*` fields carry the
analyst's view: status, assignee, counts, times. Its `@timestamp` is the time of its latest alert,
so the default sort (newest first) is "most recently active first".

Lifecycle: new -> acknowledged -> investigating -> resolved | false_positive, and `reopen` from
either end state back to investigating. Skipping ahead is allowed (an obvious false positive can
be closed while new); going backwards is not, except by reopening.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import orjson

from soc.detect.alerts import SEVERITY
from soc.ids import stable_id
from soc.store.documents import nested
from soc.timeutil import canonical, format_ts, parse_ts

Status = Literal["new", "acknowledged", "investigating", "resolved", "false_positive"]
STATUSES: Final[tuple[Status, ...]] = (
    "new",
    "acknowledged",
    "investigating",
    "resolved",
    "false_positive",
)
OPEN: Final = frozenset({"new", "acknowledged", "investigating"})
CLOSED: Final = frozenset({"resolved", "false_positive"})
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "new": frozenset({"acknowledged", "investigating", "resolved", "false_positive"}),
    "acknowledged": frozenset({"investigating", "resolved", "false_positive"}),
    "investigating": frozenset({"resolved", "false_positive"}),
    "resolved": frozenset(),
    "false_positive": frozenset(),
}
#: Sigma levels in rising order; an incident's level is its worst alert's.
LEVELS: Final = ("informational", "low", "medium", "high", "critical")
#: How many distinct hosts, users and addresses an incident lists (the count goes on).
MAX_RELATED: Final = 100
MAX_COMMENTS: Final = 1000
MAX_COMMENT_LENGTH: Final = 10_000
MAX_TAGS: Final = 50
#: The most of an alert's message an incident keeps as its latest.
MAX_MESSAGE: Final = 1000


class TransitionError(ValueError):
    """A change the lifecycle does not allow; the message says which and why."""


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list):
        return [item for v in value for item in _strings(v)]
    return []


def agency_of(doc: Mapping[str, Any]) -> str | None:
    value = nested(doc, "organization.id")
    return value if isinstance(value, str) and value else None


def grouping_key(alert: Mapping[str, Any], group_by: Sequence[str]) -> str:
    """Agency, then the configured fields' values, then a correlation's group-by values: alerts
    of different agencies never share an incident."""
    parts = [agency_of(alert) or "-"]
    for name in group_by:
        parts.append(",".join(_strings(nested(alert, name))) or "-")
    group = nested(alert, "correlation.group")
    if isinstance(group, Mapping):
        parts += [f"{k}={','.join(_strings(v))}" for k, v in sorted(group.items())]
    return "|".join(parts)


def incident_id(key: str, first_alert_id: str) -> str:
    """Deterministic: a replayed first alert opens the same incident, not a second one."""
    return stable_id("incident", key, first_alert_id)


def level_of(alert: Mapping[str, Any]) -> str:
    level = nested(alert, "rule.level")
    return level if level in LEVELS else "medium"


def _title(alert: Mapping[str, Any]) -> str:
    name = nested(alert, "rule.name") or nested(alert, "message") or "alert"
    hosts = _strings(nested(alert, "host.name"))
    return f"{name} — {hosts[0]}" if hosts else str(name)


def new_incident(key: str, alert: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    ident = incident_id(key, str(nested(alert, "event.id")))
    at = _alert_time(alert, now)
    found = alert.get("rule")
    rule: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    doc: dict[str, Any] = {
        "@timestamp": at,
        "event": {"id": ident, "kind": "incident", "severity": 0},
        "incident": {
            "id": ident,
            "key": key,
            "title": _title(alert),
            "status": "new",
            "severity": "informational",
            "alert_count": 0,
            "first_seen": at,
            "last_seen": at,
            "created": format_ts(now),
            "updated": format_ts(now),
            "acknowledged_at": None,
            "resolved_at": None,
            "tta_seconds": None,
            "ttr_seconds": None,
            "reopen_count": 0,
            "assignee": None,
            "tags": [],
            "comments": [],
            "rule": {k: rule.get(k) for k in ("id", "name", "level") if k in rule},
        },
        "threat": {"technique": {"id": []}},
        "related": {"hosts": [], "user": [], "ip": []},
    }
    agency = agency_of(alert)
    if agency:
        doc["organization"] = {"id": agency}
    return doc


def _alert_time(alert: Mapping[str, Any], now: datetime) -> str:
    value = alert.get("@timestamp")
    if isinstance(value, str):
        try:
            return canonical(value)
        except ValueError:
            pass
    return format_ts(now)


#: Refused by `copied`'s round trip rather than turned into text: such a document is deep-copied.
_JSON_ONLY = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def copied(incident: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of an incident document, to change without touching the caller's. Incidents
    are JSON (read from the store, or built here), and a JSON round trip copies one 5-10x faster
    than `copy.deepcopy` (one that holds its hundred related users and addresses: 64-100 -> 7-13
    us; the grouping stage copies every incident that grows). A document with anything else in it
    (a datetime, a key that is not text, an integer beyond 64 bits) is deep-copied."""
    try:
        # Only a dict serializes (another Mapping raises TypeError), so a dict comes back.
        doc: dict[str, Any] = orjson.loads(orjson.dumps(incident, option=_JSON_ONLY))
    except TypeError:
        return copy.deepcopy(dict(incident))
    return doc


def _merge_list(target: list[Any], values: Iterable[str], cap: int = MAX_RELATED) -> None:
    for value in values:
        # The cap first: a full list (a brute force's hundred addresses) is not searched.
        if len(target) < cap and value not in target:
            target.append(value)


def add_alerts(
    incident: Mapping[str, Any], alerts: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    """The incident with these (new, not yet counted) alerts folded in: count, worst severity,
    first and last seen, techniques, hosts, users and addresses."""
    doc = copied(incident)
    body = doc["incident"]
    for alert in alerts:
        at = _alert_time(alert, now)
        body["alert_count"] = int(body.get("alert_count") or 0) + 1
        if at < body["first_seen"]:
            body["first_seen"] = at
        if at > body["last_seen"]:
            body["last_seen"] = at
        level = level_of(alert)
        if LEVELS.index(level) > LEVELS.index(body.get("severity") or "informational"):
            body["severity"] = level
        severity = nested(alert, "event.severity")
        if isinstance(severity, int) and severity > int(doc["event"].get("severity") or 0):
            doc["event"]["severity"] = severity
        elif not doc["event"].get("severity"):
            doc["event"]["severity"] = SEVERITY.get(level, 47)
        threat = doc.setdefault("threat", {}).setdefault("technique", {}).setdefault("id", [])
        _merge_list(threat, _strings(nested(alert, "threat.technique.id")))
        related = doc.setdefault("related", {})
        _merge_list(related.setdefault("hosts", []), _strings(nested(alert, "host.name")))
        users = _strings(nested(alert, "user.name"))
        _merge_list(related.setdefault("user", []), users)
        addresses = [
            *_strings(nested(alert, "source.ip")),
            *_strings(nested(alert, "destination.ip")),
            *_strings(nested(alert, "host.ip")),
        ]
        _merge_list(related.setdefault("ip", []), addresses)
        said = nested(alert, "message")
        if isinstance(said, str) and said and said != nested(alert, "rule.name"):
            # What the latest alert's rule details say happened (the signature, the user...).
            body["last_message"] = said[:MAX_MESSAGE]
    doc["@timestamp"] = body["last_seen"]
    body["updated"] = format_ts(now)
    return doc


def _seconds_between(start: str | None, end: datetime) -> float | None:
    if not start:
        return None
    try:
        return round((end - parse_ts(start)).total_seconds(), 3)
    except ValueError:
        return None


def change_status(incident: Mapping[str, Any], target: str, now: datetime) -> dict[str, Any]:
    doc = copied(incident)
    body = doc["incident"]
    current = body.get("status", "new")
    if target not in STATUSES:
        raise TransitionError(f"unknown status {target!r} (one of {', '.join(STATUSES)})")
    if target == current:
        raise TransitionError(f"the incident is already {current}")
    if target not in TRANSITIONS.get(current, frozenset()):
        hint = " (reopen it first)" if current in CLOSED else ""
        raise TransitionError(f"an incident that is {current} cannot become {target}{hint}")
    stamp = format_ts(now)
    if current == "new":
        body["acknowledged_at"] = stamp
        body["tta_seconds"] = _seconds_between(body.get("created"), now)
    if target in CLOSED:
        body["resolved_at"] = stamp
        body["ttr_seconds"] = _seconds_between(body.get("created"), now)
    body["status"] = target
    body["updated"] = stamp
    return doc


def reopen(incident: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    doc = copied(incident)
    body = doc["incident"]
    if body.get("status") not in CLOSED:
        raise TransitionError(
            "only a resolved or false-positive incident can be reopened"
            f" (it is {body.get('status')})"
        )
    body["status"] = "investigating"
    body["resolved_at"] = None
    body["ttr_seconds"] = None
    body["reopen_count"] = int(body.get("reopen_count") or 0) + 1
    body["updated"] = format_ts(now)
    return doc


def set_assignee(
    incident: Mapping[str, Any], assignee: str | None, now: datetime
) -> dict[str, Any]:
    doc = copied(incident)
    doc["incident"]["assignee"] = assignee or None
    doc["incident"]["updated"] = format_ts(now)
    return doc


def set_tags(incident: Mapping[str, Any], tags: Sequence[str], now: datetime) -> dict[str, Any]:
    clean: list[str] = []
    for tag in tags:
        tag = tag.strip()
        if not tag or len(tag) > 64:
            raise TransitionError(f"tag {tag!r}: 1 to 64 characters")
        if tag not in clean:
            clean.append(tag)
    if len(clean) > MAX_TAGS:
        raise TransitionError(f"at most {MAX_TAGS} tags")
    doc = copied(incident)
    doc["incident"]["tags"] = clean
    doc["incident"]["updated"] = format_ts(now)
    return doc


def add_comment(
    incident: Mapping[str, Any], author: str, text: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    text = text.strip()
    if not text:
        raise TransitionError("a comment needs text")
    if len(text) > MAX_COMMENT_LENGTH:
        raise TransitionError(f"a comment has at most {MAX_COMMENT_LENGTH} characters")
    doc = copied(incident)
    comments = doc["incident"].setdefault("comments", [])
    if len(comments) >= MAX_COMMENTS:
        raise TransitionError(f"an incident holds at most {MAX_COMMENTS} comments")
    stamp = format_ts(now)
    comment = {
        "id": stable_id("comment", doc["incident"]["id"], str(len(comments)), stamp),
        "author": author,
        "at": stamp,
        "text": text,
    }
    comments.append(comment)
    doc["incident"]["updated"] = stamp
    return doc, comment
