"""The sensor on pcaps the tests write with scapy: exactly the expected records, field by field."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from scapy.utils import PcapNgWriter, wrpcap

from collectors.netmeta.flows import FlowSettings, FlowTable
from collectors.netmeta.pcapfile import CaptureError, read_pcap
from collectors.netmeta.sensor import Organizations, Sensor, process_frames
from soc.bus.base import RAW
from soc.bus.memory import MemoryBus
from soc.config import SourceConfig
from tests.netmeta_pcaps import (
    CIPHERS,
    CLIENT,
    EXTENSION_ORDER,
    GROUPS,
    LAN,
    POINT_FORMATS,
    SERVER,
    SNI,
    conversations,
    iso,
    port_scan,
)

SETTINGS = FlowSettings(sensor_id="sensor-hn-1", idle_timeout=30, closed_timeout=2)
OBSERVER = {"name": "sensor-hn-1", "type": "sensor"}


def _replay(path: Path, settings: FlowSettings = SETTINGS) -> list[dict[str, Any]]:
    table = FlowTable(settings)
    for _ in process_frames(table, read_pcap(path), 1000):
        pass
    table.finish()
    return table.out


@pytest.fixture
def records(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "known.pcap"
    wrpcap(str(path), conversations())
    return _replay(path)


def _without_id(document: dict[str, Any]) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(document))
    del copy["event"]["id"]
    return dict(copy)


def _flow(
    start: float, end: float, reason: str, source: dict[str, Any], destination: dict[str, Any],
    network: dict[str, Any], extra: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "@timestamp": iso(end),
        "event": {
            "kind": "event", "category": ["network"], "module": "netmeta",
            "dataset": "netmeta.flow", "type": ["connection", "end"], "action": "network_flow",
            "start": iso(start), "end": iso(end),
            "duration": round((end - start) * 1e6) * 1000, "reason": reason,
        },
        "source": source,
        "destination": destination,
        "network": network,
        "related": {"ip": [source["ip"], destination["ip"]]},
        "observer": OBSERVER,
        **(extra or {}),
    }  # fmt: skip


def test_records_come_out_in_order_with_their_end_reasons(records: list[dict[str, Any]]) -> None:
    summary = [(r["event"]["dataset"], r["event"].get("reason")) for r in records]
    assert summary == [
        ("netmeta.flow", "fin"),
        ("netmeta.dns", None),
        ("netmeta.dns", None),
        ("netmeta.flow", "rst"),
        ("netmeta.http", None),
        ("netmeta.tls", None),
        ("netmeta.flow", "fin"),
        ("netmeta.flow", "fin"),
        ("netmeta.flow", "idle_timeout"),
        ("netmeta.flow", "idle_timeout"),
        ("netmeta.flow", "capture_end"),
    ]


def test_tcp_flow_ended_by_fin(records: list[dict[str, Any]]) -> None:
    # 5 packets from the initiator (SYN, ACK, 100 bytes of data, FIN, ACK), 2 back (SYN-ACK,
    # FIN); the last ACK came after both FINs and still belongs to the flow.
    assert _without_id(records[0]) == _flow(
        0.0, 0.022, "fin",
        {"ip": CLIENT, "port": 1122, "packets": 5, "bytes": 4 * 40 + 140},
        {"ip": SERVER, "port": 3344, "packets": 2, "bytes": 2 * 40},
        {
            "iana_number": "6", "type": "ipv4", "transport": "tcp", "packets": 7, "bytes": 380,
            # Community ID spec's published vector for this 5-tuple.
            "community_id": "1:wCb3OG7yAFWelaUydu0D+125CLM=",
        },
        {"netmeta": {
            "tcp_flags": ["ACK", "PSH", "SYN", "FIN"],
            "source": {"tcp_flags": ["ACK", "PSH", "SYN", "FIN"]},
            "destination": {"tcp_flags": ["ACK", "SYN", "FIN"]},
        }},
    )  # fmt: skip


def test_tcp_flow_ended_by_rst(records: list[dict[str, Any]]) -> None:
    flow = _without_id(records[3])
    assert flow["event"]["reason"] == "rst"
    assert flow["source"] == {"ip": CLIENT, "port": 1123, "packets": 1, "bytes": 40}
    assert flow["destination"] == {"ip": SERVER, "port": 23, "packets": 1, "bytes": 40}
    assert flow["netmeta"]["source"]["tcp_flags"] == ["SYN"]
    assert flow["netmeta"]["destination"]["tcp_flags"] == ["ACK", "RST"]
    assert flow["@timestamp"] == iso(1.001)


def test_udp_flow_ended_by_idle_timeout(records: list[dict[str, Any]]) -> None:
    assert _without_id(records[8]) == _flow(
        2.0, 2.5, "idle_timeout",
        {"ip": CLIENT, "port": 1122, "packets": 1, "bytes": 48},
        {"ip": SERVER, "port": 3344, "packets": 1, "bytes": 58},
        {
            "iana_number": "17", "type": "ipv4", "transport": "udp", "packets": 2, "bytes": 106,
            "community_id": "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
        },
    )  # fmt: skip


def test_icmp_echo_open_at_capture_end(records: list[dict[str, Any]]) -> None:
    flow = _without_id(records[10])
    assert flow["event"]["reason"] == "capture_end"
    assert flow["source"] == {"ip": CLIENT, "packets": 1, "bytes": 28}
    assert flow["destination"] == {"ip": SERVER, "packets": 1, "bytes": 28}
    assert flow["network"]["community_id"] == "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="
    assert flow["network"]["transport"] == "icmp"


def test_dns_query_and_answer(records: list[dict[str, Any]]) -> None:
    query, answer = records[1], records[2]
    question = {"name": "portal.example.gov.vn", "type": "A", "class": "IN"}
    assert query["dns"] == {
        "id": "4660", "type": "query", "op_code": "QUERY", "header_flags": ["RD"],
        "question": question,
    }  # fmt: skip
    assert answer["dns"] == {
        "id": "4660", "type": "answer", "op_code": "QUERY", "header_flags": ["RD", "RA"],
        "response_code": "NOERROR", "question": question,
        "answers": [
            {"name": "portal.example.gov.vn", "type": "A", "class": "IN", "ttl": 300,
             "data": "10.0.0.80"},
        ],
        "resolved_ip": ["10.0.0.80"],
    }  # fmt: skip
    for record, stamp, action in ((query, 3.0, "dns_query"), (answer, 3.01, "dns_answer")):
        assert record["@timestamp"] == iso(stamp)
        assert record["event"]["action"] == action
        assert record["event"]["type"] == ["protocol"]
        assert record["source"] == {"ip": LAN, "port": 40000}
        assert record["destination"] == {"ip": "10.0.0.53", "port": 53}
        assert record["network"]["protocol"] == "dns"
    dns_flow = records[9]
    assert dns_flow["network"]["protocol"] == "dns"
    assert dns_flow["network"]["community_id"] == query["network"]["community_id"]


def test_http_request_and_response_in_one_record(records: list[dict[str, Any]]) -> None:
    http = records[4]
    assert http["@timestamp"] == iso(4.01)
    assert http["url"] == {
        "original": "/portal/login.php?id=1", "path": "/portal/login.php", "query": "id=1",
        "domain": "portal.example.gov.vn", "port": 8080,
    }  # fmt: skip
    assert http["http"] == {
        "request": {"method": "GET"},
        "version": "1.1",
        "response": {"status_code": 403, "mime_type": "text/html"},
    }
    assert http["user_agent"] == {"original": "sqlmap/1.8"}
    assert http["event"]["outcome"] == "failure"
    assert http["source"] == {"ip": LAN, "port": 40001}
    assert http["destination"] == {"ip": "10.0.0.80", "port": 8080}
    assert records[6]["network"]["protocol"] == "http"


def _ja3_by_definition() -> str:
    """JA3 from the values the test put in the ClientHello (not from the bytes): the version
    as a decimal, then ciphers, extensions, groups and point formats, GREASE left out."""

    def grease(value: int) -> bool:
        return value in {0x0A0A + 0x1010 * i for i in range(16)}

    text = ",".join(
        [
            "771",
            "-".join(str(v) for v in CIPHERS if not grease(v)),
            "-".join(str(v) for v in EXTENSION_ORDER if not grease(v)),
            "-".join(str(v) for v in GROUPS if not grease(v)),
            "-".join(str(v) for v in POINT_FORMATS),
        ]
    )
    assert text == "771,4865-4866-49199-49200,0-10-11-13-16-43,29-23-24,0"
    return hashlib.md5(text.encode()).hexdigest()


def test_tls_hellos_give_sni_version_and_ja3(records: list[dict[str, Any]]) -> None:
    tls = records[5]
    assert tls["@timestamp"] == iso(5.02)
    assert tls["tls"]["client"]["server_name"] == SNI
    assert tls["tls"]["client"]["ja3"] == _ja3_by_definition()
    assert tls["tls"]["client"]["supported_ciphers"] == [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ]
    # JA4: TCP, TLS 1.3 offered, SNI present, 4 ciphers, 6 extensions, ALPN "h2".
    assert tls["tls"]["client"]["ja4"].startswith("t13d0406h2_")
    assert tls["tls"]["version"] == "1.3"
    assert tls["tls"]["version_protocol"] == "tls"
    assert tls["tls"]["cipher"] == "TLS_AES_128_GCM_SHA256"
    assert tls["destination"] == {"ip": "10.0.0.43", "port": 443}
    assert records[7]["network"]["protocol"] == "tls"


def test_ids_are_unique_and_a_replay_gives_the_same_ones(tmp_path: Path) -> None:
    path = tmp_path / "known.pcap"
    wrpcap(str(path), conversations())
    first = [r["event"]["id"] for r in _replay(path)]
    again = [r["event"]["id"] for r in _replay(path)]
    assert first == again
    assert len(set(first)) == len(first)
    other_sensor = FlowSettings(sensor_id="sensor-hcm-1")
    assert not set(first) & {r["event"]["id"] for r in _replay(path, other_sensor)}


def test_pcapng_gives_the_same_records_as_pcap(tmp_path: Path) -> None:
    classic, ng = tmp_path / "known.pcap", tmp_path / "known.pcapng"
    wrpcap(str(classic), conversations())
    writer = PcapNgWriter(str(ng))
    for packet in conversations():
        writer.write(packet)
    writer.close()
    assert _replay(ng) == _replay(classic)


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_full_table_reports_the_least_recent_flow_and_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "scan.pcap"
    wrpcap(str(path), port_scan(ports=10))  # ten flows, each closed by RST
    before = _sample("soc_netmeta_flows_evicted_total")
    # Open flows (SYNs only) overflow a table of 4: six are evicted while still open.
    syns = [p for p in port_scan(ports=10) if p["TCP"].flags == "S"]
    wrpcap(str(path), syns)
    records = _replay(path, FlowSettings(sensor_id="s", max_flows=4))
    reasons = [r["event"]["reason"] for r in records]
    assert reasons == ["table_full"] * 6 + ["capture_end"] * 4
    evicted_ports = [r["destination"]["port"] for r in records[:6]]
    assert evicted_ports == [1000, 1001, 1002, 1003, 1004, 1005]
    assert _sample("soc_netmeta_flows_evicted_total") - before == 6


def test_non_ip_and_broken_frames_are_counted_not_fatal(tmp_path: Path) -> None:
    from scapy.layers.l2 import ARP, Ether

    path = tmp_path / "odd.pcap"
    good = conversations()[:3]
    broken = good[0].copy()
    wrpcap(str(path), [Ether() / ARP(), *good])
    raw = path.read_bytes()
    # Append a record whose frame is cut inside the IP header.
    frame = bytes(broken)[:20]
    header = (1_795_000_000).to_bytes(4, "little") + (0).to_bytes(4, "little")
    header += len(frame).to_bytes(4, "little") + (60).to_bytes(4, "little")
    path.write_bytes(raw + header + frame)
    not_ip = _sample("soc_netmeta_packets_total", {"outcome": "not_ip"})
    truncated = _sample("soc_dropped_total", {"stage": "netmeta", "reason": "truncated"})
    records = _replay(path)
    assert [r["event"]["reason"] for r in records] == ["capture_end"]
    assert records[0]["source"]["packets"] == 2
    assert _sample("soc_netmeta_packets_total", {"outcome": "not_ip"}) - not_ip == 1
    assert (
        _sample("soc_dropped_total", {"stage": "netmeta", "reason": "truncated"}) - truncated == 1
    )


def test_a_file_that_is_not_a_capture_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a pcap\n" * 10)
    with pytest.raises(CaptureError, match=r"notes\.txt"):
        list(read_pcap(path))


async def test_sensor_publishes_ecs_records_with_the_agency(tmp_path: Path) -> None:
    path = tmp_path / "known.pcap"
    wrpcap(str(path), conversations())
    bus = MemoryBus()
    await bus.start()
    sources = [
        SourceConfig(id="lan", agency="so-tttt", networks=("10.0.0.0/24",)),
        SourceConfig(id="dmz", agency="ubnd", networks=("5.6.7.0/24",)),
    ]
    sensor = Sensor(bus, SETTINGS, Organizations(sources), batch_size=3)
    await sensor.replay([path])
    consumer = await bus.subscribe(RAW, "test")
    delivered = await consumer.poll(100, 0.1)
    assert len(delivered) == 11
    agencies, directions = [], []
    for message in delivered:
        record = message.value
        assert message.key == "sensor-hn-1"
        assert record["format"] == "ecs"
        assert record["source"] == {"type": "netmeta", "sensor": "sensor-hn-1", "file": str(path)}
        document = orjson.loads(record["data"])
        assert record["id"] == document["event"]["id"]
        agencies.append(record.get("organization", {}).get("id"))
        directions.append(document["network"]["direction"])
    # 1.2.3.4 is nobody's, so its flows with 5.6.7.8 belong to the destination's agency.
    assert agencies == ["ubnd", "so-tttt", "so-tttt", "ubnd", "so-tttt", "so-tttt", "so-tttt",
                        "so-tttt", "ubnd", "so-tttt", "ubnd"]  # fmt: skip
    # 1.2.3.4 is outside every agency's networks; 10.0.0.0/24 and 5.6.7.0/24 are inside.
    assert directions == ["inbound", "internal", "internal", "inbound", "internal", "internal",
                          "internal", "internal", "inbound", "internal", "inbound"]  # fmt: skip
    fixed = Sensor(bus, SETTINGS, Organizations(sources, "dmz"))
    messages = fixed.records([orjson.loads(delivered[1].value["data"])], {})
    assert messages[0].value["organization"] == {"id": "ubnd"}
    await bus.close()


def test_addresses_of_no_agency_are_not_logged_as_strangers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Unlike a syslog sender in no source, an internet address on the wire is normal."""
    organizations = Organizations([SourceConfig(id="lan", agency="a", networks=("10.0.0.0/8",))])
    document = {"source": {"ip": "198.51.100.1"}, "destination": {"ip": "10.1.2.3"}, "network": {}}
    with caplog.at_level(logging.WARNING):
        assert organizations.attribute(document) == "a"
    assert document["network"]["direction"] == "inbound"
    assert caplog.records == []
