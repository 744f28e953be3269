"""A member that is handling a batch when another member joins its group: the rebalance waits
for that batch to be committed, so the partitions' next owner does not handle it again."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from soc.bus.base import Message
from soc.bus.kafka import KafkaBus
from tests.contracts.test_bus_contract import KAFKA, _reachable


async def test_a_batch_in_hand_is_committed_before_its_partitions_move() -> None:
    if not _reachable(KAFKA):
        pytest.skip(f"no Kafka broker at {KAFKA} (make services, or set SOC_TEST_KAFKA)")
    namespace = f"test-{uuid.uuid4().hex[:8]}-"
    first_bus = KafkaBus(KAFKA, partitions=4, namespace=namespace)
    second_bus = KafkaBus(KAFKA, partitions=4, namespace=namespace)
    await first_bus.start()
    await second_bus.start()
    try:
        await first_bus.publish("t", [Message(f"key-{n}", {"n": n}) for n in range(400)])
        first = await first_bus.subscribe("t", "g")
        batch: list[int] = []
        while len(batch) < 400:
            batch += [r.value["n"] for r in await first.poll(1000, 2.0)]
        # While the first member "handles" its batch, a second member joins the group.
        joining = asyncio.create_task(second_bus.subscribe("t", "g"))
        await asyncio.sleep(3.0)
        assert not joining.done(), "the rebalance should wait for the batch in hand"
        await first.commit()
        second = await joining
        # The first member keeps polling, as a stage does, so that it takes part in the
        # rebalance and gets its new share.
        seen_again: list[int] = []
        for _ in range(10):
            seen_again += [r.value["n"] for r in await second.poll(1000, 0.5)]
            seen_again += [r.value["n"] for r in await first.poll(1000, 0.5)]
        assert sorted(batch) == list(range(400))
        assert seen_again == [], f"{len(seen_again)} records handled twice"
        await first_bus.publish("t", [Message(f"key-{n}", {"n": n}) for n in range(400, 440)])
        later: list[int] = []
        for _ in range(20):
            later += [r.value["n"] for r in await second.poll(1000, 0.3)]
            later += [r.value["n"] for r in await first.poll(1000, 0.3)]
            if len(later) >= 40:
                break
        assert sorted(later) == list(range(400, 440))
    finally:
        await first_bus.close()
        await second_bus.close()
