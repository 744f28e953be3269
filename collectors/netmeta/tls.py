"""TLS ClientHello and ServerHello to ECS `tls.*`, with the JA3, JA3S and JA4 fingerprints.

JA3 (https://github.com/salesforce/ja3): md5 of `version,ciphers,extensions,groups,point
formats`, decimal values joined by `-`, GREASE values (RFC 8701) left out. JA4
(https://github.com/FoxIO-LLC/ja4, TLS client part): readable prefix, then truncated sha256 of
the sorted ciphers and of the sorted extensions with the signature algorithms.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

CONTENT_HANDSHAKE: Final = 0x16
_CLIENT_HELLO: Final = 1
_SERVER_HELLO: Final = 2
_EXT_SNI: Final = 0
_EXT_GROUPS: Final = 10
_EXT_POINT_FORMATS: Final = 11
_EXT_SIGNATURE_ALGORITHMS: Final = 13
_EXT_ALPN: Final = 16
_EXT_SUPPORTED_VERSIONS: Final = 43
_U16 = struct.Struct("!H")

_VERSIONS: Final = {0x0300: "3.0", 0x0301: "1.0", 0x0302: "1.1", 0x0303: "1.2", 0x0304: "1.3"}
_JA4_VERSIONS: Final = {
    0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
    0x0002: "s2", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3",
}  # fmt: skip


class TlsError(ValueError):
    """Not a hello we can read; the message says where it went wrong."""


def is_grease(value: int) -> bool:
    """RFC 8701 reserved values (0x0a0a, 0x1a1a, ... 0xfafa), which clients sprinkle at random
    and fingerprints therefore ignore."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


@dataclass
class ClientHello:
    version: int
    ciphers: list[int]
    extensions: list[int]
    groups: list[int] = field(default_factory=list)
    point_formats: list[int] = field(default_factory=list)
    signature_algorithms: list[int] = field(default_factory=list)
    supported_versions: list[int] = field(default_factory=list)
    alpn: list[str] = field(default_factory=list)
    server_name: str | None = None

    def ja3_string(self) -> str:
        return ",".join(
            (
                str(self.version),
                _join(self.ciphers),
                _join(self.extensions),
                _join(self.groups),
                "-".join(str(v) for v in self.point_formats),
            )
        )

    def ja3(self) -> str:
        return hashlib.md5(self.ja3_string().encode(), usedforsecurity=False).hexdigest()

    def ja4(self, transport: str = "t") -> str:
        versions = [v for v in self.supported_versions if not is_grease(v)]
        version = _JA4_VERSIONS.get(max(versions) if versions else self.version, "00")
        ciphers = [v for v in self.ciphers if not is_grease(v)]
        extensions = [v for v in self.extensions if not is_grease(v)]
        alpn = _ja4_alpn(self.alpn[0]) if self.alpn else "00"
        prefix = (
            f"{transport}{version}{'d' if _EXT_SNI in extensions else 'i'}"
            f"{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{alpn}"
        )
        cipher_hash = _ja4_hash(",".join(f"{v:04x}" for v in sorted(ciphers)))
        hashed = sorted(v for v in extensions if v not in (_EXT_SNI, _EXT_ALPN))
        text = ",".join(f"{v:04x}" for v in hashed)
        if self.signature_algorithms:
            text += "_" + ",".join(f"{v:04x}" for v in self.signature_algorithms)
        return f"{prefix}_{cipher_hash}_{_ja4_hash(text) if hashed else '0' * 12}"


@dataclass
class ServerHello:
    version: int
    cipher: int
    extensions: list[int]
    selected_version: int | None = None
    alpn: str | None = None

    def ja3s(self) -> str:
        text = f"{self.version},{self.cipher},{_join(self.extensions)}"
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _join(values: list[int]) -> str:
    return "-".join(str(v) for v in values if not is_grease(v))


def _ja4_alpn(value: str) -> str:
    if not value:
        return "00"
    first, last = value[0], value[-1]
    if first.isascii() and first.isalnum() and last.isascii() and last.isalnum():
        return first + last
    encoded = value.encode("utf-8", "surrogateescape").hex()
    return encoded[0] + encoded[-1]


def _ja4_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "0" * 12


def handshake_length(payload: bytes) -> int | None:
    """Bytes needed to hold the first handshake message of a TLS record stream (record header
    included), or None when the payload does not start a TLS handshake."""
    if len(payload) < 9 or payload[0] != CONTENT_HANDSHAKE or payload[1] != 3:
        return None
    if payload[5] not in (_CLIENT_HELLO, _SERVER_HELLO):
        return None
    return 9 + int.from_bytes(payload[6:9], "big")


def _message(payload: bytes, kind: int) -> bytes:
    needed = handshake_length(payload)
    if needed is None or payload[5] != kind:
        raise TlsError("not the expected TLS handshake message")
    if len(payload) < needed:
        raise TlsError(f"hello needs {needed} bytes, {len(payload)} captured")
    return payload[9:needed]


def parse_client_hello(payload: bytes) -> ClientHello:
    """ClientHello from the start of a client's TCP payload (record header included)."""
    body = _message(payload, _CLIENT_HELLO)
    try:
        version = _U16.unpack_from(body, 0)[0]
        offset = 34
        offset += 1 + body[offset]  # session id
        size = _U16.unpack_from(body, offset)[0]
        ciphers = [_U16.unpack_from(body, offset + 2 + i)[0] for i in range(0, size - 1, 2)]
        offset += 2 + size
        offset += 1 + body[offset]  # compression methods
        hello = ClientHello(version, ciphers, [])
        if offset + 2 <= len(body):
            _client_extensions(body, offset, hello)
    except (IndexError, struct.error) as exc:
        raise TlsError(f"ClientHello truncated: {exc}") from None
    return hello


def _extensions(body: bytes, offset: int) -> list[tuple[int, bytes]]:
    end = min(offset + 2 + _U16.unpack_from(body, offset)[0], len(body))
    offset += 2
    found = []
    while offset + 4 <= end:
        kind, size = struct.unpack_from("!HH", body, offset)
        found.append((kind, body[offset + 4 : offset + 4 + size]))
        offset += 4 + size
    return found


def _u16_list(data: bytes, start: int, size: int) -> list[int]:
    return [
        _U16.unpack_from(data, start + i)[0] for i in range(0, min(size, len(data) - start) - 1, 2)
    ]


def _client_extensions(body: bytes, offset: int, hello: ClientHello) -> None:
    for kind, data in _extensions(body, offset):
        hello.extensions.append(kind)
        if kind == _EXT_SNI and len(data) >= 5 and data[2] == 0:
            size = _U16.unpack_from(data, 3)[0]
            hello.server_name = data[5 : 5 + size].decode("ascii", "backslashreplace")
        elif kind == _EXT_GROUPS and len(data) >= 2:
            hello.groups = _u16_list(data, 2, _U16.unpack_from(data, 0)[0])
        elif kind == _EXT_POINT_FORMATS and data:
            hello.point_formats = list(data[1 : 1 + data[0]])
        elif kind == _EXT_SIGNATURE_ALGORITHMS and len(data) >= 2:
            hello.signature_algorithms = _u16_list(data, 2, _U16.unpack_from(data, 0)[0])
        elif kind == _EXT_SUPPORTED_VERSIONS and data:
            hello.supported_versions = _u16_list(data, 1, data[0])
        elif kind == _EXT_ALPN and len(data) >= 2:
            hello.alpn = _alpn(data)


def _alpn(data: bytes) -> list[str]:
    names, offset, end = [], 2, min(2 + _U16.unpack_from(data, 0)[0], len(data))
    while offset < end:
        size = data[offset]
        names.append(data[offset + 1 : offset + 1 + size].decode("ascii", "backslashreplace"))
        offset += 1 + size
    return names


def parse_server_hello(payload: bytes) -> ServerHello:
    body = _message(payload, _SERVER_HELLO)
    try:
        version = _U16.unpack_from(body, 0)[0]
        offset = 34
        offset += 1 + body[offset]
        cipher = _U16.unpack_from(body, offset)[0]
        offset += 3  # cipher, compression method
        hello = ServerHello(version, cipher, [])
        if offset + 2 <= len(body):
            for kind, data in _extensions(body, offset):
                hello.extensions.append(kind)
                if kind == _EXT_SUPPORTED_VERSIONS and len(data) >= 2:
                    hello.selected_version = _U16.unpack_from(data, 0)[0]
                elif kind == _EXT_ALPN and len(data) >= 2:
                    hello.alpn = next(iter(_alpn(data)), None)
    except (IndexError, struct.error) as exc:
        raise TlsError(f"ServerHello truncated: {exc}") from None
    return hello


@cache
def _cipher_names() -> dict[int, str]:
    """IANA names from scapy's table, loaded the first time a hello is seen (it costs half a
    second, which a sensor that never sees TLS should not pay)."""
    from scapy.layers.tls.crypto.suites import _tls_cipher_suites

    return {int(k): str(v) for k, v in _tls_cipher_suites.items()}


def cipher_name(value: int) -> str:
    return _cipher_names().get(value, f"0x{value:04x}")


def version_text(value: int | None) -> str | None:
    return _VERSIONS.get(value) if value is not None else None


def ecs_tls(client: ClientHello | None, server: ServerHello | None) -> dict[str, Any]:
    """`tls.*` from what was seen of the handshake (either hello may be missing)."""
    tls: dict[str, Any] = {}
    offered: int | None = None
    if client is not None:
        versions = [v for v in client.supported_versions if not is_grease(v)]
        offered = max(versions) if versions else client.version
        tls["client"] = {
            "ja3": client.ja3(),
            "ja4": client.ja4(),
            "supported_ciphers": [cipher_name(v) for v in client.ciphers if not is_grease(v)],
        }
        if client.server_name:
            tls["client"]["server_name"] = client.server_name
    if server is not None:
        chosen = server.selected_version or server.version
        tls["version"] = version_text(chosen) or f"0x{chosen:04x}"
        tls["cipher"] = cipher_name(server.cipher)
        tls["server"] = {"ja3s": server.ja3s()}
        if server.alpn:
            tls["next_protocol"] = server.alpn
    elif offered is not None:
        # No ServerHello seen: the highest version the client offered is what it asked for.
        tls["version"] = version_text(offered) or f"0x{offered:04x}"
    tls["version_protocol"] = "tls"
    return tls
