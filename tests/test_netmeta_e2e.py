"""A port scan in a pcap raises the port-scan alert end to end: the sensor replays the pcap onto
the bus, and the platform's own stages (normalize, detect, correlate, index) take it from there
into an SQLite store, where the alert of `net_port_scan` is found."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
from pathlib import Path

import orjson
from scapy.utils import wrpcap

from collectors.netmeta.flows import FlowSettings
from collectors.netmeta.sensor import Organizations, Sensor
from soc.bus.memory import MemoryBus
from soc.config import RulesConfig, SourceConfig
from soc.detect.rules import load_rules, options_from_config
from soc.detect.stage import CorrelationStage, Detection, DetectionStage
from soc.normalize import NormalizeOptions
from soc.normalize.stage import NormalizeStage
from soc.stage import Stage, run_stage
from soc.store.base import Query, Scope
from soc.store.sqlite import SqliteStore
from soc.store.writer import StoreWriter
from tests.netmeta_pcaps import conversations, port_scan

ROOT = Path(__file__).resolve().parent.parent
PORT_SCAN = "7e9a1c3d-5f7b-4d92-8b4e-7e9a1c3d5f02"
TCP_PROBE = "7e9a1c3d-5f7b-4d92-8b4e-7e9a1c3d5f01"


Running = list[tuple[asyncio.Event, list[asyncio.Task[None]]]]


async def _start(bus: MemoryBus, layers: list[list[Stage]]) -> Running:
    """Every stage running, its group joined before anything flows (as in `soc run`)."""
    running = []
    for layer in layers:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(run_stage(bus, stage, stop, 500, poll_wait=0.05)) for stage in layer
        ]
        running.append((stop, tasks))
    await asyncio.sleep(0.2)
    return running


async def _drain(running: Running) -> None:
    """Stop layer by layer, upstream first, each once its input is drained."""
    for stop, tasks in running:
        stop.set()
        await asyncio.gather(*tasks)


async def test_port_scan_pcap_raises_the_port_scan_alert(tmp_path: Path) -> None:
    pcap = tmp_path / "scan.pcap"
    # Ordinary traffic first, then 30 ports probed in 1.5 s, each answered by a reset.
    wrpcap(str(pcap), [*conversations()[:8], *port_scan(ports=30, start=200.0)])
    bus = MemoryBus()
    await bus.start()
    store = SqliteStore(tmp_path / "soc.db")
    await store.open()
    sources = [SourceConfig(id="dmz", agency="ubnd-tinh", networks=("10.10.0.0/16",))]
    ruleset = load_rules([ROOT / "rules"], options_from_config(RulesConfig(paths=("rules",))))
    detection = Detection.from_rules(ruleset)
    running = await _start(
        bus,
        [
            [NormalizeStage(bus, NormalizeOptions())],
            [DetectionStage(bus, detection), StoreWriter(store, "events")],
            [CorrelationStage(bus, detection)],
            [StoreWriter(store, "alerts")],
        ],
    )
    sensor = Sensor(bus, FlowSettings(sensor_id="sensor-1"), Organizations(sources))
    await sensor.replay([pcap])
    await _drain(running)

    scope = Scope(frozenset({"ubnd-tinh"}))
    flows = await store.search(
        "events", Query(scope, filters={"event.dataset": ["netmeta.flow"]}, limit=100)
    )
    assert flows.total == 30  # the scan's flows; the ordinary ones belong to no agency
    alerts = await store.search("alerts", Query(scope, filters={"rule.id": [PORT_SCAN]}, limit=10))
    assert alerts.total == 1
    alert = alerts.items[0]
    assert alert["correlation"]["group"] == {"source.ip": "203.0.113.99"}
    assert alert["correlation"]["value"] >= 20
    assert alert["organization"] == {"id": "ubnd-tinh"}
    # The probes themselves matched the base rule (not alerted alone: generate is false).
    probes = await store.search(
        "alerts", Query(Scope.everything(), filters={"rule.id": [TCP_PROBE]})
    )
    assert probes.total == 0
    await store.close()
    await bus.close()


def test_cli_replays_a_pcap_and_refuses_a_bad_one(tmp_path: Path) -> None:
    pcap = tmp_path / "scan.pcap"
    wrpcap(str(pcap), port_scan(ports=3))
    ok = subprocess.run(
        [sys.executable, "-m", "soc", "collector", "netmeta", "--pcap", str(pcap)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "replayed files=1" in ok.stderr + ok.stdout
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * 64)
    refused = subprocess.run(
        [sys.executable, "-m", "soc", "collector", "netmeta", "--pcap", str(bad)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "bad.pcap" in refused.stderr + refused.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "soc", "collector", "netmeta"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "interface" in missing.stderr + missing.stdout


def test_soc_scan_of_a_pcap_raises_the_port_scan_alert(tmp_path: Path) -> None:
    """Offline: an incident responder's capture through `soc scan`, like any seized log file."""
    pcap = tmp_path / "tap.pcap.gz"
    plain = tmp_path / "tap.pcap"
    wrpcap(str(plain), [*conversations(), *port_scan(ports=25, start=200.0)])
    pcap.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    alerts = tmp_path / "alerts.jsonl"
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "soc", "scan", str(tmp_path), "--rules", str(ROOT / "rules"),
            "--output", str(alerts), "--summary-json", str(summary),
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    scans = [a for a in found if a["rule"]["id"] == PORT_SCAN]
    assert len(scans) == 1
    assert scans[0]["correlation"]["group"] == {"source.ip": "203.0.113.99"}
    report = orjson.loads(summary.read_bytes())
    # 11 records from the known conversations, 25 from the scan; nothing unreadable.
    assert report["events"] == 36
    assert report["problems"] == []
