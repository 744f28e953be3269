"""`pipeline.linger_ms`: a stage lets a small batch wait for more records, up to a bound."""

from __future__ import annotations

import asyncio

import pytest

from soc.bus.base import EVENTS, Delivered, Message
from soc.bus.memory import MemoryBus
from soc.config import ConfigError, load_config
from soc.stage import run_stage


class Recording:
    name = "recording"
    topic = EVENTS

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.handled = asyncio.Event()

    async def handle(self, batch: list[Delivered]) -> None:
        self.batches.append([record.value["n"] for record in batch])
        self.handled.set()


def messages(numbers: range) -> list[Message]:
    return [Message("host", {"n": n}) for n in numbers]


async def first_batches(linger: float, batch_size: int, later: range | None) -> list[list[int]]:
    """The batches a stage handles when 3 records wait at its start and `later` follow 0.1 s
    after its first poll; every record is handled before this returns."""
    bus = MemoryBus()
    await bus.start()
    await bus.publish(EVENTS, messages(range(3)))
    stage = Recording()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_stage(bus, stage, stop, batch_size, poll_wait=0.05, drain=False, linger=linger)
    )
    if later is not None:
        await asyncio.sleep(0.1)
        await bus.publish(EVENTS, messages(later))
    expected = 3 + (len(later) if later is not None else 0)
    async with asyncio.timeout(10):
        while sum(map(len, stage.batches)) < expected:
            stage.handled.clear()
            await stage.handled.wait()
    stop.set()
    await task
    await bus.close()
    return stage.batches


async def test_without_linger_a_batch_is_what_the_first_poll_found() -> None:
    batches = await first_batches(linger=0.0, batch_size=100, later=range(3, 6))
    assert batches == [[0, 1, 2], [3, 4, 5]]


async def test_a_small_batch_waits_for_what_comes_within_the_linger() -> None:
    batches = await first_batches(linger=1.0, batch_size=100, later=range(3, 6))
    assert batches == [[0, 1, 2, 3, 4, 5]]


async def test_a_full_batch_is_handled_without_waiting_out_the_linger() -> None:
    # A linger of a minute: the records are handled (within the 10 s the helper allows) only
    # because the batch filled up.
    batches = await first_batches(linger=60.0, batch_size=5, later=range(3, 10))
    assert batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


async def test_the_linger_ends_when_nothing_more_comes() -> None:
    assert await first_batches(linger=0.3, batch_size=100, later=None) == [[0, 1, 2]]


@pytest.mark.parametrize("value", ["-1", "5001"])
def test_a_linger_out_of_range_is_refused_by_name(value: str) -> None:
    with pytest.raises(ConfigError, match=r"pipeline\.linger_ms"):
        load_config(None, environ={"SOC_PIPELINE__LINGER_MS": value})
