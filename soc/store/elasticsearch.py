"""The Elasticsearch store: dated indices, bulk writes by id, ECS-style mappings.

Events go to `{prefix}-events-YYYY.MM.DD` and alerts to `{prefix}-alerts-YYYY.MM`, named after
the UTC day (month) of the document's own `@timestamp`. A replayed document therefore lands in the
index it was first written to, and `op_type: create` with `_id = event.id` turns the replay into a
409 conflict: a duplicate, as the contract requires. Retention drops whole dated indices
(`delete_before`), which costs nothing, unlike deleting documents one by one.

Mapping choices, all made so that a document is stored as it came and never refused for its shape:

* Every string is a `keyword` (dynamic template), so any field can be filtered, sorted and counted
  by its exact text, the way the SQLite store compares values. IP fields stay keywords too: an
  `ip` field would refuse (or silently not index) the odd value a device sends ("-", "unknown",
  an address with a port), and a filter on such a value would be an error instead of a match.
  CIDR queries are the price.
* `date_detection` is off: a string that happens to look like a date stays a keyword instead of
  making its field a date that refuses the next value that does not.
* `index.mapping.ignore_malformed` keeps a document whose number or date does not parse; the value
  stays in `_source`, it is only not indexed. Fields beyond the field limit are kept the same way.
* `@timestamp` is `date_nanos`: the platform's timestamps carry microseconds, and time ranges and
  sorting must honour them as the SQLite store does.
* `event.original` is stored only (ECS: not indexed, no doc values). Free text is searched in
  `soc_text`, built at write time from the same text the SQLite store indexes, folded in Python
  (diacritics removed, `đ` -> `d`, punctuation -> spaces) so that "dang nhap" finds "đăng nhập" and
  "203.0.113" finds "203.0.113.7" without depending on an analysis plugin (`asciifolding` is not in
  every distribution). It stays in `_source` and every read leaves it out (`_source_excludes`):
  excluding it from `_source` at write time made Elasticsearch parse and re-serialize every
  document, which cost 25 us of its CPU an event and 30-60 an alert, and the stored documents came
  out larger, not smaller (456 against 382 bytes an event).
"""

from __future__ import annotations

import asyncio
import functools
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from elasticsearch import ApiError, AsyncElasticsearch, TransportError
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer

from soc.store.base import (
    FIELD_NAME,
    KINDS,
    MUTABLE,
    UNINDEXED,
    Bucket,
    Conflict,
    Encoded,
    Kind,
    NotFound,
    Page,
    Query,
    QueryError,
    Scope,
    WriteResult,
    check_indexed,
    document_id,
    only_outcome,
)
from soc.store.base import StoreUnavailable as BaseStoreUnavailable

# Shared with the SQLite store on purpose: both stores must search the same text and place a
# document at the same time.
from soc.store.documents import UNDECOMPOSABLE, doc_time, fts_text
from soc.timeutil import format_ts

#: The field free text is searched in; built at write time, never returned.
TEXT_FIELD = "soc_text"
_TEXT_NAME = TEXT_FIELD.encode()
#: A published document holding this (as a field, or anywhere) is decoded before it is stored.
_TEXT_KEY = b'"%s"' % _TEXT_NAME
#: What goes between a published document's last field and its folded text.
_TEXT_SPLICE = b",%s:" % _TEXT_KEY
#: Stored in `_source` but never handed back: what the store derived, not what it was given.
_UNRETURNED = [TEXT_FIELD]

#: Strings longer than this are kept in `_source` but not indexed (a keyword term must stay under
#: 32766 bytes; 8191 characters of up to four UTF-8 bytes each do).
_IGNORE_ABOVE = 8191

#: Elasticsearch's default `index.max_result_window`: deeper pages need search_after, not offsets.
MAX_RESULT_WINDOW = 10_000

#: Attempts at a bulk request before the error reaches the caller, whose stage retries the batch.
_WRITE_ATTEMPTS = 4
_BACKOFF_SECONDS = 0.5

_REFRESH_MODES = frozenset({"wait_for", "true", "false"})
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

#: Combining marks of the Latin, Greek and Cyrillic scripts (Vietnamese tones and hooks included).
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
_NON_WORD = re.compile(r"[\W_]+")
#: The same for ASCII text, which is most logs, as one `bytes.translate` table: letters
#: lowercased, everything that is not a letter or a digit a space (a `str.translate` with a
#: mapping looks every character up in a dict: 5 us for a syslog line, a third of indexing it).
_ASCII_FOLD = bytes(
    ord(chr(code).lower()) if chr(code).isalnum() else ord(" ") for code in range(128)
) + bytes(128)
#: Characters beyond ASCII (`fold` folds the words they are in through Unicode decomposition).
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
#: `fold` folds word by word where text has fewer runs beyond ASCII than one in this many
#: characters, and all of it at once otherwise.
_WORD_BY_WORD_BELOW = 64
_USERINFO = re.compile(r"//[^/@\s]*@")


#: Searches retried while a new index's primary shard starts (about a second in all).
_SHARD_START_RETRIES = 6


class StoreUnavailable(BaseStoreUnavailable):
    """Elasticsearch could not be reached or failed a request; the batch is worth retrying.

    Messages never carry credentials: they are built from the address without its user part and
    from the reasons Elasticsearch gives."""


def fold(text: str) -> str:
    """Lowercase words separated by spaces, without diacritics or punctuation.

    Applied to indexed text and to searched words alike, this is what the SQLite store's
    `unicode61 remove_diacritics` tokenizer does, so both stores find the same documents.

    Only the words that hold a character beyond ASCII go through Unicode decomposition: an
    alert's text is mostly ASCII with one such character (the `¦` between its details), and
    decomposing all of it cost 22 us an alert where the words alone cost 3. Whole
    whitespace-separated words are folded together, so a letter's context (Greek final sigma)
    is the same as in the whole text; the words come out the same, only spacing differs."""
    if text.isascii():
        return _fold_ascii(text)
    # The marks alerts set between their details and at the end of a cut value, as what they
    # fold to (a space; "..." is the ellipsis decomposed, which a Greek final sigma before it
    # tells from a space): most alerts' text is then ASCII (folded word by word 6.9 us, 0.8).
    text = text.replace("¦", " ").replace("…", "...")
    if text.isascii():
        return _fold_ascii(text)
    length = len(text)
    runs = list(_NON_ASCII_RUN.finditer(text))
    if len(runs) * _WORD_BY_WORD_BELOW > length:
        # Text in Vietnamese: most words are beyond ASCII, and one pass over all of it is
        # cheaper than a pass per word (232 against 740 us for 2,500 characters).
        return _fold_unicode(text)
    parts = []
    end = 0
    for run in runs:
        start, stop = run.span()
        if stop <= end:
            continue  # within the word just folded
        start = max(start, end)  # a run that went on past that word's end goes on from there
        while start > end and not text[start - 1].isspace():
            start -= 1
        while stop < length and not text[stop].isspace():
            stop += 1
        parts.append(_fold_ascii(text[end:start]))
        parts.append(_fold_unicode(text[start:stop]))
        end = stop
    parts.append(_fold_ascii(text[end:]))
    return " ".join(parts)


def _fold_ascii(text: str) -> str:
    return text.encode("ascii").translate(_ASCII_FOLD).decode("ascii")


def _fold_unicode(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(UNDECOMPOSABLE))
    return _NON_WORD.sub(" ", _MARKS.sub("", decomposed).lower())


def _word_clause(word: str) -> dict[str, Any] | None:
    """One searched word as a query that cannot be a syntax error; None if it has no core."""
    prefix = word.endswith("*")
    core = word.rstrip("*").replace('"', "")
    if not core:
        return None
    tokens = fold(core).split()
    if not tokens:
        # Punctuation only: like an empty phrase in SQLite, it matches nothing.
        return {"match_none": {}}
    folded = " ".join(tokens)
    if not prefix:
        return {"match_phrase": {TEXT_FIELD: folded}}
    if len(tokens) == 1 and folded.isascii():
        # One token: a prefix query finds every term, where a phrase prefix stops at
        # `max_expansions` of them.
        return {"prefix": {TEXT_FIELD: folded}}
    return {"match_phrase_prefix": {TEXT_FIELD: {"query": folded, "max_expansions": 1000}}}


def text_clauses(text: str) -> list[dict[str, Any]]:
    """Free text -> one required clause per word, operators and quotes taken literally."""
    clauses = [clause for word in text.split() if (clause := _word_clause(word)) is not None]
    if not clauses:
        raise QueryError("free text has no words to search for")
    return clauses


def _scope_clause(scope: Scope) -> dict[str, Any] | None:
    if scope.agencies is None:
        return None
    if not scope.agencies:
        return {"match_none": {}}
    return {"terms": {"organization.id": sorted(scope.agencies)}}


def _field_clause(name: str, values: Sequence[str]) -> dict[str, Any]:
    """Any of `values`, compared as text. A lenient `match` is a term query in the field's own
    type: "22" finds the number 22, "true" the boolean, and "abc" on a number field finds
    nothing instead of failing the whole search (a `terms` query would)."""
    if not values:
        return {"match_none": {}}
    should = [{"match": {name: {"query": str(value), "lenient": True}}} for value in values]
    return {"bool": {"should": should, "minimum_should_match": 1}}


def to_es_query(query: Query) -> dict[str, Any]:
    """The bool query selecting what `query` selects: every part a filter, nothing scored."""
    clauses: list[dict[str, Any]] = []
    scope = _scope_clause(query.scope)
    if scope is not None:
        clauses.append(scope)
    if query.start is not None or query.end is not None:
        bounds = {}
        if query.start is not None:
            bounds["gte"] = format_ts(query.start)
        if query.end is not None:
            bounds["lt"] = format_ts(query.end)
        clauses.append({"range": {"@timestamp": bounds}})
    clauses += [_field_clause(name, values) for name, values in query.filters.items()]
    if query.text:
        clauses += text_clauses(query.text)
    return {"bool": {"filter": clauses}}


_NUMERIC_TYPES = frozenset(
    {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
)


def _sort_type(name: str, types: set[str]) -> tuple[str, str | None]:
    """How to sort a field mapped as `types` across the searched indices: the type indices
    without the field pretend it has (an unmapped field must not make the sort compare numbers
    with strings), and a common numeric type when indices disagree on which number it is."""
    if not types:
        return "keyword", None
    if len(types) == 1:
        return next(iter(types)), None
    if types <= _NUMERIC_TYPES:
        return "double", "double"
    raise QueryError(
        f"cannot sort on {name!r}: it is {' and '.join(sorted(types))} in different indices"
    )


def _sort(query: Query, types: set[str]) -> list[dict[str, Any]]:
    """The requested order, then `event.id` so that equal keys page stably (sorting on `_id` is
    disabled in recent Elasticsearch). Missing values sort as the smallest, as NULL does in
    SQLite."""
    order = "desc" if query.descending else "asc"
    if query.sort == "@timestamp":
        return [
            {"@timestamp": {"order": order}},
            {"event.id": {"order": order, "unmapped_type": "keyword"}},
        ]
    unmapped, numeric = _sort_type(query.sort, types)
    spec = {
        "order": order,
        "missing": "_last" if query.descending else "_first",
        "unmapped_type": unmapped,
    }
    if numeric:
        spec["numeric_type"] = numeric
    return [
        {query.sort: spec},
        {"@timestamp": {"order": "desc"}},
        {"event.id": {"order": "desc", "unmapped_type": "keyword"}},
    ]


#: Fields that pySigma's Elasticsearch pipelines (ecs_windows, macos) query as `<field>.caseless`,
#: as Elastic's own ECS templates map them: a lowercase-normalized subfield, so that a hunt with
#: a converted rule matches `C:\Windows\System32\CMD.EXE` like the engine does.
CASELESS_FIELDS = (
    "process.executable",
    "process.name",
    "process.parent.executable",
    "process.parent.name",
    "target.process.executable",
    "target.process.name",
)
_CASELESS_MAPPING = {
    "type": "keyword",
    "ignore_above": _IGNORE_ABOVE,
    "fields": {
        "caseless": {"type": "keyword", "normalizer": "soc_lowercase", "ignore_above": 1024}
    },
}


def _nest(paths: Sequence[str], leaf: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted paths -> nested `properties` mappings."""
    root: dict[str, Any] = {}
    for path in paths:
        *parents, name = path.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[name] = dict(leaf)
    return root


_CASELESS_PROPERTIES = _nest(CASELESS_FIELDS, _CASELESS_MAPPING)


_UNINDEXED_MAPPING: dict[str, Any] = {"type": "object", "enabled": False}

#: How soon a written document becomes searchable, per kind; None leaves the setting unset.
#:
#: * Alerts are what an analyst waits for: a refresh every half second rather than every second
#:   took 0.25-0.4 s off the delay from receipt to alert searchable at 10,000 events/s
#:   (bench/distributed.py), for 2-4 us of Elasticsearch's CPU an event.
#: * Events, ten to a hundred times as many, are left to Elasticsearch's default: a refresh every
#:   second while the index is being searched, and none at all once no search has come for
#:   `index.search.idle.after` (30 s). The first search after that waits for one refresh (at most
#:   a second) and sees everything; a `wait_for` write still gets its refresh. While nobody looks,
#:   the node writes the indexed events out in a few large segments rather than a small one every
#:   second for its merges to rewrite: 1,000,000 events at 10,000 a second took 31-34 refreshes
#:   and no merge, against 91-92 refreshes and 48-49 s of merging (bench/distributed.py's stream;
#:   Elasticsearch's CPU an event moved less than the run-to-run noise). Setting the interval,
#:   even to its default of 1s, turns this off.
#: * Incidents keep a second: the grouping stage and the console search them all the time anyway.
_REFRESH_INTERVAL: Mapping[Kind, str | None] = {"alerts": "500ms", "events": None}
_DEFAULT_REFRESH_INTERVAL = "1s"


def _refresh_setting(kind: Kind) -> dict[str, str]:
    interval = _REFRESH_INTERVAL.get(kind, _DEFAULT_REFRESH_INTERVAL)
    return {} if interval is None else {"refresh_interval": interval}


def _template(prefix: str, kind: Kind) -> dict[str, Any]:
    """The composable index template of one kind's dated indices."""
    return {
        "index_patterns": [f"{prefix}-{kind}-*"],
        # Above the stack's own templates (100), so `logs-*`-style defaults never win.
        "priority": 200,
        "template": {
            "settings": {
                **_refresh_setting(kind),
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "index.mapping.ignore_malformed": True,
                "index.mapping.total_fields.limit": 5000,
                "index.mapping.total_fields.ignore_dynamic_beyond_limit": True,
                "analysis": {
                    "normalizer": {"soc_lowercase": {"type": "custom", "filter": ["lowercase"]}},
                    "analyzer": {
                        TEXT_FIELD: {
                            "type": "custom",
                            "tokenizer": "standard",
                            "filter": ["lowercase"],
                        }
                    },
                },
            },
            "mappings": {
                "date_detection": False,
                "dynamic_templates": [
                    # The originals of the events an alert carries: kept, searched through
                    # soc_text, not indexed a second time.
                    {
                        "originals": {
                            "path_match": "*event.original",
                            "mapping": {"type": "keyword", "index": False, "doc_values": False},
                        }
                    },
                    {
                        "strings": {
                            "match_mapping_type": "string",
                            "mapping": {"type": "keyword", "ignore_above": _IGNORE_ABOVE},
                        }
                    },
                ],
                "properties": {
                    **_CASELESS_PROPERTIES,
                    "@timestamp": {"type": "date_nanos"},
                    "event": {
                        "properties": {
                            "id": {"type": "keyword"},
                            "original": {"type": "keyword", "index": False, "doc_values": False},
                        }
                    },
                    "organization": {"properties": {"id": {"type": "keyword"}}},
                    TEXT_FIELD: {"type": "text", "analyzer": TEXT_FIELD, "norms": False},
                    # Kept in the source, not indexed (see UNINDEXED).
                    **dict.fromkeys(UNINDEXED.get(kind, ()), _UNINDEXED_MAPPING),
                },
            },
        },
    }


def index_name(prefix: str, kind: Kind, micros: int) -> str:
    """The dated index a document of that time (microseconds since the epoch) belongs to: daily
    events, monthly alerts and audit entries. Incidents change after they are written, so they
    live in one index where an update finds them by id, whatever their time became."""
    if kind in MUTABLE:
        return f"{prefix}-{kind}-{_LIVE_SUFFIX}"
    return f"{prefix}-{kind}-{_suffix(kind, micros // _MICROS_PER_DAY)}"


#: The suffix of a mutable kind's one index (not a date, so retention by index never drops it).
_LIVE_SUFFIX = "live"


_MICROS_PER_DAY = 86_400_000_000


@functools.lru_cache(maxsize=1024)
def _suffix(kind: Kind, day: int) -> str:
    """Cached per day: formatting a date costs more than the rest of a document's bulk line."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)
    return moment.strftime("%Y.%m.%d" if kind == "events" else "%Y.%m")


def _period_end(kind: Kind, suffix: str) -> date | None:
    """The first day after the period a dated index covers; None for a name that is not dated."""
    try:
        if kind == "events":
            return datetime.strptime(suffix, "%Y.%m.%d").date() + timedelta(days=1)
        start = datetime.strptime(suffix, "%Y.%m").date()
    except ValueError:
        return None
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def _redact(text: str) -> str:
    return _USERINFO.sub("//***@", text)


def _reason(body: Any) -> str:
    """The most telling reasons in an Elasticsearch error body: the root cause and what caused
    the error (a search failure's own reason is often empty)."""
    error = body.get("error") if isinstance(body, Mapping) else body
    if not isinstance(error, Mapping):
        return _redact(str(error))[:1000]
    causes = error.get("root_cause") or [error]
    parts = [
        f"{cause.get('type', 'error')}: {cause['reason']}"
        for cause in (causes[0], error.get("caused_by"))
        if isinstance(cause, Mapping) and cause.get("reason")
    ]
    return _redact("; ".join(dict.fromkeys(parts)) or str(error.get("type", "error")))[:1000]


class _BulkBody(NdjsonSerializer):
    """Sends a bulk body the store built as it is. The client's own serializer copies every
    body into a buffer and out again, whole megabytes per bulk: 0.8 us an event, measured."""

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes) and data.endswith(b"\n"):
            return data
        return super().dumps(data)


@dataclass(frozen=True, slots=True)
class _Action:
    """One document ready for the bulk body: its id and its two NDJSON lines."""

    ident: str
    lines: bytes


class ElasticsearchStore:
    """The Store contract on Elasticsearch 9. `refresh` is the bulk refresh policy: `wait_for`
    returns once the documents are searchable, as the contract requires."""

    def __init__(self, url: str, *, prefix: str = "soc", refresh: str = "wait_for") -> None:
        if not _PREFIX.match(prefix):
            raise ValueError(f"index prefix {prefix!r} must be lowercase letters, digits, - or _")
        if refresh not in _REFRESH_MODES:
            raise ValueError(f"refresh must be one of {sorted(_REFRESH_MODES)}, not {refresh!r}")
        parts = urlsplit(url)
        #: The address for messages: never the user part of the URL.
        self.address = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self.prefix = prefix
        self.refresh = refresh
        # Retries are ours (write) so that whole-request and per-document rejections share one
        # budget and one backoff; reads fail fast to the analyst.
        self._client = AsyncElasticsearch(
            url,
            max_retries=0,
            request_timeout=30,
            serializers={"application/json": OrjsonSerializer(), _BulkBody.mimetype: _BulkBody()},
        )

    def pattern(self, kind: Kind) -> str:
        """The indices a read of `kind` searches."""
        return f"{self.prefix}-{kind}-*"

    async def open(self) -> None:
        try:
            for kind in KINDS:
                await self._client.indices.put_index_template(
                    name=f"{self.prefix}-{kind}", **_template(self.prefix, kind)
                )
            # A template shapes only the indices created after it: the current month's alerts
            # index, made by an earlier version, takes its kind's interval now.
            for kind, interval in _REFRESH_INTERVAL.items():
                if interval is None:
                    continue
                await self._client.indices.put_settings(
                    index=self.pattern(kind),
                    settings={"index.refresh_interval": interval},
                    allow_no_indices=True,
                    expand_wildcards="open",
                )
        except (ApiError, TransportError) as exc:
            raise self._unavailable(exc) from None

    async def close(self) -> None:
        await self._client.close()

    def _unavailable(self, exc: ApiError | TransportError) -> StoreUnavailable:
        if isinstance(exc, ApiError):
            status = exc.meta.status
            if status in (401, 403):
                return StoreUnavailable(
                    f"Elasticsearch at {self.address} refused the credentials ({status}):"
                    f" {_reason(exc.body)}"
                )
            return StoreUnavailable(
                f"Elasticsearch at {self.address} answered {status}: {_reason(exc.body)}"
            )
        return StoreUnavailable(
            f"Elasticsearch at {self.address} unreachable: {type(exc).__name__}:"
            f" {_redact(str(exc.message))}"
        )

    # Writes

    def _actions(
        self, kind: Kind, docs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[_Action], list[tuple[str, str]]]:
        """Bulk lines per document, and the documents refused before sending (no id, or not
        serializable), each with its reason."""
        actions: list[_Action] = []
        errors: list[tuple[str, str]] = []
        for doc in docs:
            try:
                ident = document_id(doc)
                source = orjson.dumps({**doc, TEXT_FIELD: fold(fts_text(kind, doc))})
            except (QueryError, TypeError) as exc:
                event = doc.get("event")
                raw_id = event.get("id") if isinstance(event, Mapping) else None
                errors.append((str(raw_id or "?"), str(exc)))
                continue
            index = index_name(self.prefix, kind, doc_time(doc))
            head = orjson.dumps({"create": {"_index": index, "_id": ident}})
            actions.append(_Action(ident, b"%s\n%s\n" % (head, source)))
        return actions, errors

    async def _bulk(self, actions: Sequence[_Action]) -> list[dict[str, Any]]:
        """One bulk request; the per-document results in the order sent."""
        response = await self._client.perform_request(
            "POST",
            "/_bulk",
            params={
                "refresh": self.refresh,
                "filter_path": "items.*.status,items.*.error",
            },
            headers={"accept": "application/json", "content-type": "application/x-ndjson"},
            body=b"".join(action.lines for action in actions),
        )
        return [next(iter(item.values())) for item in response.body["items"]]

    def _encoded_actions(
        self, kind: Kind, records: Sequence[Encoded]
    ) -> tuple[list[_Action], list[tuple[str, str]]]:
        """Bulk lines for documents published with their hints: the source is the published
        bytes with the folded text spliced in before the closing brace. A document those bytes
        cannot be spliced into (not an object, or already holding a field of the text's name)
        is decoded and goes the way of `write`, as is one whose time names no index."""
        actions: list[_Action] = []
        decoded: list[Mapping[str, Any]] = []
        errors: list[tuple[str, str]] = []
        for record in records:
            raw = record.raw
            try:
                index = index_name(self.prefix, kind, record.micros)
            except (OverflowError, ValueError):  # a time no index can be named after
                index = ""
            # An object with a first key (`{"`), ending in its closing brace.
            if not index or raw[:2] != b'{"' or raw[-1:] != b"}" or _TEXT_KEY in raw:
                try:
                    doc = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    errors.append((record.ident, f"not JSON: {exc}"))
                    continue
                if isinstance(doc, dict):
                    decoded.append(doc)
                else:
                    errors.append((record.ident, f"a JSON {type(doc).__name__}, not an object"))
                continue
            head = orjson.dumps({"create": {"_index": index, "_id": record.ident}})
            # One copy of the event's bytes, not three (sliced, spliced, then with its head):
            # the indexer 5.3-5.4 -> 5.0-5.1 us an event (bench/index_path.py).
            text = orjson.dumps(fold(record.text))
            lines = b"".join((head, b"\n", memoryview(raw)[:-1], _TEXT_SPLICE, text, b"}\n"))
            actions.append(_Action(record.ident, lines))
        if decoded:
            more, refused = self._actions(kind, decoded)
            actions += more
            errors += refused
        return actions, errors

    async def write(self, kind: Kind, docs: Sequence[Mapping[str, Any]]) -> WriteResult:
        pending, errors = self._actions(kind, docs)
        return await self._send(pending, errors, len(docs))

    async def write_encoded(self, kind: Kind, records: Sequence[Encoded]) -> WriteResult:
        """`write` for documents published with their hints (`soc.store.documents.hints`),
        stored from their bytes as published: the same bulk body as `write` gives them, for
        2.2-2.7 times less CPU (bench/index_path.py), since nothing is decoded or encoded."""
        pending, errors = self._encoded_actions(kind, records)
        return await self._send(pending, errors, len(records))

    async def _send(
        self, pending: list[_Action], errors: list[tuple[str, str]], total: int
    ) -> WriteResult:
        written = duplicates = 0
        duplicate_ids: list[str] = []
        failure = ""
        for attempt in range(_WRITE_ATTEMPTS):
            if not pending:
                break
            if attempt:
                await asyncio.sleep(_BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                results = await self._bulk(pending)
            except ApiError as exc:
                if exc.meta.status != 429 and exc.meta.status < 500:
                    raise self._unavailable(exc) from None
                failure = str(self._unavailable(exc))
                continue
            except TransportError as exc:
                failure = str(self._unavailable(exc))
                continue
            retry: list[_Action] = []
            for action, result in zip(pending, results, strict=True):
                status = int(result.get("status", 0))
                if status in (200, 201):
                    written += 1
                elif status == 409:
                    duplicates += 1
                    duplicate_ids.append(action.ident)
                elif status == 429 or status >= 500:
                    # Rejected for load, not for content: send it again.
                    retry.append(action)
                    failure = _reason({"error": result.get("error")})
                else:
                    errors.append((action.ident, _reason({"error": result.get("error")})))
            pending = retry
        if pending:
            raise StoreUnavailable(
                f"{len(pending)} of {total} documents not stored after {_WRITE_ATTEMPTS}"
                f" attempts: {failure}"
            )
        return WriteResult(
            written=written,
            duplicates=duplicates,
            errors=tuple(errors),
            duplicate_ids=tuple(duplicate_ids),
        )

    async def delete_before(self, kind: Kind, day: date) -> list[str]:
        """Delete the dated indices of `kind` that hold nothing from `day` on; their names.

        Whole indices only: a month of alerts goes once its last day is before `day`."""
        try:
            found = await self._client.indices.get(
                index=self.pattern(kind),
                features="aliases",
                expand_wildcards="all",
                allow_no_indices=True,
                ignore_unavailable=True,
            )
            stem = f"{self.prefix}-{kind}-"
            doomed = sorted(
                name
                for name in found.body
                if (end := _period_end(kind, name.removeprefix(stem))) is not None and end <= day
            )
            for name in doomed:
                await self._client.indices.delete(index=name)
        except (ApiError, TransportError) as exc:
            raise self._unavailable(exc) from None
        return doomed

    # Reads

    async def _search(self, kind: Kind, **params: Any) -> dict[str, Any]:
        """A search over every dated index of `kind`; a refused query raises QueryError. Partial
        results are refused too: an answer missing a failed index would look complete. A 503
        while a new dated index's shard is still starting (the first write of a day creates it)
        is waited out briefly rather than shown to the analyst as an outage."""
        for attempt in range(_SHARD_START_RETRIES + 1):
            try:
                response = await self._client.search(
                    index=self.pattern(kind),
                    ignore_unavailable=True,
                    allow_no_indices=True,
                    allow_partial_search_results=False,
                    **params,
                )
            except ApiError as exc:
                if exc.meta.status == 400:
                    reason = _reason(exc.body)
                    raise QueryError(f"Elasticsearch refused the query: {reason}") from None
                if exc.meta.status == 503 and attempt < _SHARD_START_RETRIES:
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                raise self._unavailable(exc) from None
            except TransportError as exc:
                raise self._unavailable(exc) from None
            body: dict[str, Any] = response.body
            return body
        raise AssertionError("unreachable")

    async def _field_types(self, kind: Kind, name: str) -> set[str]:
        """The types `name` is mapped as in the indices of `kind`; empty where it is nowhere."""
        try:
            response = await self._client.field_caps(
                index=self.pattern(kind),
                fields=name,
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        except ApiError as exc:
            if exc.meta.status == 400:
                raise QueryError(f"Elasticsearch refused the field: {_reason(exc.body)}") from None
            raise self._unavailable(exc) from None
        except TransportError as exc:
            raise self._unavailable(exc) from None
        return set(response.body.get("fields", {}).get(name, {}))

    async def get(self, kind: Kind, ident: str, scope: Scope) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = [{"ids": {"values": [ident]}}]
        scope_clause = _scope_clause(scope)
        if scope_clause is not None:
            clauses.append(scope_clause)
        body = await self._search(
            kind,
            query={"bool": {"filter": clauses}},
            size=1,
            filter_path="hits.hits._source",
            source_excludes=_UNRETURNED,
        )
        hits = body.get("hits", {}).get("hits", [])
        return dict(hits[0]["_source"]) if hits else None

    async def search(self, kind: Kind, query: Query) -> Page:
        check_indexed(kind, query)
        if query.offset + query.limit > MAX_RESULT_WINDOW:
            raise QueryError(
                f"offset + limit must not exceed {MAX_RESULT_WINDOW}: narrow the query instead"
            )
        types = set() if query.sort == "@timestamp" else await self._field_types(kind, query.sort)
        body = await self._search(
            kind,
            query=to_es_query(query),
            sort=_sort(query, types),
            from_=query.offset,
            size=query.limit,
            track_total_hits=True,
            filter_path="hits.total.value,hits.hits._source",
            source_excludes=_UNRETURNED,
        )
        hits = body.get("hits", {})
        items = [dict(hit["_source"]) for hit in hits.get("hits", [])]
        return Page(items=items, total=int(hits.get("total", {}).get("value", 0)))

    async def _terms(
        self,
        kind: Kind,
        name: str,
        query: Query,
        size: int,
        order: list[dict[str, str]],
        aggs: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The buckets of a terms aggregation on field `name` over the matches of `query`."""
        if not FIELD_NAME.match(name):
            raise QueryError(f"invalid field name {name!r}")
        if size <= 0:
            return []
        terms = {
            "field": name,
            "size": size,
            # Counts are exact while one index holds the value's documents; across many
            # indices a larger shard size keeps the top of the list right.
            "shard_size": max(size * 10, 100),
            "order": order,
        }
        values: dict[str, Any] = {"terms": terms, **({"aggs": aggs} if aggs else {})}
        body = await self._search(
            kind,
            query=to_es_query(query),
            size=0,
            track_total_hits=False,
            aggs={"values": values},
            filter_path="aggregations.values.buckets",
        )
        buckets: list[dict[str, Any]] = (
            body.get("aggregations", {}).get("values", {}).get("buckets", [])
        )
        return buckets

    async def count_by(
        self, kind: Kind, name: str, query: Query, size: int = 10
    ) -> list[tuple[str, int]]:
        check_indexed(kind, query, name)
        buckets = await self._terms(kind, name, query, size, [{"_count": "desc"}, {"_key": "asc"}])
        return [
            (str(bucket.get("key_as_string", bucket["key"])), int(bucket["doc_count"]))
            for bucket in buckets
        ]

    async def histogram(self, kind: Kind, interval_seconds: int, query: Query) -> list[Bucket]:
        check_indexed(kind, query)
        if interval_seconds < 1:
            raise QueryError("interval must be at least one second")
        histogram = {
            "field": "@timestamp",
            "fixed_interval": f"{interval_seconds}s",
            "min_doc_count": 1,
        }
        body = await self._search(
            kind,
            query=to_es_query(query),
            size=0,
            track_total_hits=False,
            aggs={"time": {"date_histogram": histogram}},
            filter_path="aggregations.time.buckets.key,aggregations.time.buckets.doc_count",
        )
        buckets = body.get("aggregations", {}).get("time", {}).get("buckets", [])
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return [
            Bucket(epoch + timedelta(milliseconds=int(b["key"])), int(b["doc_count"]))
            for b in buckets
        ]

    async def latest_by(
        self, kind: Kind, name: str, query: Query, size: int = 100
    ) -> list[tuple[str, int, datetime]]:
        check_indexed(kind, query, name)
        buckets = await self._terms(
            kind,
            name,
            query,
            size,
            [{"latest": "desc"}, {"_key": "asc"}],
            {"latest": {"max": {"field": "@timestamp"}}},
        )
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return [
            (
                str(bucket.get("key_as_string", bucket["key"])),
                int(bucket["doc_count"]),
                epoch + timedelta(milliseconds=float(bucket["latest"]["value"])),
            )
            for bucket in buckets
        ]

    async def get_written(
        self, kind: Kind, docs: Sequence[Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        # A real-time get needs the index: the dated one `write` chose from the same document.
        wanted = {document_id(doc): index_name(self.prefix, kind, doc_time(doc)) for doc in docs}
        found: dict[str, dict[str, Any]] = {}
        if not wanted:
            return found
        try:
            response = await self._client.mget(
                docs=[{"_index": index, "_id": ident} for ident, index in wanted.items()],
                realtime=True,
                source_excludes=_UNRETURNED,
            )
        except (ApiError, TransportError) as exc:
            raise self._unavailable(exc) from None
        for item in response.body["docs"]:
            if item.get("found"):
                found[str(item["_id"])] = dict(item["_source"])
        return found

    async def get_versioned(
        self, kind: Kind, ident: str, scope: Scope
    ) -> tuple[dict[str, Any], str] | None:
        if kind not in MUTABLE:
            raise QueryError(f"{kind} are written once and never replaced")
        try:
            response = await self._client.get(
                index=index_name(self.prefix, kind, 0),
                id=ident,
                realtime=True,
                source_excludes=_UNRETURNED,
            )
        except ApiError as exc:
            if exc.meta.status == 404:
                return None
            raise self._unavailable(exc) from None
        except TransportError as exc:
            raise self._unavailable(exc) from None
        body = response.body
        source = dict(body["_source"])
        organization = source.get("organization")
        agency = organization.get("id") if isinstance(organization, Mapping) else None
        if not scope.allows(agency):
            return None
        return source, f"{body['_seq_no']}.{body['_primary_term']}"

    async def get_many_versioned(
        self, kind: Kind, idents: Sequence[str], scope: Scope
    ) -> dict[str, tuple[dict[str, Any], str]]:
        if kind not in MUTABLE:
            raise QueryError(f"{kind} are written once and never replaced")
        wanted = list(dict.fromkeys(idents))
        found: dict[str, tuple[dict[str, Any], str]] = {}
        if not wanted:
            return found
        try:
            response = await self._client.mget(
                index=index_name(self.prefix, kind, 0),
                ids=wanted,
                realtime=True,
                source_excludes=_UNRETURNED,
            )
        except ApiError as exc:
            if exc.meta.status == 404:
                return found
            raise self._unavailable(exc) from None
        except TransportError as exc:
            raise self._unavailable(exc) from None
        for item in response.body["docs"]:
            if not item.get("found"):
                continue
            source = dict(item["_source"])
            organization = source.get("organization")
            agency = organization.get("id") if isinstance(organization, Mapping) else None
            if scope.allows(agency):
                found[str(item["_id"])] = (source, f"{item['_seq_no']}.{item['_primary_term']}")
        return found

    async def replace(
        self, kind: Kind, doc: Mapping[str, Any], version: str, scope: Scope, *, wait: bool = True
    ) -> str:
        return only_outcome(await self.replace_many(kind, [(doc, version)], scope, wait=wait))

    async def replace_many(
        self,
        kind: Kind,
        items: Sequence[tuple[Mapping[str, Any], str]],
        scope: Scope,
        *,
        wait: bool = True,
    ) -> list[str | Conflict | NotFound]:
        """One real-time multi-get (the stored documents must be in the caller's scope too: a
        scoped caller cannot overwrite another agency's document by naming its id) and one bulk
        request of versioned index actions."""
        if kind not in MUTABLE:
            raise QueryError(f"{kind} are written once and never replaced")
        outcomes: list[str | Conflict | NotFound | None] = [None] * len(items)
        idents = [document_id(doc) for doc, _ in items]
        current = await self.get_many_versioned(kind, idents, scope)
        index = index_name(self.prefix, kind, 0)
        lines: list[bytes] = []
        sent: list[int] = []
        for n, ((doc, version), ident) in enumerate(zip(items, idents, strict=True)):
            organization = doc.get("organization")
            agency = organization.get("id") if isinstance(organization, Mapping) else None
            if not scope.allows(agency) or ident not in current:
                outcomes[n] = NotFound(ident)
                continue
            seq_text, _, term_text = version.partition(".")
            if not (seq_text.isdigit() and term_text.isdigit()):
                outcomes[n] = Conflict(
                    f"{ident}: version {version!r} is not current ({current[ident][1]} is)"
                )
                continue
            head = {
                "index": {
                    "_index": index,
                    "_id": ident,
                    "if_seq_no": int(seq_text),
                    "if_primary_term": int(term_text),
                }
            }
            body = {**doc, TEXT_FIELD: fold(fts_text(kind, doc))}
            lines.append(b"%s\n%s\n" % (orjson.dumps(head), orjson.dumps(body)))
            sent.append(n)
        if lines:
            try:
                response = await self._client.perform_request(
                    "POST",
                    "/_bulk",
                    params={
                        # An analyst's change is in the next search of the queue; the grouping
                        # stage's many small updates need not wait for a refresh (reads by id
                        # are real time).
                        "refresh": "wait_for" if wait else "false",
                        "filter_path": "items.*.status,items.*.error,items.*._seq_no,"
                        "items.*._primary_term",
                    },
                    headers={
                        "accept": "application/json",
                        "content-type": "application/x-ndjson",
                    },
                    body=b"".join(lines),
                )
            except (ApiError, TransportError) as exc:
                raise self._unavailable(exc) from None
            for n, item in zip(sent, response.body["items"], strict=True):
                result = next(iter(item.values()))
                status = int(result.get("status", 0))
                ident = idents[n]
                if status in (200, 201):
                    outcomes[n] = f"{result['_seq_no']}.{result['_primary_term']}"
                elif status == 409:
                    outcomes[n] = Conflict(f"{ident}: version {items[n][1]} is not current")
                else:
                    raise StoreUnavailable(
                        f"Elasticsearch at {self.address} refused {ident}:"
                        f" {_reason({'error': result.get('error')})}"
                    )
        return [outcome for outcome in outcomes if outcome is not None]
