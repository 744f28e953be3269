"""The normalizing stage: `soc.raw` in, `soc.events` out, one event per record, always."""

from __future__ import annotations

from soc import metrics
from soc.bus.base import EVENTS, RAW, Bus, Delivered, Message
from soc.normalize import NormalizeOptions, normalize


class NormalizeStage:
    name = "normalize"
    topic = RAW

    def __init__(self, bus: Bus, options: NormalizeOptions) -> None:
        self._bus = bus
        self._options = options

    async def handle(self, batch: list[Delivered]) -> None:
        events = []
        for record in batch:
            event = normalize(record.value, self._options)
            for tag in event.get("tags", ()):
                if tag.startswith("syslog_") or tag == "unparsed":
                    metrics.RECORDS_FLAGGED.labels(self.name, tag).inc()
            host = event.get("host", {}).get("name") or record.key
            events.append(Message(str(host), event))
        await self._bus.publish(EVENTS, events)
