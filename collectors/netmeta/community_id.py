"""Community ID v1 (https://github.com/corelight/community-id-spec): one hash per flow that
Zeek, Suricata, Elastic and Arkime compute alike, so an analyst can pivot from our flow record
to the same connection in any of their logs."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Final

from collectors.netmeta.packets import ICMP, ICMPV6, SCTP, TCP, UDP, is_icmp_pair

_WITH_PORTS: Final = frozenset({TCP, UDP, SCTP, ICMP, ICMPV6})
_HEAD = struct.Struct("!H")
_TAIL = struct.Struct("!BBHH")


def community_id(src: bytes, dst: bytes, proto: int, sport: int, dport: int, seed: int = 0) -> str:
    """`1:<base64 sha1>` for a flow; addresses as packed bytes (4 or 16), ICMP types already
    mapped to ports as `packets.icmp_ports` does."""
    one_way = proto in (ICMP, ICMPV6) and not is_icmp_pair(sport, proto == ICMPV6)
    if not one_way and (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    data = _HEAD.pack(seed) + src + dst
    if proto in _WITH_PORTS:
        data += _TAIL.pack(proto, 0, sport, dport)
    else:
        data += bytes((proto, 0))
    return "1:" + base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()
