"""The notifier: a stage that turns `soc.incidents` records into outbox messages, a clock that
closes notification windows into digests, and a dispatcher that sends what is due.

Order is what makes it lossless: the stage writes the messages (one durable transaction per
batch) before `run_stage` commits the bus offsets; the dispatcher marks a message sent only after
the provider accepted it; a failure schedules a retry (full-jitter exponential backoff) or parks
the message where the API shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from soc import metrics
from soc.bus.base import INCIDENTS, Delivered
from soc.config import Config, NotifyConfig
from soc.notify.channels import Channel, make_channel
from soc.notify.models import CHANGES, DeliveryError, Notice, Target
from soc.notify.outbox import Message, Outbox, Outcome
from soc.notify.routing import Router, validate_notify
from soc.notify.templates import notice_from_incident
from soc.notify.throttle import admit, close_due_windows
from soc.timeutil import parse_ts

log = logging.getLogger(__name__)

#: Delivered messages are kept this long in the delivery log.
KEEP_SENT_SECONDS = 30 * 86_400


def outbox_path(config: Config) -> Path:
    if config.notify.outbox:
        return Path(config.notify.outbox)
    return config.data_dir / "notify" / "outbox.db"


@dataclass(frozen=True, slots=True)
class Change:
    """One valid `soc.incidents` record, taken apart."""

    change: str
    incident: dict[str, Any]
    at: float


def parse_record(value: dict[str, Any]) -> Change:
    """Raises ValueError naming what is wrong with the record."""
    change = value.get("change")
    if change not in CHANGES:
        raise ValueError(f"change: expected one of {', '.join(CHANGES)}, got {change!r}")
    incident = value.get("incident")
    if not isinstance(incident, dict) or not isinstance(incident.get("incident"), dict):
        raise ValueError("incident: expected an incident document with an 'incident' object")
    if not incident["incident"].get("id"):
        raise ValueError("incident.incident.id: missing")
    at = value.get("at")
    moment = parse_ts(at).timestamp() if isinstance(at, str) else time.time()
    return Change(str(change), incident, moment)


class NotifyStage:
    """Consumes `soc.incidents`; every message it decides on is in the outbox when it returns."""

    name = "notify"
    topic = INCIDENTS

    def __init__(
        self,
        outbox: Outbox,
        config: NotifyConfig,
        on_enqueued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.router = Router(config.routes)
        self.zone = ZoneInfo(config.timezone)
        self.on_enqueued = on_enqueued
        self.clock = clock

    async def handle(self, batch: list[Delivered]) -> None:
        plans: list[tuple[Target, Notice, Change]] = []
        local_now = datetime.now(self.zone)
        for record in batch:
            try:
                change = parse_record(record.value)
            except ValueError as exc:
                # The record is kept by the bus and its incident by the store; only this
                # notification cannot be made. Counted, and logged with where it was.
                metrics.DROPPED.labels("notify", "invalid_record").inc()
                log.warning(
                    "notify record ignored topic=%s partition=%d offset=%d reason=%s",
                    record.topic, record.partition, record.offset, exc,
                )  # fmt: skip
                continue
            for target in self.router.targets(change.incident, change.change, local_now):
                notice = notice_from_incident(
                    change.incident,
                    kind="new",
                    language=target.language,
                    console_url=self.config.console_url,
                    new_alerts=0,
                    change=change.change,
                )
                plans.append((target, notice, change))
        if not plans:
            return
        enqueued = await asyncio.to_thread(self._apply, plans)
        if enqueued:
            self.on_enqueued()

    def _apply(self, plans: list[tuple[Target, Notice, Change]]) -> int:
        now = self.clock()
        enqueued = held = 0
        with self.outbox.transaction() as tx:
            for target, notice, change in plans:
                ident = admit(
                    tx, target, notice, change.change, change.at, now, self.config.window_seconds
                )
                if ident:
                    enqueued += 1
                else:
                    held += 1
        metrics.NOTIFICATIONS_HELD.inc(held)
        return enqueued


class DigestClock:
    """Closes notification windows that are over, enqueuing one digest each."""

    def __init__(
        self,
        outbox: Outbox,
        config: NotifyConfig,
        on_enqueued: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.on_enqueued = on_enqueued
        self.clock = clock
        self.tick = min(1.0, config.window_seconds / 10)

    def close_due(self) -> int:
        count = 0
        while True:
            with self.outbox.transaction() as tx:
                ids = close_due_windows(tx, self.clock(), self.config.window_seconds, limit=500)
            count += len(ids)
            if len(ids) < 500:
                return count

    async def run(self, stop: asyncio.Event) -> None:
        last_purge = 0.0
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self.close_due):
                    self.on_enqueued()
                if self.clock() - last_purge > 3600:
                    last_purge = self.clock()
                    await asyncio.to_thread(self.outbox.purge_sent, last_purge - KEEP_SENT_SECONDS)
            except Exception:
                log.exception("digest clock failed, retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick)


class Dispatcher:
    """Sends due messages, at most `concurrency` at a time, and records each outcome."""

    def __init__(
        self,
        outbox: Outbox,
        channels: dict[str, Channel],
        config: NotifyConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.channels = channels
        self.config = config
        self.clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New messages are in the outbox: look now rather than at the next tick."""
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^attempts)], so a
        provider coming back is not hit by every queued message at the same instant."""
        ceiling = min(self.config.backoff_max_ms, self.config.backoff_ms * 2 ** min(attempts, 30))
        return random.uniform(0, ceiling) / 1000.0

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`; then finish the sends in flight. An outbox error (disk full, a locked
        file) is logged and retried: what is in the outbox stays there meanwhile."""
        while True:
            try:
                await self._loop(stop)
                return
            except Exception:
                log.exception("notify dispatcher failed, restarting in 1 s")
                await asyncio.sleep(1.0)

    async def _loop(self, stop: asyncio.Event) -> None:
        # A message is `sending` (holds a slot), then `finished` (its outcome waits to be
        # written), then `writing` (in the one write under way). Outcomes are written in
        # batches while the next sends go on, so the disk's sync time does not cap the rate.
        # But no further than `concurrency` outcomes ahead of the disk: a send the provider
        # accepted and whose outcome was not written yet is sent again after a crash, so at
        # most twice `concurrency` messages can repeat, however slow the disk (before, a
        # stalled write let every send meanwhile join that window).
        sending: dict[str, asyncio.Task[Outcome]] = {}
        finished: dict[str, Outcome] = {}
        writing: asyncio.Task[None] | None = None
        writing_ids: set[str] = set()
        last_depth = 0.0
        while True:
            ahead = len(finished) + len(writing_ids) - self.config.concurrency
            free = self.config.concurrency - len(sending) - max(0, ahead)
            if free > 0 and not stop.is_set():
                self._wake.clear()
                busy = {*sending, *finished, *writing_ids}
                due = await asyncio.to_thread(self.outbox.due, self.clock(), free, busy)
                for message in due:
                    sending[message.id] = asyncio.create_task(self._attempt(message))
                free -= len(due)
            if stop.is_set() and not sending and not finished and writing is None:
                return
            if self.clock() - last_depth > 1.0:
                last_depth = self.clock()
                metrics.NOTIFY_OUTBOX_DEPTH.set(await asyncio.to_thread(self.outbox.depth))
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            waits: list[asyncio.Future[Any]] = [*sending.values(), *waiters]
            if writing is not None:
                waits.append(writing)
            # Full: a finished send frees a slot. Otherwise: sleep until the next retry is due
            # or the stage wakes us with new messages.
            timeout = 1.0 if free <= 0 else await self._idle_timeout()
            await asyncio.wait(waits, timeout=timeout, return_when="FIRST_COMPLETED")
            for waiter in waiters:
                waiter.cancel()
            for ident in [ident for ident, task in sending.items() if task.done()]:
                finished[ident] = sending.pop(ident).result()
            if writing is not None and writing.done():
                writing.result()  # a failed write raises: run() restarts the loop
                writing, writing_ids = None, set()
            if writing is None and finished:
                writing_ids = set(finished)
                writing = asyncio.create_task(
                    asyncio.to_thread(self.outbox.record, list(finished.values()))
                )
                finished = {}

    async def _idle_timeout(self) -> float:
        now = self.clock()
        next_due = await asyncio.to_thread(self.outbox.next_due, now)
        return 1.0 if next_due is None else max(0.01, min(1.0, next_due - now))

    async def _attempt(self, message: Message) -> Outcome:
        channel = self.channels.get(message.channel)
        try:
            if channel is None:
                raise DeliveryError("unknown_channel", f"no channel named {message.channel!r}")
            accepted = await channel.send(message.recipient, message.notice, message.id)
        except DeliveryError as exc:
            return self._failed(message, exc)
        except Exception as exc:
            log.exception("notify send crashed id=%s channel=%s", message.id, message.channel)
            return self._failed(message, DeliveryError("internal", repr(exc)))
        now = self.clock()
        metrics.NOTIFICATIONS_SENT.labels(message.channel).inc()
        metrics.NOTIFY_DELAY_SECONDS.observe(max(0.0, now - message.origin))
        log.info(
            "notification sent id=%s channel=%s incident=%s kind=%s attempts=%d",
            message.id, message.channel, message.incident_id, message.kind, message.attempts + 1,
        )  # fmt: skip
        return Outcome(message.id, now, accepted.provider_id, accepted.answer)

    def _failed(self, message: Message, exc: DeliveryError) -> Outcome:
        now = self.clock()
        metrics.NOTIFICATIONS_FAILED.labels(message.channel, exc.reason).inc()
        attempts = message.attempts + 1
        too_old = now - message.age_from >= self.config.max_age_seconds
        if not exc.retryable or attempts >= self.config.max_attempts or too_old:
            metrics.NOTIFICATIONS_PARKED.inc()
            log.error(
                "notification parked id=%s channel=%s incident=%s attempts=%d error=%s",
                message.id, message.channel, message.incident_id, attempts, exc,
            )  # fmt: skip
            return Outcome(message.id, now, error=str(exc), retry_at=None)
        delay = max(exc.retry_after or 0.0, self.backoff(message.attempts))
        log.warning(
            "notification failed, retrying id=%s channel=%s attempts=%d delay_s=%.2f error=%s",
            message.id, message.channel, attempts, delay, exc,
        )  # fmt: skip
        return Outcome(message.id, now, error=str(exc), retry_at=now + delay)


class Notifier:
    """Everything `soc notifier` (or `soc run`) needs: the stage for `run_stage`, and the
    dispatcher and digest clock as tasks of their own."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        validate_notify(config.notify)
        zone = ZoneInfo(config.notify.timezone)
        self.outbox = Outbox(outbox_path(config))
        self.channels: dict[str, Channel] = {
            channel.name: make_channel(channel, self.outbox, zone)
            for channel in config.notify.channels
        }
        self.dispatcher = Dispatcher(self.outbox, self.channels, config.notify, clock)
        self.stage = NotifyStage(self.outbox, config.notify, self.dispatcher.wake, clock)
        self.clock = DigestClock(self.outbox, config.notify, self.dispatcher.wake, clock)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.dispatcher.run(self._stop), name="notify-dispatch"),
            asyncio.create_task(self.clock.run(self._stop), name="notify-digests"),
        ]

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)

    async def stop(self) -> None:
        """Finish the sends in flight (what is not yet sent stays in the outbox for next time)."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for channel in self.channels.values():
            await channel.close()
        self.outbox.close()
