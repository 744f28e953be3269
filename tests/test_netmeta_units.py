"""The sensor's parsers one by one: Community ID against the spec's published vectors, header
decoding of the less common frames, hostile DNS and TLS payloads, and the configuration."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether

from collectors.netmeta import dns, http, tls
from collectors.netmeta.community_id import community_id
from collectors.netmeta.flows import FlowSettings, FlowTable
from collectors.netmeta.packets import (
    FRAGMENT,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    MALFORMED,
    NOT_IP,
    TRUNCATED,
    Decoded,
    decode,
    icmp_ports,
)
from soc.config import ConfigError, load_config
from tests.netmeta_pcaps import client_hello


def _ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


@pytest.mark.parametrize(
    ("src", "dst", "proto", "sport", "dport", "seed", "expected"),
    [
        ("1.2.3.4", "5.6.7.8", 6, 1122, 3344, 0, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
        ("5.6.7.8", "1.2.3.4", 6, 3344, 1122, 0, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
        ("1.2.3.4", "5.6.7.8", 17, 1122, 3344, 0, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
        ("1.2.3.4", "5.6.7.8", 1, *icmp_ports(8, 0, False), 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
        ("5.6.7.8", "1.2.3.4", 1, *icmp_ports(0, 0, False), 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
        (
            "fe80:1:203:405:607:809:a0b:c0d", "fe80:1011:1213:1415:1617:1819:1a1b:1c1d",
            58, *icmp_ports(128, 0, True), 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=",
        ),
        ("1.2.3.4", "5.6.7.8", 46, 0, 0, 0, "1:ikv3kmf89luf73WPz1jOs49S768="),
        ("1.2.3.4", "5.6.7.8", 6, 1122, 3344, 1, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
        ("1.2.3.4", "5.6.7.8", 17, 1122, 3344, 1, "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
        ("1.2.3.4", "5.6.7.8", 1, *icmp_ports(8, 0, False), 1, "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
    ],
)  # fmt: skip
def test_community_id_matches_the_published_vectors(
    src: str, dst: str, proto: int, sport: int, dport: int, seed: int, expected: str
) -> None:
    assert community_id(_ip(src), _ip(dst), proto, sport, dport, seed) == expected


def test_vlan_tagged_cooked_and_raw_frames_decode_alike() -> None:
    inner = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=443, flags="S")
    plain = decode(bytes(Ether() / inner), LINKTYPE_ETHERNET)
    assert isinstance(plain, Decoded)
    assert plain[:7] == (_ip("10.0.0.1"), _ip("10.0.0.2"), 6, 1234, 443, 40, 0x02)
    doubly_tagged = Ether() / Dot1Q(vlan=10) / Dot1Q(vlan=20) / inner
    for frame, linktype in (
        (bytes(doubly_tagged), LINKTYPE_ETHERNET),
        (bytes(CookedLinux(proto=0x0800) / inner), LINKTYPE_LINUX_SLL),
        (bytes(inner), LINKTYPE_RAW),
    ):
        decoded = decode(frame, linktype)
        assert isinstance(decoded, Decoded)
        assert decoded[:7] == plain[:7]


def test_ipv6_extension_headers_are_walked_and_later_fragments_skipped() -> None:
    packet = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / UDP(sport=5353, dport=53)
    )
    decoded = decode(bytes(Ether() / packet), LINKTYPE_ETHERNET)
    assert isinstance(decoded, Decoded)
    assert (decoded.proto, decoded.sport, decoded.dport) == (17, 5353, 53)
    later = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(offset=100, nh=17)
    assert decode(bytes(Ether() / later / (b"x" * 8)), LINKTYPE_ETHERNET) == FRAGMENT
    v4_later = IP(src="10.0.0.1", dst="10.0.0.2", frag=100, proto=17) / (b"x" * 8)
    assert decode(bytes(Ether() / v4_later), LINKTYPE_ETHERNET) == FRAGMENT


def test_short_and_foreign_frames_never_raise() -> None:
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP())
    whole = decode(frame, LINKTYPE_ETHERNET)
    assert isinstance(whole, Decoded)
    flags_end = 14 + 20 + 14  # Ethernet, IP, TCP up to its flags: all the sensor reads
    for cut in range(len(frame)):
        decoded = decode(frame[:cut], LINKTYPE_ETHERNET)
        if cut < flags_end:
            assert decoded in (TRUNCATED, NOT_IP, MALFORMED)
        else:
            assert isinstance(decoded, Decoded)
            assert decoded[:7] == whole[:7]
    assert decode(frame[:20], LINKTYPE_ETHERNET) == TRUNCATED
    assert decode(bytes(Ether(type=0x0806) / (b"\x00" * 28)), LINKTYPE_ETHERNET) == NOT_IP


def test_dns_compression_loop_is_refused_not_followed_forever() -> None:
    header = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)
    looping = header + b"\xc0\x0c" + b"\x00\x01\x00\x01"  # the name points at itself
    with pytest.raises(dns.DnsError, match="loop"):
        dns.parse(looping)
    with pytest.raises(dns.DnsError):
        dns.parse(b"\x00\x01")


def test_dns_answers_cut_short_keep_the_ones_before() -> None:
    answers = [DNSRR(rrname="a.example", rdata=f"10.0.0.{i}") for i in (1, 2)]
    message = DNS(id=9, qr=1, qd=DNSQR(qname="a.example"), an=answers)
    raw = bytes(message)
    fields, truncated = dns.parse(raw[:-3])
    assert truncated
    assert fields["resolved_ip"] == ["10.0.0.1"]
    nx = DNS(id=3, qr=1, rcode=3, qd=DNSQR(qname="nothing.example", qtype="AAAA"))
    fields, truncated = dns.parse(bytes(nx))
    assert not truncated
    assert fields["response_code"] == "NXDOMAIN"
    assert fields["question"]["type"] == "AAAA"


def test_client_hello_cut_anywhere_is_an_error_not_a_crash() -> None:
    hello = client_hello()
    assert tls.parse_client_hello(hello).server_name
    for cut in range(len(hello)):
        with pytest.raises(tls.TlsError):
            tls.parse_client_hello(hello[:cut])


def test_ja4_parts_follow_the_definition() -> None:
    hello = tls.parse_client_hello(client_hello())
    prefix, ciphers, extensions = hello.ja4().split("_")
    assert prefix == "t13d0406h2"
    import hashlib

    sorted_ciphers = ",".join(f"{v:04x}" for v in sorted([0x1301, 0x1302, 0xC02F, 0xC030]))
    assert ciphers == hashlib.sha256(sorted_ciphers.encode()).hexdigest()[:12]
    # SNI (0) and ALPN (16) are left out of the hash; signature algorithms follow in order.
    text = "000a,000b,000d,002b_0403,0804"
    assert extensions == hashlib.sha256(text.encode()).hexdigest()[:12]


def _ids(text: str) -> list[int]:
    return [int(part, 16) for part in text.split(",")]


def test_ja4_matches_the_published_worked_examples() -> None:
    chrome = tls.ClientHello(
        version=0x0303,
        ciphers=_ids("1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035"),
        extensions=_ids("001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015"),
        signature_algorithms=_ids("0403,0804,0401,0503,0805,0501,0806,0601"),
        supported_versions=[0x0A0A, 0x0304, 0x0303],
        alpn=["h2", "http/1.1"],
        server_name="example.com",
    )  # fmt: skip
    assert chrome.ja4() == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    bare = tls.ClientHello(version=0x0303, ciphers=[0x0A0A, 0x0035], extensions=[0x0000])
    assert bare.ja4() == "t12d010100_692296a295db_000000000000"


def test_http_heads_of_proxies_and_odd_requests() -> None:
    proxied = http.parse_request(
        b"GET http://example.vn:8080/a?b=c HTTP/1.1\r\nHost: example.vn:8080\r\n\r\n"
    )
    assert proxied is not None
    assert proxied["url"]["domain"] == "example.vn"
    assert proxied["url"]["path"] == "/a"
    assert proxied["url"]["query"] == "b=c"
    assert http.parse_request(b"GET / SPDY/3\r\n\r\n") is None
    assert http.parse_response(b"HTTP/1.1 abc\r\n\r\n") is None


def test_a_flow_picked_up_mid_stream_takes_the_client_from_the_ports() -> None:
    table = FlowTable(FlowSettings(sensor_id="s"))
    # The first packet seen is the server's answer (from port 443 to an ephemeral port).
    frame = bytes(
        Ether() / IP(src="10.0.0.9", dst="10.0.0.1") / TCP(sport=443, dport=50000, flags="A")
    )
    decoded = decode(frame, LINKTYPE_ETHERNET)
    assert isinstance(decoded, Decoded)
    table.add(1.0, decoded, frame)
    table.finish()
    (flow,) = table.out
    assert flow["source"] == {"ip": "10.0.0.1", "port": 50000, "packets": 0, "bytes": 0}
    assert flow["destination"] == {"ip": "10.0.0.9", "port": 443, "packets": 1, "bytes": 40}


def test_active_timeout_reports_a_long_flow_in_pieces() -> None:
    table = FlowTable(FlowSettings(sensor_id="s", active_timeout=60, idle_timeout=30))
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4000, dport=5000))
    decoded = decode(frame, LINKTYPE_ETHERNET)
    assert isinstance(decoded, Decoded)
    for second in range(0, 150, 10):
        table.add(1000.0 + second, decoded, frame)
    table.finish()
    assert [f["event"]["reason"] for f in table.out] == [
        "active_timeout", "active_timeout", "capture_end",
    ]  # fmt: skip
    assert [f["source"]["packets"] for f in table.out] == [6, 6, 3]
    assert len({f["event"]["id"] for f in table.out}) == 3


def test_netmeta_configuration_is_checked() -> None:
    config = load_config(
        environ={"SOC_NETMETA__INTERFACE": "eth1", "SOC_NETMETA__MAX_FLOWS": "5000"}
    )
    assert (config.netmeta.interface, config.netmeta.max_flows) == ("eth1", 5000)
    with pytest.raises(ConfigError, match=r"netmeta\.source_id"):
        load_config(environ={"SOC_NETMETA__SOURCE_ID": "nobody"})
    with pytest.raises(ConfigError, match=r"netmeta\.max_flows"):
        load_config(environ={"SOC_NETMETA__MAX_FLOWS": "0"})


def test_the_same_addresses_on_two_vlans_are_two_flows() -> None:
    """Agencies behind one trunk may reuse private ranges: the VLAN keeps them apart."""
    table = FlowTable(FlowSettings(sensor_id="s"))
    inner = IP(src="192.168.1.10", dst="192.168.1.1") / UDP(sport=5000, dport=161)
    for frame in (
        bytes(Ether() / Dot1Q(vlan=10) / inner),
        bytes(Ether() / Dot1Q(vlan=20) / inner),
        bytes(Ether() / Dot1Q(vlan=20) / Dot1Q(vlan=99) / inner),  # outer tag decides
        bytes(Ether() / inner),
    ):
        decoded = decode(frame, LINKTYPE_ETHERNET)
        assert isinstance(decoded, Decoded)
        table.add(1.0, decoded, frame)
    table.finish()
    found = sorted(
        (f["network"].get("vlan", {}).get("id", "-"), f["source"]["packets"]) for f in table.out
    )
    assert found == [("-", 1), ("10", 1), ("20", 2)]
    ids = {f["event"]["id"] for f in table.out}
    assert len(ids) == 3
    # Community ID leaves the VLAN out, as the spec does: one conversation, one hash.
    assert len({f["network"]["community_id"] for f in table.out}) == 1


def _segment(sport: int, payload: bytes, from_client: bool = True) -> tuple[Decoded, bytes]:
    if from_client:
        packet = IP(src="10.0.0.2", dst="10.0.0.43") / TCP(sport=sport, dport=443, flags="PA")
    else:
        packet = IP(src="10.0.0.43", dst="10.0.0.2") / TCP(sport=443, dport=sport, flags="PA")
    frame = bytes(Ether() / packet / payload)
    decoded = decode(frame, LINKTYPE_ETHERNET)
    assert isinstance(decoded, Decoded)
    return decoded, frame


def test_a_client_hello_over_several_segments_is_gathered() -> None:
    hello = client_hello()
    table = FlowTable(FlowSettings(sensor_id="s"))
    for index, start in enumerate(range(0, len(hello), 40)):
        table.add(1.0 + index / 100, *_segment(40000, hello[start : start + 40]))
    table.finish()
    (tls_record,) = [d for d in table.out if d["event"]["dataset"] == "netmeta.tls"]
    assert tls_record["tls"]["client"]["server_name"] == "dichvucong.example.gov.vn"


def test_unfinished_hellos_and_unanswered_requests_stay_within_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from collectors.netmeta import flows

    monkeypatch.setattr(flows, "_HELLO_BUDGET", 250)
    monkeypatch.setattr(flows, "_PENDING_HTTP_BUDGET", 3)
    table = FlowTable(FlowSettings(sensor_id="s"))
    first_part = client_hello()[:100]  # each flow sends the start of a hello, never the rest
    for port in range(40000, 40005):
        table.add(1.0, *_segment(port, first_part))
    assert table._hello_bytes == 200
    request = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    for port in range(41000, 41005):
        table.add(2.0, *_segment(port, request))
    assert table._pending_http == 3
    # Past the budget a request is reported at once, without waiting for its response.
    assert len([d for d in table.out if d["event"]["dataset"] == "netmeta.http"]) == 2
    table.finish()
    assert (table._hello_bytes, table._pending_http) == (0, 0)
    assert len([d for d in table.out if d["event"]["dataset"] == "netmeta.http"]) == 5
    assert table.take_counts()["parse_error_tls"] == 5  # 3 refused, 2 never completed


def test_doctor_names_what_live_capture_lacks(tmp_path: Path) -> None:
    from collectors.netmeta.preflight import capture_problems
    from soc.doctor import check_netmeta

    sysfs = tmp_path / "net"
    (sysfs / "eth1").mkdir(parents=True)
    assert capture_problems("eth1", "", sysfs) == []  # the tests run as root
    (missing,) = capture_problems("eth9", "", sysfs)
    assert "no interface 'eth9'" in missing
    assert "eth1" in missing
    assert check_netmeta(load_config(environ={})).status == "SKIP"
    check = check_netmeta(load_config(environ={"SOC_NETMETA__INTERFACE": "no-such-if0"}))
    assert check.status == "FAIL"
    assert "no interface 'no-such-if0'" in check.fix
    assert check_netmeta(load_config(environ={"SOC_NETMETA__INTERFACE": "lo"})).status == "OK"
