"""The outbox: every message to send, durable in SQLite (WAL, synchronous=FULL) before the bus
record that caused it is committed, and kept until a provider accepted it or an operator saw it
parked. It also holds each incident's notification window (what has been told, what is held back)
and the refreshed provider tokens, so that a restart loses none of them.

One connection, used from worker threads under a lock: the stage, the digest clock and the
dispatcher each hand it short transactions.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soc.notify.models import Notice

PENDING, SENT, PARKED = "pending", "sent", "parked"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    agency TEXT NOT NULL,
    kind TEXT NOT NULL,
    notice TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    origin REAL NOT NULL,
    age_from REAL NOT NULL,
    next_attempt REAL NOT NULL,
    updated REAL NOT NULL,
    sent REAL,
    provider_id TEXT,
    last_error TEXT,
    answer TEXT
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (status, next_attempt);
CREATE INDEX IF NOT EXISTS messages_incident ON messages (incident_id);
CREATE TABLE IF NOT EXISTS windows (
    incident_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    language TEXT NOT NULL,
    seq INTEGER NOT NULL,
    window_end REAL NOT NULL,
    sent_count INTEGER NOT NULL,
    latest_count INTEGER NOT NULL,
    last_at REAL NOT NULL,
    pending_change TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    PRIMARY KEY (incident_id, channel, recipient)
);
CREATE INDEX IF NOT EXISTS windows_end ON windows (window_end);
CREATE TABLE IF NOT EXISTS tokens (
    channel TEXT PRIMARY KEY,
    access_token TEXT NOT NULL,
    refresh_token TEXT NOT NULL,
    expires_at REAL NOT NULL,
    updated REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Message:
    """One row of the outbox, as the dispatcher and the delivery log see it."""

    id: str
    channel: str
    recipient: str
    incident_id: str
    agency: str
    kind: str
    notice: Notice
    status: str
    attempts: int
    created: float
    origin: float
    age_from: float
    next_attempt: float
    updated: float
    sent: float | None
    provider_id: str | None
    last_error: str | None
    answer: str | None

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        data["notice"] = self.notice.as_dict()
        return data


@dataclass(frozen=True, slots=True)
class Window:
    """What one recipient on one channel has been told about one incident."""

    incident_id: str
    channel: str
    recipient: str
    language: str
    seq: int
    window_end: float
    sent_count: int
    latest_count: int
    last_at: float
    pending_change: str
    snapshot: Notice


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one send: accepted (`error` None) or failed, and what to do next."""

    message_id: str
    at: float
    provider_id: str = ""
    answer: str = ""
    error: str | None = None
    #: For a failure: when to try again, or None to park it.
    retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    refresh_token: str
    expires_at: float


class Transaction:
    """Reads and writes inside one outbox transaction (see `Outbox.transaction`)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def window(self, incident_id: str, channel: str, recipient: str) -> Window | None:
        row = self._db.execute(
            "SELECT * FROM windows WHERE incident_id = ? AND channel = ? AND recipient = ?",
            (incident_id, channel, recipient),
        ).fetchone()
        return _window(row) if row else None

    def due_windows(self, now: float, limit: int) -> list[Window]:
        rows = self._db.execute(
            "SELECT * FROM windows WHERE window_end <= ?"
            " AND (latest_count > sent_count OR pending_change != '')"
            " ORDER BY window_end LIMIT ?",
            (now, limit),
        ).fetchall()
        return [_window(row) for row in rows]

    def put_window(self, window: Window) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                window.incident_id,
                window.channel,
                window.recipient,
                window.language,
                window.seq,
                window.window_end,
                window.sent_count,
                window.latest_count,
                window.last_at,
                window.pending_change,
                json.dumps(window.snapshot.as_dict(), ensure_ascii=False),
            ),
        )

    def enqueue(
        self, message_id: str, channel: str, recipient: str, notice: Notice, now: float,
        origin: float,
    ) -> bool:  # fmt: skip
        """Add a message unless one with this id exists (a replay); True when added."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO messages (id, channel, recipient, incident_id, agency, kind,"
            " notice, status, attempts, created, origin, age_from, next_attempt, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
            (
                message_id,
                channel,
                recipient,
                notice.incident_id,
                notice.agency,
                notice.kind,
                json.dumps(notice.as_dict(), ensure_ascii=False),
                PENDING,
                now,
                origin,
                now,
                now,
                now,
            ),
        )
        return cursor.rowcount == 1


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if not existed:
            os.chmod(path, 0o600)  # it holds provider tokens and recipients' addresses
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a transaction that returned is on disk, so the bus offset committed after it
        # can never point past a message the outbox does not have.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Transaction]:
        """One atomic unit of work, rolled back whole if the body raises; `durable`: on disk
        when this returns (synchronous=FULL), else only safe from a process crash."""
        with self._lock:
            if not durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield Transaction(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous=FULL")

    def due(self, now: float, limit: int, exclude: set[str]) -> list[Message]:
        """Pending messages whose time has come, oldest first, skipping those in flight."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM messages WHERE status = ? AND next_attempt <= ?"
                " ORDER BY next_attempt LIMIT ?",
                (PENDING, now, limit + len(exclude)),
            ).fetchall()
        return [_message(row) for row in rows if row["id"] not in exclude][:limit]

    def next_due(self, after: float) -> float | None:
        """When the next pending message falls due, later than `after` (those due already are
        being sent)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_attempt) FROM messages WHERE status = ? AND next_attempt > ?",
                (PENDING, after),
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write what became of sends, in one transaction. Not synced to disk at once: losing
        it to a power cut (not to a crash: the WAL has it) means sending again, never losing."""
        with self.transaction(durable=False):
            for outcome in outcomes:
                if outcome.error is None:
                    self._db.execute(
                        "UPDATE messages SET status = ?, attempts = attempts + 1, sent = ?,"
                        " updated = ?, provider_id = ?, answer = ?, last_error = NULL"
                        " WHERE id = ?",
                        (SENT, outcome.at, outcome.at, outcome.provider_id, outcome.answer,
                         outcome.message_id),
                    )  # fmt: skip
                else:
                    status = PENDING if outcome.retry_at is not None else PARKED
                    self._db.execute(
                        "UPDATE messages SET status = ?, attempts = attempts + 1, updated = ?,"
                        " next_attempt = ?, last_error = ?, answer = ? WHERE id = ?",
                        (status, outcome.at, outcome.retry_at or outcome.at, outcome.error,
                         outcome.answer, outcome.message_id),
                    )  # fmt: skip

    def retry(self, message_id: str, now: float) -> Message | None:
        """An operator's retry of a parked message: pending again, attempts and age restarted."""
        with self.transaction():
            self._db.execute(
                "UPDATE messages SET status = ?, attempts = 0, next_attempt = ?, age_from = ?,"
                " updated = ? WHERE id = ? AND status = ?",
                (PENDING, now, now, now, message_id, PARKED),
            )
        return self.get(message_id)

    def get(self, message_id: str) -> Message | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return _message(row) if row else None

    def search(
        self,
        *,
        agencies: frozenset[str] | None,
        status: str | None = None,
        channel: str | None = None,
        incident_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[Message], int]:
        """The delivery log, newest first, limited to `agencies` (None: all)."""
        where, params = ["1 = 1"], []
        for column, value in (
            ("status", status),
            ("channel", channel),
            ("incident_id", incident_id),
        ):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if agencies is not None:
            where.append(f"agency IN ({', '.join('?' * len(agencies))})" if agencies else "0")
            params.extend(sorted(agencies))
        # Column names come from the fixed tuple above; every value is a bound parameter.
        clause = " AND ".join(where)
        with self._lock:
            total = self._db.execute(
                f"SELECT COUNT(*) FROM messages WHERE {clause}",  # noqa: S608
                params,
            ).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM messages WHERE {clause} ORDER BY created DESC, id"  # noqa: S608
                " LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_message(row) for row in rows], int(total)

    def counts(self) -> dict[str, dict[str, int]]:
        """Messages by channel and status."""
        with self._lock:
            rows = self._db.execute(
                "SELECT channel, status, COUNT(*) FROM messages GROUP BY channel, status"
            ).fetchall()
        counts: dict[str, dict[str, int]] = {}
        for channel, status, count in rows:
            counts.setdefault(channel, {})[status] = int(count)
        return counts

    def depth(self) -> int:
        with self._lock:
            return int(
                self._db.execute(
                    "SELECT COUNT(*) FROM messages WHERE status = ?", (PENDING,)
                ).fetchone()[0]
            )

    def purge_sent(self, before: float) -> int:
        """Forget delivered messages older than `before` (parked ones stay until handled), and
        windows idle since then with nothing held (a replay older than that would be told
        again: bus retention is far shorter)."""
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM messages WHERE status = ? AND sent < ?", (SENT, before)
            )
            self._db.execute(
                "DELETE FROM windows WHERE window_end < ? AND latest_count <= sent_count"
                " AND pending_change = ''",
                (before,),
            )
        return cursor.rowcount

    def load_token(self, channel: str) -> Token | None:
        with self._lock:
            row = self._db.execute(
                "SELECT access_token, refresh_token, expires_at FROM tokens WHERE channel = ?",
                (channel,),
            ).fetchone()
        return Token(row[0], row[1], float(row[2])) if row else None

    def save_token(self, channel: str, token: Token, now: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?)",
                (channel, token.access_token, token.refresh_token, token.expires_at, now),
            )


def _message(row: sqlite3.Row) -> Message:
    values = dict(row)
    values["notice"] = Notice.from_dict(json.loads(values["notice"]))
    return Message(**values)


def _window(row: sqlite3.Row) -> Window:
    values = dict(row)
    values["snapshot"] = Notice.from_dict(json.loads(values["snapshot"]))
    return Window(**values)
