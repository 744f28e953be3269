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

#: Default topic names (DESIGN.md); configurable later, hence constants rather than literals.
RAW = "soc.raw"
EVENTS = "soc.events"
MATCHES = "soc.matches"
ALERTS = "soc.alerts"
#: Incident changes (created, grown, status changed): what notifications act on. Key: incident id.
INCIDENTS = "soc.incidents"


@dataclass(frozen=True, slots=True)
class Message:
    """What a producer publishes. `value` is JSON-compatible and must not be mutated afterwards."""

    key: str
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivered:
    """A message as a consumer receives it, with its position in the topic."""

    topic: str
    partition: int
    offset: int
    key: str
    value: dict[str, Any]


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
    async def start(self) -> None: ...

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        """Returns once every message is acknowledged (durable as far as the bus goes).
        May wait when the bus is full: that is the backpressure collectors rely on."""
        ...

    async def subscribe(self, topic: str, group: str) -> Consumer:
        """Join `group` on `topic`; a new group starts at the earliest retained record."""
        ...

    async def close(self) -> None: ...
