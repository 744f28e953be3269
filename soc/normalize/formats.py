"""One parser per raw-record ``format`` other than syslog, each giving an ECS event.

A parser reads only the record's ``data`` (and, for IIS, the ``#Fields`` header the sender
passes); ``record.finish`` then adds what every event carries. A payload that does not fit its
declared format is still an event: the line as the message, a tag and ``error.type`` naming the
reason, which the normalizer counts.
"""

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from soc.normalize.auditd import normalize_line
from soc.normalize.ecs import Event
from soc.normalize.record import MAPPING, NormalizeOptions, failed, finish, text
from soc.normalize.suricata import is_eve, normalize_eve
from soc.normalize.web import W3CLog, normalize_access_log
from soc.normalize.windows import is_windows_event, normalize_windows
from soc.normalize.zeek import is_zeek, log_from_path, normalize_zeek

__all__ = ["FORMATS", "FormatParser", "unknown_format"]

FormatParser = Callable[[Mapping[str, Any], NormalizeOptions], Event]

_GENERIC_DATASET: Final = "generic"
_JSON_NAMESPACE: Final = "json"
_MESSAGE_KEYS: Final = ("message", "msg", "log", "text")
_MAX_STREAMS: Final = 4096  # IIS logs whose #Fields header is remembered (least recent go)
_W3C_STREAMS: OrderedDict[tuple[str, ...], W3CLog] = OrderedDict()


def _data(record: Mapping[str, Any]) -> str:
    return text(record.get("data")) or ""


def _plain_event(line: str) -> Event:
    return {"message": line, "event": {"kind": "event", "dataset": _GENERIC_DATASET}}


def _load_object(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object, None) or (None, why not)."""
    try:
        value = orjson.loads(line)
    except (orjson.JSONDecodeError, TypeError) as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"a JSON {type(value).__name__} where an object was expected"
    return value, None


def _not_json(line: str, kind: str, why: str) -> Event:
    return failed(_plain_event(line), "invalid_json", f"{kind} format expects a JSON object: {why}")


# --- the formats ------------------------------------------------------------------------------


def plain(record: Mapping[str, Any], _options: NormalizeOptions) -> Event:
    """A line with no structure we know: kept as the message, searchable as text."""
    line = _data(record)
    return finish(_plain_event(line), record, line, [])


def unknown_format(record: Mapping[str, Any], kind: object) -> Event:
    """A format no parser is registered for: kept as plain text, tagged and explained."""
    line = _data(record)
    event = failed(
        _plain_event(line),
        "unknown_format",
        f"unknown format {str(kind)[:64]!r}: kept as a plain message "
        f"(known: syslog, {', '.join(sorted(FORMATS))})",
    )
    return finish(event, record, line, [])


def ecs(record: Mapping[str, Any], _options: NormalizeOptions) -> Event:
    """A sensor's ECS document, passed through: it keeps its own event.id if it has one."""
    line = _data(record)
    document, why = _load_object(line)
    if document is None:
        return finish(_not_json(line, "ecs", str(why)), record, line, [])
    return finish(document, record, line, [], keep_event_id=True)


def json_auto(record: Mapping[str, Any], options: NormalizeOptions) -> Event:
    """JSON of a kind recognised by its keys: Windows (evtx or Winlogbeat), Suricata EVE, Zeek;
    anything else is a generic event with the document under ``json``."""
    line = _data(record)
    document, why = _load_object(line)
    if document is None:
        return finish(_not_json(line, "json", str(why)), record, line, [])
    if is_windows_event(document):
        return _windows_document(record, line, document, options)
    if is_eve(document):
        return finish(normalize_eve(document), record, line, [])
    if is_zeek(document):
        return finish(normalize_zeek(document, _zeek_log(record)), record, line, [])
    return finish(_generic_json(line, document), record, line, [])


def _generic_json(line: str, document: dict[str, Any]) -> Event:
    event = _plain_event(line)
    for key in _MESSAGE_KEYS:
        value = document.get(key)
        if isinstance(value, str):
            event["message"] = value
            break
    event[_JSON_NAMESPACE] = document
    return event


def windows(record: Mapping[str, Any], options: NormalizeOptions) -> Event:
    line = _data(record)
    document, why = _load_object(line)
    if document is None:
        return finish(_not_json(line, "windows", str(why)), record, line, [])
    return _windows_document(record, line, document, options)


def _windows_document(
    record: Mapping[str, Any], line: str, document: dict[str, Any], options: NormalizeOptions
) -> Event:
    record_id = text(record.get("id"))
    event = normalize_windows(document, record_id=record_id, zone=options.timezone)
    return finish(event, record, line, [])


def suricata_eve(record: Mapping[str, Any], _options: NormalizeOptions) -> Event:
    line = _data(record)
    document, why = _load_object(line)
    if document is None:
        return finish(_not_json(line, "suricata", str(why)), record, line, [])
    return finish(normalize_eve(document), record, line, [])


def zeek_json(record: Mapping[str, Any], _options: NormalizeOptions) -> Event:
    line = _data(record)
    document, why = _load_object(line)
    if document is None:
        return finish(_not_json(line, "zeek", str(why)), record, line, [])
    return finish(normalize_zeek(document, _zeek_log(record)), record, line, [])


def _zeek_log(record: Mapping[str, Any]) -> str | None:
    """The log a Zeek line came from, by its file name (conn.log, dns.2026-11-28.log...)."""
    path = _file_path(record)
    return log_from_path(path) if path else None


def _file_path(record: Mapping[str, Any]) -> str | None:
    fields = record.get("fields")
    log = fields.get("log") if isinstance(fields, MAPPING) else None
    file = log.get("file") if isinstance(log, MAPPING) else None
    path = file.get("path") if isinstance(file, MAPPING) else None
    if isinstance(path, str):
        return path
    source = record.get("source")
    path = source.get("path") if isinstance(source, MAPPING) else None
    return path if isinstance(path, str) else None


def auditd_line(record: Mapping[str, Any], _options: NormalizeOptions) -> Event:
    line = _data(record)
    return finish(normalize_line(line, _stream_key(record)), record, line, [])


def access_log(record: Mapping[str, Any], _options: NormalizeOptions) -> Event:
    """nginx, Apache and other NCSA common/combined lines; the module says which server."""
    line = _data(record)
    kind = record.get("format")
    module = kind if kind in {"nginx", "apache"} else None
    event = normalize_access_log(line, event_id=text(record.get("id")) or "", module=module)
    _typed_failure(event, "access_log_unparsed")
    return finish(event, record, line, [])


def iis(record: Mapping[str, Any], _options: NormalizeOptions) -> Event:
    """IIS W3C lines; the ``#Fields`` header comes in ``fields.w3c.fields`` or as an earlier
    line of the same stream (same source and file), remembered per stream."""
    line = _data(record)
    log = _w3c_log(record)
    event_id = text(record.get("id")) or ""
    event = log.normalize(line, event_id=event_id)
    if event is None:  # a directive or blank line: kept, but it is no request
        event = _plain_event(line)
        directive = line.lstrip().startswith("#")
        event["event"].update(module="iis", dataset="web.access")
        if directive:
            event["event"]["action"] = "w3c-directive"
        event["tags"] = ["w3c_directive" if directive else "empty_line"]
    _typed_failure(event, "access_log_unparsed")
    return finish(event, record, line, [])


def _w3c_log(record: Mapping[str, Any]) -> W3CLog:
    fields = record.get("fields")
    w3c = fields.get("w3c") if isinstance(fields, MAPPING) else None
    header = w3c.get("fields") if isinstance(w3c, MAPPING) else None
    if isinstance(header, str | list):
        log = W3CLog()
        columns = header.removeprefix("#Fields:").split() if isinstance(header, str) else header
        if columns and all(isinstance(column, str) for column in columns):
            log.fields = list(columns)
        return log
    key = _stream_key(record)
    log = _W3C_STREAMS.get(key) or W3CLog()
    _W3C_STREAMS[key] = log
    _W3C_STREAMS.move_to_end(key)
    while len(_W3C_STREAMS) > _MAX_STREAMS:
        _W3C_STREAMS.popitem(last=False)
    return log


def _stream_key(record: Mapping[str, Any]) -> tuple[str, ...]:
    source = record.get("source")
    source = source if isinstance(source, MAPPING) else {}
    organization = record.get("organization")
    agency = organization.get("id") if isinstance(organization, MAPPING) else None
    return (
        str(agency),
        str(source.get("id")),
        str(source.get("host") or source.get("peer")),
        str(_file_path(record)),
    )


def _typed_failure(event: Event, tag: str) -> None:
    """The web parsers tag and explain a line they cannot read; give it the error.type that
    the failure metric counts."""
    error = event.get("error")
    if tag in event.get("tags", ()) and isinstance(error, dict):
        error.setdefault("type", tag)


FORMATS: Final[dict[str, FormatParser]] = {
    "ecs": ecs,
    "json": json_auto,
    "nginx": access_log,
    "apache": access_log,
    "web": access_log,
    "iis": iis,
    "auditd": auditd_line,
    "suricata": suricata_eve,
    "zeek": zeek_json,
    "windows": windows,
    "plain": plain,
}
