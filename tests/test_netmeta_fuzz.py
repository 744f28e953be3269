"""Hostile packets: arbitrary bytes never crash the sensor's decoders or its flow table, and the
parsers fail only with their own error types (which the flow table counts)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from collectors.netmeta import dns, http, tls
from collectors.netmeta.flows import FlowSettings, FlowTable
from collectors.netmeta.packets import LINKTYPE_ETHERNET, Decoded, Skipped, decode
from tests.netmeta_pcaps import client_hello

_TCP = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=443))
_UDP = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=53))


@given(st.binary(max_size=200), st.sampled_from([0, 1, 12, 101, 113, 228, 229, 276, 999]))
def test_decode_never_raises(frame: bytes, linktype: int) -> None:
    assert isinstance(decode(frame, linktype), Decoded | Skipped)


@given(st.binary(max_size=600))
def test_dns_parse_fails_only_with_its_own_error(payload: bytes) -> None:
    try:
        fields, _ = dns.parse(payload)
    except dns.DnsError:
        return
    assert fields["type"] in ("query", "answer")


@given(st.binary(max_size=600))
def test_tls_parsers_fail_only_with_their_own_error(payload: bytes) -> None:
    for parser in (tls.parse_client_hello, tls.parse_server_hello):
        with contextlib.suppress(tls.TlsError):
            parser(b"\x16\x03\x01" + payload)


@given(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=8))
def test_a_corrupted_client_hello_never_escapes_the_parser(offset: int, junk: bytes) -> None:
    hello = bytearray(client_hello())
    offset %= len(hello)
    hello[offset : offset + len(junk)] = junk
    with contextlib.suppress(tls.TlsError):
        tls.parse_client_hello(bytes(hello))


@given(st.binary(max_size=400))
def test_http_parsers_never_raise(payload: bytes) -> None:
    http.parse_request(b"GET " + payload)
    http.parse_response(b"HTTP/1." + payload)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=12))
def test_flow_table_takes_any_payloads(packets: list[tuple[bool, bytes]]) -> None:
    table = FlowTable(FlowSettings(sensor_id="fuzz"))
    for index, (over_tcp, payload) in enumerate(packets):
        frame = (_TCP if over_tcp else _UDP) + payload
        decoded = decode(frame, LINKTYPE_ETHERNET)
        assert isinstance(decoded, Decoded)
        table.add(1000.0 + index, decoded, frame)
    table.finish()
    flows = [d for d in table.out if d["event"]["dataset"] == "netmeta.flow"]
    assert sum(f["network"]["packets"] for f in flows) == len(packets)
