"""Following one file: its identity, its lines, and the records they join into.

A file is known by its device and inode plus a fingerprint of its first bytes, not by its name:
after a rotation by rename the same file goes on under another name (and is read to its end),
and a new file under the old name is a new file. The fingerprint catches an inode reused by a
new file and a file truncated and written again from the start. The identity is part of every
record id (with the record's byte offset), so a line read twice gets the same id twice.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

#: Bytes of a file's start that identify it (fewer while the file is shorter).
FINGERPRINT_BYTES = 1024
_READ_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Line:
    start: int
    end: int
    data: bytes
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Record:
    """One record to send: a line, or lines joined; `end` is where the next one starts."""

    start: int
    end: int
    data: bytes
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Identity:
    dev: int
    ino: int
    fingerprint: str
    fingerprint_len: int
    generation: int
    #: What record ids are made of (with the offset), and the key of saved offsets. Made from
    #: the fields when the file is first seen, then kept even if its device number changes.
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            key = f"{self.dev}:{self.ino}:{self.fingerprint[:16]}:{self.generation}"
            object.__setattr__(self, "key", key)


def fingerprint(fd: int, length: int) -> str:
    return hashlib.sha256(os.pread(fd, length, 0)).hexdigest()


class Joiner:
    """Joins continuation lines (those not matching `start`) onto the record before them, up to
    `max_lines` lines or `max_bytes` bytes; without a pattern every line is a record."""

    def __init__(
        self, start: re.Pattern[str] | None, max_lines: int, max_bytes: int, timeout: float
    ) -> None:
        self._start = start
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self.timeout = timeout
        self._lines: list[Line] = []
        self._size = 0
        self.since = 0.0

    @property
    def pending(self) -> bool:
        return bool(self._lines)

    def feed(self, line: Line, now: float) -> list[Record]:
        if self._start is None:
            return [Record(line.start, line.end, line.data, line.truncated)]
        out: list[Record] = []
        text = line.data.decode("utf-8", "backslashreplace")
        if self._lines and self._start.search(text):
            out += self.flush()
        if not self._lines:
            self.since = now
        self._lines.append(line)
        self._size += len(line.data) + 1
        if len(self._lines) >= self._max_lines or self._size >= self._max_bytes:
            out += self.flush()
        return out

    def due(self, now: float) -> bool:
        return bool(self._lines) and now - self.since >= self.timeout

    def flush(self) -> list[Record]:
        if not self._lines:
            return []
        lines, self._lines, self._size = self._lines, [], 0
        data = b"\n".join(line.data for line in lines)
        truncated = any(line.truncated for line in lines)
        if len(data) > self._max_bytes:
            data, truncated = data[: self._max_bytes], True
        return [Record(lines[0].start, lines[-1].end, data, truncated)]


@dataclass
class Tail:
    """An open file read from `position`; complete lines come out, a last line without its
    newline waits for it (or for `finish`). A line past `max_line` bytes is cut there and
    flagged; the rest of it up to its newline is skipped."""

    path: str
    fd: int
    dev: int
    ino: int
    position: int
    max_line: int
    identity: Identity | None = None
    _partial: bytearray = field(default_factory=bytearray)
    _partial_start: int = 0
    _overflow: bool = False

    @classmethod
    def open(cls, path: str, max_line: int) -> Tail:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        stat = os.fstat(fd)
        return cls(path, fd, stat.st_dev, stat.st_ino, 0, max_line)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def identify(self, generation: int) -> Identity | None:
        """The identity from the file's first bytes; None while the file is empty."""
        size = self.size()
        if size == 0:
            return None
        length = min(size, FINGERPRINT_BYTES)
        return Identity(self.dev, self.ino, fingerprint(self.fd, length), length, generation)

    def matches(self, identity: Identity) -> bool:
        """Whether the file still starts with the bytes it was identified by."""
        if self.size() < identity.fingerprint_len:
            return False
        return fingerprint(self.fd, identity.fingerprint_len) == identity.fingerprint

    def end_of_last_line(self) -> int:
        """Offset just past the last newline (within the last 64 KiB): where to start to skip
        what is there and read the next complete line."""
        size = self.size()
        start = max(0, size - 65536)
        newline = os.pread(self.fd, size - start, start).rfind(b"\n")
        return start + newline + 1 if newline >= 0 else size

    def seek(self, position: int) -> None:
        self.position = position
        self._partial.clear()
        self._partial_start = position
        self._overflow = False

    def read(self) -> list[Line]:
        """Complete lines from the next chunk; empty when nothing new was written."""
        chunk = os.pread(self.fd, _READ_BYTES, self.position)
        if not chunk:
            return []
        base = self.position
        self.position += len(chunk)
        lines: list[Line] = []
        cursor = 0
        while True:
            newline = chunk.find(b"\n", cursor)
            if newline < 0:
                self._keep(chunk[cursor:], base + cursor)
                return lines
            end = base + newline + 1
            if self._partial or self._overflow:
                self._keep(chunk[cursor:newline], base + cursor)
                data, start, cut = bytes(self._partial), self._partial_start, self._overflow
                self._partial.clear()
                self._overflow = False
            else:
                data, start, cut = chunk[cursor:newline], base + cursor, False
                if len(data) > self.max_line:
                    data, cut = data[: self.max_line], True
            if data.endswith(b"\r"):
                data = data[:-1]
            lines.append(Line(start, end, data, cut))
            cursor = newline + 1

    def _keep(self, piece: bytes, start: int) -> None:
        if not self._partial and not self._overflow:
            self._partial_start = start
        room = self.max_line - len(self._partial)
        if len(piece) > room:
            piece = piece[: max(room, 0)]
            self._overflow = True
        self._partial += piece

    def finish(self) -> list[Line]:
        """The last line even without its newline: the file will not grow any more."""
        if not self._partial and not self._overflow:
            return []
        line = Line(self._partial_start, self.position, bytes(self._partial), self._overflow)
        self._partial.clear()
        self._overflow = False
        return [line]

    def close(self) -> None:
        os.close(self.fd)
