"""The detection stage over the in-process bus, with the project's own rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from prometheus_client import REGISTRY

from soc.bus.base import ALERTS, DETECTED, EVENTS, MATCHES, NOT_KEPT, RAW, Delivered
from soc.bus.memory import MemoryBus
from soc.detect.rules import RuleSet, load_rules
from soc.detect.stage import CorrelationStage, Detection, DetectionStage
from soc.normalize import NormalizeOptions, normalize
from soc.normalize.stage import NormalizeStage
from soc.stage import HOT_CHUNK
from tests.bytes_bus import BytesBus

ROOT = Path(__file__).resolve().parent.parent


class _Breaks:
    """The rule set, except that evaluating it on one event raises (a rule's bug, or an event
    no rule was written for)."""

    def __init__(self, rules: RuleSet, poison: str) -> None:
        self._rules = rules
        self._poison = poison

    def match(self, event: dict[str, Any]) -> Any:
        if event["event"]["id"] == self._poison:
            raise TypeError("unorderable types in a rule's comparison")
        return self._rules.match(event)


def _event(n: int, user: str) -> dict[str, Any]:
    line = f"<38>Nov 28 10:00:{n:02d} web09 sshd[9]: Invalid user {user} from 198.51.100.7 port {n}"
    return normalize(
        {"id": f"r{n}", "received_at": "2026-11-28T03:00:00Z", "data": line,
         "source": {"type": "syslog", "peer": {"ip": "198.51.100.7", "port": 514}}},
        NormalizeOptions(),
    )  # fmt: skip


async def test_an_event_the_rules_fail_on_is_counted_and_the_others_are_detected() -> None:
    detection = Detection.from_rules(load_rules([ROOT / "rules"]))
    events = [_event(n, f"user{n}") for n in range(3)]
    detection.rules = _Breaks(detection.rules, events[1]["event"]["id"])  # type: ignore[assignment]
    bus = MemoryBus()
    await bus.start()
    alerts = await bus.subscribe(ALERTS, "test")
    labels = {"stage": "detect", "reason": "detection_failed"}
    before = REGISTRY.get_sample_value("soc_dropped_total", labels) or 0.0
    await DetectionStage(bus, detection).detect(events)
    raised = await alerts.poll(100, 1.0)
    await bus.close()
    assert {a.value["events"][0]["event"]["id"] for a in raised} == {
        events[0]["event"]["id"],
        events[2]["event"]["id"],
    }
    assert REGISTRY.get_sample_value("soc_dropped_total", labels) == before + 1


async def test_events_detected_where_they_were_normalized_are_not_detected_again() -> None:
    """A chained engine (normalize and detect in one process) marks what it publishes; a
    `--stages detect` process beside it skips those events and detects the others."""
    detection = Detection.from_rules(load_rules([ROOT / "rules"]))
    bus = MemoryBus()
    await bus.start()
    events = await bus.subscribe(EVENTS, "detect")
    alerts = await bus.subscribe(ALERTS, "test")
    raw = [
        Delivered(RAW, 0, n, "198.51.100.7", {
            "id": f"r{n}", "received_at": "2026-11-28T03:00:00Z",
            "data": f"<38>Nov 28 10:00:0{n} web09 sshd[9]: Invalid user u{n} from 198.51.100.7",
            "source": {"type": "syslog", "peer": {"ip": "198.51.100.7", "port": 514}},
        })
        for n in range(4)
    ]  # fmt: skip
    chained_detect = DetectionStage(bus, detection)
    chained = NormalizeStage(bus, NormalizeOptions(), then=chained_detect)
    await chained.handle(raw[:2])
    await NormalizeStage(bus, NormalizeOptions()).handle(raw[2:])  # detection elsewhere
    first = await alerts.poll(100, 1.0)
    skipped = REGISTRY.get_sample_value("soc_detect_skipped_total") or 0.0
    published = await events.poll(100, 1.0)
    assert [DETECTED in dict(e.headers) for e in published] == [True, True, False, False]
    await DetectionStage(bus, detection).handle(published)
    second = await alerts.poll(100, 1.0)
    await bus.close()
    assert [a.value["events"][0]["event"]["id"] for a in first] == ["r0", "r1"]
    assert [a.value["events"][0]["event"]["id"] for a in second] == ["r2", "r3"]
    assert REGISTRY.get_sample_value("soc_detect_skipped_total") == skipped + 2


async def test_a_batch_is_detected_chunk_by_chunk_and_encoded_for_a_bus_of_bytes() -> None:
    """A batch larger than a chunk: every event detected once, in order; for a bus of bytes,
    each alert and match is sent as the encoding made as it was raised, its value not kept
    (freed at once, hot), and a consumer reads what that encoding says."""
    detection = Detection.from_rules(load_rules([ROOT / "rules"]))
    count = 2 * HOT_CHUNK + 5
    batch = [Delivered(EVENTS, 0, n, "web09", _event(n % 60, f"user{n}")) for n in range(count)]
    bus = BytesBus()
    await bus.start()
    readers = {topic: await bus.subscribe(topic, "test") for topic in (ALERTS, MATCHES)}
    await DetectionStage(bus, detection).handle(batch)
    read = {topic: await reader.poll(10 * count, 1.0) for topic, reader in readers.items()}
    await bus.close()
    alerts, matches = bus.sent[ALERTS], bus.sent[MATCHES]
    sent = {topic: [orjson.loads(m.as_bytes()) for m in bus.sent[topic]] for topic in readers}
    assert [alert["events"][0]["event"]["id"] for alert in sent[ALERTS]] == [
        record.value["event"]["id"] for record in batch
    ]
    assert all(alert["rule"]["name"] for alert in sent[ALERTS])
    assert [match["event_id"] for match in sent[MATCHES]] == [
        record.value["event"]["id"] for record in batch
    ]
    for message in alerts + matches:
        assert message.encoded is not None
        assert message.value is NOT_KEPT
    assert {topic: [d.value for d in records] for topic, records in read.items()} == sent


async def test_matches_over_kafka_carry_the_fields_read_and_alerts_show_whole_events() -> None:
    """Over Kafka a match holds only the fields its correlations read, and the event as text;
    the correlator raises from those the alert the whole events raise, showing them whole."""
    detection = Detection.from_rules(load_rules([ROOT / "rules"]))
    events = [_event(n, f"user{n}") for n in range(6)]
    bus = BytesBus()
    await bus.start()
    await DetectionStage(bus, detection).detect(events)
    published = bus.sent[MATCHES]
    assert len(published) == len(events)
    for message, event in zip(published, events, strict=True):
        read = {"source.ip": "198.51.100.7", "user.name": event["user"]["name"]}
        value = orjson.loads(message.as_bytes())
        assert value["event"] == read
        assert orjson.loads(value["event_json"]) == event
    # As the correlator reads them back: decoded from the bytes sent.
    delivered = [
        Delivered(MATCHES, 0, n, m.key, orjson.loads(m.as_bytes())) for n, m in enumerate(published)
    ]
    await CorrelationStage(bus, detection).handle(delivered)
    await bus.close()
    (spraying,) = [a.value for a in bus.sent[ALERTS] if "correlation" in a.value]
    assert spraying["rule"]["name"] == "SSH Password Spraying From One Address"
    assert spraying["events"] == events[: len(spraying["events"])]
    assert "Host: web09" in spraying["message"]
