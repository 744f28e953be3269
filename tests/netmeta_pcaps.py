"""Packets the netmeta tests write into pcaps with scapy: known conversations with known
answers (shared by the pcap, live-capture and end-to-end tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.tls.all import TLS, TLSClientHello, TLSServerHello
from scapy.layers.tls.extensions import (
    ProtocolName,
    ServerName,
    TLS_Ext_ALPN,
    TLS_Ext_ServerName,
    TLS_Ext_SignatureAlgorithms,
    TLS_Ext_SupportedGroups,
    TLS_Ext_SupportedPointFormat,
    TLS_Ext_SupportedVersion_CH,
    TLS_Ext_SupportedVersion_SH,
)
from scapy.packet import Packet, Raw

T0 = 1_795_000_000.0
CLIENT, SERVER = "1.2.3.4", "5.6.7.8"
LAN = "10.0.0.2"
SNI = "dichvucong.example.gov.vn"
#: The ClientHello's lists as sent (GREASE values included, as browsers send them).
CIPHERS = [0x0A0A, 0x1301, 0x1302, 0xC02F, 0xC030]
GROUPS = [0x2A2A, 29, 23, 24]
POINT_FORMATS = [0]
EXTENSION_ORDER = [0, 10, 11, 13, 16, 43]
HTTP_REQUEST = (
    b"GET /portal/login.php?id=1 HTTP/1.1\r\nHost: portal.example.gov.vn:8080\r\n"
    b"User-Agent: sqlmap/1.8\r\nAccept: */*\r\n\r\n"
)
HTTP_RESPONSE = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"


def iso(offset: float) -> str:
    moment = datetime.fromtimestamp(round((T0 + offset) * 1e6) / 1e6, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def at(packet: Packet, offset: float) -> Packet:
    packet.time = T0 + offset
    return packet


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, payload: bytes = b"") -> Packet:
    packet = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)
    return packet / Raw(payload) if payload else packet


def client_hello() -> bytes:
    hello = TLSClientHello(
        version=0x0303,
        ciphers=CIPHERS,
        comp=[0],
        ext=[
            TLS_Ext_ServerName(servernames=[ServerName(servername=SNI.encode())]),
            TLS_Ext_SupportedGroups(groups=GROUPS),
            TLS_Ext_SupportedPointFormat(ecpl=POINT_FORMATS),
            TLS_Ext_SignatureAlgorithms(sig_algs=[0x0403, 0x0804]),
            TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"h2")]),
            TLS_Ext_SupportedVersion_CH(versions=[0x0304, 0x0303]),
        ],
    )
    return bytes(TLS(version=0x0301, msg=[hello]))


def server_hello() -> bytes:
    hello = TLSServerHello(
        version=0x0303, cipher=0x1301, ext=[TLS_Ext_SupportedVersion_SH(version=0x0304)]
    )
    return bytes(TLS(version=0x0303, msg=[hello]))


def handshake(
    src: str, dst: str, sport: int, dport: int, start: float, exchange: list[tuple[bool, bytes]]
) -> list[Packet]:
    """A whole TCP connection: handshake, payloads (True: from the client), FIN both ways."""
    packets = [
        at(tcp(src, dst, sport, dport, "S"), start),
        at(tcp(dst, src, dport, sport, "SA"), start + 0.001),
        at(tcp(src, dst, sport, dport, "A"), start + 0.002),
    ]
    moment = start + 0.01
    for from_client, payload in exchange:
        if from_client:
            packets.append(at(tcp(src, dst, sport, dport, "PA", payload), moment))
        else:
            packets.append(at(tcp(dst, src, dport, sport, "PA", payload), moment))
        moment += 0.01
    packets += [
        at(tcp(src, dst, sport, dport, "FA"), moment),
        at(tcp(dst, src, dport, sport, "FA"), moment + 0.001),
        at(tcp(src, dst, sport, dport, "A"), moment + 0.002),
    ]
    return packets


def conversations() -> list[Packet]:
    """One of each: TCP ended by FIN, TCP ended by RST, UDP ended by idle timeout, DNS query and
    answer, HTTP request and response, TLS hellos, and an ICMP echo open at capture end."""
    web = [(True, HTTP_REQUEST), (False, HTTP_RESPONSE)]
    tls = [(True, client_hello()), (False, server_hello())]
    dns_query = DNS(id=4660, rd=1, qd=DNSQR(qname="portal.example.gov.vn", qtype="A"))
    dns_answer = DNS(
        id=4660,
        qr=1,
        rd=1,
        ra=1,
        qd=DNSQR(qname="portal.example.gov.vn", qtype="A"),
        an=DNSRR(rrname="portal.example.gov.vn", type="A", ttl=300, rdata="10.0.0.80"),
    )
    return [
        *handshake(CLIENT, SERVER, 1122, 3344, 0.0, [(True, b"x" * 100)]),
        at(tcp(CLIENT, SERVER, 1123, 23, "S"), 1.0),
        at(tcp(SERVER, CLIENT, 23, 1123, "RA"), 1.001),
        at(Ether() / IP(src=CLIENT, dst=SERVER) / UDP(sport=1122, dport=3344) / (b"u" * 20), 2.0),
        at(Ether() / IP(src=SERVER, dst=CLIENT) / UDP(sport=3344, dport=1122) / (b"v" * 30), 2.5),
        at(Ether() / IP(src=LAN, dst="10.0.0.53") / UDP(sport=40000, dport=53) / dns_query, 3.0),
        at(Ether() / IP(src="10.0.0.53", dst=LAN) / UDP(sport=53, dport=40000) / dns_answer, 3.01),
        *handshake(LAN, "10.0.0.80", 40001, 8080, 4.0, web),
        *handshake(LAN, "10.0.0.43", 40002, 443, 5.0, tls),
        at(Ether() / IP(src=CLIENT, dst=SERVER) / ICMP(type=8, id=1, seq=1), 100.0),
        at(Ether() / IP(src=SERVER, dst=CLIENT) / ICMP(type=0, id=1, seq=1), 100.001),
    ]  # fmt: skip


def port_scan(target: str = "10.10.0.5", ports: int = 30, start: float = 0.0) -> list[Packet]:
    """A SYN scan: one SYN per port from one address, the target resetting each."""
    packets: list[Packet] = []
    for index in range(ports):
        port = 1000 + index
        moment = start + index * 0.05
        packets.append(at(tcp("203.0.113.99", target, 40000 + index, port, "S"), moment))
        packets.append(at(tcp(target, "203.0.113.99", port, 40000 + index, "RA"), moment + 0.001))
    return packets


def field(document: dict[str, Any], path: str) -> Any:
    node: Any = document
    for part in path.split("."):
        node = node[part]
    return node
