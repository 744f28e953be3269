"""Sensor packets per second from a pcap, against scapy's full dissection of the same packets.

The bench writes a pcap of mixed traffic (web sessions, TLS handshakes and bulk, DNS queries
and answers, UDP chatter; many short flows, as on an agency's uplink) and measures, in the same
run so the ratios hold on any machine:
- baseline: scapy's `PcapReader`, which dissects every layer of every packet (on a sample,
  since it is two orders of magnitude slower);
- scapy raw reader: frames out of the file with scapy's `RawPcapReader`, no dissection;
- read only: the frames out of the file with our chunked reader, the floor of the replay;
- decode: our struct decoding of link, IP and transport headers;
- sensor: decode, flow table, DNS/HTTP/TLS parsing and the ECS documents;
- sensor + records: also each document serialized as the raw record published on the bus.
Never fails on a time.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scapy.layers.dns import DNS, DNSQR, DNSRR  # noqa: E402
from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Packet, Raw  # noqa: E402
from scapy.utils import PcapReader, RawPcapReader, RawPcapWriter  # noqa: E402

from collectors.netmeta.flows import FlowSettings, FlowTable  # noqa: E402
from collectors.netmeta.packets import Decoded, decode  # noqa: E402
from collectors.netmeta.pcapfile import read_pcap  # noqa: E402
from collectors.netmeta.sensor import Organizations, Sensor, process_frames  # noqa: E402
from collectors.netmeta.tls import cipher_name  # noqa: E402
from tests.netmeta_pcaps import HTTP_REQUEST, HTTP_RESPONSE, client_hello, server_hello  # noqa: E402

PACKETS = int(os.environ.get("BENCH_NETMETA_PACKETS", "200000"))
BASELINE_SAMPLE = int(os.environ.get("BENCH_NETMETA_BASELINE", "20000"))
CLIENT, CPORT = "10.0.0.1", 1111


def _session(server: str, port: int, exchange: list[tuple[bool, bytes]]) -> list[Packet]:
    def seg(from_client: bool, flags: str, payload: bytes = b"") -> Packet:
        src, dst, sport, dport = (
            (CLIENT, server, CPORT, port) if from_client else (server, CLIENT, port, CPORT)
        )
        packet = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)
        return packet / Raw(payload) if payload else packet

    packets = [seg(True, "S"), seg(False, "SA"), seg(True, "A")]
    for from_client, payload in exchange:
        packets += [seg(from_client, "PA", payload), seg(not from_client, "A")]
    return [*packets, seg(True, "FA"), seg(False, "FA"), seg(True, "A")]


def templates() -> list[list[bytes]]:
    """Conversations as frames, client 10.0.0.1:1111; copies get their own client address."""
    dns_q = DNS(id=1, rd=1, qd=DNSQR(qname="dichvucong.example.gov.vn"))
    dns_a = DNS(
        id=1, qr=1, rd=1, ra=1, qd=DNSQR(qname="dichvucong.example.gov.vn"),
        an=DNSRR(rrname="dichvucong.example.gov.vn", rdata="10.1.0.10", ttl=60),
    )  # fmt: skip
    udp = Ether() / IP(src=CLIENT, dst="10.1.0.53") / UDP(sport=CPORT, dport=53)
    back = Ether() / IP(src="10.1.0.53", dst=CLIENT) / UDP(sport=53, dport=CPORT)
    chatter = Ether() / IP(src=CLIENT, dst="10.1.0.9") / UDP(sport=CPORT, dport=5000)
    bulk = [(False, b"b" * 1400)] * 12
    conversations = [
        _session("10.1.0.80", 80, [(True, HTTP_REQUEST), (False, HTTP_RESPONSE)]),
        _session("10.1.0.43", 443, [(True, client_hello()), (False, server_hello()), *bulk]),
        _session("10.1.0.44", 8443, bulk),
        [udp / dns_q, back / dns_a],
        [chatter / Raw(b"c" * 200)] * 4,
    ]
    return [[bytes(p) for p in conversation] for conversation in conversations]


def write_pcap(path: Path, count: int) -> int:
    """`count` packets (about), conversations interleaved four at a time, 20 us apart."""
    convs = templates()
    client = bytes(map(int, CLIENT.split(".")))
    writer = RawPcapWriter(str(path), linktype=1)
    writer.write_header(None)
    written = 0
    index = 0
    now = 1_795_000_000.0
    while written < count:
        batch = []
        for lane in range(4):
            frames = convs[(index + lane) % len(convs)]
            address = bytes((10, 2, (index >> 8) & 0xFF, index & 0xFF))
            port = struct.pack("!H", 1024 + (index * 4 + lane) % 60000)
            batch.append([_patch(f, client, address, port) for f in frames])
        index += 1
        while any(batch):
            for frames in batch:
                if frames:
                    now += 20e-6
                    sec = int(now)
                    writer.write_packet(frames.pop(0), sec=sec, usec=int((now - sec) * 1e6))
                    written += 1
    writer.close()
    return written


def _patch(frame: bytes, client: bytes, address: bytes, port: bytes) -> bytes:
    data = bytearray(frame)
    if data[26:30] == client:
        data[26:30], data[34:36] = address, port
    else:
        data[30:34], data[36:38] = address, port
    return bytes(data)


def timed(name: str, packets: int, run: Callable[[], object]) -> float:
    """Packets per CPU second of this process: other work on the machine does not skew it
    (wall time is shown too)."""
    started, cpu = time.perf_counter(), time.process_time()
    run()
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    rate = packets / used
    print(
        f"{name:<34} {packets:>8} packets {used:7.2f} s cpu {elapsed:7.2f} s wall"
        f" {rate:>10,.0f} packets/s per core"
    )
    return rate


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mixed.pcap"
        total = write_pcap(path, PACKETS)
        size = path.stat().st_size
        print(f"pcap: {total} packets, {size / 1e6:.1f} MB, mixed web/TLS/bulk/DNS/UDP flows")
        sample = min(BASELINE_SAMPLE, total)

        def scapy_full() -> None:
            with PcapReader(str(path)) as reader:
                for seen, _ in enumerate(reader, 1):
                    if seen >= sample:
                        break

        def scapy_raw() -> None:
            with RawPcapReader(str(path)) as reader:
                for _ in reader:
                    pass

        def read_only() -> None:
            for _ in read_pcap(path):
                pass

        def decode_only() -> None:
            for _, frame, linktype in read_pcap(path):
                decode(frame, linktype)

        tables: list[FlowTable] = []

        def sensor() -> None:
            table = FlowTable(FlowSettings(sensor_id="bench"))
            for _ in process_frames(table, read_pcap(path), 4096):
                table.out.clear()
            table.finish()
            tables.append(table)

        documents = [0]

        def sensor_records() -> None:
            table = FlowTable(FlowSettings(sensor_id="bench"))
            publisher = Sensor(None, table.settings, Organizations([]))  # type: ignore[arg-type]
            origin = {"type": "netmeta", "sensor": "bench", "file": str(path)}
            for _ in process_frames(table, read_pcap(path), 4096):
                documents[0] += len(publisher.records(table.out, origin))
                table.out.clear()
            table.finish()
            documents[0] += len(publisher.records(table.out, origin))

        # The TLS cipher-name table is loaded once, at the first hello (a start-up cost).
        cipher_name(0x1301)
        baseline = timed("baseline: scapy full dissection", sample, scapy_full)
        raw = timed("scapy raw reader (no dissection)", total, scapy_raw)
        read = timed("read only (pcap reader)", total, read_only)
        decoded = timed("decode (struct headers)", total, decode_only)
        flows = timed("sensor (flows, DNS/HTTP/TLS, ECS)", total, sensor)
        records = timed("sensor + raw records (JSON)", total, sensor_records)
        sample_frame = next(iter(read_pcap(path)))
        assert isinstance(decode(sample_frame[1], sample_frame[2]), Decoded)
        print(f"records produced: {documents[0]} ({documents[0] / total:.3f} per packet)")
        print(f"ratio sensor / scapy full dissection: {flows / baseline:.1f}x")
        print(f"ratio sensor + records / scapy full dissection: {records / baseline:.1f}x")
        print(f"ratio sensor / read only: {flows / read:.2f} (share of time in the raw reader)")
        print(f"ratio decode / read only: {decoded / read:.2f}")
        print(f"ratio our pcap reader / scapy raw reader: {read / raw:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
