"""Correlation windows survive a restart of the correlator on Kafka: it commits only up to the
oldest match its open windows may still need, and the process that takes over reads those
matches again (DESIGN.md: state "rebuilt by replaying soc.matches from the last committed
offset")."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from soc.bus.base import ALERTS, MATCHES, Delivered
from soc.bus.kafka import KafkaBus
from soc.detect.rules import load_rules
from soc.detect.stage import CorrelationStage, Detection
from soc.stage import run_stage
from tests.contracts.test_bus_contract import KAFKA, _reachable
from tests.correlation_matches import BRUTE_FORCE, failure

ROOT = Path(__file__).resolve().parents[2]


async def correlate_once(bus: KafkaBus, replay: bool, wait_for: int) -> None:
    """One correlator process: reads what there is, then stops (as if killed after a commit)."""
    detection = Detection.from_rules(load_rules([ROOT / "rules"]))
    stage = CorrelationStage(bus, detection, replay=replay)
    stop = asyncio.Event()
    task = asyncio.create_task(run_stage(bus, stage, stop, 100, drain=False))
    for _ in range(100):
        await asyncio.sleep(0.2)
        if (stage._next and sum(stage._next.values()) >= wait_for) or (
            not replay and detection.correlations.stats.groups
        ):
            break
    await asyncio.sleep(0.5)
    stop.set()
    await task


async def brute_force_alerts(bus: KafkaBus) -> list[Delivered]:
    consumer = await bus.subscribe(ALERTS, f"reader-{uuid.uuid4().hex[:6]}")
    found: list[Delivered] = []
    for _ in range(10):
        found += await consumer.poll(1000, 0.5)
    await consumer.close()
    return [r for r in found if r.value["rule"]["id"] == BRUTE_FORCE]


@pytest.mark.parametrize("replay", [True, False], ids=["replayed", "committed-away"])
async def test_a_restarted_correlator_rebuilds_its_open_windows(replay: bool) -> None:
    if not _reachable(KAFKA):
        pytest.skip(f"no Kafka broker at {KAFKA} (make services, or set SOC_TEST_KAFKA)")
    bus = KafkaBus(KAFKA, partitions=2, namespace=f"test-{uuid.uuid4().hex[:8]}-")
    await bus.start()
    try:
        await bus.publish(MATCHES, [failure(n) for n in range(6)])
        await correlate_once(bus, replay, wait_for=6)  # six failures: the window is open
        await bus.publish(MATCHES, [failure(n) for n in range(6, 10)])
        await correlate_once(bus, replay, wait_for=10)  # a new process, four more failures
        alerts = await brute_force_alerts(bus)
        if replay:
            assert len(alerts) == 1
            assert len(alerts[0].value["correlation"]["event_ids"]) == 10
        else:
            # What the replay is for: committing everything read forgets the first six.
            assert alerts == []
    finally:
        await bus.close()
