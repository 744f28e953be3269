"""Running the notifier in the test's own process: configuration over the local fakes, the stage
on an in-process bus, and a clock the test can move forward."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soc.bus.base import INCIDENTS, Message
from soc.bus.memory import MemoryBus
from soc.config import Config, load_config
from soc.notify.service import Notifier
from soc.stage import run_stage


def make_config(
    tmp_path: Path, channels: list[dict[str, Any]], routes: list[dict[str, Any]], **notify: Any
) -> Config:
    empty = tmp_path / "soc.yaml"
    empty.write_text("{}\n")
    settings: dict[str, Any] = {
        "console_url": "https://soc.stttt.example.gov.vn",
        "window_seconds": 600,
        "backoff_ms": 50,
        "backoff_max_ms": 500,
        "channels": channels,
        "routes": routes,
    }
    settings.update(notify)
    return load_config(
        file=empty, environ={}, overrides={"data_dir": str(tmp_path / "data"), "notify": settings}
    )


@dataclass
class Clock:
    """Wall time plus a shift the test moves forward, to close windows without waiting."""

    shift: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


@dataclass
class Running:
    notifier: Notifier
    bus: MemoryBus
    clock: Clock
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def publish(self, records: list[dict[str, Any]], batch: int = 1000) -> None:
        for i in range(0, len(records), batch):
            messages = [Message(r["incident"]["incident"]["id"], r) for r in records[i : i + batch]]
            await self.bus.publish(INCIDENTS, messages)

    async def drained(self, within: float = 60) -> None:
        await wait_until(lambda: self.bus.backlog(INCIDENTS) == 0, within)

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task
        await self.notifier.stop()


async def start(config: Config, clock: Clock | None = None) -> Running:
    clock = clock or Clock()
    notifier = Notifier(config, clock=clock)
    bus = MemoryBus(capacity=50_000)
    await bus.start()
    running = Running(notifier, bus, clock)
    notifier.start()
    running.task = asyncio.create_task(
        run_stage(bus, notifier.stage, running.stop, config.pipeline.batch_size)
    )
    return running


async def wait_until(condition: Callable[[], bool], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.05)
