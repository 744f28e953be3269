"""Link, IP, TCP and UDP headers decoded with `struct` straight from the captured bytes.

Full scapy dissection builds a Python object per layer and field: about 6k packets a second on
this machine, far below a busy mirror port. The sensor only needs the 5-tuple, the sizes, the TCP
flags and where the payload starts, so it reads those few fields itself and leaves scapy to the
capture and pcap reading (bench/netmeta.py measures the difference).
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

#: pcap link types (https://www.tcpdump.org/linktypes.html) the sensor decodes.
LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276
#: Old BSD values of DLT_RAW that some files still carry.
_RAW_ALIASES: Final = frozenset({12, 14, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6})

TCP: Final = 6
UDP: Final = 17
ICMP: Final = 1
ICMPV6: Final = 58
SCTP: Final = 132

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80

_ETHERTYPE_IPV4: Final = 0x0800
_ETHERTYPE_IPV6: Final = 0x86DD
_VLAN_TAGS: Final = frozenset({0x8100, 0x88A8, 0x9100})
_IPV6_EXTENSIONS: Final = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_IPV6_FRAGMENT: Final = 44
_IPV6_AH: Final = 51

_U16 = struct.Struct("!H")
_PORTS = struct.Struct("!HH")


class Decoded(NamedTuple):
    """One IP packet as the flow table needs it. ICMP carries type and code in the port slots."""

    src: bytes
    dst: bytes
    proto: int
    sport: int
    dport: int
    #: IP length from the header (not the captured length: a short snap length must not
    #: shrink the byte counts).
    size: int
    tcp_flags: int
    #: Offset of the transport payload in the frame and its length as captured.
    payload_at: int
    payload_len: int
    #: The outer 802.1Q VLAN id, 0 for an untagged frame: a trunk mirror carries agencies
    #: whose private address ranges may overlap, and the VLAN tells them apart.
    vlan: int = 0


class Skipped(NamedTuple):
    """A packet the sensor does not account into any flow, and why (the metric's label)."""

    reason: str


NOT_IP: Final = Skipped("not_ip")
TRUNCATED: Final = Skipped("truncated")
FRAGMENT: Final = Skipped("ip_fragment")
MALFORMED: Final = Skipped("malformed")
UNSUPPORTED_LINK: Final = Skipped("unsupported_link")


def decode(frame: bytes, linktype: int) -> Decoded | Skipped:
    """Decode one captured frame; never raises (a hostile packet only becomes a Skipped)."""
    try:
        offset = _network_offset(frame, linktype)
        if offset < 0:
            return NOT_IP if offset == -1 else UNSUPPORTED_LINK
        vlan = 0
        if offset > 14 and linktype == LINKTYPE_ETHERNET:
            vlan = ((frame[14] & 0x0F) << 8) | frame[15]
        version = frame[offset] >> 4
        if version == 4:
            return _ipv4(frame, offset, vlan)
        if version == 6:
            return _ipv6(frame, offset, vlan)
        return NOT_IP
    except (IndexError, struct.error):
        return TRUNCATED


def _network_offset(frame: bytes, linktype: int) -> int:
    """Where the IP header starts; -1 for a frame that carries no IP, -2 for a link type the
    sensor does not decode."""
    if linktype == LINKTYPE_ETHERNET:
        ethertype = (frame[12] << 8) | frame[13]
        offset = 14
        while ethertype in _VLAN_TAGS:
            ethertype = (frame[offset + 2] << 8) | frame[offset + 3]
            offset += 4
        return offset if ethertype in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else -1
    if linktype in _RAW_ALIASES:
        return 0
    if linktype == LINKTYPE_LINUX_SLL:
        ethertype = (frame[14] << 8) | frame[15]
        return 16 if ethertype in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else -1
    if linktype == LINKTYPE_LINUX_SLL2:
        ethertype = (frame[0] << 8) | frame[1]
        return 20 if ethertype in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6) else -1
    if linktype == LINKTYPE_NULL:
        return 4 if len(frame) > 4 and frame[4] >> 4 in (4, 6) else -1
    return -2


def _ipv4(frame: bytes, at: int, vlan: int) -> Decoded | Skipped:
    header = (frame[at] & 0x0F) * 4
    if header < 20:
        return MALFORMED
    total = (frame[at + 2] << 8) | frame[at + 3]
    if (((frame[at + 6] & 0x1F) << 8) | frame[at + 7]) != 0:
        return FRAGMENT  # a later fragment carries no ports: which flow it is is unknown
    proto = frame[at + 9]
    src = frame[at + 12 : at + 16]
    dst = frame[at + 16 : at + 20]
    if len(dst) < 4:
        return TRUNCATED
    if total < header:
        total = len(frame) - at  # TSO captures show 0 here: the captured size is all we have
    return _transport(frame, src, dst, proto, at + header, total, at + total, vlan)


def _ipv6(frame: bytes, at: int, vlan: int) -> Decoded | Skipped:
    payload = (frame[at + 4] << 8) | frame[at + 5]
    proto = frame[at + 6]
    src = frame[at + 8 : at + 24]
    dst = frame[at + 24 : at + 40]
    if len(dst) < 16:
        return TRUNCATED
    offset = at + 40
    total = payload + 40 if payload else len(frame) - at  # 0: a jumbogram
    end = at + total
    while True:
        if proto in _IPV6_EXTENSIONS:
            proto, offset = frame[offset], offset + (frame[offset + 1] + 1) * 8
        elif proto == _IPV6_FRAGMENT:
            if _U16.unpack_from(frame, offset + 2)[0] & 0xFFF8:
                return FRAGMENT
            proto, offset = frame[offset], offset + 8
        elif proto == _IPV6_AH:
            proto, offset = frame[offset], offset + (frame[offset + 1] + 2) * 4
        else:
            break
    return _transport(frame, src, dst, proto, offset, total, end, vlan)


def _transport(
    frame: bytes, src: bytes, dst: bytes, proto: int, at: int, size: int, end: int, vlan: int
) -> Decoded | Skipped:
    captured_end = min(end, len(frame))
    if proto == TCP:
        sport, dport = _PORTS.unpack_from(frame, at)
        header = (frame[at + 12] >> 4) * 4
        if header < 20:
            return MALFORMED
        start = at + header
        length = max(captured_end - start, 0)
        return Decoded(src, dst, proto, sport, dport, size, frame[at + 13], start, length, vlan)
    if proto in (UDP, SCTP):
        sport, dport = _PORTS.unpack_from(frame, at)
        start = at + (8 if proto == UDP else 12)
        length = max(captured_end - start, 0)
        return Decoded(src, dst, proto, sport, dport, size, 0, start, length, vlan)
    if proto in (ICMP, ICMPV6):
        kind, code = frame[at], frame[at + 1]
        sport, dport = icmp_ports(kind, code, proto == ICMPV6)
        return Decoded(src, dst, proto, sport, dport, size, 0, at + 4, 0, vlan)
    return Decoded(src, dst, proto, 0, 0, size, 0, at, 0, vlan)


#: ICMP request/response types that belong to one conversation (the Community ID spec's
#: table): the request's type is the "source port", its counterpart the "destination port".
_ICMP4_PAIRS: Final = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_PAIRS: Final = {
    128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135,
    130: 131, 131: 130, 139: 140, 140: 139, 144: 145, 145: 144,
}  # fmt: skip


def icmp_ports(kind: int, code: int, v6: bool) -> tuple[int, int]:
    """(type, counterpart type) for request/response types, else (type, code)."""
    pairs = _ICMP6_PAIRS if v6 else _ICMP4_PAIRS
    counterpart = pairs.get(kind)
    return (kind, counterpart) if counterpart is not None else (kind, code)


def is_icmp_pair(kind: int, v6: bool) -> bool:
    return kind in (_ICMP6_PAIRS if v6 else _ICMP4_PAIRS)


_FLAG_NAMES: Final = (
    (CWR, "CWR"), (ECE, "ECE"), (URG, "URG"), (ACK, "ACK"),
    (PSH, "PSH"), (RST, "RST"), (SYN, "SYN"), (FIN, "FIN"),
)  # fmt: skip


def flag_names(flags: int) -> list[str]:
    """TCP flags as names, in the order tcpdump prints them reversed (stable for tests)."""
    return [name for bit, name in _FLAG_NAMES if flags & bit]
