"""The normalizing stage: `soc.raw` in, `soc.events` out, one event per record, always.

Where detection runs in the same process, it is chained here: each batch's events are detected
as they are normalized rather than read back from `soc.events` and decoded again (a third of
the detecting process's time went to that round trip). `soc.events` still carries every event,
for the event indexer. The raw records are committed only after the events, the alerts and the
matches are all acknowledged, so a crash replays the batch through both (ids absorb it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from soc import metrics
from soc.bus.base import DETECTED, EVENTS, RAW, Bus, Delivered, Headers, Message
from soc.normalize import NormalizeOptions, normalize
from soc.store.documents import hints

#: What is chained after normalizing: a batch of events in, done when its output is published.
Chained = Callable[[Sequence[dict[str, Any]]], Coroutine[Any, Any, None]]


class NormalizeStage:
    name = "normalize"
    topic = RAW

    def __init__(
        self,
        bus: Bus,
        options: NormalizeOptions,
        then: Chained | None = None,
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
        #: Chained, every event is detected here: marked so that no `detect` stage elsewhere
        #: detects it again (see `DetectionStage.handle`).
        self._marks: Headers = ((DETECTED, b""),) if then is not None else ()

    async def handle(self, batch: list[Delivered]) -> None:
        events = []
        for record in batch:
            event = normalize(record.value, self._options)
            for tag in event.get("tags", ()):
                if tag.startswith("syslog_") or tag == "unparsed":
                    metrics.RECORDS_FLAGGED.labels(self.name, tag).inc()
            host = event.get("host", {}).get("name") or record.key
            headers = hints("events", event) if self._hints else ()
            events.append(Message(str(host), event, headers + self._marks))
        if self._then is None:
            await self._bus.publish(EVENTS, events)
            return
        try:
            async with asyncio.TaskGroup() as both:
                both.create_task(self._bus.publish(EVENTS, events))
                both.create_task(self._then([message.value for message in events]))
        except ExceptionGroup as failed:
            # The batch is retried whole; the log names the cause, not the task group.
            raise failed.exceptions[0] from None
