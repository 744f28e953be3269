"""The normalizing stage over a real in-process bus: every raw record, whatever its format,
becomes exactly one event on soc.events, keyed by the host it came from."""

import orjson

from soc.bus.base import EVENTS, RAW, Delivered
from soc.bus.memory import MemoryBus
from soc.normalize import NormalizeOptions
from soc.normalize.stage import NormalizeStage

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
