"""The normalizing stage over a real in-process bus: every raw record, whatever its format,
becomes exactly one event on soc.events, keyed by the host it came from."""

from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from soc.bus.base import EVENTS, NOT_KEPT, RAW, Delivered
from soc.bus.memory import MemoryBus
from soc.normalize import NormalizeOptions
from soc.normalize.stage import NormalizeStage
from soc.stage import HOT_CHUNK
from soc.store.base import document_id
from soc.store.documents import doc_time, encoded, fts_text
from tests.bytes_bus import BytesBus

RECORDS = [
    (None, "<34>Nov 28 10:00:00 web01 sshd[1]: Failed password for root from 1.2.3.4 port 2 ssh2"),
    ("nginx", '203.0.113.5 - - [28/Nov/2026:10:00:01 +0700] "GET / HTTP/1.1" 200 5 "-" "x"'),
    (
        "suricata",
        orjson.dumps({"timestamp": "2026-11-28T10:00:00+0700", "event_type": "dns"}).decode(),
    ),
    (
        "auditd",
        "type=USER_AUTH msg=audit(1764298800.000:3): pid=1 uid=0 msg='acct=\"a\" res=failed'",
    ),
    ("cef", "CEF:0|vendor|product|1|100|name|5|"),
    ("zeek", "{broken"),
]


async def test_every_record_becomes_one_event_in_order() -> None:
    bus = MemoryBus()
    await bus.start()
    consumer = await bus.subscribe(EVENTS, "test")
    stage = NormalizeStage(bus, NormalizeOptions())
    batch = []
    for offset, (kind, data) in enumerate(RECORDS):
        value = {
            "id": f"r{offset}",
            "received_at": "2026-11-28T03:00:00Z",
            "data": data,
            "source": {"type": "agent", "peer": {"ip": "10.0.0.8", "port": 1}},
            "fields": {"host": {"name": "sensor-01"}} if offset == 2 else {},
        }
        if kind is not None:
            value["format"] = kind
        batch.append(Delivered(RAW, 0, offset, "10.0.0.8", value))
    await stage.handle(batch)
    delivered = await consumer.poll(100, 1.0)
    await bus.close()
    assert [d.value["event"]["id"] for d in delivered] == [f"r{i}" for i in range(len(RECORDS))]
    assert [d.value["event"]["original"] for d in delivered] == [data for _, data in RECORDS]
    assert [d.key for d in delivered] == [
        "web01",
        "10.0.0.8",
        "sensor-01",
        "10.0.0.8",
        "10.0.0.8",
        "10.0.0.8",
    ]
    assert [d.value.get("error", {}).get("type") for d in delivered][-2:] == [
        "unknown_format",
        "invalid_json",
    ]


def _raw_batch() -> list[Delivered]:
    return [
        Delivered(
            RAW,
            0,
            offset,
            "10.0.0.8",
            {
                "id": f"r{offset}",
                "received_at": "2026-11-28T03:00:00Z",
                "data": data,
                "source": {"type": "agent", "peer": {"ip": "10.0.0.8", "port": 1}},
                **({"format": kind} if kind else {}),
            },
        )
        for offset, (kind, data) in enumerate(RECORDS)
    ]


class Recording:
    """A chained next step that records what it is given: the chunks its `evaluate` saw, and
    the outputs its `publish` sent (failing the first `fail` of them)."""

    def __init__(self, fail: int = 0) -> None:
        self.chunks: list[list[dict[str, Any]]] = []
        self.published: list[list[dict[str, Any]]] = []
        self._fail = fail

    def output(self) -> list[dict[str, Any]]:
        return []

    def evaluate(
        self,
        events: Sequence[dict[str, Any]],
        output: list[dict[str, Any]],
        encoded: Sequence[bytes | None] | None = None,
    ) -> None:
        self.chunks.append(list(events))
        output.extend(events)

    async def publish(self, output: list[dict[str, Any]]) -> None:
        if self._fail:
            self._fail -= 1
            raise ConnectionError("alerts not acknowledged")
        self.published.append(output)


async def test_chained_detection_sees_each_batch_s_events_as_they_are_published() -> None:
    """Detection in the same process is chained to normalizing: it gets the batch's events,
    the very ones published on soc.events for the indexer, and publishes once per batch."""
    bus = MemoryBus()
    await bus.start()
    consumer = await bus.subscribe(EVENTS, "index-events")
    chain = Recording()
    await NormalizeStage(bus, NormalizeOptions(), then=chain).handle(_raw_batch())
    delivered = await consumer.poll(100, 1.0)
    await bus.close()
    assert len(chain.published) == 1
    seen = chain.published[0]
    assert [event["event"]["id"] for event in seen] == [f"r{i}" for i in range(len(RECORDS))]
    assert [d.value for d in delivered] == seen


async def test_a_large_batch_goes_through_every_step_chunk_by_chunk() -> None:
    """Each chunk of a batch is normalized and then detected before the next is normalized
    (while it is hot in the caches): every event once, in order, published once."""
    bus = MemoryBus(capacity=2 * HOT_CHUNK + 100)
    await bus.start()
    consumer = await bus.subscribe(EVENTS, "index-events")
    chain = Recording()
    batch = [
        Delivered(RAW, 0, offset, "10.0.0.8", {
            "id": f"r{offset}", "received_at": "2026-11-28T03:00:00Z",
            "data": f"<34>Nov 28 10:00:00 web01 sshd[1]: Failed password for u{offset}",
            "source": {"type": "agent", "peer": {"ip": "10.0.0.8", "port": 1}},
        })
        for offset in range(2 * HOT_CHUNK + 3)
    ]  # fmt: skip
    await NormalizeStage(bus, NormalizeOptions(), then=chain).handle(batch)
    delivered = await consumer.poll(len(batch) + 1, 1.0)
    await bus.close()
    assert [len(chunk) for chunk in chain.chunks] == [HOT_CHUNK, HOT_CHUNK, 3]
    ids = [f"r{offset}" for offset in range(len(batch))]
    assert [event["event"]["id"] for chunk in chain.chunks for event in chunk] == ids
    assert [[event["event"]["id"] for event in out] for out in chain.published] == [ids]
    assert [d.value["event"]["id"] for d in delivered] == ids


async def test_events_are_encoded_as_they_are_normalized_for_a_bus_of_bytes() -> None:
    """For Kafka, each event's JSON is made while the event is hot and the event is not kept
    (freed at once, hot); the JSON must be the event's encoding exactly, the event the
    in-process bus is handed for the same record."""
    bytes_bus = BytesBus()
    await bytes_bus.start()
    await NormalizeStage(bytes_bus, NormalizeOptions()).handle(_raw_batch())
    await bytes_bus.close()
    sent = bytes_bus.sent[EVENTS]
    assert len(sent) == len(RECORDS)
    assert all(message.value is NOT_KEPT for message in sent)
    bus = MemoryBus()
    await bus.start()
    consumer = await bus.subscribe(EVENTS, "test")
    await NormalizeStage(bus, NormalizeOptions()).handle(_raw_batch())
    delivered = await consumer.poll(100, 1.0)
    await bus.close()
    assert [m.encoded for m in sent] == [orjson.dumps(d.value) for d in delivered]


async def test_a_chained_detection_that_fails_fails_the_batch() -> None:
    """Its alerts not published, the raw batch must not be committed: the stage raises, and
    `run_stage` handles the batch again (the events published twice are absorbed by id)."""
    bus = MemoryBus()
    await bus.start()
    chain = Recording(fail=1)
    stage = NormalizeStage(bus, NormalizeOptions(), then=chain)
    with pytest.raises(ConnectionError, match="alerts not acknowledged"):
        await stage.handle(_raw_batch())
    await stage.handle(_raw_batch())
    await bus.close()
    assert [len(chunk) for chunk in chain.chunks] == [len(RECORDS), len(RECORDS)]
    assert [len(output) for output in chain.published] == [len(RECORDS)]


@pytest.mark.parametrize("with_hints", [True, False])
async def test_events_carry_what_the_store_derives_from_them_when_asked(with_hints: bool) -> None:
    """Over Kafka to Elasticsearch, the indexer stores an event from its bytes and these hints:
    they must say what the store would derive from the event itself."""
    bus = MemoryBus()
    await bus.start()
    consumer = await bus.subscribe(EVENTS, "test")
    await NormalizeStage(bus, NormalizeOptions(), hints=with_hints).handle(_raw_batch())
    delivered = await consumer.poll(100, 1.0)
    await bus.close()
    assert len(delivered) == len(RECORDS)
    for record in delivered:
        if not with_hints:
            assert record.headers == ()
            continue
        found = encoded(orjson.dumps(record.value), record.headers)
        assert found is not None
        assert found.ident == document_id(record.value)
        assert found.micros == doc_time(record.value)
        assert found.text == fts_text("events", record.value)
        assert record.value["event"]["original"] in found.text
