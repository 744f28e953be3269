"""DNS messages (RFC 1035) to ECS `dns.*`: one event per query and one per answer, as ECS asks
(`dns.type` query or answer, the answer event repeating the question).

A small parser of our own rather than scapy's: it runs on every DNS packet of a busy resolver
and must shrug off hostile ones (compression loops, counts larger than the packet), which here
end the parse with what was read so far instead of an exception or a hang.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Final

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
#: Answers kept per message; past it the record is tagged `dns_answers_truncated`.
_MAX_RECORDS: Final = 64
_MAX_POINTERS: Final = 32

TYPES: Final = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    28: "AAAA", 33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG",
    47: "NSEC", 48: "DNSKEY", 52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 252: "AXFR",
    255: "ANY", 257: "CAA",
}  # fmt: skip
CLASSES: Final = {1: "IN", 3: "CH", 4: "HS", 255: "ANY"}
RCODES: Final = (
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
    "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE",
)  # fmt: skip
_FLAGS: Final = ((0x0400, "AA"), (0x0200, "TC"), (0x0100, "RD"), (0x0080, "RA"),
                 (0x0020, "AD"), (0x0010, "CD"))  # fmt: skip


class DnsError(ValueError):
    """Not a DNS message we can read; the message says where it went wrong."""


def _name(data: bytes, offset: int) -> tuple[str, int]:
    """(the name, the offset after it in the record): compression pointers are followed at
    most `_MAX_POINTERS` times, so a loop cannot hang the sensor."""
    labels: list[str] = []
    end = -1
    jumps = 0
    while True:
        if offset >= len(data):
            raise DnsError(f"name runs past the message at offset {offset}")
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsError("truncated compression pointer")
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise DnsError("compression pointer loop")
            if end < 0:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise DnsError(f"unsupported label type {length:#x} at offset {offset}")
        label = data[offset + 1 : offset + 1 + length]
        if len(label) < length:
            raise DnsError("label runs past the message")
        labels.append(label.decode("ascii", "backslashreplace"))
        offset += 1 + length
    return ".".join(labels) or ".", end if end >= 0 else offset


def _rdata(data: bytes, kind: int, at: int, length: int) -> str:
    raw = data[at : at + length]
    if kind == 1 and length == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if kind == 28 and length == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    if kind in (2, 5, 12, 39):
        return _name(data, at)[0]
    if kind == 15 and length > 2:
        return f"{struct.unpack_from('!H', data, at)[0]} {_name(data, at + 2)[0]}"
    if kind == 16:
        parts, offset = [], 0
        while offset < len(raw):
            size = raw[offset]
            parts.append(raw[offset + 1 : offset + 1 + size].decode("utf-8", "backslashreplace"))
            offset += 1 + size
        return " ".join(parts)
    return raw.hex()


def parse(data: bytes) -> tuple[dict[str, Any], bool]:
    """(ECS `dns` object of one message, whether its answers were cut short); raises DnsError
    when even the header or question is unreadable."""
    if len(data) < _HEADER.size:
        raise DnsError(f"{len(data)} bytes, shorter than a DNS header")
    ident, flags, qdcount, ancount, _nscount, _arcount = _HEADER.unpack_from(data)
    answer = bool(flags & 0x8000)
    dns: dict[str, Any] = {
        "id": str(ident),
        "type": "answer" if answer else "query",
        "op_code": {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}.get(
            (flags >> 11) & 0xF, str((flags >> 11) & 0xF)
        ),
        "header_flags": [name for bit, name in _FLAGS if flags & bit],
    }
    if answer:
        code = flags & 0xF
        dns["response_code"] = RCODES[code] if code < len(RCODES) else str(code)
    offset = _HEADER.size
    if qdcount:
        name, offset = _name(data, offset)
        if offset + 4 > len(data):
            raise DnsError("question runs past the message")
        qtype, qclass = struct.unpack_from("!HH", data, offset)
        offset += 4
        dns["question"] = {
            "name": name,
            "type": TYPES.get(qtype, str(qtype)),
            "class": CLASSES.get(qclass, str(qclass)),
        }
        for _ in range(qdcount - 1):  # rare; skipped to reach the answers
            offset = _name(data, offset)[1] + 4
    truncated = bool(answer and ancount) and _answers(data, offset, ancount, dns)
    return dns, truncated


def _answers(data: bytes, offset: int, count: int, dns: dict[str, Any]) -> bool:
    """Answers as far as they can be read: a truncated tail keeps the ones before it."""
    answers: list[dict[str, Any]] = []
    resolved: list[str] = []
    truncated = count > _MAX_RECORDS
    try:
        for _ in range(min(count, _MAX_RECORDS)):
            name, offset = _name(data, offset)
            if offset + _RR.size > len(data):
                raise DnsError("resource record runs past the message")
            kind, klass, ttl, length = _RR.unpack_from(data, offset)
            offset += _RR.size
            if offset + length > len(data):
                raise DnsError("resource data runs past the message")
            value = _rdata(data, kind, offset, length)
            offset += length
            answers.append(
                {
                    "name": name,
                    "type": TYPES.get(kind, str(kind)),
                    "class": CLASSES.get(klass, str(klass)),
                    "ttl": ttl,
                    "data": value,
                }
            )
            if kind in (1, 28):
                resolved.append(value)
    except (DnsError, struct.error, IndexError, ValueError):
        truncated = True
    if answers:
        dns["answers"] = answers
    if resolved:
        dns["resolved_ip"] = resolved
    return truncated
