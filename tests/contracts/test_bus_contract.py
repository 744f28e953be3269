"""The bus contract. Every backend runs these same tests (add it to BACKENDS)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from soc import metrics
from soc.bus.base import Bus, Delivered, Message, UndecodableRecord
from soc.bus.memory import MemoryBus

BusFactory = Callable[[], Awaitable[Bus]]


KAFKA = os.environ.get("SOC_TEST_KAFKA", "127.0.0.1:9092")


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


async def _memory() -> Bus:
    return MemoryBus(partitions=3, capacity=10_000)


async def _kafka() -> Bus:
    from soc.bus.kafka import KafkaBus

    # A namespace per test: the broker outlives test runs, and groups named "g" must not
    # resume where an earlier run committed.
    return KafkaBus(KAFKA, partitions=3, namespace=f"test-{uuid.uuid4().hex[:8]}-")


BACKENDS: dict[str, BusFactory] = {"memory": _memory, "kafka": _kafka}


@pytest.fixture(params=sorted(BACKENDS))
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "kafka" and not _reachable(KAFKA):
        pytest.skip(f"no Kafka broker at {KAFKA} (make services, or set SOC_TEST_KAFKA)")
    instance = await BACKENDS[request.param]()
    await instance.start()
    yield instance
    await instance.close()


@pytest.fixture
async def kafka_bus() -> AsyncIterator[Bus]:
    """For what only the Kafka bus does."""
    if not _reachable(KAFKA):
        pytest.skip(f"no Kafka broker at {KAFKA} (make services, or set SOC_TEST_KAFKA)")
    instance = await _kafka()
    await instance.start()
    yield instance
    await instance.close()


def _messages(count: int, key: str = "k", start: int = 0) -> list[Message]:
    return [Message(key, {"n": start + i}) for i in range(count)]


async def _drain(consumer, want: int, max_wait: float = 5.0) -> list[int]:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    deadline = asyncio.get_running_loop().time() + max_wait
    while len(seen) < want and asyncio.get_running_loop().time() < deadline:
        seen += [d.value["n"] for d in await consumer.poll(1000, 0.2)]
    return seen


async def test_a_group_receives_every_published_record_in_key_order(bus: Bus) -> None:
    consumer = await bus.subscribe("t.order", "g")
    await bus.publish("t.order", _messages(500))
    assert await _drain(consumer, 500) == list(range(500))


async def test_poll_waits_at_most_the_given_time_and_returns_empty(bus: Bus) -> None:
    consumer = await bus.subscribe("t.empty", "g")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await consumer.poll(10, 0.2) == []
    assert loop.time() - started < 2.0


async def test_uncommitted_records_are_delivered_again_to_the_next_member(bus: Bus) -> None:
    await bus.publish("t.replay", _messages(10))
    first = await bus.subscribe("t.replay", "g")
    assert len(await _drain(first, 10)) == 10
    await first.close()  # crashed before committing
    second = await bus.subscribe("t.replay", "g")
    assert sorted(await _drain(second, 10)) == list(range(10))


async def test_committed_records_are_not_delivered_again(bus: Bus) -> None:
    await bus.publish("t.commit", _messages(10))
    first = await bus.subscribe("t.commit", "g")
    assert len(await _drain(first, 10)) == 10
    await first.commit()
    await first.close()
    await bus.publish("t.commit", _messages(5, start=10))
    second = await bus.subscribe("t.commit", "g")
    assert sorted(await _drain(second, 5)) == list(range(10, 15))


async def test_groups_are_independent(bus: Bus) -> None:
    await bus.publish("t.groups", _messages(20))
    a = await bus.subscribe("t.groups", "a")
    b = await bus.subscribe("t.groups", "b")
    assert len(await _drain(a, 20)) == 20
    await a.commit()
    assert len(await _drain(b, 20)) == 20


async def test_lag_counts_records_not_yet_committed(bus: Bus) -> None:
    consumer = await bus.subscribe("t.lag", "g")
    await bus.publish("t.lag", _messages(7, key="x") + _messages(5, key="y", start=7))
    assert await consumer.lag() == 12
    await _drain(consumer, 12)
    assert await consumer.lag() == 12
    await consumer.commit()
    assert await consumer.lag() == 0


async def test_members_of_one_group_share_the_records(bus: Bus) -> None:
    """Two members split the partitions; together they see every record. A record may reach
    both only while partitions move between them uncommitted (at-least-once), so each member
    commits what it polls, as stages do."""
    one = await bus.subscribe("t.share", "g")
    two = await bus.subscribe("t.share", "g")
    messages = [m for k in range(30) for m in _messages(10, key=f"host{k}", start=k * 10)]
    await bus.publish("t.share", messages)

    async def work(consumer) -> list[int]:  # type: ignore[no-untyped-def]
        seen: list[int] = []
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.poll(50, 0.2)
            seen += [d.value["n"] for d in batch]
            await consumer.commit()
            if not batch and len(seen) > 0 and await consumer.lag() == 0:
                break
        return seen

    seen_one, seen_two = await asyncio.gather(work(one), work(two))
    assert set(seen_one) | set(seen_two) == set(range(300))
    assert seen_one and seen_two, "both members must own partitions"


async def test_max_records_bounds_a_poll(bus: Bus) -> None:
    consumer = await bus.subscribe("t.max", "g")
    await bus.publish("t.max", _messages(50))
    assert len(await consumer.poll(7, 1.0)) <= 7


async def test_values_survive_the_round_trip_unchanged(bus: Bus) -> None:
    consumer = await bus.subscribe("t.values", "g")
    value = {
        "s": "Đăng nhập thất bại",
        "n": 1,
        "f": 1.5,
        "b": True,
        "z": None,
        "l": [1, {"x": "y"}],
    }
    await bus.publish("t.values", [Message("k", value)])
    (delivered,) = await consumer.poll(10, 2.0)
    assert delivered.value == value
    assert delivered.key == "k"
    assert delivered.topic == "t.values"


async def test_memory_bus_publishers_wait_when_the_topic_is_full() -> None:
    bus = MemoryBus(partitions=1, capacity=10)
    consumer = await bus.subscribe("t.full", "g")
    await bus.publish("t.full", _messages(10))
    blocked = asyncio.create_task(bus.publish("t.full", _messages(5, start=10)))
    await asyncio.sleep(0.1)
    assert not blocked.done()
    assert len(await _drain(consumer, 10)) == 10
    await consumer.commit()
    await asyncio.wait_for(blocked, 2.0)
    assert sorted(await _drain(consumer, 5)) == list(range(10, 15))


async def test_commit_upto_keeps_the_rest_for_the_next_member(bus: Bus) -> None:
    consumer = await bus.subscribe("t.upto", "g")
    await bus.publish("t.upto", _messages(6, key="one-key"))
    records: list[Any] = []
    deadline = asyncio.get_running_loop().time() + 5
    while len(records) < 6 and asyncio.get_running_loop().time() < deadline:
        records += await consumer.poll(100, 0.2)
    assert [r.value["n"] for r in records] == list(range(6))
    third = records[2]
    # Up to the third record: the first two are done, the third and later still needed.
    await consumer.commit_upto({third.partition: third.offset})
    await consumer.close()
    successor = await bus.subscribe("t.upto", "g")
    assert await _drain(successor, 4) == [2, 3, 4, 5]
    # Never backwards: committing an older position changes nothing.
    await successor.commit_upto({third.partition: third.offset - 2})
    await successor.close()
    last = await bus.subscribe("t.upto", "g")
    assert await _drain(last, 4) == [2, 3, 4, 5]


async def test_a_key_keeps_its_partition_and_order_across_publishes(bus: Bus) -> None:
    """Many keys over several publishes (the Kafka bus remembers where each key goes after the
    first): every record of a key is in one partition, in the order published, and on Kafka
    that partition is the one the client's own partitioner gives the key, as `send` would."""
    consumer = await bus.subscribe("t.keys", "g")
    keys = [f"host-{n}" for n in range(40)]
    for round_ in range(3):
        await bus.publish(
            "t.keys", [Message(key, {"k": key, "r": round_}) for key in keys for _ in range(2)]
        )
    seen: list[Any] = []
    deadline = asyncio.get_running_loop().time() + 10
    while len(seen) < 240 and asyncio.get_running_loop().time() < deadline:
        seen += await consumer.poll(1000, 0.2)
    assert len(seen) == 240
    partitions: dict[str, set[int]] = {}
    rounds: dict[str, list[int]] = {}
    for record in seen:
        partitions.setdefault(record.value["k"], set()).add(record.partition)
        rounds.setdefault(record.value["k"], []).append(record.value["r"])
    assert all(len(found) == 1 for found in partitions.values()), partitions
    assert all(found == [0, 0, 1, 1, 2, 2] for found in rounds.values()), rounds
    assert len({p for found in partitions.values() for p in found}) > 1  # keys do spread
    if type(bus).__name__ == "KafkaBus":
        from aiokafka.partitioner import DefaultPartitioner

        every = [0, 1, 2]
        for key, (partition,) in partitions.items():
            assert partition == DefaultPartitioner()(key.encode(), every, every)


async def test_kafka_publish_recovers_when_the_producer_state_is_lost(kafka_bus: Bus) -> None:
    """After a broker restart the idempotent producer can answer OutOfOrderSequenceNumber for
    ever: the bus starts a new producer and the records still arrive."""
    from aiokafka.errors import OutOfOrderSequenceNumber

    bus = kafka_bus
    consumer = await bus.subscribe("t.lost", "g")
    original = bus._publish_once  # type: ignore[attr-defined]
    first_producer = bus._producer  # type: ignore[attr-defined]
    failures = [OutOfOrderSequenceNumber()]

    async def flaky(topic: str, messages: Any) -> None:
        if failures:
            raise failures.pop()
        await original(topic, messages)

    bus._publish_once = flaky  # type: ignore[attr-defined]
    await bus.publish("t.lost", _messages(20))
    assert bus._producer is not first_producer  # type: ignore[attr-defined]
    assert sorted(await _drain(consumer, 20)) == list(range(20))


async def test_kafka_replaces_a_lost_producer_once_for_concurrent_publishers(
    kafka_bus: Bus,
) -> None:
    """Stages of one process publish at the same time (events beside alerts): when they all
    meet the lost producer state, one new producer replaces it, every publisher resends on it,
    and nothing waits for ever on the old one."""
    from aiokafka.errors import OutOfOrderSequenceNumber

    bus = kafka_bus
    consumers = [await bus.subscribe(f"t.lost{n}", "g") for n in range(3)]
    original = bus._publish_once  # type: ignore[attr-defined]
    first_producer = bus._producer  # type: ignore[attr-defined]
    started: list[Any] = []
    new_producer = bus._new_producer  # type: ignore[attr-defined]

    def counted() -> Any:
        started.append(new_producer())
        return started[-1]

    failing = {"t.lost0", "t.lost1", "t.lost2"}

    async def flaky(topic: str, messages: Any) -> None:
        if topic in failing:
            failing.discard(topic)
            await asyncio.sleep(0.05)  # all three in flight on the old producer
            raise OutOfOrderSequenceNumber()
        await original(topic, messages)

    bus._publish_once = flaky  # type: ignore[attr-defined]
    bus._new_producer = counted  # type: ignore[attr-defined]
    await asyncio.wait_for(
        asyncio.gather(*(bus.publish(f"t.lost{n}", _messages(20)) for n in range(3))), 60
    )
    assert len(started) == 1 and bus._producer is started[0] is not first_producer  # type: ignore[attr-defined]
    for consumer in consumers:
        assert sorted(await _drain(consumer, 20)) == list(range(20))


async def test_headers_travel_with_their_record(bus: Bus) -> None:
    consumer = await bus.subscribe("t.headers", "g")
    hints = (("soc.id", b"ev-1"), ("soc.text", "Đăng nhập".encode()))
    value = {"event": {"id": "ev-1"}, "message": "Đăng nhập"}
    await bus.publish("t.headers", [Message("k", value, hints), Message("k", {"n": 2})])
    with_headers, without = await consumer.poll(10, 2.0)
    assert with_headers.headers == hints
    assert with_headers.value == value
    assert without.headers == () and without.value == {"n": 2}


async def test_kafka_hands_a_record_with_headers_over_as_its_bytes(kafka_bus: Bus) -> None:
    """What lets the event indexer send events on without decoding them: the bytes as
    published, the value decoded only when asked for."""
    consumer = await kafka_bus.subscribe("t.raw", "g")
    value = {"@timestamp": "2026-11-28T08:00:00.000000Z", "s": "Đăng nhập", "l": [1, None]}
    await kafka_bus.publish("t.raw", [Message("k", value, (("soc.id", b"x"),))])
    (delivered,) = await consumer.poll(10, 2.0)
    assert delivered.raw == orjson.dumps(value)
    assert delivered.value == value


async def test_kafka_sends_the_bytes_a_producer_encoded_as_they_are(kafka_bus: Bus) -> None:
    """A stage encodes what it publishes while it is hot (`Message.encoded`): the bus sends
    those bytes rather than encode the value again (spaced here, so that a second encoding
    would show), and a record without them is encoded by the bus."""
    assert kafka_bus.carries_bytes
    consumer = await kafka_bus.subscribe("t.encoded", "g")
    value = {"s": "Đăng nhập", "n": [1, None]}
    spaced = b'{"s": "\xc4\x90\xc4\x83ng nh\xe1\xba\xadp",  "n": [1, null]}'
    assert orjson.loads(spaced) == value
    hint = (("soc.id", b"x"),)
    await kafka_bus.publish(
        "t.encoded", [Message("k", value, hint, spaced), Message("k", value, hint)]
    )
    sent, plain = await consumer.poll(10, 2.0)
    assert sent.raw == spaced and sent.value == value
    assert plain.raw == orjson.dumps(value) and plain.value == value


async def test_kafka_skips_and_counts_a_record_that_is_not_a_json_object(kafka_bus: Bus) -> None:
    """A stranger's record on a platform topic would fail its stage for good: it is left out,
    counted and named, and the records around it go on."""
    dropped = metrics.DROPPED.labels("g", "undecodable")
    before = dropped._value.get()
    consumer = await kafka_bus.subscribe("t.bad", "g")
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
    await producer.start()
    try:
        name = kafka_bus._name("t.bad")  # type: ignore[attr-defined]
        for value in (b'{"n": 0}', b"not json", b"[1, 2]", b'{"n": 3}'):
            await producer.send_and_wait(name, value, key=b"k", partition=0)
    finally:
        await producer.stop()
    assert await _drain(consumer, 2) == [0, 3]
    assert dropped._value.get() - before == 2
    await consumer.commit()
    await consumer.close()
    again = await kafka_bus.subscribe("t.bad", "g")
    assert await again.poll(10, 1.0) == []  # the skipped records were committed past


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]"])
def test_bytes_that_are_not_an_object_are_named_when_decoded(raw: bytes) -> None:
    record = Delivered("soc.events", 2, 41, "k", raw=raw, headers=(("soc.id", b"x"),))
    with pytest.raises(UndecodableRecord, match=r"soc\.events partition 2 offset 41"):
        _ = record.value
    with pytest.raises(ValueError, match="a value or its bytes"):
        Delivered("soc.events", 0, 0, "k")
