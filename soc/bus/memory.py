"""The in-process bus: Kafka's semantics in one process, for `soc run` and tests.

Each topic is a set of append-only partitions; a record is kept until every group that reads the
topic has committed past it, and publishers wait while a topic holds `capacity` records, so a slow
stage slows the collectors instead of growing memory without bound.

Topics named `durable` are also written to a journal (SQLite) as they are published and deleted
from it as they are trimmed, and read back by `start`: what no group had committed when the
process stopped (or died) is delivered again after a restart. `soc run` journals the matches
that feed correlations, so their windows outlive the process as they do on Kafka.
"""

from __future__ import annotations

import asyncio
import sqlite3
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from soc.bus.base import NOT_KEPT, Delivered, Message


@dataclass
class _Partition:
    #: A list, not a deque: consumers index into the middle, which is O(n) on a deque.
    records: list[Message] = field(default_factory=list)
    #: Offset of records[0].
    base: int = 0

    @property
    def end(self) -> int:
        return self.base + len(self.records)


@dataclass
class _Group:
    committed: list[int]
    members: list[MemoryConsumer] = field(default_factory=list)


class _Topic:
    def __init__(
        self,
        name: str,
        partitions: int,
        capacity: int,
        on_trim: Callable[[int, int], None] | None = None,
    ) -> None:
        self.name = name
        self.partitions = [_Partition() for _ in range(partitions)]
        self.capacity = capacity
        self.groups: dict[str, _Group] = {}
        self.changed = asyncio.Condition()
        #: Called with (partition, new base) when records are dropped.
        self.on_trim = on_trim

    def retained(self) -> int:
        return sum(len(p.records) for p in self.partitions)

    def trim(self) -> None:
        """Drop records every group has committed; the earliest retained one stays readable."""
        if not self.groups:
            return
        for index, partition in enumerate(self.partitions):
            floor = min(group.committed[index] for group in self.groups.values())
            drop = min(floor - partition.base, len(partition.records))
            if drop > 0:
                del partition.records[:drop]
                partition.base += drop
                if self.on_trim is not None:
                    self.on_trim(index, partition.base)

    def rebalance(self, group: _Group) -> None:
        """Share partitions round-robin among members; each restarts at the committed offset."""
        for member in group.members:
            member.positions = {}
        for index in range(len(self.partitions)):
            if group.members:
                member = group.members[index % len(group.members)]
                member.positions[index] = group.committed[index]


class MemoryBus:
    carries_bytes = False

    def __init__(
        self,
        partitions: int = 1,
        capacity: int = 200_000,
        *,
        journal: Path | None = None,
        durable: Collection[str] = (),
    ) -> None:
        if partitions < 1 or capacity < 1:
            raise ValueError("partitions and capacity must be at least 1")
        self._partitions = partitions
        self._capacity = capacity
        self._topics: dict[str, _Topic] = {}
        self._journal_path = journal
        self._durable = frozenset(durable) if journal is not None else frozenset()
        self._journal: sqlite3.Connection | None = None

    @property
    def durable(self) -> frozenset[str]:
        """Topics whose unconsumed records outlive the process."""
        return self._durable

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            on_trim = None
            if name in self._durable:
                on_trim = lambda partition, base: self._forget(name, partition, base)  # noqa: E731
            topic = self._topics[name] = _Topic(name, self._partitions, self._capacity, on_trim)
        return topic

    async def start(self) -> None:
        """Open the journal and put back what it holds, at the offsets it had."""
        if self._journal_path is None or self._journal is not None:
            return
        self._journal_path.parent.mkdir(parents=True, exist_ok=True)
        journal = sqlite3.connect(self._journal_path, isolation_level=None)
        journal.execute("PRAGMA journal_mode=WAL")
        journal.execute("PRAGMA synchronous=NORMAL")
        journal.execute(
            "CREATE TABLE IF NOT EXISTS records (topic TEXT NOT NULL, part INTEGER NOT NULL,"
            " offset INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
            " PRIMARY KEY (topic, part, offset)) WITHOUT ROWID"
        )
        self._journal = journal
        for name in sorted(self._durable):
            topic = self._topic(name)
            rows = journal.execute(
                "SELECT part, offset, key, value FROM records WHERE topic = ? AND part < ?"
                " ORDER BY part, offset",
                (name, len(topic.partitions)),
            ).fetchall()
            for part, offset, key, value in rows:
                partition = topic.partitions[part]
                if not partition.records:
                    partition.base = offset
                elif offset != partition.end:
                    continue  # a gap cannot happen (trims delete a prefix); never misnumber
                partition.records.append(Message(key, orjson.loads(value)))

    def _forget(self, topic: str, partition: int, base: int) -> None:
        if self._journal is not None:
            self._journal.execute(
                "DELETE FROM records WHERE topic = ? AND part = ? AND offset < ?",
                (topic, partition, base),
            )

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        if not messages:
            return
        state = self._topic(topic)
        async with state.changed:
            await state.changed.wait_for(
                lambda: state.retained() == 0 or state.retained() + len(messages) <= state.capacity
            )
            count = len(state.partitions)
            rows: list[tuple[str, int, int, str, bytes]] = []
            journaled = self._journal is not None and topic in self._durable
            for message in messages:
                index = zlib.crc32(message.key.encode("utf-8", "surrogatepass")) % count
                partition = state.partitions[index]
                if journaled:
                    rows.append((topic, index, partition.end, message.key, message.as_bytes()))
                if message.value is NOT_KEPT and message.encoded is not None:
                    # Made for a bus of bytes: held here as the value its bytes say.
                    message = Message(message.key, orjson.loads(message.encoded), message.headers)
                partition.records.append(message)
            if rows and self._journal is not None:
                # Small (the matches of one batch) and in WAL mode: a millisecond, not worth a
                # thread hop that would let a reader see records the journal does not hold yet.
                self._journal.executemany("INSERT OR REPLACE INTO records VALUES (?,?,?,?,?)", rows)
            state.changed.notify_all()

    async def subscribe(self, topic: str, group: str) -> MemoryConsumer:
        state = self._topic(topic)
        async with state.changed:
            members = state.groups.get(group)
            if members is None:
                earliest = [p.base for p in state.partitions]
                members = state.groups[group] = _Group(committed=earliest)
            consumer = MemoryConsumer(state, members)
            members.members.append(consumer)
            state.rebalance(members)
        return consumer

    async def close(self) -> None:
        for topic in self._topics.values():
            for group in topic.groups.values():
                for member in list(group.members):
                    await member.close()
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def lags(self) -> list[tuple[str, str, int, int]]:
        """(group, topic, partition, records not yet committed), for the lag gauge."""
        return [
            (name, topic.name, index, partition.end - group.committed[index])
            for topic in self._topics.values()
            for name, group in topic.groups.items()
            for index, partition in enumerate(topic.partitions)
        ]

    def backlog(self, topic: str) -> int:
        """Records held for `topic` (a gauge for /metrics)."""
        state = self._topics.get(topic)
        return state.retained() if state else 0


class MemoryConsumer:
    def __init__(self, topic: _Topic, group: _Group) -> None:
        self._topic = topic
        self._group = group
        self.positions: dict[int, int] = {}
        self._closed = False
        self._next_partition = 0

    def _take(self, max_records: int) -> list[Delivered]:
        taken: list[Delivered] = []
        assigned = sorted(self.positions)
        if not assigned:
            return taken
        # Rotate the starting partition so one busy partition cannot starve the others.
        start = self._next_partition % len(assigned)
        self._next_partition += 1
        for index in assigned[start:] + assigned[:start]:
            partition = self._topic.partitions[index]
            position = max(self.positions[index], partition.base)
            stop = min(partition.end, position + max_records - len(taken))
            name, base = self._topic.name, partition.base
            for offset, message in enumerate(
                partition.records[position - base : stop - base], start=position
            ):
                taken.append(
                    Delivered(
                        name, index, offset, message.key, message.value, headers=message.headers
                    )
                )
            self.positions[index] = max(position, stop)
            if len(taken) >= max_records:
                break
        return taken

    async def poll(self, max_records: int, max_wait: float) -> list[Delivered]:
        if self._closed:
            raise RuntimeError("poll on a closed consumer")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        async with self._topic.changed:
            while True:
                taken = self._take(max_records)
                remaining = deadline - loop.time()
                if taken or remaining <= 0:
                    return taken
                try:
                    await asyncio.wait_for(self._topic.changed.wait(), remaining)
                except TimeoutError:
                    return self._take(max_records)

    async def commit(self) -> None:
        async with self._topic.changed:
            for index, position in self.positions.items():
                self._group.committed[index] = max(self._group.committed[index], position)
            self._topic.trim()
            self._topic.changed.notify_all()

    async def commit_upto(self, positions: Mapping[int, int]) -> None:
        async with self._topic.changed:
            for index, position in positions.items():
                if index in self.positions:
                    upto = min(position, self.positions[index])
                    self._group.committed[index] = max(self._group.committed[index], upto)
            self._topic.trim()
            self._topic.changed.notify_all()

    async def lag(self) -> int:
        return sum(
            self._topic.partitions[index].end - self._group.committed[index]
            for index in self.positions
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._topic.changed:
            self._group.members.remove(self)
            self._topic.rebalance(self._group)
            self._topic.changed.notify_all()
