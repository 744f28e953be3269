"""What both stores derive from a document the same way: a field by its dotted name, the text
free-text search indexes, and the time it is filed under. One definition, so that SQLite and
Elasticsearch find the same documents for the same query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from soc.store.base import Encoded, Kind, document_id
from soc.timeutil import parse_ts, to_micros, utcnow


def lookup(doc: Mapping[str, Any], name: str) -> Any:
    """A dotted field from a nested document, or a flat key holding the dotted name."""
    if name in doc:
        return doc[name]
    return nested(doc, name)


#: Dotted names split once: the same few dozen names are looked up for every document.
_PARTS: dict[str, tuple[str, ...]] = {}
_PARTS_KEPT = 4096


def nested(doc: Mapping[str, Any], name: str) -> Any:
    """A dotted field from a nested document only; None where a level is missing or not an
    object."""
    parts = _PARTS.get(name)
    if parts is None:
        if len(_PARTS) >= _PARTS_KEPT:  # names from queries too: bounded
            _PARTS.clear()
        parts = _PARTS[name] = tuple(name.split("."))
    node: Any = doc
    for part in parts:
        # `type is dict` first: the ABC check alone took half of every lookup (90 ns a level).
        if type(node) is not dict and not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _strings(node: Any, out: dict[str, None]) -> None:
    if isinstance(node, str):
        out[node] = None
    elif isinstance(node, Mapping):
        for value in node.values():
            _strings(value, out)
    elif isinstance(node, list):
        for value in node:
            _strings(value, out)


#: What free text searches, per kind. The original record holds every value a parser took from
#: it, so indexing it (and not each parsed field again) halves the index at no loss; a document
#: without an original has all its strings indexed instead.
_FTS_FIELDS: dict[Kind, tuple[str, ...]] = {
    "events": ("event.original", "message"),
    "alerts": ("rule.name", "rule.description", "message", "tags", "host.name", "user.name"),
    "incidents": (
        "incident.title",
        "incident.rule.name",
        "incident.tags",
        "incident.assignee",
        "incident.comments",
        "related",
        "organization.id",
    ),
    "audit": ("event.action", "user.name", "audit", "source.ip"),
}


def _words_within(part: str, whole: str) -> bool:
    """Whether every word of `part` is a word of `whole`: `part` occurs in it, and not inside
    a longer word (a word is a run of letters and digits, as both stores tokenize)."""
    if not part:
        return True
    start = whole.find(part)
    if start < 0:
        return False
    end = start + len(part)
    if start > 0 and whole[start - 1].isalnum() and part[0].isalnum():
        return False
    return not (end < len(whole) and whole[end].isalnum() and part[-1].isalnum())


#: Letters that carry their mark in the letter itself, so Unicode decomposition (Elasticsearch's
#: `fold`) and SQLite's `remove_diacritics` leave them alone: both stores map them first, so
#: that `dang` finds `Đăng` on either.
UNDECOMPOSABLE = str.maketrans(
    {"đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "\u0131": "i"}
)


def fts_text(kind: Kind, doc: Mapping[str, Any]) -> str:
    found: dict[str, None] = {}
    original = lookup(doc, "event.original") if kind == "events" else None
    message = doc.get("message")
    if kind == "events" and original is None:
        _strings(doc, found)
    elif isinstance(original, str) and isinstance(message, str):
        # A syslog line's message is its tail: indexing it again doubled the text analyzed
        # for nothing a search could find (Elasticsearch 40 -> 36 us of CPU a syslog event).
        return original if _words_within(message, original) else f"{original}\n{message}"
    else:
        for name in _FTS_FIELDS[kind]:
            _strings(lookup(doc, name), found)
        if kind == "alerts":
            for event in doc.get("events") or ():
                if isinstance(event, Mapping):
                    _strings(lookup(event, "event.original") or event, found)
    return "\n".join(found)


def doc_time(doc: Mapping[str, Any]) -> int:
    for name in ("@timestamp", "event.ingested"):
        value = lookup(doc, name)
        if isinstance(value, str):
            try:
                return to_micros(parse_ts(value))
            except ValueError:
                continue
    return to_micros(utcnow())


#: Record headers with which a producer publishes what a store derives from a document, so that
#: the stage storing it can send its bytes on as they are: no decoding into dicts, no freeing
#: them, no encoding again. bench/index_path.py: the indexer's CPU an event 11-14 -> 5 us, for
#: 3.3 us of making the hints in the normalizing process.
HINT_ID = "soc.id"
HINT_TIME = "soc.time"
HINT_TEXT = "soc.text"


def hints(kind: Kind, doc: Mapping[str, Any]) -> tuple[tuple[str, bytes], ...]:
    """The hints for a document about to be published; none for one without an id (it takes
    the decoding path, where the store reports it)."""
    try:
        ident = document_id(doc)
    except ValueError:
        return ()
    return (
        (HINT_ID, ident.encode("utf-8", "surrogatepass")),
        (HINT_TIME, b"%d" % doc_time(doc)),
        (HINT_TEXT, fts_text(kind, doc).encode("utf-8", "surrogatepass")),
    )


def encoded(raw: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Encoded | None:
    """A published document and its hints, if it came with all of them; else None."""
    if raw is None or len(headers) < 3:
        return None
    found = dict(headers)
    ident, micros, text = found.get(HINT_ID), found.get(HINT_TIME), found.get(HINT_TEXT)
    if not ident or micros is None or text is None:
        return None
    try:
        return Encoded(
            ident.decode("utf-8", "surrogatepass"),
            int(micros),
            text.decode("utf-8", "surrogatepass"),
            raw,
        )
    except ValueError:  # not a number, or not UTF-8: not hints we wrote
        return None
