"""Raw records (bus topic ``soc.raw``) -> ECS events.

``normalize`` runs on every event, so it never raises: a record it cannot understand still
becomes an event carrying the original line and tags saying what went wrong, because a
normalizer that drops or crashes on odd input is a way for an attacker to go unseen.

The record's ``format`` picks the parser: absent or "syslog" is a syslog line (this module);
every other format is in ``soc.normalize.formats``.
"""

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

import orjson

from soc import metrics
from soc.normalize.cef import cef_start, normalize_cef
from soc.normalize.cisco import cisco_tag, normalize_cisco
from soc.normalize.ecs import Event, format_utc
from soc.normalize.formats import FORMATS, unknown_format
from soc.normalize.fortigate import is_fortigate, normalize_fortigate
from soc.normalize.programs import PROGRAMS, ProgramParser
from soc.normalize.record import (
    ECS_VERSION,
    FAILURE_REASONS,
    MAPPING,
    NormalizeOptions,
    finish,
    merge_vouched,
    parse_time,
    peer,
    receipt,
    text,
)
from soc.normalize.suricata import is_eve, normalize_eve
from soc.normalize.syslog import (
    FACILITY_NAMES,
    SEVERITY_NAMES,
    SyslogMessage,
    parse_syslog,
    resolve_timestamp,
)
from soc.normalize.windows import is_windows_event, normalize_windows

__all__ = ["ECS_VERSION", "NormalizeOptions", "normalize"]

_log = logging.getLogger(__name__)
_GENERIC: Final = ("syslog", "syslog")  # event.module, event.dataset without a program parser
_SYSLOG: Final = "syslog"
_WINDOWS: Final = "windows"  # the kinds of JSON a shipper sends over syslog
_EVE: Final = "eve"
_UNPARSED: Final = "syslog_unparsed"  # the tag of a line without a syslog header
_UNKNOWN: Final = "unknown"  # the metric's label for any format we do not know (bounded labels)


def normalize(record: Mapping[str, Any], options: NormalizeOptions) -> dict[str, Any]:
    """Raw record -> one ECS event (nested dicts, as ECS nests them). Never raises."""
    try:
        kind = record.get("format")
        if kind is None or kind == _SYSLOG:
            return _normalize(record, options)
        parser = FORMATS.get(kind) if isinstance(kind, str) else None
        event = parser(record, options) if parser is not None else unknown_format(record, kind)
        error = event.get("error")
        if isinstance(error, dict) and (reason := error.get("type")) in FAILURE_REASONS:
            label = kind if parser is not None else _UNKNOWN
            metrics.NORMALIZE_FAILURES.labels(label, reason).inc()
        return event
    except Exception as exc:  # the stream must outlive any single record
        metrics.NORMALIZE_FAILURES.labels(_UNKNOWN, "normalize_failed").inc()
        return _failure_event(record, exc)


def _normalize(record: Mapping[str, Any], options: NormalizeOptions) -> Event:
    original = text(record.get("data")) or ""
    parsed = parse_syslog(original)
    shipped = _shipped_document(parsed.message, original)
    if shipped is not None:
        return _from_shipped(record, options, parsed, original, shipped)
    tags = list(parsed.tags)
    got = receipt(record.get("received_at"), tags)
    ingested, received = got.text, got.moment
    peer_ip, peer_address = peer(record.get("source"))
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
    program = _program(parsed.appname) if parsed.appname is not None else None
    if program is not None or not _apply_appliance(event, parsed, original, options):
        _apply_program(event, parsed, program)
    merge_vouched(event, record, tags)
    return event


def _shipped_document(message: str, line: str) -> tuple[str, dict[str, Any]] | None:
    """A Windows event or a Suricata EVE record that a shipper sent as JSON over syslog (NXLog's
    to_json(), Winlogbeat's or Suricata's syslog output; with a syslog header or without one):
    the JSON from the line's first brace, whatever the header parser made of it (a tag of
    `{"EventTime"`), with its kind. None for any other line, JSON or not."""
    stripped = line.rstrip()
    if not stripped.endswith("}"):
        return None  # most lines: no JSON object at their end
    text = message.strip()
    if not (text.startswith("{") and text.endswith("}")):
        start = stripped.find("{")
        if start < 0:
            return None
        text = stripped[start:]
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    if is_windows_event(document):
        return _WINDOWS, document
    return (_EVE, document) if is_eve(document) else None


def _from_shipped(
    record: Mapping[str, Any],
    options: NormalizeOptions,
    parsed: SyslogMessage,
    line: str,
    shipped: tuple[str, dict[str, Any]],
) -> Event:
    """The shipped document's event, as its own format makes it, with the syslog header kept
    under log.syslog and the whole line as the original."""
    kind, document = shipped
    if kind == _WINDOWS:
        event = normalize_windows(document, record_id=text(record.get("id")), zone=options.timezone)
    else:
        event = normalize_eve(document)
        if parsed.hostname and "host" not in event:
            event["host"] = {"name": parsed.hostname}
    syslog = _log_syslog(parsed)
    if not parsed.message.lstrip().startswith("{"):
        for taken in ("appname", "procid", "msgid"):  # the JSON's start, taken for a tag
            syslog.pop(taken, None)
    if syslog:
        log = event.setdefault("log", {})
        if isinstance(log, dict):
            log["syslog"] = syslog
    tags = [tag for tag in parsed.tags if tag != _UNPARSED]
    return finish(event, record, line, tags)


def _apply_appliance(
    event: Event, parsed: SyslogMessage, line: str, options: NormalizeOptions
) -> bool:
    """Fill the event from a security appliance's own format in a line no program parser
    claims (CEF, FortiGate's pairs, a Cisco message tag); False when the line has none."""
    header_host = bool(parsed.hostname)
    cef = cef_start(parsed.message, line)
    if cef is not None:
        eaten = parsed.hostname is not None and "CEF:" in parsed.hostname
        if normalize_cef(event, cef, options.timezone, header_host=header_host and not eaten):
            _cef_header(event, parsed, line, eaten)
            return True
    if is_fortigate(parsed.message):
        normalize_fortigate(event, parsed.message, options.timezone, header_host=header_host)
        return True
    tag = cisco_tag(parsed.appname, parsed.message)
    if tag is not None:
        normalize_cisco(event, tag, header_host=header_host)
        return True
    return False


def _cef_header(event: Event, parsed: SyslogMessage, line: str, eaten: bool) -> None:
    """Undo what the syslog parser made of a CEF line's start: a host name taken from CEF's
    header (a syslog header without one), the flags of a line that is CEF alone."""
    if eaten:
        syslog = event.get("log", {}).get("syslog")
        if isinstance(syslog, dict):
            syslog.pop("hostname", None)
    if line.startswith("CEF:") and _UNPARSED in event["tags"]:
        event["tags"].remove(_UNPARSED)
        event.pop("error", None)


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


def _set_event_id(event: Event, value: object) -> None:
    event_id = text(value)
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
    if isinstance(organization, MAPPING):
        event["organization"] = dict(organization)
    flags = record.get("flags")
    if isinstance(flags, list | tuple):
        for flag in flags:
            if isinstance(flag, str) and flag not in tags:
                tags.append(flag)
    original_b64 = record.get("data_b64")
    if isinstance(original_b64, str):
        event["soc"] = {"original_b64": original_b64}


def _apply_program(event: Event, parsed: SyslogMessage, program: ProgramParser | None) -> None:
    """Set process.* and module/dataset, then let the program's parser (the app name's, if
    it has one) add its fields."""
    app = parsed.appname
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


def _program(app: str) -> ProgramParser | None:
    """The parser for an APP-NAME; "postfix/smtpd" (and "postfix-out/smtp" from a second
    instance) falls back to its suite's name, since the daemon list is open-ended."""
    program = PROGRAMS.get(app)
    if program is None and "/" in app:
        suite = app.partition("/")[0]
        program = PROGRAMS.get(suite) or PROGRAMS.get(suite.partition("-")[0])
    return program


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
    if received is None or parse_time(received) is None:
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
