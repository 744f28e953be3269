"""Files seized from a server -> ECS events, for ``soc scan`` (as Hayabusa or Chainsaw read them).

Formats are recognised by content, not by name, because seized files are often renamed or
rotated (``auth.log.2.gz``): EVTX by its magic bytes, JSON by its first character and whether the
first line is a whole object, W3C by its ``#`` directives, access logs by their first lines
parsing as such; any other text is read as syslog. gzip, bzip2 and xz files are decompressed on
the fly. Everything streams: a file is never held in memory whole.

Conventions (the scan command prints them with each alert):

- ``log.file.path``: the file's absolute, symlink-resolved path.
- ``log.file.record``: the 1-based record number within the file: the line number for line
  formats (syslog, access, w3c, jsonl; blank and directive lines count but yield nothing), the
  ordinal of the value for a JSON array or JSON texts back to back, and the ordinal of the item
  the EVTX parser returns (a corrupt chunk takes one number) for EVTX. The EVTX EventRecordID
  stays in ``winlog.record_id``.
- A large file may be read in parts (`split_file`), each by its own worker: a part's records
  carry the numbers they carry when the file is read whole.
- ``event.id``: ``stable_id("scan", path, record)``, so scanning the same file again gives the
  same ids and the store overwrites instead of duplicating. A JSON event that has its own
  ``event.id`` keeps it.
- What cannot be read is reported as a ReadProblem (``record`` 0 when it concerns the whole
  file) and reading goes on with the next record or file: a scan never stops on one bad file,
  and never drops one silently.
"""

from __future__ import annotations

import base64
import bz2
import codecs
import gzip
import io
import json
import logging
import lzma
import os
import re
import stat
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

import orjson
from evtx import PyEvtxParser

from soc.ids import stable_id
from soc.normalize import NormalizeOptions, normalize
from soc.normalize.ecs import format_utc
from soc.normalize.suricata import is_eve, normalize_eve
from soc.normalize.web import W3CLog, normalize_access_log, parse_access_log
from soc.normalize.windows import is_windows_event, normalize_windows
from soc.normalize.zeek import is_zeek, log_from_path, normalize_zeek

__all__ = [
    "FORMATS",
    "ReadProblem",
    "ScannedEvent",
    "FoundFile",
    "Span",
    "detect_format",
    "list_files",
    "read_events",
    "read_file",
    "split_file",
]

_log = logging.getLogger(__name__)

FORMATS: Final = ("evtx", "jsonl", "json", "syslog", "access", "w3c", "pcap")

_EVTX_MAGIC: Final = b"ElfFile\x00"
#: pcap (micro- and nanosecond, both byte orders) and pcapng.
_PCAP_MAGICS: Final = (
    b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
)  # fmt: skip
_EVTX_HEADER_SIZE: Final = 4096
_EVTX_CHUNK_SIZE: Final = 65536
_EVTX_CHUNK_MAGIC: Final = b"ElfChnk\x00"
_GZIP_MAGIC: Final = b"\x1f\x8b"
_BZIP2_MAGIC: Final = b"BZh"
_XZ_MAGIC: Final = b"\xfd7zXZ\x00"
_SNIFF_BYTES: Final = 65536
_SNIFF_LINES: Final = 10
_W3C_DIRECTIVES: Final = ("#Software:", "#Version:", "#Fields:", "#Date:", "#Remark:")
_BOM: Final = b"\xef\xbb\xbf"
_EXTENSIONS: Final = {".evtx": "evtx", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_JSON_CHUNK: Final = 1 << 20
_JSON_MAX_VALUE: Final = 64 << 20  # one JSON value larger than this is taken as corrupt
_INVALID_UTF8: Final = "invalid_utf8"
_DEFAULT_TIMEZONE: Final = ZoneInfo("Asia/Ho_Chi_Minh")
_SERVERS: Final = {"nginx": "nginx", "apache": "apache", "apache2": "apache", "httpd": "apache"}


@dataclass(frozen=True, slots=True)
class ScannedEvent:
    """One ECS event read from a file, with ``log.file.path`` and ``log.file.record`` set."""

    event: dict[str, Any]
    path: str
    record: int  # 1-based record/line number within the file


@dataclass(frozen=True, slots=True)
class ReadProblem:
    """Something in a file that could not be read; the scan reports it and goes on."""

    path: str
    record: int  # 1-based record/line number, or 0 for the file as a whole
    reason: str
    #: Reading the file stopped here (an error the reader could not step over).
    ends_file: bool = False


@dataclass(frozen=True, slots=True)
class Span:
    """A part of a large file, read alone: the bytes from `start` to `stop` (None: to the
    end), its records numbered from `base` + 1. `index` counts the file's parts from 0."""

    file_format: str
    index: int
    start: int
    stop: int | None
    base: int
    #: Whether `base` was counted (the lines before the part), not predicted (an EVTX file's
    #: records, from its chunk headers, which a damaged chunk can belie: the scan checks a
    #: predicted base against what the parts before it read, and reads the part again when
    #: they differ).
    counted: bool

    @property
    def size(self) -> int | None:
        return None if self.stop is None else self.stop - self.start


Item = ScannedEvent | ReadProblem


def read_events(
    paths: Sequence[Path], *, timezone: tzinfo = _DEFAULT_TIMEZONE
) -> Iterator[ScannedEvent | ReadProblem]:
    """Every event of every file under ``paths`` (directories walked recursively, in sorted
    order). ``timezone`` is the zone of syslog timestamps, which carry none."""
    options = NormalizeOptions(timezone=timezone)
    for found in list_files(paths):
        if isinstance(found, ReadProblem):
            yield found
        else:
            yield from read_file(found.path, found.name, options)


class FoundFile(NamedTuple):
    """A regular file to read: its path as given or walked, the name its events carry (its
    real absolute path), its size when listed."""

    path: Path
    name: str
    size: int


def list_files(paths: Sequence[Path]) -> Iterator[FoundFile | ReadProblem]:
    """The files `read_events` reads, in its order, and the problems met listing them, in
    place."""
    names = _RealNames()
    for found in _files(paths):
        if isinstance(found, ReadProblem):
            yield found
        else:
            path, size = found
            yield FoundFile(path, names(path), size)


def detect_format(path: Path) -> str:
    """The file's format, one of FORMATS, from its magic bytes and first lines (the extension
    decides only for an empty file). Raises OSError when the file cannot be read."""
    with path.open("rb") as raw:
        head = raw.read(_SNIFF_BYTES)
    if _compression(head) is not None:
        with _open(path) as stream:
            head = stream.read(_SNIFF_BYTES)
    return _format_of(path, head)


def _format_of(path: Path, head: bytes) -> str:
    """`detect_format` from the file's first (decompressed) bytes."""
    if head.startswith(_EVTX_MAGIC):
        return "evtx"
    if head.startswith(_PCAP_MAGICS):
        return "pcap"
    lines = _sample_lines(head, complete=len(head) < _SNIFF_BYTES)
    if not lines:
        return _EXTENSIONS.get(path.suffix.lower(), "syslog")
    return _sniff_text(lines)


# --- files --------------------------------------------------------------------------------


def _files(paths: Sequence[Path]) -> Iterator[tuple[Path, int] | ReadProblem]:
    for path in paths:
        try:
            is_directory = stat.S_ISDIR(path.stat().st_mode)
        except OSError:
            is_directory = False  # reported as the file it is not
        if is_directory:
            yield from _walk(path)
        else:
            yield _regular_file(path)


def _walk(directory: Path) -> Iterator[tuple[Path, int] | ReadProblem]:
    """Files under ``directory`` in sorted order; symlinked directories are not followed, so a
    link loop on a seized disk cannot trap the scan. A directory that cannot be listed is
    reported, not skipped in silence."""
    errors: list[OSError] = []
    for root, dirs, files in os.walk(directory, onerror=errors.append):
        yield from _listing_problems(errors)
        dirs.sort()
        for name in sorted(files):
            yield _regular_file(Path(root, name))
    yield from _listing_problems(errors)


def _listing_problems(errors: list[OSError]) -> Iterator[ReadProblem]:
    while errors:
        error = errors.pop(0)
        yield ReadProblem(str(error.filename), 0, f"cannot list directory: {error.strerror}")


def _regular_file(path: Path) -> tuple[Path, int] | ReadProblem:
    """Only regular files are read: opening a FIFO or a device found on a seized disk would
    block the scan or read forever. With the file's size."""
    try:
        status = path.stat()
    except OSError as exc:
        return ReadProblem(str(path), 0, f"cannot read: {exc.strerror or exc}")
    if not stat.S_ISREG(status.st_mode):
        return ReadProblem(str(path), 0, "not a regular file (device, FIFO or socket): not read")
    return path, status.st_size


def _open(path: Path) -> io.BufferedIOBase:
    """The file's bytes, decompressed when its magic bytes say it is compressed; the caller
    closes it. One open for a file that is not compressed: a scan of many small files (a
    collection of EVTX samples) spent a tenth of its time opening each one twice."""
    stream = path.open("rb")
    opener = _compression(stream.peek(len(_XZ_MAGIC)))
    if opener is None:
        return stream
    stream.close()
    return opener(path)


def _compression(head: bytes) -> Callable[[Path], io.BufferedIOBase] | None:
    """How to open a file that starts with these bytes, when they say it is compressed."""
    if head.startswith(_GZIP_MAGIC):
        return lambda path: gzip.GzipFile(path, "rb")
    if head.startswith(_BZIP2_MAGIC):
        return lambda path: bz2.BZ2File(path, "rb")
    if head.startswith(_XZ_MAGIC):
        return lambda path: lzma.LZMAFile(path, "rb")
    return None


class _RealNames:
    """Files' absolute names with every symlink resolved (what `Path.resolve` gives), each
    directory resolved once per scan from its parent's resolution and one lstat of its own:
    `resolve` walks the whole path one lstat per component, for every file."""

    def __init__(self) -> None:
        self._directories: dict[str, str] = {}

    def __call__(self, path: Path) -> str:
        if ".." in path.parts or path.is_symlink():
            return str(path.resolve())  # ".." after a link is not lexical: resolve in full
        return os.path.join(self._real(os.path.abspath(path.parent)), path.name)

    def _real(self, directory: str) -> str:
        real = self._directories.get(directory)
        if real is None:
            parent, name = os.path.split(directory)
            if not name or parent == directory or os.path.islink(directory):
                real = os.path.realpath(directory)
            else:
                real = os.path.join(self._real(parent), name)
            if len(self._directories) >= _DIRECTORIES_KEPT:
                self._directories.clear()
            self._directories[directory] = real
        return real


_DIRECTORIES_KEPT: Final = 4096


def read_file(
    path: Path, name: str, options: NormalizeOptions, span: Span | None = None
) -> Iterator[Item]:
    """One file's events (or those of one part of it, `split_file`), named `name`; whatever
    goes wrong ends this file with a ReadProblem, never the scan. The record of the problem is
    the one after the last read (0: nothing was read)."""
    last = 0 if span is None else span.base
    try:
        file_format = detect_format(path) if span is None else span.file_format
        for item in _READERS[file_format](path, name, options, span):
            last = item.record
            yield item
    except Exception as exc:  # a corrupt or unreadable file must not end the scan
        record = last + 1 if last else 0
        _log.warning("cannot read file path=%s record=%d error=%s", name, record, exc)
        yield ReadProblem(name, record, f"{type(exc).__name__}: {exc}", ends_file=True)


# --- parts of large files -----------------------------------------------------------------


#: Formats whose records stand alone, one per line: a part of the file reads as well as all
#: of it. (W3C lines need the #Fields directive before them, a JSON array its brackets.)
_SPLIT_LINES: Final = frozenset({"syslog", "access", "jsonl"})


def split_file(path: Path, size: int, part_bytes: int) -> Iterator[Span] | None:
    """The parts of about `part_bytes` that a file of `size` bytes is read in, planned as they
    are asked for (the lines before a part are counted as it is planned, a read of the file at
    the speed of the disk); None when the file is read whole: smaller than two parts,
    compressed, unreadable (the reader reports it), or of a format whose records need what
    came before them. EVTX files split between chunks (each holds its own templates and
    strings), line formats after a newline."""
    if size < 2 * part_bytes:
        return None
    try:
        with path.open("rb") as raw:
            head = raw.read(_SNIFF_BYTES)
    except OSError:
        return None
    if _compression(head) is not None:
        return None
    file_format = _format_of(path, head)
    if file_format == "evtx":
        return _evtx_spans(path, part_bytes)
    if file_format in _SPLIT_LINES:
        return _line_spans(path, file_format, part_bytes)
    return None


_COUNT_BLOCK: Final = 1 << 20


def _line_spans(path: Path, file_format: str, part_bytes: int) -> Iterator[Span]:
    """Parts that end just after a newline, each numbered after the lines before it; the last
    runs to the end of the file (a tail under half a part joins it). A file that cannot be
    read on gives one last part from where planning stopped: its reader reports why."""
    start = base = index = 0
    try:
        with path.open("rb") as raw:
            while True:
                stop = _after_newline(raw, start + part_bytes)
                if stop is None or _tail(raw, stop) <= part_bytes // 2:
                    break
                yield Span(file_format, index, start, stop, base, counted=True)
                raw.seek(start)
                for _ in range(0, stop - start, _COUNT_BLOCK):
                    base += raw.read(min(_COUNT_BLOCK, stop - raw.tell())).count(b"\n")
                start, index = stop, index + 1
    except OSError:
        pass
    yield Span(file_format, index, start, None, base, counted=True)


def _after_newline(raw: io.BufferedReader, offset: int) -> int | None:
    """The offset just after the first newline at or after `offset`; None when the file ends
    first."""
    raw.seek(offset)
    while True:
        block = raw.read(_SNIFF_BYTES)
        if not block:
            return None
        found = block.find(b"\n")
        if found >= 0:
            return offset + found + 1
        offset += len(block)


def _tail(raw: io.BufferedReader, offset: int) -> int:
    return raw.seek(0, io.SEEK_END) - offset


def _evtx_spans(path: Path, part_bytes: int) -> Iterator[Span]:
    """Parts of whole chunks after the file header, each numbered after the records the
    chunk headers before it announce (`_chunk_records`); the last runs to the end of the
    file, a cut chunk included, as the whole file would be read."""
    per_part = max(1, part_bytes // _EVTX_CHUNK_SIZE)
    start = _EVTX_HEADER_SIZE
    base = index = 0
    try:
        with path.open("rb") as raw:
            while True:
                stop = start + per_part * _EVTX_CHUNK_SIZE
                if _tail(raw, stop) < max(1, per_part // 2) * _EVTX_CHUNK_SIZE:
                    break
                yield Span("evtx", index, start, stop, base, counted=False)
                for chunk in range(start, stop, _EVTX_CHUNK_SIZE):
                    raw.seek(chunk)
                    base += _chunk_records(raw.read(24))
                start, index = stop, index + 1
    except OSError:
        pass
    yield Span("evtx", index, start, None, base, counted=False)


def _chunk_records(header: bytes) -> int:
    """How many items the EVTX parser gives for a chunk with this header: its records, from
    the first and last record numbers it announces; none for a chunk never written (zeros,
    which the parser passes over); one (the error) for a chunk that is not one."""
    if header.startswith(_EVTX_CHUNK_MAGIC) and len(header) >= 24:
        first, last = struct.unpack_from("<QQ", header, 8)
        if first <= last and last - first < _EVTX_CHUNK_SIZE:
            return int(last - first + 1)
        return 1
    return 0 if not any(header[:8]) else 1


def _sample_lines(head: bytes, *, complete: bool) -> list[str]:
    """The first non-blank lines of the sniffed bytes; a line cut by the sample is dropped."""
    lines = head.removeprefix(_BOM).split(b"\n")
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # a single cut line is kept: its first character still tells
    texts = [line.decode("utf-8", "backslashreplace").strip() for line in lines]
    return [text for text in texts if text][:_SNIFF_LINES]


def _sniff_text(lines: list[str]) -> str:
    first = lines[0]
    if first.startswith("["):
        return "json"
    if first.startswith("{"):
        return "jsonl" if _is_json_object(first) else "json"
    if any(line.startswith(_W3C_DIRECTIVES) for line in lines):
        return "w3c"
    access = sum(parse_access_log(line) is not None for line in lines)
    return "access" if access * 2 >= len(lines) else "syslog"


def _is_json_object(text: str) -> bool:
    """A whole JSON object on the first line makes JSON lines; a "{" alone starts a
    pretty-printed object."""
    try:
        return isinstance(_loads(text), dict)
    except ValueError:
        return False


# --- line formats -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    text: str
    raw: bytes | None  # the undecodable bytes, when the line was not valid UTF-8


def _lines(path: Path, span: Span | None = None) -> Iterator[_Line]:
    """Non-blank lines (of the file, or of a part of it), numbered from 1 in the file; invalid
    UTF-8 is decoded with backslash escapes and its bytes kept, so nothing in the line is
    lost."""
    if span is None:
        stream, first, left = _open(path), 1, None
    else:
        stream, first, left = path.open("rb"), span.base + 1, span.size
        stream.seek(span.start)
    with stream:
        for number, data in enumerate(stream, start=first):
            if left is not None:
                if left <= 0:
                    break
                left -= len(data)
            line = data.rstrip(b"\n").rstrip(b"\r")
            if number == 1:
                line = line.removeprefix(_BOM)
            if not line.strip():
                continue
            try:
                yield _Line(number, line.decode("utf-8"), None)
            except UnicodeDecodeError:
                yield _Line(number, line.decode("utf-8", "backslashreplace"), line)


def _scan_id(name: str, record: int) -> str:
    return stable_id("scan", name, str(record))


def _mtime(path: Path) -> str:
    """The file's modification time: the best receipt time an offline file has."""
    return format_utc(datetime.fromtimestamp(path.stat().st_mtime, UTC))


def _read_syslog(
    path: Path, name: str, options: NormalizeOptions, span: Span | None
) -> Iterator[Item]:
    received_at = _mtime(path)
    for line in _lines(path, span):
        record: dict[str, Any] = {
            "id": _scan_id(name, line.number),
            "received_at": received_at,
            "source": {"type": "file", "path": name},
            "data": line.text,
        }
        if line.raw is not None:
            record["flags"] = [_INVALID_UTF8]
            record["data_b64"] = base64.b64encode(line.raw).decode("ascii")
        yield _scanned(normalize(record, options), name, line.number)


def _read_access(
    path: Path, name: str, _options: NormalizeOptions, span: Span | None
) -> Iterator[Item]:
    received_at = _mtime(path)
    module = _server_software(path)
    for line in _lines(path, span):
        event = normalize_access_log(
            line.text, event_id=_scan_id(name, line.number), received_at=received_at, module=module
        )
        yield _scanned(_flag_invalid(event, line), name, line.number)


def _server_software(path: Path) -> str | None:
    """nginx and Apache lines look alike; their usual log directories tell them apart."""
    for part in reversed(path.parts):
        software = _SERVERS.get(part.lower())
        if software is not None:
            return software
    return None


def _read_w3c(
    path: Path, name: str, _options: NormalizeOptions, _span: Span | None
) -> Iterator[Item]:
    received_at = _mtime(path)
    log = W3CLog()
    for line in _lines(path):
        event = log.normalize(
            line.text, event_id=_scan_id(name, line.number), received_at=received_at
        )
        if event is not None:
            yield _scanned(_flag_invalid(event, line), name, line.number)


def _flag_invalid(event: dict[str, Any], line: _Line) -> dict[str, Any]:
    if line.raw is not None:
        tags = event.setdefault("tags", [])
        if isinstance(tags, list):
            tags.append(_INVALID_UTF8)
    return event


# --- JSON ---------------------------------------------------------------------------------


def _read_jsonl(
    path: Path, name: str, options: NormalizeOptions, span: Span | None
) -> Iterator[Item]:
    for line in _lines(path, span):
        try:
            value = _loads(line.text)
        except ValueError as exc:
            yield ReadProblem(name, line.number, f"not a JSON value: {exc}")
            continue
        yield _from_json(value, name, line.number, line, options)


def _read_json(
    path: Path, name: str, options: NormalizeOptions, _span: Span | None
) -> Iterator[Item]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")("backslashreplace")
    with _open(path) as raw:

        def read(size: int) -> str:
            data = raw.read(size)
            return decoder.decode(data, final=not data)

        for number, value in enumerate(_json_values(read), start=1):
            yield _from_json(value, name, number, None, options)


def _loads(text: str) -> Any:
    """orjson, falling back to the stdlib for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _json_values(read: Callable[[int], str]) -> Iterator[Any]:
    """The values of a JSON array, or of JSON texts back to back (pretty-printed objects, as
    exporters write them), parsed a chunk at a time. Raises ValueError at invalid JSON."""
    decoder = json.JSONDecoder()
    buffer, position, depth, eof = "", 0, 0, False
    want = _JSON_CHUNK
    while True:
        position, depth = _skip_structure(buffer, position, depth)
        if position < len(buffer):
            try:
                value, end = decoder.raw_decode(buffer, position)
            except ValueError:
                if eof or len(buffer) - position > _JSON_MAX_VALUE:
                    raise
                end = -1
            if end != -1 and (end < len(buffer) or eof):
                yield value
                position, want = end, _JSON_CHUNK
                continue
            want *= 2  # the value runs past the buffer: read more, in growing steps
        elif eof:
            return
        chunk = read(want)
        eof = not chunk
        buffer, position = buffer[position:] + chunk, 0


def _skip_structure(buffer: str, position: int, depth: int) -> tuple[int, int]:
    """Skip whitespace and the top-level array's own brackets and commas: the values inside
    are what we yield, one at a time, instead of the whole array."""
    while position < len(buffer):
        char = buffer[position]
        if char == "[" and depth == 0:
            depth = 1
        elif char == "]" and depth == 1:
            depth = 0
        elif not (char.isspace() or char == ","):
            break
        position += 1
    return position, depth


def _from_json(
    value: Any, name: str, record: int, line: _Line | None, options: NormalizeOptions
) -> Item:
    """A Windows event is normalized, an ECS event or any other object is kept as it is; both
    get the scan's record fields and, if they have none, the scan's event.id."""
    if not isinstance(value, dict):
        return ReadProblem(name, record, f"a JSON {type(value).__name__}, not an object")
    event_id = _scan_id(name, record)
    event = _normalized(value, name, event_id, line, options)
    node = event.setdefault("event", {})
    if isinstance(node, dict):
        node.setdefault("id", event_id)
    if line is not None:
        _flag_invalid(event, line)
    return _scanned(event, name, record)


def _normalized(
    value: dict[str, Any], name: str, event_id: str, line: _Line | None, options: NormalizeOptions
) -> dict[str, Any]:
    """Windows events, Suricata EVE and Zeek logs become ECS; anything else stays as it is."""
    if is_windows_event(value):
        return normalize_windows(value, record_id=event_id, zone=options.timezone)
    if is_eve(value):
        event = normalize_eve(value)
    elif is_zeek(value):
        event = normalize_zeek(value, log_from_path(name))
    else:
        return value
    original = line.text if line is not None else orjson.dumps(value).decode()
    event["event"]["original"] = original
    return event


# --- EVTX ---------------------------------------------------------------------------------


def _read_evtx(
    path: Path, name: str, _options: NormalizeOptions, span: Span | None
) -> Iterator[Item]:
    """Records in file order (one parser thread keeps the order, and so the numbers, stable);
    a corrupt chunk or record is reported and the parser goes on with the next one. A part
    of the file is read as a file of its own: the file's header, then the part's chunks (the
    parser reads the chunks there are, whatever the header counts)."""
    header = 0
    if span is None:
        stream, number = _open(path), 0
    else:
        with path.open("rb") as raw:
            data = raw.read(_EVTX_HEADER_SIZE)
            header = len(data)
            raw.seek(span.start)
            data += raw.read(-1 if span.size is None else span.size)
        stream, number = io.BytesIO(data), span.base
    with stream:
        records = PyEvtxParser(stream, number_of_threads=1).records_json()
        while True:
            number += 1
            try:
                record = next(records)
            except StopIteration:
                break
            except Exception as exc:  # the parser's error for one chunk; the next may be fine
                yield ReadProblem(name, number, f"corrupt EVTX data: {_in_file(exc, span)}")
                continue
            yield _evtx_event(record, name, number)
        size = stream.seek(0, io.SEEK_END)
    if span is not None:
        if span.stop is not None:
            return  # not the end of the file: its length is the last part's to judge
        size += span.start - header
    problem = _truncation(size, name, number)
    if problem is not None:
        yield problem


_CHUNK_NUMBER: Final = re.compile(r"\bchunk number (\d+)")


def _in_file(error: Exception, span: Span | None) -> str:
    """The parser's message, the chunk it names numbered in the file, not in the part."""
    if span is None:
        return str(error)
    first = (span.start - _EVTX_HEADER_SIZE) // _EVTX_CHUNK_SIZE
    return _CHUNK_NUMBER.sub(lambda found: f"chunk number {int(found[1]) + first}", str(error))


def _evtx_event(record: object, name: str, number: int) -> Item:
    try:
        data = orjson.loads(record["data"]) if isinstance(record, dict) else None
    except (KeyError, TypeError, ValueError) as exc:
        return ReadProblem(name, number, f"EVTX record is not JSON: {exc}")
    if not isinstance(data, dict):
        return ReadProblem(name, number, "EVTX record is not a JSON object")
    event = normalize_windows(data, record_id=_scan_id(name, number))
    return _scanned(event, name, number)


def _truncation(size: int, name: str, number: int) -> ReadProblem | None:
    """The parser skips a chunk cut short without a word: a copy truncated mid-chunk is
    reported here, because the events in the lost tail are exactly what was not looked at."""
    tail = (size - _EVTX_HEADER_SIZE) % _EVTX_CHUNK_SIZE if size > _EVTX_HEADER_SIZE else 0
    if size >= _EVTX_HEADER_SIZE and tail == 0:
        return None
    reason = (
        f"file truncated: {size} bytes is not a {_EVTX_HEADER_SIZE}-byte header plus whole "
        f"{_EVTX_CHUNK_SIZE}-byte chunks; the last {tail or size} bytes were not read"
    )
    return ReadProblem(name, number, reason)


def _read_pcap(
    path: Path, name: str, options: NormalizeOptions, _span: Span | None
) -> Iterator[Item]:
    """The packet-metadata sensor's records (flows, DNS, HTTP, TLS), normalized as the stream
    normalizes them; the record number is the ordinal of the record, in the order the sensor
    produced it (replaying the same file gives the same records)."""
    from collectors.netmeta.offline import pcap_documents

    received = format_utc(datetime.now(UTC))
    for record, document in enumerate(pcap_documents(path), 1):
        raw = {
            "id": document["event"]["id"],
            "received_at": received,
            "format": "ecs",
            "data": orjson.dumps(document).decode(),
            "source": {"type": "netmeta", "file": name},
        }
        yield _scanned(normalize(raw, options), name, record)


def _scanned(event: dict[str, Any], name: str, record: int) -> ScannedEvent:
    """Stamp the scan's record fields (where the event has room for them) and wrap it."""
    log = event.setdefault("log", {})
    if isinstance(log, dict):
        file = log.setdefault("file", {})
        if isinstance(file, dict):
            file["path"] = name
            file["record"] = record
    return ScannedEvent(event, name, record)


_Reader = Callable[[Path, str, NormalizeOptions, Span | None], Iterator[Item]]
_READERS: Final[dict[str, _Reader]] = {
    "evtx": _read_evtx,
    "jsonl": _read_jsonl,
    "json": _read_json,
    "syslog": _read_syslog,
    "access": _read_access,
    "w3c": _read_w3c,
    "pcap": _read_pcap,
}
