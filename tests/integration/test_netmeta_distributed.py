"""The sensor in the distributed deployment: `soc collector netmeta --pcap` publishes to real
Kafka, `soc engine` (another process) normalizes, detects and correlates into real
Elasticsearch, where the port scan's alert is found."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from scapy.utils import wrpcap

from soc.store.base import Kind, Query, Scope
from soc.store.elasticsearch import ElasticsearchStore
from tests.netmeta_pcaps import conversations, port_scan

ROOT = Path(__file__).resolve().parents[2]
KAFKA = os.environ.get("SOC_TEST_KAFKA", "127.0.0.1:9092")
ES = os.environ.get("SOC_TEST_ES_URL", "http://127.0.0.1:9200")
PORT_SCAN = "7e9a1c3d-5f7b-4d92-8b4e-7e9a1c3d5f02"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not (_reachable("127.0.0.1", int(KAFKA.rsplit(":", 1)[1])) and _reachable("127.0.0.1", 9200)),
    reason="Kafka and Elasticsearch not running (make services)",
)


async def _count(namespace: str, kind: Kind, filters: dict[str, list[str]]) -> int:
    store = ElasticsearchStore(ES, prefix=f"{namespace}-soc")
    await store.open()
    try:
        return (await store.search(kind, Query(Scope.everything(), filters=filters))).total
    finally:
        await store.close()


def _duplicates(port: int) -> float:
    """The engine's count of event writes whose id was already stored."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('soc_store_duplicates_total{kind="events"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_pcap_replay_through_kafka_and_the_engine_into_elasticsearch(tmp_path: Path) -> None:
    namespace = f"nm{uuid.uuid4().hex[:8]}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    env = {
        **os.environ,
        "SOC_BUS": f"kafka://{KAFKA}",
        "SOC_STORE": ES,
        "SOC_NAMESPACE": namespace,
        "SOC_DATA_DIR": str(tmp_path / "data"),
        "SOC_METRICS__LISTEN": f"127.0.0.1:{metrics_port}",
        "SOC_NETMETA__SENSOR_ID": "sensor-it",
    }
    pcap = tmp_path / "tap.pcap"
    wrpcap(str(pcap), [*conversations(), *port_scan(ports=25, start=200.0)])
    log = tmp_path / "engine.log"
    with log.open("wb") as sink:
        engine = subprocess.Popen(
            [sys.executable, "-m", "soc", "engine", "--rules", str(ROOT / "rules")],
            stdout=sink, stderr=sink, env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        replay = subprocess.run(
            [sys.executable, "-m", "soc", "collector", "netmeta", "--pcap", str(pcap)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        deadline = time.monotonic() + 120
        flows = alerts = 0
        while time.monotonic() < deadline:
            assert engine.poll() is None, log.read_text(errors="replace")
            flows = asyncio.run(_count(namespace, "events", {"event.dataset": ["netmeta.flow"]}))
            alerts = asyncio.run(_count(namespace, "alerts", {"rule.id": [PORT_SCAN]}))
            if flows >= 32 and alerts:
                break
            time.sleep(1)
        # 7 flows of the known conversations and 25 of the scan; one alert for the scan.
        assert (flows, alerts) == (32, 1), log.read_text(errors="replace")
        # A second replay of the same capture stores nothing twice (same ids).
        again = subprocess.run(
            [sys.executable, "-m", "soc", "collector", "netmeta", "--pcap", str(pcap)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        deadline = time.monotonic() + 120
        while _duplicates(metrics_port) < 36 and time.monotonic() < deadline:
            time.sleep(1)
        # The engine took in all 36 records again and the store recognised every one.
        assert _duplicates(metrics_port) == 36
        assert asyncio.run(_count(namespace, "events", {"event.dataset": ["netmeta.flow"]})) == 32
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(60)
