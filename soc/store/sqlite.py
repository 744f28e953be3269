"""The SQLite store: one file, WAL, batched writes by id, FTS5 for free text.

Documents are kept whole as JSON; the time, the agency and a few fields analysts filter on all day
are copied into indexed columns. Writes go through one thread and one connection (SQLite has one
writer at a time anyway); reads use their own connections, which WAL lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from soc.store.base import (
    FIELD_NAME,
    KINDS,
    MUTABLE,
    Bucket,
    Conflict,
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
from soc.store.documents import UNDECOMPOSABLE, doc_time, fts_text, lookup
from soc.timeutil import from_micros, to_micros

T = TypeVar("T")

#: Fields copied into columns per kind: (field, column). Filters, sorts and counts on them use
#: the column; every other field is read from the JSON document.
PROMOTED: dict[Kind, tuple[tuple[str, str], ...]] = {
    "events": (("host.name", "host"), ("event.dataset", "dataset")),
    "alerts": (
        ("rule.id", "rule_id"),
        ("rule.level", "level"),
        ("host.name", "host"),
        ("incident.id", "incident_id"),
    ),
    "incidents": (
        ("incident.status", "status"),
        ("incident.key", "ikey"),
        ("incident.severity", "severity"),
        ("incident.assignee", "assignee"),
        ("incident.rule.id", "rule_id"),
    ),
    "audit": (("audit.object.id", "object_id"), ("user.name", "actor")),
}

#: unicode61 with diacritics removed: "đăng nhập" is found by "dang nhap" as well, which is how
#: Vietnamese is typed on keyboards without a Vietnamese layout.
_FTS_TOKENIZER = "unicode61 remove_diacritics 2"


def _schema(kind: Kind) -> list[str]:
    promoted = "".join(f", {column} TEXT" for _, column in PROMOTED[kind])
    version = ", version INTEGER NOT NULL DEFAULT 1" if kind in MUTABLE else ""
    return [
        f"CREATE TABLE IF NOT EXISTS {kind} (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        f" ts INTEGER NOT NULL, org TEXT{promoted}{version}, doc TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {kind}_ts ON {kind}(ts)",
        f"CREATE INDEX IF NOT EXISTS {kind}_org_ts ON {kind}(org, ts)",
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {kind}_fts"
        f" USING fts5(text, tokenize='{_FTS_TOKENIZER}')",
    ]


def _indexes(kind: Kind) -> list[str]:
    return [
        f"CREATE INDEX IF NOT EXISTS {kind}_{column} ON {kind}({column}, ts)"
        for _, column in PROMOTED[kind]
    ]


def _add_missing_columns(conn: sqlite3.Connection, kind: Kind) -> None:
    """A database from an older version lacks columns promoted since: add them. Their rows keep
    NULL there, which filters read as "look in the JSON document", so answers stay right."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({kind})")}
    for _, column in PROMOTED[kind]:
        if column not in present:
            conn.execute(f"ALTER TABLE {kind} ADD COLUMN {column} TEXT")
    if kind in MUTABLE and "version" not in present:
        conn.execute(f"ALTER TABLE {kind} ADD COLUMN version INTEGER NOT NULL DEFAULT 1")


def _column(kind: Kind, name: str) -> str | None:
    if name == "organization.id":
        return "org"
    return dict(PROMOTED[kind]).get(name)


def _json_path(name: str) -> str:
    return "$." + ".".join(f'"{part}"' for part in name.split("."))


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _fts_query(text: str) -> str:
    """Free text -> an FTS5 query that cannot be a syntax error: every word a quoted phrase,
    all of them required; a trailing `*` keeps its prefix meaning. A word with a letter the
    tokenizer cannot strip of its mark (`đ`) is searched as written too, for text indexed
    before such letters were mapped (see `UNDECOMPOSABLE`)."""
    terms = []
    for word in text.split():
        star = "*" if word.endswith("*") else ""
        core = word.rstrip("*").replace('"', "")
        if not core:
            continue
        mapped = core.translate(UNDECOMPOSABLE)
        if mapped == core:
            terms.append(f'"{core}"{star}')
        else:
            terms.append(f'("{mapped}"{star} OR "{core}"{star})')
    if not terms:
        raise QueryError("free text has no words to search for")
    return " AND ".join(terms)


_CANONICAL_VALUE = (
    "CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(j.value AS TEXT) END"
)


class _Where:
    """SQL conditions and their parameters for a query on one kind."""

    def __init__(self, kind: Kind, query: Query) -> None:
        self.kind = kind
        self.clauses: list[str] = []
        self.params: list[Any] = []
        self._scope(query.scope)
        if query.start is not None:
            self.add("ts >= ?", to_micros(query.start))
        if query.end is not None:
            self.add("ts < ?", to_micros(query.end))
        for name, values in query.filters.items():
            self._filter(name, [str(v) for v in values])
        if query.text:
            self.add(
                f"{kind}.rowid IN (SELECT rowid FROM {kind}_fts WHERE {kind}_fts MATCH ?)",
                _fts_query(query.text),
            )

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def _scope(self, scope: Scope) -> None:
        if scope.agencies is None:
            return
        if not scope.agencies:
            self.add("0")
            return
        marks = ",".join("?" * len(scope.agencies))
        self.add(f"org IN ({marks})", *sorted(scope.agencies))

    def _filter(self, name: str, values: list[str]) -> None:
        if not values:
            self.add("0")
            return
        marks = ",".join("?" * len(values))
        each = (
            f"EXISTS (SELECT 1 FROM json_each({self.kind}.doc, ?) AS j"
            f" WHERE {_CANONICAL_VALUE} IN ({marks}))"
        )
        column = _column(self.kind, name)
        if column:
            # The column holds scalars; a list-valued field leaves it NULL and is read as JSON.
            self.add(
                f"({column} IN ({marks}) OR ({column} IS NULL AND {each}))",
                *values,
                _json_path(name),
                *values,
            )
        else:
            self.add(each, _json_path(name), *values)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""


class SqliteStore:
    def __init__(self, path: Path, readers: int = 4) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=10000")
            # NORMAL in WAL mode: a commit survives a crash of the process; only a power cut can
            # lose the last transactions, never corrupt the file.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA temp_store=MEMORY")
            # 64 MiB of page cache per connection: index pages of a busy day stay in memory.
            conn.execute("PRAGMA cache_size=-65536")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    async def _run(self, pool: ThreadPoolExecutor, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, lambda: work(self._connection()))

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def create(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            for kind in KINDS:
                for statement in _schema(kind):
                    conn.execute(statement)
                _add_missing_columns(conn, kind)
                for statement in _indexes(kind):
                    conn.execute(statement)

        await self._run(self._writer, create)

    async def close(self) -> None:
        def checkpoint(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await self._run(self._writer, checkpoint)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    async def write(self, kind: Kind, docs: Sequence[Mapping[str, Any]]) -> WriteResult:
        rows, errors = self._rows(kind, docs)
        if not rows:
            return WriteResult(written=0, errors=tuple(errors))

        duplicate_ids: list[str] = []

        def insert(conn: sqlite3.Connection) -> int:
            promoted = "".join(f", {column}" for _, column in PROMOTED[kind])
            marks = ",?" * len(PROMOTED[kind])
            insert_doc = (
                f"INSERT INTO {kind} (id, ts, org{promoted}, doc) VALUES (?, ?, ?{marks}, ?)"
                " ON CONFLICT(id) DO NOTHING"
            )
            insert_text = f"INSERT INTO {kind}_fts (rowid, text) VALUES (?, ?)"
            written = 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                for values, text in rows:
                    cursor = conn.execute(insert_doc, values)
                    if cursor.rowcount == 1:
                        conn.execute(insert_text, (cursor.lastrowid, text))
                        written += 1
                    else:
                        duplicate_ids.append(values[0])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return written

        written = await self._run(self._writer, insert)
        return WriteResult(
            written=written,
            duplicates=len(rows) - written,
            errors=tuple(errors),
            duplicate_ids=tuple(duplicate_ids),
        )

    def _rows(
        self, kind: Kind, docs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[tuple[tuple[Any, ...], str]], list[tuple[str, str]]]:
        rows: list[tuple[tuple[Any, ...], str]] = []
        errors: list[tuple[str, str]] = []
        for doc in docs:
            try:
                ident = document_id(doc)
                body = orjson.dumps(doc).decode("utf-8")
            except (QueryError, TypeError) as exc:
                event = doc.get("event")
                raw_id = event.get("id") if isinstance(event, Mapping) else None
                errors.append((str(raw_id or "?"), str(exc)))
                continue
            org = _scalar_text(lookup(doc, "organization.id"))
            promoted = tuple(_scalar_text(lookup(doc, name)) for name, _ in PROMOTED[kind])
            text = fts_text(kind, doc).translate(UNDECOMPOSABLE)
            rows.append(((ident, doc_time(doc), org, *promoted, body), text))
        return rows, errors

    async def get(self, kind: Kind, ident: str, scope: Scope) -> dict[str, Any] | None:
        where = _Where(kind, Query(scope=scope))
        where.add("id = ?", ident)

        def fetch(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(f"SELECT doc FROM {kind}{where.sql()}", where.params).fetchone()
            return orjson.loads(row[0]) if row else None

        return await self._run(self._readers, fetch)

    def _order(self, kind: Kind, query: Query) -> tuple[str, list[Any]]:
        direction = "DESC" if query.descending else "ASC"
        if query.sort == "@timestamp":
            return f" ORDER BY ts {direction}, {kind}.rowid {direction}", []
        column = _column(kind, query.sort)
        if column:
            return f" ORDER BY {column} {direction}, ts DESC", []
        return (
            f" ORDER BY json_extract({kind}.doc, ?) {direction}, ts DESC",
            [_json_path(query.sort)],
        )

    async def search(self, kind: Kind, query: Query) -> Page:
        check_indexed(kind, query)
        where = _Where(kind, query)
        order, order_params = self._order(kind, query)

        def fetch(conn: sqlite3.Connection) -> Page:
            total = conn.execute(f"SELECT COUNT(*) FROM {kind}{where.sql()}", where.params)
            count = int(total.fetchone()[0])
            if query.limit == 0:
                return Page(items=[], total=count)
            rows = conn.execute(
                f"SELECT doc FROM {kind}{where.sql()}{order} LIMIT ? OFFSET ?",
                [*where.params, *order_params, query.limit, query.offset],
            )
            return Page(items=[orjson.loads(doc) for (doc,) in rows], total=count)

        return await self._run(self._readers, fetch)

    async def count_by(
        self, kind: Kind, name: str, query: Query, size: int = 10
    ) -> list[tuple[str, int]]:
        check_indexed(kind, query, name)
        sql, params = _grouped(kind, name, query, "", "2 DESC, 1", size)

        def fetch(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            return [(str(value), int(count)) for value, count in conn.execute(sql, params)]

        return await self._run(self._readers, fetch)

    async def histogram(self, kind: Kind, interval_seconds: int, query: Query) -> list[Bucket]:
        check_indexed(kind, query)
        if interval_seconds < 1:
            raise QueryError("interval must be at least one second")
        width = interval_seconds * 1_000_000
        where = _Where(kind, query)
        sql = (
            f"SELECT (ts / ?) * ? AS bucket, COUNT(*) FROM {kind}{where.sql()}"
            " GROUP BY bucket ORDER BY bucket"
        )

        def fetch(conn: sqlite3.Connection) -> list[Bucket]:
            rows = conn.execute(sql, [width, width, *where.params])
            return [Bucket(from_micros(int(start)), int(count)) for start, count in rows]

        return await self._run(self._readers, fetch)

    async def latest_by(
        self, kind: Kind, name: str, query: Query, size: int = 100
    ) -> list[tuple[str, int, datetime]]:
        check_indexed(kind, query, name)
        sql, params = _grouped(kind, name, query, ", MAX(ts)", "3 DESC, 1", size)

        def fetch(conn: sqlite3.Connection) -> list[tuple[str, int, datetime]]:
            return [
                (str(value), int(count), from_micros(int(latest)))
                for value, count, latest in conn.execute(sql, params)
            ]

        return await self._run(self._readers, fetch)

    async def get_versioned(
        self, kind: Kind, ident: str, scope: Scope
    ) -> tuple[dict[str, Any], str] | None:
        _mutable(kind)
        where = _Where(kind, Query(scope=scope))
        where.add("id = ?", ident)

        def fetch(conn: sqlite3.Connection) -> tuple[dict[str, Any], str] | None:
            row = conn.execute(
                f"SELECT doc, version FROM {kind}{where.sql()}", where.params
            ).fetchone()
            return (orjson.loads(row[0]), str(row[1])) if row else None

        # The writer thread: a read there sees every committed replace, in order.
        return await self._run(self._writer, fetch)

    async def get_written(
        self, kind: Kind, docs: Sequence[Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(document_id(doc) for doc in docs))
        found: dict[str, dict[str, Any]] = {}

        def fetch(conn: sqlite3.Connection) -> None:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                for ident, doc in conn.execute(
                    f"SELECT id, doc FROM {kind} WHERE id IN ({','.join('?' * len(part))})", part
                ):
                    found[str(ident)] = orjson.loads(doc)

        if wanted:
            await self._run(self._writer, fetch)
        return found

    async def get_many_versioned(
        self, kind: Kind, idents: Sequence[str], scope: Scope
    ) -> dict[str, tuple[dict[str, Any], str]]:
        _mutable(kind)
        wanted = list(dict.fromkeys(idents))
        found: dict[str, tuple[dict[str, Any], str]] = {}
        if not wanted:
            return found

        def fetch(conn: sqlite3.Connection) -> None:
            # In slices well under SQLite's limit on bound parameters.
            for start in range(0, len(wanted), 500):
                where = _Where(kind, Query(scope=scope))
                part = wanted[start : start + 500]
                where.add(f"id IN ({','.join('?' * len(part))})", *part)
                for ident, doc, version in conn.execute(
                    f"SELECT id, doc, version FROM {kind}{where.sql()}", where.params
                ):
                    found[str(ident)] = (orjson.loads(doc), str(version))

        await self._run(self._writer, fetch)
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
        _mutable(kind)
        rows, errors = self._rows(kind, [doc for doc, _ in items])
        if errors:
            raise QueryError(f"document refused: {errors[0][1]}")
        sets = "".join(f", {column} = ?" for _, column in PROMOTED[kind])

        def update(conn: sqlite3.Connection) -> list[str | Conflict | NotFound]:
            outcomes: list[str | Conflict | NotFound] = []
            conn.execute("BEGIN IMMEDIATE")
            try:
                for (values, text), (_, version) in zip(rows, items, strict=True):
                    ident, ts, org, *promoted = values[:-1]
                    body = values[-1]
                    if not scope.allows(org):
                        outcomes.append(NotFound(ident))
                        continue
                    try:
                        expected = int(version)
                    except ValueError:
                        outcomes.append(Conflict(f"{ident}: version {version!r} is not current"))
                        continue
                    where = _Where(kind, Query(scope=scope))
                    where.add("id = ?", ident)
                    row = conn.execute(
                        f"SELECT rowid, version FROM {kind}{where.sql()}", where.params
                    ).fetchone()
                    if row is None:
                        outcomes.append(NotFound(ident))
                        continue
                    rowid, current = row
                    if current != expected:
                        outcomes.append(
                            Conflict(f"{ident}: version {version} is not current ({current} is)")
                        )
                        continue
                    conn.execute(
                        f"UPDATE {kind} SET ts = ?, org = ?{sets}, doc = ?, version = version + 1"
                        " WHERE rowid = ?",
                        (ts, org, *promoted, body, rowid),
                    )
                    conn.execute(f"DELETE FROM {kind}_fts WHERE rowid = ?", (rowid,))
                    conn.execute(
                        f"INSERT INTO {kind}_fts (rowid, text) VALUES (?, ?)", (rowid, text)
                    )
                    outcomes.append(str(current + 1))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return outcomes

        return await self._run(self._writer, update)

    async def delete_before(self, kind: Kind, day: date, batch_size: int = 1000) -> int:
        """Delete the documents of `kind` filed before `day` (UTC midnight), with their free-text
        rows; how many. In transactions of `batch_size` rows, so writers wait for one batch at
        most, never for the whole purge."""
        cutoff = (day.toordinal() - _EPOCH_ORDINAL) * 86_400_000_000

        def purge(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rowids = [
                    row[0]
                    for row in conn.execute(
                        f"SELECT rowid FROM {kind} WHERE ts < ? ORDER BY ts LIMIT ?",
                        (cutoff, batch_size),
                    )
                ]
                marks = ",".join("?" * len(rowids))
                if rowids:
                    conn.execute(f"DELETE FROM {kind}_fts WHERE rowid IN ({marks})", rowids)
                    conn.execute(f"DELETE FROM {kind} WHERE rowid IN ({marks})", rowids)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return len(rowids)

        deleted = 0
        while True:
            count = await self._run(self._writer, purge)
            deleted += count
            if count < batch_size:
                return deleted


#: `date(1970, 1, 1).toordinal()`: days since the epoch without a datetime round trip.
_EPOCH_ORDINAL = 719163


def _grouped(
    kind: Kind, name: str, query: Query, extra: str, order: str, size: int
) -> tuple[str, list[Any]]:
    """SQL grouping the matches of `query` by the values of field `name`: each value, its count,
    then the `extra` aggregates; a list-valued field counts a document once per value."""
    if not FIELD_NAME.match(name):
        raise QueryError(f"invalid field name {name!r}")
    where = _Where(kind, query)
    column = _column(kind, name)
    if column:
        where.add(f"{column} IS NOT NULL")
        sql = (
            f"SELECT {column}, COUNT(*){extra} FROM {kind}{where.sql()}"
            f" GROUP BY {column} ORDER BY {order} LIMIT ?"
        )
        return sql, [*where.params, size]
    sql = (
        f"SELECT {_CANONICAL_VALUE} AS v, COUNT(DISTINCT {kind}.rowid){extra} FROM {kind},"
        f" json_each({kind}.doc, ?) AS j{where.sql()} GROUP BY v ORDER BY {order} LIMIT ?"
    )
    return sql, [_json_path(name), *where.params, size]


def _mutable(kind: Kind) -> None:
    if kind not in MUTABLE:
        raise QueryError(f"{kind} are written once and never replaced")
