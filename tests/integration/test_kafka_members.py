"""A member that cannot start leaves its group: it must not stay behind, joined in the
background, handed partitions it never polls. That is what a stage retrying to join through a
broker restart did, member after member, until the partitions of soc.alerts sat with members
nobody polled and not one alert was written."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from soc.bus import kafka as kafka_bus
from soc.bus.base import Message
from soc.bus.kafka import KafkaBus
from tests.contracts.test_bus_contract import KAFKA, _reachable


async def test_a_member_that_gives_up_joining_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not _reachable(KAFKA):
        pytest.skip(f"no Kafka broker at {KAFKA} (make services, or set SOC_TEST_KAFKA)")
    monkeypatch.setattr(kafka_bus, "_JOIN_TIMEOUT", 4.0)
    monkeypatch.setattr(kafka_bus, "_START_SLACK", 0.0)
    namespace = f"test-{uuid.uuid4().hex[:8]}-"
    buses = [KafkaBus(KAFKA, partitions=2, namespace=namespace) for _ in range(3)]
    for bus in buses:
        await bus.start()
    owner_bus, late_bus, next_bus = buses
    try:
        await owner_bus.publish("t", [Message(f"k{n}", {"n": n}) for n in range(50)])
        owner = await owner_bus.subscribe("t", "g")
        in_hand: list[int] = []
        while len(in_hand) < 50:
            in_hand += [record.value["n"] for record in await owner.poll(100, 1.0)]
        # The owner is handling a batch: the rebalance a new member starts waits for it (up to
        # half a minute), and the new member gives up joining first. Left behind, it would be
        # handed one of the two partitions once the owner is done, and never poll it.
        with pytest.raises(TimeoutError):
            await late_bus.subscribe("t", "g")
        await owner.commit()
        await owner.close()  # the owner leaves: its partitions must go to a member that polls
        member = await next_bus.subscribe("t", "g")
        await owner_bus.publish("t", [Message(f"k{n}", {"n": n}) for n in range(50, 70)])
        # (The batch in hand may come again: the owner's commit raced the rebalance. What must
        # come is every new record, from both partitions: no one else holds either.)
        seen: set[int] = set()
        for _ in range(40):
            seen |= {record.value["n"] for record in await member.poll(100, 0.25)}
            if seen >= set(range(50, 70)):
                break
        assert set(range(50, 70)) - seen == set()
        assert len(member_partitions(member)) == 2
    finally:
        for bus in buses:
            await asyncio.wait_for(bus.close(), 60)


def member_partitions(member: object) -> frozenset[object]:
    assignment: frozenset[object] = member._consumer.assignment()  # type: ignore[attr-defined]
    return assignment
