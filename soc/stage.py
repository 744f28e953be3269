"""Running a stage: consume a topic as a group, handle each batch, commit only after the handler
has finished (its output published or stored). That order is what makes delivery at-least-once:
a crash between handling and committing replays the batch, and deterministic ids absorb it."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from soc import metrics
from soc.bus.base import Bus, Consumer, Delivered

log = logging.getLogger(__name__)

#: Records a stage takes through all its steps before the next ones, within a batch: decoded,
#: normalized, detected and encoded again while they are still in the CPU's caches. A whole
#: batch (thousands of records) at each step before the next cost 20% more on the full SigmaHQ
#: set: each step walked memory the previous one had long left, and the collector's middle
#: generation held more of it (normalizing and detecting 2,000-record batches, 41-45 us an event
#: whole, 33-36 us in chunks of 64-256).
HOT_CHUNK = 256


class Stage(Protocol):
    name: str
    topic: str

    async def handle(self, batch: list[Delivered]) -> None:
        """Process a batch; raise to have it retried (nothing is committed)."""
        ...


async def run_stage(
    bus: Bus,
    stage: Stage,
    stop: asyncio.Event,
    batch_size: int,
    poll_wait: float = 0.2,
    *,
    drain: bool = True,
    linger: float = 0.0,
    joined: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set. With `drain`, go on until a poll comes back empty, i.e. the input
    is drained (the caller stops upstream stages first); without, stop after the batch in hand
    is handled and committed (upstream runs elsewhere and never stops).

    `linger` (seconds): how long a batch smaller than `batch_size` waits for more records before
    it is handled (see `_gather`). `joined` is set once the stage is a member of its group,
    consuming."""
    while True:
        try:
            consumer = await bus.subscribe(stage.topic, stage.name)
            break
        except Exception:
            # The bus is not reachable yet (a broker still starting): wait for it rather than
            # take the whole process down.
            if stop.is_set():
                return
            metrics.STAGE_ERRORS.labels(stage.name).inc()
            log.exception("stage cannot join its group yet, retrying stage=%s", stage.name)
            await asyncio.sleep(1.0)
    if joined is not None:
        joined.set()
    retry_delay = 0.1
    try:
        while True:
            try:
                batch = await consumer.poll(batch_size, poll_wait)
                if batch and linger > 0 and len(batch) < batch_size and not stop.is_set():
                    batch = await _gather(consumer, batch, batch_size, linger)
            except Exception:
                # The bus is unwell: nothing was taken, so nothing is lost; try again shortly.
                metrics.STAGE_ERRORS.labels(stage.name).inc()
                log.exception("stage poll failed, retrying stage=%s", stage.name)
                await asyncio.sleep(1.0)
                continue
            if not batch:
                if stop.is_set():
                    return
                continue
            while True:
                try:
                    await stage.handle(batch)
                    break
                except Exception:
                    if stop.is_set() and not drain:
                        return  # uncommitted: the next member of the group takes it over
                    metrics.STAGE_ERRORS.labels(stage.name).inc()
                    log.exception(
                        "stage batch failed, retrying stage=%s records=%d delay_s=%.1f",
                        stage.name,
                        len(batch),
                        retry_delay,
                    )
                    await asyncio.sleep(retry_delay)
                    retry_delay = min(retry_delay * 2, 10.0)
            retry_delay = 0.1
            held = getattr(stage, "held_positions", None)
            positions = held() if held is not None else None
            if positions is None:
                await consumer.commit()
            else:
                await consumer.commit_upto(positions)
            metrics.STAGE_RECORDS.labels(stage.name).inc(len(batch))
            if stop.is_set() and not drain:
                return
    finally:
        await consumer.close()


async def _gather(
    consumer: Consumer, batch: list[Delivered], batch_size: int, linger: float
) -> list[Delivered]:
    """More records for a batch until it is full or `linger` has passed since its first.

    Part of a stage's cost is per batch (a poll, a commit, a bulk write, the incident lookups):
    at 3.2k events/s through Kafka and Elasticsearch, 100-250 ms of linger took about a tenth off
    the CPU an event costs, and added about as much delay to every stage. Records already polled
    are kept whatever happens next: a poll that fails returns what was gathered, and the
    caller's commit covers exactly what `poll` returned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + linger
    while len(batch) < batch_size:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            more = await consumer.poll(batch_size - len(batch), remaining)
        except Exception:
            log.warning("poll while gathering a batch failed; handling what was gathered")
            break
        if not more:
            break
        batch += more
    return batch
