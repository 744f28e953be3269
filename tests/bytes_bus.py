"""The in-process bus posing as one that carries bytes (as Kafka does), keeping what was
published on each topic: what stages hand a Kafka bus, checked without a broker."""

from __future__ import annotations

from collections.abc import Sequence

from soc.bus.base import Message
from soc.bus.memory import MemoryBus


class BytesBus(MemoryBus):
    carries_bytes = True

    def __init__(self) -> None:
        super().__init__(capacity=10_000)
        self.sent: dict[str, list[Message]] = {}

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        self.sent.setdefault(topic, []).extend(messages)
        await super().publish(topic, messages)
