"""Live capture on a real interface: a veth pair whose far end lives in a network namespace.
Packets are sent with scapy's `sendp` from inside the namespace and captured on the near end,
through a BPF filter, into records on the bus."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from scapy.utils import wrpcap

from collectors.netmeta.flows import FlowSettings
from collectors.netmeta.pcapfile import CaptureError
from collectors.netmeta.sensor import Organizations, Sensor
from soc.bus.base import RAW
from soc.bus.memory import MemoryBus
from soc.store.base import Query, Scope
from soc.store.sqlite import SqliteStore
from tests.netmeta_pcaps import conversations, port_scan

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="live capture needs root (a veth pair in a network namespace) and iproute2's `ip`",
)

ROOT = Path(__file__).resolve().parent.parent
PORT_SCAN = "7e9a1c3d-5f7b-4d92-8b4e-7e9a1c3d5f02"
SEND = """
import sys
from scapy.all import rdpcap, sendp
sendp(rdpcap(sys.argv[1]), iface=sys.argv[2], verbose=False)
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


_VETHS = itertools.count()


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    """(near end in this namespace, far end, the far end's namespace)."""
    tag = f"{os.getpid() % 10000}{next(_VETHS)}"
    namespace, near, far = f"socnm{tag}", f"nmA{tag}", f"nmB{tag}"
    _ip("netns", "add", namespace)
    try:
        _ip("link", "add", near, "type", "veth", "peer", "name", far)
        _ip("link", "set", far, "netns", namespace)
        _ip("link", "set", near, "up")
        _ip("-n", namespace, "link", "set", far, "up")
        yield near, far, namespace
    finally:
        subprocess.run(["ip", "link", "del", near], capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


async def _started(capture: asyncio.Task[None], ready: asyncio.Event) -> None:
    """Wait until the capture reads its interface; a capture that failed raises its error."""
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([capture, waiter], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if capture.done():
        capture.result()
    assert ready.is_set()


def _send(pcap: Path, far: str, namespace: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", SEND, str(pcap), far],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


async def test_live_capture_on_a_veth_pair(veth: tuple[str, str, str], tmp_path: Path) -> None:
    near, far, namespace = veth
    pcap = tmp_path / "send.pcap"
    # DNS (let through by the filter), a 5-port scan (TCP, let through) and a UDP flow on a
    # port the filter leaves out.
    dns = [p for p in conversations() if p.haslayer("DNS")]
    other = [p for p in conversations() if p.haslayer("UDP") and p["UDP"].dport == 3344]
    wrpcap(str(pcap), [*dns, *port_scan(target="10.10.0.5", ports=5), *other])
    bus = MemoryBus()
    await bus.start()
    sensor = Sensor(bus, FlowSettings(sensor_id="live-1", interface=near), Organizations([]))
    stop, ready = asyncio.Event(), asyncio.Event()
    capture = asyncio.create_task(
        sensor.capture(near, "tcp or port 53", stop, queue=1000, ready=ready)
    )
    await _started(capture, ready)
    await asyncio.to_thread(_send, pcap, far, namespace)
    stop.set()
    await asyncio.wait_for(capture, 30)

    consumer = await bus.subscribe(RAW, "test")
    records = [message.value for message in await consumer.poll(1000, 0.1)]
    documents = [orjson.loads(record["data"]) for record in records]
    assert {r["source"]["interface"] for r in records} == {near}
    assert all(d["observer"]["ingress"]["interface"]["name"] == near for d in documents)
    flows = [d for d in documents if d["event"]["dataset"] == "netmeta.flow"]
    scanned = sorted(d["destination"]["port"] for d in flows if d["source"]["ip"] == "203.0.113.99")
    assert scanned == [1000, 1001, 1002, 1003, 1004]
    for flow in flows:
        if flow["source"]["ip"] == "203.0.113.99":
            assert flow["event"]["reason"] == "rst"
            assert (flow["source"]["packets"], flow["destination"]["packets"]) == (1, 1)
    dns_records = [d for d in documents if d["event"]["dataset"] == "netmeta.dns"]
    assert [d["dns"]["type"] for d in dns_records] == ["query", "answer"]
    assert dns_records[1]["dns"]["resolved_ip"] == ["10.0.0.80"]
    # The BPF filter kept the UDP flow on port 3344 out.
    assert not [d for d in documents if d.get("destination", {}).get("port") == 3344]
    await bus.close()


async def test_capture_on_a_missing_interface_names_it() -> None:
    bus = MemoryBus()
    sensor = Sensor(bus, FlowSettings(), Organizations([]))
    with pytest.raises(CaptureError, match="no-such-if0"):
        await sensor.capture("no-such-if0", "", asyncio.Event(), queue=10)


async def test_a_bad_bpf_filter_is_refused_with_the_reason(veth: tuple[str, str, str]) -> None:
    bus = MemoryBus()
    sensor = Sensor(bus, FlowSettings(), Organizations([]))
    with pytest.raises(CaptureError, match="filter"):
        await sensor.capture(veth[0], "tcp port banana", asyncio.Event(), queue=10)


def test_soc_run_with_an_interface_alerts_on_a_live_port_scan(
    veth: tuple[str, str, str], tmp_path: Path
) -> None:
    """`soc run` with `netmeta.interface` set: the sensor is one of its parts; a port scan sent
    on the wire ends as the port-scan alert in the store, after a clean stop."""
    near, far, namespace = veth
    pcap = tmp_path / "scan.pcap"
    wrpcap(str(pcap), port_scan(target="10.10.0.5", ports=25))
    log = tmp_path / "soc.log"
    env = {
        **os.environ,
        "SOC_AUTH__API_TOKEN": "netmeta-live-token-abcdefghijklmnop",
        "SOC_NETMETA__INTERFACE": near,
        "SOC_NETMETA__BPF": "tcp",
        "SOC_METRICS__ENABLED": "false",
    }
    command = [
        sys.executable, "-m", "soc", "run", "--data-dir", str(tmp_path / "data"),
        "--http", "127.0.0.1:0", "--syslog", "127.0.0.1:0", "--rules", str(ROOT / "rules"),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while f"netmeta={near}" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        _send(pcap, far, namespace)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert process.returncode == 0, log.read_text(errors="replace")

    async def alerts() -> int:
        store = SqliteStore(tmp_path / "data" / "soc.db")
        await store.open()
        try:
            query = Query(Scope.everything(), filters={"rule.id": [PORT_SCAN]})
            return (await store.search("alerts", query)).total
        finally:
            await store.close()

    assert asyncio.run(alerts()) == 1


async def test_records_past_the_queue_are_dropped_and_counted(
    veth: tuple[str, str, str], tmp_path: Path
) -> None:
    from prometheus_client import REGISTRY

    near, far, namespace = veth
    pcap = tmp_path / "syns.pcap"
    # Five SYNs left unanswered: their flows are all still open when the capture stops, and
    # leave the capture thread together, five records for a queue of one.
    wrpcap(str(pcap), [p for p in port_scan(ports=5) if p["TCP"].flags == "S"])
    labels = {"stage": "netmeta", "reason": "queue_full"}
    before = REGISTRY.get_sample_value("soc_dropped_total", labels) or 0.0
    bus = MemoryBus()
    await bus.start()
    sensor = Sensor(bus, FlowSettings(sensor_id="live-q"), Organizations([]))
    stop, ready = asyncio.Event(), asyncio.Event()
    capture = asyncio.create_task(sensor.capture(near, "tcp", stop, queue=1, ready=ready))
    await _started(capture, ready)
    await asyncio.to_thread(_send, pcap, far, namespace)
    stop.set()
    await asyncio.wait_for(capture, 30)
    consumer = await bus.subscribe(RAW, "test")
    published = await consumer.poll(100, 0.1)
    dropped = (REGISTRY.get_sample_value("soc_dropped_total", labels) or 0.0) - before
    assert (len(published), dropped) == (1, 4)
    await bus.close()


async def test_an_interface_re_created_under_the_same_name_is_captured_again(
    veth: tuple[str, str, str],
) -> None:
    near, far, namespace = veth
    for _ in range(2):
        sensor = Sensor(MemoryBus(), FlowSettings(sensor_id="again"), Organizations([]))
        stop, ready = asyncio.Event(), asyncio.Event()
        capture = asyncio.create_task(sensor.capture(near, "tcp", stop, queue=10, ready=ready))
        await _started(capture, ready)
        stop.set()
        await asyncio.wait_for(capture, 30)
        # The same names again, new interface indexes (as when a bond or VLAN is re-made).
        _ip("link", "del", near)
        _ip("link", "add", near, "type", "veth", "peer", "name", far)
        _ip("link", "set", far, "netns", namespace)
        _ip("link", "set", near, "up")
