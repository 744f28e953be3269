"""The in-process bus journals its durable topics: what no group had committed when `soc run`
stopped is delivered again after a restart, at the same offsets, so correlation windows outlive
the process as they do on Kafka."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from soc.bus.base import ALERTS, EVENTS, MATCHES, Delivered, Message
from soc.bus.memory import MemoryBus
from soc.detect.rules import load_rules
from soc.detect.stage import CorrelationStage, Detection
from soc.stage import run_stage
from tests.correlation_matches import BRUTE_FORCE, failure

ROOT = Path(__file__).resolve().parents[1]


def journaled(path: Path) -> MemoryBus:
    return MemoryBus(partitions=2, journal=path, durable={MATCHES})


async def test_uncommitted_records_come_back_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bus-journal.db"
    first = journaled(path)
    await first.start()
    await first.publish(MATCHES, [Message(f"k{n}", {"n": n}) for n in range(8)])
    await first.publish(EVENTS, [Message("e", {"not": "journaled"})])
    consumer = await first.subscribe(MATCHES, "correlate")
    taken = await consumer.poll(100, 0.1)
    assert len(taken) == 8
    # Commit half of each partition: the rest is still needed.
    kept = {p: min(r.offset for r in taken if r.partition == p) + 2 for p in (0, 1)}
    await consumer.commit_upto(kept)
    expected = sorted(
        (r.partition, r.offset, r.value["n"]) for r in taken if r.offset >= kept[r.partition]
    )
    await first.close()
    with sqlite3.connect(path) as db:  # trimmed records left the journal too
        assert db.execute("SELECT count(*) FROM records").fetchone() == (len(expected),)

    second = journaled(path)
    await second.start()
    again = await (await second.subscribe(MATCHES, "correlate")).poll(100, 0.1)
    assert sorted((r.partition, r.offset, r.value["n"]) for r in again) == expected
    assert await (await second.subscribe(EVENTS, "x")).poll(10, 0.05) == []
    # New records continue the numbering: no offset is given twice.
    await second.publish(MATCHES, [Message("k0", {"n": 99})])
    (latest,) = [r for r in await _everything(second) if r.value["n"] == 99]
    before = max(r.offset for r in again if r.partition == latest.partition)
    assert latest.offset == before + 1
    await second.close()


async def _everything(bus: MemoryBus) -> list[Delivered]:
    consumer = await bus.subscribe(MATCHES, "everything")
    return await consumer.poll(1000, 0.1)


async def correlate_once(bus: MemoryBus, wait_for: int) -> list[Delivered]:
    """One `soc run`'s correlator: reads what there is and stops; the alerts it raised."""
    detection = Detection.from_rules(load_rules([ROOT / "rules"]))
    stage = CorrelationStage(bus, detection, replay=MATCHES in bus.durable)
    alerts = await bus.subscribe(ALERTS, "incidents")
    stop = asyncio.Event()
    task = asyncio.create_task(run_stage(bus, stage, stop, 100, drain=False))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if stage._next and sum(stage._next.values()) >= wait_for:
            break
        if not stage._next and detection.correlations.stats.groups:
            break
    await asyncio.sleep(0.3)
    stop.set()
    await task
    return [r for r in await alerts.poll(1000, 0.1) if r.value["rule"]["id"] == BRUTE_FORCE]


async def test_a_restarted_soc_run_keeps_its_correlation_windows(tmp_path: Path) -> None:
    path = tmp_path / "bus-journal.db"
    first = journaled(path)
    await first.start()
    await first.publish(MATCHES, [failure(n) for n in range(6)])
    assert await correlate_once(first, wait_for=6) == []  # six failures: the window is open
    await first.close()

    second = journaled(path)
    await second.start()
    await second.publish(MATCHES, [failure(n) for n in range(6, 10)])
    alerts = await correlate_once(second, wait_for=10)
    assert len(alerts) == 1
    assert len(alerts[0].value["correlation"]["event_ids"]) == 10
    await second.close()


async def test_without_the_journal_a_restart_forgets_the_window(tmp_path: Path) -> None:
    """What the journal is for."""
    first = MemoryBus(partitions=2)
    await first.start()
    await first.publish(MATCHES, [failure(n) for n in range(6)])
    await correlate_once(first, wait_for=6)
    await first.close()
    second = MemoryBus(partitions=2)
    await second.start()
    await second.publish(MATCHES, [failure(n) for n in range(6, 10)])
    assert await correlate_once(second, wait_for=4) == []
    await second.close()


async def test_what_the_correlator_holds_for_replay_never_stalls_the_bus(tmp_path: Path) -> None:
    """The in-process bus stops publishers at its capacity, and a replaying correlator keeps
    every match of its open windows uncommitted: held without bound, a burst of matches within
    one window would stall the stream. Past `max_held` the oldest are let go, and counted."""
    from soc import metrics

    bus = MemoryBus(partitions=1, capacity=20, journal=tmp_path / "j.db", durable={MATCHES})
    await bus.start()
    detection = Detection.from_rules(load_rules([ROOT / "rules"]))
    stage = CorrelationStage(bus, detection, replay=True, max_held=10)
    released = metrics.CORRELATION_REPLAY_RELEASED._value.get()
    stop = asyncio.Event()
    task = asyncio.create_task(run_stage(bus, stage, stop, 5, drain=False))

    async def burst() -> None:  # 60 failures from 60 addresses within one minute
        for n in range(0, 60, 5):
            await bus.publish(
                MATCHES, [failure(k % 60, ip=f"198.51.100.{k}") for k in range(n, n + 5)]
            )

    await asyncio.wait_for(burst(), timeout=20)
    for _ in range(100):
        if sum(stage._next.values()) >= 60:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert sum(stage._next.values()) == 60
    assert metrics.CORRELATION_REPLAY_RELEASED._value.get() - released >= 50
    assert bus.backlog(MATCHES) <= 20
    await bus.close()


async def test_the_correlator_counts_late_matches_and_live_groups_in_its_metrics() -> None:
    """After each batch the stage adds what the engine dropped as late to
    `soc_correlation_late_total` and sets `soc_correlation_groups`."""
    from prometheus_client import REGISTRY

    bus = MemoryBus(partitions=1)
    await bus.start()
    lateness = 60.0
    detection = Detection.from_rules(load_rules([ROOT / "rules"]), allowed_lateness=lateness)
    stage = CorrelationStage(bus, detection)
    late_before = REGISTRY.get_sample_value("soc_correlation_late_total") or 0.0
    on_time = [failure(n, ip) for n in range(3) for ip in ("203.0.113.1", "203.0.113.2")]
    # An hour on, then one from before the lateness bound: late.
    ahead = failure(0, "203.0.113.3")
    ahead.value["timestamp"] += 3600
    late = failure(1, "203.0.113.3")
    late.value["timestamp"] += 3600 - lateness - 60
    batch = [
        Delivered(MATCHES, 0, offset, message.key, message.value)
        for offset, message in enumerate([*on_time, ahead, late])
    ]
    await stage.handle(batch)
    assert REGISTRY.get_sample_value("soc_correlation_late_total") == late_before + 1
    groups = REGISTRY.get_sample_value("soc_correlation_groups")
    assert groups == detection.correlations.groups == detection.correlations.stats.groups
    assert groups >= 1
    await bus.close()


async def test_matches_published_again_raise_no_second_alert_and_are_counted() -> None:
    """A detection batch evaluated again (its publish retried, or its engine dead before the
    commit) publishes its matches again: the brute force is counted over ten failures, not
    twenty, and the copies are counted in `soc_correlation_duplicates_total`."""
    from prometheus_client import REGISTRY

    bus = MemoryBus(partitions=1)
    await bus.start()
    detection = Detection.from_rules(load_rules([ROOT / "rules"]))
    stage = CorrelationStage(bus, detection)
    before = REGISTRY.get_sample_value("soc_correlation_duplicates_total") or 0.0
    # Five failures, then the same five again (new offsets: published twice), then five more.
    first = [failure(n, "203.0.113.50") for n in range(5)]
    rest = [failure(n, "203.0.113.50") for n in range(5, 10)]
    messages = [*first, *first, *rest[:4]]
    await stage.handle(
        [Delivered(MATCHES, 0, offset, m.key, m.value) for offset, m in enumerate(messages)]
    )
    assert bus.backlog(ALERTS) == 0  # nine distinct failures: no brute force yet
    assert REGISTRY.get_sample_value("soc_correlation_duplicates_total") == before + 5
    await stage.handle([Delivered(MATCHES, 0, len(messages), rest[4].key, rest[4].value)])
    assert bus.backlog(ALERTS) == 1  # the tenth
    await bus.close()
