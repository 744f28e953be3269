"""Raw syslog records (bus topic ``soc.raw``) -> ECS events.

``normalize`` runs on every event, so it never raises: a record it cannot understand still
becomes an event carrying the original line and tags saying what went wrong, because a
normalizer that drops or crashes on odd input is a way for an attacker to go unseen.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

from soc.normalize.ecs import Event, format_utc
from soc.normalize.programs import PROGRAMS, ProgramParser
from soc.normalize.syslog import (
    FACILITY_NAMES,
    SEVERITY_NAMES,
    SyslogMessage,
    parse_syslog,
    resolve_timestamp,
)

__all__ = ["ECS_VERSION", "NormalizeOptions", "normalize"]

ECS_VERSION: Final = "8.17.0"

_log = logging.getLogger(__name__)
_DEFAULT_TIMEZONE: Final = ZoneInfo("Asia/Ho_Chi_Minh")
_GENERIC: Final = ("syslog", "syslog")  # event.module, event.dataset without a program parser
# isinstance against the Mapping ABC is slow; records are dicts, so that check comes first.
_MAPPING: Final = (dict, Mapping)


@dataclass(frozen=True)
class NormalizeOptions:
    """Site settings the raw line cannot tell us."""

    # RFC 3164 timestamps carry no zone; devices in a province log in local time.
    timezone: tzinfo = _DEFAULT_TIMEZONE


def normalize(record: Mapping[str, Any], options: NormalizeOptions) -> dict[str, Any]:
    """Raw record -> one ECS event (nested dicts, as ECS nests them). Never raises."""
    try:
        return _normalize(record, options)
    except Exception as exc:  # the stream must outlive any single record
        return _failure_event(record, exc)


def _normalize(record: Mapping[str, Any], options: NormalizeOptions) -> Event:
    original = _text(record.get("data")) or ""
    parsed = parse_syslog(original)
    tags = list(parsed.tags)
    ingested, received = _receipt(record.get("received_at"), tags)
    peer_ip, peer_address = _peer(record.get("source"))
    event: Event = {
        "@timestamp": _timestamp(parsed, options.timezone, received, ingested, tags),
        "ecs": {"version": ECS_VERSION},
        "event": {"kind": "event", "original": original, "ingested": ingested, "created": ingested},
        "message": parsed.message,
        "tags": tags,
    }
    _set_event_id(event, record.get("id"))
    _set_host(event, parsed.hostname, peer_ip)
    _set_log(event, parsed, peer_address)
    _set_record_extras(event, record, tags)
    if parsed.error is not None:
        event["error"] = {"message": parsed.error}
    _apply_program(event, parsed)
    return event


def _text(value: object) -> str | None:
    """The record's strings as strings; bytes (not what the collector sends) are decoded the
    way it would have, so the line is still seen."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _receipt(value: object, tags: list[str]) -> tuple[str, datetime]:
    """The collector's receipt time, kept verbatim (zone-less means UTC). If it is missing or
    not a time, now stands in: a date field Elasticsearch cannot parse would lose the event."""
    if isinstance(value, str) and (moment := _parse_time(value)) is not None:
        return value, moment
    tags.append("received_at_invalid")
    now = datetime.now(UTC)
    return format_utc(now), now


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _timestamp(
    parsed: SyslogMessage, zone: tzinfo, received: datetime, ingested: str, tags: list[str]
) -> str:
    """The header's time in UTC, or the receipt time when the header has none we can trust."""
    if parsed.timestamp is None:
        return ingested
    resolved = resolve_timestamp(parsed.timestamp, zone, received)
    if resolved is None:
        tags.append("syslog_bad_timestamp")
        return ingested
    return format_utc(resolved)


def _peer(source: object) -> tuple[str | None, str | None]:
    """(peer ip, "ip:port" for log.source.address); IPv6 is bracketed so the port is not
    mistaken for the last group of the address."""
    peer = source.get("peer") if isinstance(source, _MAPPING) else None
    if not isinstance(peer, _MAPPING):
        return None, None
    ip = _text(peer.get("ip"))
    if not ip:
        return None, None
    port = peer.get("port")
    if not isinstance(port, int) or isinstance(port, bool):
        return ip, ip
    return ip, f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _set_event_id(event: Event, value: object) -> None:
    event_id = _text(value)
    if event_id is not None:
        event["event"]["id"] = event_id


def _set_host(event: Event, hostname: str | None, peer_ip: str | None) -> None:
    """host.name is who logged the line; when the header omits it, the sender is our best guess."""
    name = hostname if hostname and hostname != "-" else peer_ip
    if name:
        event["host"] = {"name": name}


def _set_log(event: Event, parsed: SyslogMessage, peer_address: str | None) -> None:
    log: dict[str, Any] = {}
    syslog = _log_syslog(parsed)
    if syslog:
        log["syslog"] = syslog
    if peer_address is not None:
        log["source"] = {"address": peer_address}
    if log:
        event["log"] = log


def _log_syslog(parsed: SyslogMessage) -> dict[str, Any]:
    syslog: dict[str, Any] = {}
    priority = parsed.priority
    if priority is not None:
        syslog["priority"] = priority
        facility, severity = priority >> 3, priority & 7
        syslog["facility"] = {"code": facility, "name": FACILITY_NAMES[facility]}
        syslog["severity"] = {"code": severity, "name": SEVERITY_NAMES[severity]}
    if parsed.hostname is not None:
        syslog["hostname"] = parsed.hostname
    if parsed.appname is not None:
        syslog["appname"] = parsed.appname
    if parsed.procid is not None:
        syslog["procid"] = parsed.procid
    if parsed.msgid is not None:
        syslog["msgid"] = parsed.msgid
    if parsed.version is not None:
        syslog["version"] = str(parsed.version)
    if parsed.structured_data is not None:
        syslog["structured_data"] = parsed.structured_data
    return syslog


def _set_record_extras(event: Event, record: Mapping[str, Any], tags: list[str]) -> None:
    """Collector-side facts: tenant, transport flags and the exact bytes of non-UTF-8 lines."""
    organization = record.get("organization")
    if isinstance(organization, _MAPPING):
        event["organization"] = dict(organization)
    flags = record.get("flags")
    if isinstance(flags, list | tuple):
        for flag in flags:
            if isinstance(flag, str) and flag not in tags:
                tags.append(flag)
    original_b64 = record.get("data_b64")
    if isinstance(original_b64, str):
        event["soc"] = {"original_b64": original_b64}


def _apply_program(event: Event, parsed: SyslogMessage) -> None:
    """Set process.* and module/dataset, then let the program's parser add its fields."""
    app = parsed.appname
    program = PROGRAMS.get(app) if app is not None else None
    module, dataset = (program.module, program.dataset) if program is not None else _GENERIC
    event["event"]["module"] = module
    event["event"]["dataset"] = dataset
    if app is not None:
        process: dict[str, Any] = {"name": app}
        procid = parsed.procid
        if procid is not None and procid.isascii() and procid.isdigit() and len(procid) < 19:
            process["pid"] = int(procid)  # < 19 digits fits Elasticsearch's long
        event["process"] = process
    if program is not None:
        _run_program(program, parsed.message, event)


def _run_program(program: ProgramParser, message: str, event: Event) -> None:
    """A bug in one program's parser must cost only that program's extra fields."""
    try:
        program.parse(message, event)
    except Exception as exc:
        _log.exception("program parser failed on %r", message)
        event["tags"].append("program_parse_failed")
        event["error"] = {"message": f"program parser failed: {type(exc).__name__}: {exc}"}


def _failure_event(record: object, exc: Exception) -> Event:
    """Last resort when a record defeats normalization (e.g. it is not a mapping at all): an
    event built only from what can be read without further risk, tagged for investigation."""
    _log.exception("normalize failed on a record")
    fields = {key: _safe_text(record, key) for key in ("id", "data", "received_at")}
    received = fields["received_at"]
    if received is None or _parse_time(received) is None:
        received = format_utc(datetime.now(UTC))
    event_fields: dict[str, Any] = {
        "kind": "event",
        "module": _GENERIC[0],
        "dataset": _GENERIC[1],
        "ingested": received,
        "created": received,
    }
    if fields["id"] is not None:
        event_fields["id"] = fields["id"]
    if fields["data"] is not None:
        event_fields["original"] = fields["data"]
    return {
        "@timestamp": received,
        "ecs": {"version": ECS_VERSION},
        "event": event_fields,
        "message": fields["data"] or "",
        "tags": ["normalize_failed"],
        "error": {"message": f"normalize failed: {type(exc).__name__}"},
    }


def _safe_text(record: object, key: str) -> str | None:
    try:
        value = record.get(key) if isinstance(record, Mapping) else None
    except Exception:  # a hostile mapping must not escape the last resort
        return None
    return value if isinstance(value, str) else None
