"""The store contract: documents written by id in batches, searched and counted, always scoped.

Events and alerts are ECS documents whose id is `event.id`. Writing a document whose id is
already stored changes nothing (ids are deterministic, so the same id means the same record
replayed), which is what makes at-least-once delivery safe.

Every read takes a `Scope`: the agencies whose data the caller may see. It is a required part of
every query rather than a filter each route remembers to add.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

Kind = Literal["events", "alerts", "incidents", "audit"]
KINDS: tuple[Kind, ...] = ("events", "alerts", "incidents", "audit")
#: Kinds whose documents change after they are written (`replace` under a version).
MUTABLE: tuple[Kind, ...] = ("incidents",)
#: Per kind, the fields kept with every document but not indexed: an alert's `events` are the
#: evidence it carries whole, found through the alert's free text. An alert is filtered, sorted
#: and counted by its own fields (its rule, its time, and the entities it copies from its event:
#: host, source, destination, user, process, organization, url). Indexing the events a second
#: time, under the alert, cost Elasticsearch a third of the CPU it spent on each alert.
UNINDEXED: Mapping[Kind, tuple[str, ...]] = {"alerts": ("events",)}

#: Field names a query may name: ECS-style dotted names. Anything else is refused before it
#: reaches a backend's query language.
FIELD_NAME = re.compile(r"^@?[A-Za-z0-9_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-@]+)*$")


class QueryError(ValueError):
    """A query the store cannot run; the message names the offending part."""


class StoreUnavailable(RuntimeError):
    """The store could not be reached or failed a request; worth retrying later. Stages retry
    their batch without committing; the API answers 503."""


class Conflict(RuntimeError):
    """An update named a version that is no longer current: someone else changed the document
    first. The caller reads it again and decides (the API answers 409)."""


class NotFound(LookupError):
    """No document with that id in the caller's scope."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Agencies (`organization.id`) a caller may see; None means every agency."""

    agencies: frozenset[str] | None = None

    @classmethod
    def everything(cls) -> Scope:
        return cls(None)

    def allows(self, agency: str | None) -> bool:
        return self.agencies is None or (agency is not None and agency in self.agencies)


@dataclass(frozen=True, slots=True)
class Query:
    """What to find. Filters: field -> accepted values (OR within a field, AND across fields);
    a list-valued field matches when any element does."""

    scope: Scope
    start: datetime | None = None
    end: datetime | None = None
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    text: str | None = None
    sort: str = "@timestamp"
    descending: bool = True
    offset: int = 0
    limit: int = 50

    def __post_init__(self) -> None:
        for name in (*self.filters, self.sort):
            if not FIELD_NAME.match(name):
                raise QueryError(f"invalid field name {name!r}")
        if self.offset < 0 or self.limit < 0:
            raise QueryError("offset and limit must not be negative")
        if self.start and self.end and self.start > self.end:
            raise QueryError("start is after end")


def check_indexed(kind: Kind, query: Query, *names: str) -> None:
    """Refuse, naming it, a field of `query` (a filter or the sort) or of `names` (a field to
    count by) that the documents of `kind` keep without indexing (`UNINDEXED`). Both stores do,
    so that such a query is an error on either rather than an empty answer on one."""
    unindexed = UNINDEXED.get(kind)
    if not unindexed:
        return
    for name in (*query.filters, query.sort, *names):
        for path in unindexed:
            if name == path or name.startswith(f"{path}."):
                raise QueryError(
                    f"{kind} are not searched by {name!r}: {path!r} is kept but not indexed;"
                    f" use the {kind}' own fields, or free text"
                )


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    total: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int
    #: Ids already stored: replays, not errors.
    duplicates: int = 0
    #: Documents refused, each with its id and reason; the caller decides whether to retry.
    errors: tuple[tuple[str, str], ...] = ()
    #: The ids counted in `duplicates`, for callers that count what is new (incidents).
    duplicate_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    count: int


@dataclass(frozen=True, slots=True)
class Encoded:
    """A document as its producer published it, JSON bytes of an object, with what a store
    derives from it computed by that producer (`soc.store.documents.hints`): its id, its time
    (microseconds since the epoch) and its free text, unfolded."""

    ident: str
    micros: int
    text: str
    raw: bytes


def document_id(doc: Mapping[str, Any]) -> str:
    """The id a document is stored under: `event.id`."""
    event = doc.get("event")
    ident = event.get("id") if isinstance(event, Mapping) else None
    if not isinstance(ident, str) or not ident:
        raise QueryError("document has no event.id")
    return ident


def only_outcome(outcomes: Sequence[str | Conflict | NotFound]) -> str:
    """The new version of a one-item `replace_many`, or the Conflict / NotFound it met: how a
    store's `replace` is its `replace_many` of one."""
    (outcome,) = outcomes
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, kind: Kind, docs: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Store documents by id; returns once they are durable and searchable."""
        ...

    async def get(self, kind: Kind, ident: str, scope: Scope) -> dict[str, Any] | None: ...

    async def get_written(
        self, kind: Kind, docs: Sequence[Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """The stored copies of documents that `write` found already stored (each found by its
        id and time), as they are now rather than as of the last refresh; by id, those not
        stored left out. Unscoped: for the pipeline, which writes for every agency."""
        ...

    async def search(self, kind: Kind, query: Query) -> Page: ...

    async def count_by(
        self, kind: Kind, name: str, query: Query, size: int = 10
    ) -> list[tuple[str, int]]:
        """The `size` most frequent values of field `name` among matches, most frequent first."""
        ...

    async def histogram(self, kind: Kind, interval_seconds: int, query: Query) -> list[Bucket]:
        """Counts per time bucket of `@timestamp`, buckets aligned to the epoch, empty ones left
        out, oldest first."""
        ...

    async def latest_by(
        self, kind: Kind, name: str, query: Query, size: int = 100
    ) -> list[tuple[str, int, datetime]]:
        """Per value of field `name`: its count and its latest `@timestamp`, most recently seen
        first (what "sources gone silent" is made of)."""
        ...

    async def get_versioned(
        self, kind: Kind, ident: str, scope: Scope
    ) -> tuple[dict[str, Any], str] | None:
        """A mutable document and its current version (opaque), read in real time."""
        ...

    async def replace(
        self, kind: Kind, doc: Mapping[str, Any], version: str, scope: Scope, *, wait: bool = True
    ) -> str:
        """Replace a mutable document if its stored version is still `version`; the new version.
        Raises Conflict when it is not, NotFound when the caller's scope has no such document
        (and, as a write, refuses a document moved to an agency outside that scope). With
        `wait`, the change is visible to searches when this returns; without, to reads by id."""
        ...

    async def get_many_versioned(
        self, kind: Kind, idents: Sequence[str], scope: Scope
    ) -> dict[str, tuple[dict[str, Any], str]]:
        """`get_versioned` for many ids in one round trip: the ones found in scope, by id."""
        ...

    async def replace_many(
        self,
        kind: Kind,
        items: Sequence[tuple[Mapping[str, Any], str]],
        scope: Scope,
        *,
        wait: bool = True,
    ) -> list[str | Conflict | NotFound]:
        """`replace` for many (document, version) pairs in one round trip. Each item succeeds
        or fails on its own: per item, in order, the new version or the Conflict / NotFound
        that `replace` would have raised for it."""
        ...

    async def delete_before(self, kind: Kind, day: date) -> int | list[str]:
        """Retention: delete what `kind` holds from before `day` (UTC). A row store deletes
        documents and says how many; an index store deletes whole dated indices that end by
        `day` and names them (a partly older index waits until all of it is)."""
        ...
