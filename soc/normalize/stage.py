"""The normalizing stage: `soc.raw` in, `soc.events` out, one event per record, always.

Where detection runs in the same process, it is chained here: each batch's events are detected
as they are normalized rather than read back from `soc.events` and decoded again (a third of
the detecting process's time went to that round trip). `soc.events` still carries every event,
for the event indexer. The raw records are committed only after the events, the alerts and the
matches are all acknowledged, so a crash replays the batch through both (ids absorb it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from soc import metrics
from soc.bus.base import DETECTED, EVENTS, RAW, Bus, Delivered, Headers, Message, encode
from soc.normalize import NormalizeOptions, normalize
from soc.stage import HOT_CHUNK
from soc.store.documents import hints

Out = TypeVar("Out")


class Chained(Protocol[Out]):
    """What runs after normalizing in the same process (detection): `evaluate` takes each chunk
    of events as soon as it is normalized, while it is hot in the CPU's caches, into the batch's
    output; `publish` sends that output once the whole batch is through."""

    def output(self) -> Out:
        """A new, empty output for one batch."""
        ...

    def evaluate(
        self,
        events: Sequence[dict[str, Any]],
        output: Out,
        encoded: Sequence[bytes | None] | None = None,
    ) -> None:
        """`encoded`: each event's JSON where it was made already (see `Message.encoded`)."""
        ...

    async def publish(self, output: Out) -> None: ...


class NormalizeStage:
    name = "normalize"
    topic = RAW

    def __init__(
        self,
        bus: Bus,
        options: NormalizeOptions,
        then: Chained[Any] | None = None,
        *,
        hints: bool = False,
    ) -> None:
        """`hints`: publish each event with what the store derives from it (its id, time and
        free text, `soc.store.documents.hints`), so that the indexer stores its bytes as they
        are. Worth it over Kafka, where the indexer would otherwise decode every event."""
        self._bus = bus
        self._options = options
        self._then = then
        self._hints = hints
        self._encode = bus.carries_bytes
        #: Chained, every event is detected here: marked so that no `detect` stage elsewhere
        #: detects it again (see `DetectionStage.handle`).
        self._marks: Headers = ((DETECTED, b""),) if then is not None else ()

    async def handle(self, batch: list[Delivered]) -> None:
        then = self._then
        output = then.output() if then is not None else None
        events: list[Message] = []
        # Chunk by chunk, each through every step, while its memory is hot (see HOT_CHUNK).
        for start in range(0, len(batch), HOT_CHUNK):
            chunk = self._normalize(batch[start : start + HOT_CHUNK])
            if then is not None:
                then.evaluate(
                    [message.value for message in chunk],
                    output,
                    [message.encoded for message in chunk],
                )
            if self._encode:
                # Detected and encoded: the events themselves can go now, hot (see
                # `Message.bytes_only`).
                chunk = [Message.bytes_only(m.key, m.as_bytes(), m.headers) for m in chunk]
            events.extend(chunk)
        if then is None:
            await self._bus.publish(EVENTS, events)
            return
        try:
            async with asyncio.TaskGroup() as both:
                both.create_task(self._bus.publish(EVENTS, events))
                both.create_task(then.publish(output))
        except ExceptionGroup as failed:
            # The batch is retried whole; the log names the cause, not the task group.
            raise failed.exceptions[0] from None

    def _normalize(self, records: Sequence[Delivered]) -> list[Message]:
        messages = []
        for record in records:
            event = normalize(record.value, self._options)
            for tag in event.get("tags", ()):
                if tag.startswith("syslog_") or tag == "unparsed":
                    metrics.RECORDS_FLAGGED.labels(self.name, tag).inc()
            host = event.get("host", {}).get("name") or record.key
            headers = hints("events", event) if self._hints else ()
            messages.append(
                Message(
                    str(host),
                    event,
                    headers + self._marks,
                    encode(event) if self._encode else None,
                )
            )
        return messages
