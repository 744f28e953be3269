"""The bus contract: publish batches to topics, consume a topic as a group with explicit commits.

It is Kafka's model cut to what the stages need, so that the in-process bus and the Kafka bus are
interchangeable: topics are split into partitions by key (one key's records stay in order), a
consumer group sees every record at least once, and a record whose offset was not committed is
delivered again to whoever takes over its partition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

#: Default topic names (DESIGN.md); configurable later, hence constants rather than literals.
RAW = "soc.raw"
EVENTS = "soc.events"
MATCHES = "soc.matches"
ALERTS = "soc.alerts"
#: Incident changes (created, grown, status changed): what notifications act on. Key: incident id.
INCIDENTS = "soc.incidents"


#: Record headers: (name, bytes) pairs, as Kafka carries them.
Headers = tuple[tuple[str, bytes], ...]
#: Header of an event that was detected where it was normalized (detection chained): a `detect`
#: stage reading `soc.events` elsewhere skips it rather than detect it a second time.
DETECTED = "soc.detected"


#: The value of a message made by `Message.bytes_only`: only its encoding is kept.
NOT_KEPT: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Message:
    """What a producer publishes. `value` is JSON-compatible and must not be mutated afterwards.

    `headers` are hints about the value that let a consumer skip work (see
    `soc.store.documents.hints`). A consumer must do the same without them: a record published
    without, or put back from the in-process bus's journal (which keeps no headers), has none.

    `encoded`, where given, is `value` as JSON (`encode`), made by the producer while the value
    was still in the CPU's caches: a bus that carries bytes sends it rather than encode the
    value itself, later and from cold memory. Only for a bus whose `carries_bytes` is true; the
    in-process bus would merely hold both. A message made by `bytes_only` keeps the encoding
    alone: its `value` is `NOT_KEPT`."""

    key: str
    value: dict[str, Any]
    headers: Headers = ()
    encoded: bytes | None = None

    @classmethod
    def bytes_only(cls, key: str, encoded: bytes, headers: Headers = ()) -> Message:
        """A message that keeps its value's encoding and not the value, for a bus that carries
        bytes. The producer lets the value go as soon as it is encoded, so that its objects are
        freed while they are still in the CPU's caches, rather than all of a batch's at once
        after it is published, from cold memory: the normalizing and detecting process's CPU an
        event 43.0 -> 37.9 us (bench/front.py). Its `value` is `NOT_KEPT`; a bus that holds
        values decodes `encoded`."""
        return cls(key, NOT_KEPT, headers, encoded)

    def as_bytes(self) -> bytes:
        """The value as the buses carry it: `encoded` where the producer made it."""
        return self.encoded if self.encoded is not None else encode(self.value)


def encode(value: dict[str, Any]) -> bytes:
    """A record's value as the buses carry it: compact JSON, UTF-8."""
    return orjson.dumps(value)


class Delivered:
    """A message as a consumer receives it, with its position in the topic.

    From Kafka the value arrives as bytes and is decoded on first use: a consumer that needs
    only the bytes (the event indexer, which sends them on to Elasticsearch as they are) never
    pays for decoding them into dicts and freeing those again. Records without headers are
    decoded as they are polled (the Kafka consumer skips and counts one that is not a JSON
    object); those with are the platform's own. `raw` is None where the bus holds values
    rather than bytes."""

    __slots__ = ("_value", "headers", "key", "offset", "partition", "raw", "topic")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: str,
        value: dict[str, Any] | None = None,
        *,
        raw: bytes | None = None,
        headers: Headers = (),
    ) -> None:
        if value is None and raw is None:
            raise ValueError("a delivered record needs a value or its bytes")
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.raw = raw
        self.headers = headers
        self._value = value

    @property
    def value(self) -> dict[str, Any]:
        value = self._value
        if value is None:
            try:
                value = orjson.loads(self.raw)  # type: ignore[arg-type]
            except orjson.JSONDecodeError as exc:
                raise UndecodableRecord(
                    f"{self.topic} partition {self.partition} offset {self.offset}: {exc}"
                ) from None
            if not isinstance(value, dict):
                raise UndecodableRecord(
                    f"{self.topic} partition {self.partition} offset {self.offset}:"
                    f" a JSON {type(value).__name__}, not an object"
                )
            self._value = value
        return value

    def __repr__(self) -> str:
        return (
            f"Delivered({self.topic!r}, {self.partition}, {self.offset}, {self.key!r},"
            f" {self._value if self._value is not None else self.raw!r})"
        )


class UndecodableRecord(ValueError):
    """A record whose bytes are not a JSON object (only the platform publishes to its topics,
    so this is a bug or a stranger writing to them)."""


class Consumer(Protocol):
    """One member of a consumer group reading one topic."""

    async def poll(self, max_records: int, max_wait: float) -> list[Delivered]:
        """Up to `max_records` records after those already returned; waits at most `max_wait` s
        for the first one and returns an empty list if none came."""
        ...

    async def commit(self) -> None:
        """Mark every record returned by `poll` so far as processed by the group."""
        ...

    async def commit_upto(self, positions: Mapping[int, int]) -> None:
        """Commit, per partition, the next offset to read (at most past what `poll` returned):
        a stage that keeps state built from records commits only up to the oldest record its
        state still needs, so that a successor rebuilds that state by reading them again."""
        ...

    async def lag(self) -> int:
        """Records in the member's partitions not yet committed by the group."""
        ...

    async def close(self) -> None:
        """Leave the group; uncommitted records go to the next member of the group."""
        ...


class Bus(Protocol):
    #: Whether the bus sends values as bytes (Kafka) rather than hand them over as they are (the
    #: in-process bus): the first is worth a `Message.encoded` made while the value is hot.
    carries_bytes: bool

    async def start(self) -> None: ...

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        """Returns once every message is acknowledged (durable as far as the bus goes).
        May wait when the bus is full: that is the backpressure collectors rely on."""
        ...

    async def subscribe(self, topic: str, group: str) -> Consumer:
        """Join `group` on `topic`; a new group starts at the earliest retained record.
        Records are delivered with their headers."""
        ...

    async def close(self) -> None: ...
