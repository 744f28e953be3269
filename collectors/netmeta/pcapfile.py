"""Frames out of capture files, streaming: classic pcap (micro- or nanosecond, either byte
order, gzip-compressed or not) read here in large chunks, pcapng through scapy's reader.

scapy's classic reader does two reads and a Python-level record per packet; reading a megabyte
at a time and slicing records out of it is about twice as fast (bench/netmeta.py), and a replay
of a day's capture is mostly reading.
"""

from __future__ import annotations

import gzip
import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final, cast

log = logging.getLogger(__name__)

#: (timestamp in seconds, frame bytes, pcap link type)
Frame = tuple[float, bytes, int]

_CHUNK: Final = 1 << 20
#: Larger records are corruption, not packets (the largest snap length tools use is 256 KiB).
_MAX_RECORD: Final = 1 << 20
_MICRO: Final = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}
_NANO: Final = {b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}
_PCAPNG: Final = b"\x0a\x0d\x0d\x0a"
_GZIP: Final = b"\x1f\x8b"


class CaptureError(RuntimeError):
    """A pcap or interface that cannot be read; the message names it and why."""


def read_pcap(path: Path) -> Iterator[Frame]:
    """(timestamp, frame, link type) for each packet of a pcap or pcapng file."""
    try:
        handle = _open(path)
    except OSError as exc:
        raise CaptureError(f"{path}: cannot open: {exc.strerror}") from None
    with handle:
        try:
            header = handle.read(24)
        except (OSError, EOFError) as exc:
            raise CaptureError(f"{path}: cannot read: {exc}") from None
        magic = header[:4]
        if magic in _MICRO or magic in _NANO:
            if len(header) < 24:
                raise CaptureError(f"{path}: pcap header cut short ({len(header)} of 24 bytes)")
            yield from _classic(path, handle, header)
        elif magic == _PCAPNG:
            handle.close()
            yield from _pcapng(path)
        else:
            raise CaptureError(
                f"{path}: not a pcap or pcapng file (starts with {magic.hex() or 'nothing'})"
            )


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        gzipped = probe.read(2) == _GZIP
    if gzipped:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _classic(path: Path, handle: IO[bytes], header: bytes) -> Iterator[Frame]:
    magic = header[:4]
    endian = _MICRO.get(magic) or _NANO[magic]
    scale = 1e-9 if magic in _NANO else 1e-6
    # The upper bits of the link-type field may carry FCS information (pcap-savefile(5)).
    linktype = struct.unpack(endian + "I", header[20:24])[0] & 0x0FFFFFFF
    record = struct.Struct(endian + "IIII")
    buffer = b""
    at = 0
    offset = 24  # of `buffer[0]` in the file, for error messages
    while True:
        if len(buffer) - at >= 16:
            seconds, fraction, captured, _ = record.unpack_from(buffer, at)
            if captured > _MAX_RECORD:
                raise CaptureError(
                    f"{path}: record at byte {offset + at} claims {captured} bytes: corrupt file"
                )
            end = at + 16 + captured
            if end <= len(buffer):
                yield seconds + fraction * scale, buffer[at + 16 : end], linktype
                at = end
                continue
        more = _read(path, handle)
        if not more:
            if len(buffer) > at:
                log.warning(
                    "pcap ends inside a record, its last %d bytes are ignored file=%s",
                    len(buffer) - at, path,
                )  # fmt: skip
            return
        offset += at
        buffer = buffer[at:] + more
        at = 0


def _read(path: Path, handle: IO[bytes]) -> bytes:
    try:
        return handle.read(_CHUNK)
    except (OSError, EOFError) as exc:
        log.warning("pcap unreadable past this point file=%s error=%s", path, exc)
        return b""


def _pcapng(path: Path) -> Iterator[Frame]:
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapNgReader

    try:
        reader: Any = RawPcapNgReader(str(path))
    except (OSError, Scapy_Exception) as exc:
        raise CaptureError(f"{path}: not a readable pcapng file: {exc}") from None
    try:
        while True:
            try:
                data, meta = reader._read_packet(size=_MAX_RECORD)
            except EOFError:
                return
            yield ((meta.tshigh << 32) | meta.tslow) / meta.tsresol, data, int(meta.linktype)
    finally:
        reader.close()
