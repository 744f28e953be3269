"""How `soc scan` writes its alerts: JSON lines (every field, for tools and the store) or a CSV
timeline (one row an alert, the columns an incident responder sorts and filters in a
spreadsheet, as Hayabusa's and Chainsaw's timelines have them).

CSV columns: Timestamp, Level, Rule, Host, Log (the Windows channel or the event's dataset),
EventCode, User, SourceIP, Details (the fields that tell what happened, ``name: value`` joined
by `` ¦ ``; a correlation's group and value), File, Record (a correlation's: its first event's),
RuleId. UTF-8 with a byte-order
mark, so that Excel reads Vietnamese names right; a cell that a spreadsheet would run as a
formula (=, +, -, @ first) is written with a leading quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from soc.store.documents import lookup

__all__ = ["FORMATS", "header", "renderer"]

FORMATS: Final = ("jsonl", "csv")

_COLUMNS: Final = (
    "Timestamp", "Level", "Rule", "Host", "Log", "EventCode", "User", "SourceIP", "Details",
    "File", "Record", "RuleId",
)  # fmt: skip
#: Fields shown in Details, in this order, when the event has them.
_DETAILS: Final = (
    ("Cmd", "process.command_line"),
    ("Proc", "process.executable"),
    ("Parent", "process.parent.executable"),
    ("Dst", "destination.ip"),
    ("DstPort", "destination.port"),
    ("URL", "url.original"),
    ("File", "file.path"),
    ("Reg", "registry.path"),
    ("Query", "dns.question.name"),
    ("Script", "powershell.file.script_block_text"),
    ("Service", "winlog.event_data.ServiceName"),
    ("Target", "winlog.event_data.TargetUserName"),
    ("Msg", "message"),
)
_DETAIL_CHARS: Final = 300
_BOM: Final = "\ufeff".encode()
_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")


def header(output_format: str) -> bytes:
    """What the output starts with: the CSV header row (after a byte-order mark), or nothing."""
    if output_format != "csv":
        return b""
    return _BOM + _row(list(_COLUMNS))


def renderer(output_format: str) -> Callable[[Mapping[str, Any]], bytes]:
    """The function that writes one alert in this format."""
    return _csv_row if output_format == "csv" else _json_line


def _json_line(alert: Mapping[str, Any]) -> bytes:
    return orjson.dumps(alert) + b"\n"


def _csv_row(alert: Mapping[str, Any]) -> bytes:
    rule = alert.get("rule") or {}
    events = alert.get("events") or [{}]
    event = events[0] if isinstance(events[0], Mapping) else {}
    located = _get(alert, "log.file") or _get(event, "log.file") or {}
    correlation = alert.get("correlation")
    if isinstance(correlation, Mapping):
        group = correlation.get("group") or {}
        pairs = ", ".join(f"{name}={value}" for name, value in group.items())
        kind = correlation.get("type", "correlation")
        value = correlation.get("value")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        details = f"{kind}: {pairs} value={value}"
    elif alert.get("message") and alert.get("message") != rule.get("name"):
        details = str(alert["message"])  # the rule's own details, rendered for this event
    else:
        details = _details(event)
    cells = [
        alert.get("@timestamp", ""),
        rule.get("level", ""),
        rule.get("name", ""),
        _get(event, "host.name") or _get(event, "winlog.computer_name") or "",
        _get(event, "winlog.channel") or _get(event, "event.dataset") or "",
        _get(event, "event.code") or "",
        _get(event, "user.name") or "",
        _get(event, "source.ip") or "",
        details,
        located.get("path", "") if isinstance(located, Mapping) else "",
        located.get("record", "") if isinstance(located, Mapping) else "",
        rule.get("id", ""),
    ]
    return _row([_cell(value) for value in cells])


def _details(event: Mapping[str, Any]) -> str:
    shown = []
    for label, path in _DETAILS:
        value = _get(event, path)
        if value in (None, "", [], {}):
            continue
        text = " ".join(str(value).split())
        if len(text) > _DETAIL_CHARS:
            text = text[: _DETAIL_CHARS - 1] + "…"
        shown.append(f"{label}: {text}")
    return " ¦ ".join(shown)


def _get(node: Any, dotted: str) -> Any:
    """The value at a dotted path as the stores read it (`lookup`); a list as its items joined."""
    value = lookup(node, dotted) if isinstance(node, Mapping) else None
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return value


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA):
        return "'" + text
    return text


def _row(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue().encode()
