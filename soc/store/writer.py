"""Stages that index what flows on the bus into the store: events and alerts."""

from __future__ import annotations

import logging
import time

from soc import metrics
from soc.bus.base import ALERTS, EVENTS, Delivered
from soc.store.base import Kind, Store, WriteResult
from soc.store.documents import encoded

log = logging.getLogger(__name__)


class StoreWriter:
    """Writes every record of a topic to the store by id. A document the store refuses is not
    retried forever: it is logged with its reason and counted, and the batch moves on; a store
    that is down raises, so the batch is retried and nothing is committed meanwhile."""

    def __init__(self, store: Store, kind: Kind) -> None:
        self._store = store
        self.kind: Kind = kind
        self.topic = EVENTS if kind == "events" else ALERTS
        self.name = f"index-{kind}"

    async def handle(self, batch: list[Delivered]) -> None:
        started = time.perf_counter()
        result = await self._write(batch)
        metrics.STORE_WRITE_SECONDS.labels(self.kind).observe(time.perf_counter() - started)
        stored = metrics.EVENTS_STORED if self.kind == "events" else metrics.ALERTS_STORED
        stored.inc(result.written)
        metrics.STORE_DUPLICATES.labels(self.kind).inc(result.duplicates)
        for ident, reason in result.errors:
            metrics.STORE_ERRORS.labels(self.kind).inc()
            metrics.DROPPED.labels(self.name, "store_refused").inc()
            log.error("store refused document kind=%s id=%s reason=%s", self.kind, ident, reason)

    async def _write(self, batch: list[Delivered]) -> WriteResult:
        """Records published with their hints go to a store that can take them as bytes
        (Elasticsearch) as they are; anything else is decoded and written as documents."""
        write_encoded = getattr(self._store, "write_encoded", None)
        if write_encoded is not None:
            records = [encoded(record.raw, record.headers) for record in batch]
            if all(record is not None for record in records):
                return await write_encoded(self.kind, records)  # type: ignore[no-any-return]
        return await self._store.write(self.kind, [record.value for record in batch])
