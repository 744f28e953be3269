"""After traffic, `/metrics` of `soc run` exposes every series the operations issue names, with
its labels: what the dashboard and the alert rules in deploy/ are built on."""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from soc.bus.base import Delivered, Message
from soc.bus.kafka import KafkaBus
from soc.bus.memory import MemoryBus
from tests.test_e2e_run import Running, _start

pytestmark = pytest.mark.e2e

#: Series -> labels each sample must carry (the issue's list, in its order).
NAMED: dict[str, set[str]] = {
    # records received and bytes per source
    "soc_records_received_total": {"source", "transport"},
    "soc_bytes_received_total": {"source", "transport"},
    "soc_syslog_source_records_total": {"source", "transport"},
    "soc_syslog_source_bytes_total": {"source", "transport"},
    # parse failures: syslog lines flagged `syslog_unparsed` (other formats count in
    # soc_normalize_failures_total{format,reason}, exported once one fails)
    "soc_records_flagged_total": {"stage", "reason"},
    # drops by reason
    "soc_dropped_total": {"stage", "reason"},
    # bus lag per group and partition
    "soc_bus_lag_records": {"group", "topic", "partition"},
    # rule hits, alerts, receipt-to-alert latency
    "soc_rule_hits_total": {"rule", "level"},
    "soc_alerts_stored_total": set(),
    "soc_alert_latency_seconds_bucket": {"le"},
    # store write latency and errors
    "soc_store_write_seconds_bucket": {"kind", "le"},
    "soc_store_errors_total": {"kind"},
    # correlation state size and evictions
    "soc_correlation_groups": set(),
    "soc_correlation_evictions_total": {"reason"},
    # retention
    "soc_retention_last_success_timestamp_seconds": set(),
}
#: Exported from the start, with samples only once a channel is configured and used.
FAMILIES_ONLY = ("soc_notifications_sent", "soc_notifications_failed", "soc_normalize_failures")


@pytest.fixture
def soc(tmp_path: Path) -> Iterator[Running]:
    running = _start(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(30)


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


def test_metrics_after_traffic_expose_every_named_series(soc: Running) -> None:
    stamp = time.strftime("%b %e %H:%M:%S")
    soc.send_udp(
        [
            f"<38>{stamp} web01 sshd[1]: Failed password for root from 203.0.113.7 port 5".encode(),
            b"<<<not syslog at all>>>",
        ]
    )
    soc.send_tcp(
        f"<38>{stamp} web02 sshd[2]: Invalid user oracle from 198.51.100.9 port 6\n".encode()
    )
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(f"{soc.http}/metrics", timeout=10).text
        samples = _samples(text)
        # The lag gauge is refreshed every second: wait until it has seen every stage's group.
        groups = {labels["group"] for labels, _ in samples.get("soc_bus_lag_records", [])}
        if _value(samples, "soc_alerts_stored_total") >= 2 and len(groups) >= 4:
            break
        assert time.monotonic() < deadline, f"no alerts in /metrics:\n{soc.log.read_text()}"
        time.sleep(0.2)
    missing = [name for name in NAMED if name not in samples]
    assert not missing, f"series missing from /metrics: {missing}"
    for name, labels in NAMED.items():
        for sample_labels, _ in samples[name]:
            assert set(sample_labels) == labels, (name, sample_labels)
    assert _value(samples, "soc_syslog_source_records_total") == 3
    assert {labels["transport"] for labels, _ in samples["soc_records_received_total"]} == {
        "udp",
        "tcp",
    }
    unparsed = [
        v for labels, v in samples["soc_records_flagged_total"] if "unparsed" in labels["reason"]
    ]
    assert sum(unparsed) >= 1
    assert _value(samples, "soc_dropped_total") == 0
    assert _value(samples, "soc_alert_latency_seconds_count") >= 2
    assert "events" in {labels["kind"] for labels, _ in samples["soc_store_write_seconds_bucket"]}
    assert {labels["topic"] for labels, _ in samples["soc_bus_lag_records"]} >= {
        "soc.raw",
        "soc.events",
    }
    for family in FAMILIES_ONLY:
        assert f"# TYPE {family} counter" in text or f"# TYPE {family}_total counter" in text


def _kafka_reachable(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, int(port))) == 0


@pytest.mark.parametrize("backend", ["memory", "kafka"])
async def test_bus_lag_is_reported_per_group_and_partition(backend: str) -> None:
    """Records published but not committed by a group show as that group's lag, partition by
    partition; committing brings it to zero."""
    topic = "soc.events"
    bus: MemoryBus | KafkaBus
    if backend == "kafka":
        if not _kafka_reachable("127.0.0.1:9092"):
            pytest.skip("no Kafka broker at 127.0.0.1:9092 (make services)")
        bus = KafkaBus("127.0.0.1:9092", partitions=2, namespace=f"lag-{uuid.uuid4().hex[:8]}.")
    else:
        bus = MemoryBus(partitions=2)
    await bus.start()
    try:
        consumer = await bus.subscribe(topic, "detect")
        await bus.publish(topic, [Message(f"host{i}", {"n": i}) for i in range(40)])
        taken: list[Delivered] = []
        for _ in range(50):
            taken += await consumer.poll(100, 0.2)
            if len(taken) >= 40:
                break
        assert len(taken) == 40
        lags = {(g, t, p): lag for g, t, p, lag in bus.lags()}
        assert set(lags) == {("detect", topic, 0), ("detect", topic, 1)}
        assert sum(lags.values()) == 40
        await consumer.commit()
        assert all(lag == 0 for *_, lag in bus.lags())
    finally:
        await bus.close()
