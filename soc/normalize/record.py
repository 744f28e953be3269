"""The raw record's envelope (id, receipt time, peer, agency, flags, vouched fields) applied to
an event, the same way whatever format the record's ``data`` is in.

Every format's parser only reads ``data``; what the collector knows about the record is added
here, so that a parser cannot forget the agency, the id or the original line.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

from soc.normalize.ecs import Event, format_utc

__all__ = [
    "ECS_VERSION",
    "FAILURE_REASONS",
    "MAPPING",
    "NormalizeOptions",
    "Receipt",
    "failed",
    "finish",
    "merge_vouched",
    "parse_time",
    "peer",
    "receipt",
    "text",
]

ECS_VERSION: Final = "8.17.0"

_DEFAULT_TIMEZONE: Final = ZoneInfo("Asia/Ho_Chi_Minh")
# isinstance against the Mapping ABC is slow; records are dicts, so that check comes first.
MAPPING: Final = (dict, Mapping)
# What a sender's vouched `fields` may never set: the agency comes from the collector (the token
# or address that names it), and the id, original and receipt time from the record itself.
# `w3c` is not ECS: it carries an IIS log's #Fields header for the iis format.
_PROTECTED_TOP: Final = frozenset({"organization", "ecs", "soc", "tags", "@timestamp", "w3c"})
_PROTECTED_EVENT: Final = frozenset({"id", "original", "ingested", "created"})
_MAX_FIELDS_DEPTH: Final = 8


# Every error.type the parsers set: the failure metric counts only these, since a sensor's own
# ECS document may carry any error.type and a label per value would be unbounded.
FAILURE_REASONS: Final = frozenset(
    {"unknown_format", "invalid_json", "auditd_unparsed", "access_log_unparsed"}
)


@dataclass(frozen=True)
class NormalizeOptions:
    """Site settings the raw line cannot tell us."""

    # RFC 3164 timestamps carry no zone; devices in a province log in local time.
    timezone: tzinfo = _DEFAULT_TIMEZONE


@dataclass(frozen=True, slots=True)
class Receipt:
    """When the collector received the record: verbatim text and the instant."""

    text: str
    moment: datetime


def text(value: object) -> str | None:
    """The record's strings as strings; bytes (not what the collector sends) are decoded the
    way it would have, so the line is still seen."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def receipt(value: object, tags: list[str]) -> Receipt:
    """The collector's receipt time, kept verbatim (zone-less means UTC). If it is missing or
    not a time, now stands in: a date field Elasticsearch cannot parse would lose the event."""
    if isinstance(value, str) and (moment := parse_time(value)) is not None:
        return Receipt(value, moment)
    tags.append("received_at_invalid")
    now = datetime.now(UTC)
    return Receipt(format_utc(now), now)


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 time as an aware datetime (zone-less means UTC), or None."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def peer(source: object) -> tuple[str | None, str | None]:
    """(peer ip, "ip:port" for log.source.address); IPv6 is bracketed so the port is not
    mistaken for the last group of the address."""
    node = source.get("peer") if isinstance(source, MAPPING) else None
    if not isinstance(node, MAPPING):
        return None, None
    ip = text(node.get("ip"))
    if not ip:
        return None, None
    port = node.get("port")
    if not isinstance(port, int) or isinstance(port, bool):
        return ip, ip
    return ip, f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def failed(event: Event, reason: str, message: str) -> Event:
    """Mark an event as not (fully) parsed: the tag and ``error.type`` name the reason (one of
    ``FAILURE_REASONS``, counted in ``soc_normalize_failures_total``), ``error.message`` why."""
    tags = event.setdefault("tags", [])
    if reason not in tags:
        tags.append(reason)
    event["error"] = {"type": reason, "message": message}
    return event


def finish(
    event: Event,
    record: Mapping[str, Any],
    original: str,
    tags: list[str],
    *,
    keep_event_id: bool = False,
) -> Event:
    """Add what every event carries whatever its format: the original line, the record's id
    (unless ``keep_event_id`` and the event has one), receipt time, agency, flags, the peer and
    the fields the sender vouches for."""
    got = receipt(record.get("received_at"), tags)
    fields = event.get("event")
    if not isinstance(fields, dict):
        if fields is not None:
            tags.append("event_field_not_object")
        fields = event["event"] = {}
    fields.setdefault("kind", "event")
    fields["original"] = original
    fields["ingested"] = got.text
    fields.setdefault("created", got.text)
    record_id = text(record.get("id"))
    if record_id is not None and not (keep_event_id and text(fields.get("id"))):
        fields["id"] = record_id
    _set_timestamp(event, got, tags)
    event.setdefault("ecs", {"version": ECS_VERSION})
    _set_peer(event, record.get("source"))
    _set_extras(event, record, tags)
    merge_vouched(event, record, tags)
    _set_tags(event, tags)
    return event


def merge_vouched(event: Event, record: Mapping[str, Any], tags: list[str]) -> None:
    """Apply the record's ``fields``: ECS values the sender vouches for (host.name,
    log.file.path...). Keys that only a collector may set are ignored."""
    vouched = record.get("fields")
    if isinstance(vouched, MAPPING):
        _merge_vouched(event, vouched, tags, 0)


def _set_timestamp(event: Event, got: Receipt, tags: list[str]) -> None:
    """A document without a readable @timestamp is invisible to every time-bounded search."""
    stamp = event.get("@timestamp")
    if isinstance(stamp, str) and (moment := parse_time(stamp)) is not None:
        event["@timestamp"] = format_utc(moment)
        return
    if stamp is not None:
        tags.append("timestamp_invalid")
    event["@timestamp"] = format_utc(got.moment)


def _set_peer(event: Event, source: object) -> None:
    ip, address = peer(source)
    if address is None:
        return
    log = event.setdefault("log", {})
    if isinstance(log, dict):
        log.setdefault("source", {"address": address})
    host = event.get("host")
    if host is None:
        event["host"] = {"name": ip}
    elif isinstance(host, dict):
        host.setdefault("name", ip)


def _set_extras(event: Event, record: Mapping[str, Any], tags: list[str]) -> None:
    """Collector-side facts: tenant, transport flags and the exact bytes of non-UTF-8 lines."""
    organization = record.get("organization")
    if isinstance(organization, MAPPING):
        event["organization"] = dict(organization)
    else:
        event.pop("organization", None)  # only the collector names the agency
    source = record.get("source")
    source_id = source.get("id") if isinstance(source, MAPPING) else None
    if isinstance(source_id, str) and source_id:
        # The configured source the record came through: what "sources gone silent" counts.
        labels = event.get("labels")
        event["labels"] = {**(labels if isinstance(labels, dict) else {}), "source_id": source_id}
    flags = record.get("flags")
    if isinstance(flags, list | tuple):
        for flag in flags:
            if isinstance(flag, str) and flag not in tags:
                tags.append(flag)
    original_b64 = record.get("data_b64")
    soc = event.get("soc")
    if isinstance(original_b64, str):
        event["soc"] = {"original_b64": original_b64}
    elif soc is not None:
        del event["soc"]  # a sender's document must not pose as our own bookkeeping


def _merge_vouched(
    node: dict[str, Any], vouched: Mapping[str, Any], tags: list[str], depth: int
) -> None:
    """Sender-vouched values win over parsed ones, leaf by leaf; an object never replaces a
    value or the reverse, since one field holding both shapes is refused by Elasticsearch."""
    for dotted, original_value in vouched.items():
        if not isinstance(dotted, str):
            continue
        key, value = _unflatten(dotted, original_value)
        if depth == 0 and key in _PROTECTED_TOP:
            continue
        mine = node.get(key)
        if isinstance(value, MAPPING):
            if mine is None:
                mine = node[key] = {}
            if not isinstance(mine, dict) or depth >= _MAX_FIELDS_DEPTH:
                _conflict(tags)
                continue
            if depth == 0 and key == "event":
                value = {k: v for k, v in value.items() if k not in _PROTECTED_EVENT}
            _merge_vouched(mine, value, tags, depth + 1)
        elif isinstance(mine, dict):
            _conflict(tags)
        else:
            node[key] = value


def _unflatten(key: str, value: Any) -> tuple[str, Any]:
    """ "host.name": x is {"host": {"name": x}}: detection and the stores read nested ECS."""
    head, dot, rest = key.partition(".")
    if not dot or not head or not rest:
        return key, value
    return head, {rest: value}


def _conflict(tags: list[str]) -> None:
    if "fields_conflict" not in tags:
        tags.append("fields_conflict")


def _set_tags(event: Event, tags: list[str]) -> None:
    """tags is a keyword list everywhere downstream (the stage reads each as text), so what a
    sender's document put there that is not text is dropped, and that is said."""
    existing = event.get("tags")
    listed = existing if isinstance(existing, list) else [] if existing is None else [existing]
    merged: list[str] = [tag for tag in listed if isinstance(tag, str)]
    if len(merged) != len(listed):
        merged.append("tags_invalid")
    for tag in tags:
        if tag not in merged:
            merged.append(tag)
    if merged:
        event["tags"] = merged
    else:
        event.pop("tags", None)
