"""File readers for `soc scan`: every format, compressed files, and corrupt input reported."""

import bz2
import gzip
import lzma
import os
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from soc.ids import stable_id
from soc.scan import FORMATS, ReadProblem, ScannedEvent, detect_format, read_events

SIGMA = Path(
    os.environ.get("SOC_SIGMA_PATH", Path(__file__).resolve().parents[1] / "../shared/sigma")
)
REGRESSION = SIGMA / "regression_data"
needs_regression_data = pytest.mark.skipif(
    not REGRESSION.is_dir(),
    reason=f"SigmaHQ regression_data not found at {REGRESSION} (set SOC_SIGMA_PATH to run)",
)
MTIME = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

AUTH_LOG = [
    "Nov 28 10:00:00 web01 sshd[812]: Accepted password for root from 203.0.113.7 port 50022 ssh2",
    "",
    "<38>Nov 28 10:00:05 web01 sshd[813]: Failed password for invalid user admin from"
    " 203.0.113.8 port 50100 ssh2",
    "<165>1 2026-11-28T03:00:06.000Z web01 sudo - - - nva : TTY=pts/0 ; PWD=/home/nva ;"
    " USER=root ; COMMAND=/bin/bash",
]
ACCESS_LOG = [
    '203.0.113.7 - - [28/Nov/2026:10:00:00 +0700] "GET / HTTP/1.1" 200 612 "-" "curl/8.5.0"',
    '203.0.113.7 - - [28/Nov/2026:10:00:01 +0700] "GET /.env HTTP/1.1" 404 153 "-" "curl/8.5.0"',
]
W3C_LOG = [
    "#Software: Microsoft Internet Information Services 10.0",
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip"
    " cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken",
    "2026-11-28 03:00:01 10.0.0.5 GET /owa/x.js - 443 - 203.0.113.7 Mozilla/5.0 - 200 0 0 15",
]
WINDOWS_EVENT = {
    "Event": {
        "System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
            "EventID": 1,
            "EventRecordID": 7,
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": "pc07",
            "TimeCreated": {"#attributes": {"SystemTime": "2026-11-28T03:00:00.000000Z"}},
        },
        "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami"},
    }
}
ECS_EVENT = {"@timestamp": "2026-11-28T03:00:00Z", "event": {"kind": "alert"}, "message": "m"}
OTHER_OBJECT = {"ts": 1, "msg": "login", "log": "text, not a mapping"}


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    stamp = MTIME.timestamp()
    os.utime(path, (stamp, stamp))
    return path


def lines(*items: str) -> str:
    return "\n".join(items) + "\n"


def scan(*paths: Path, **options: Any) -> list[ScannedEvent | ReadProblem]:
    return list(read_events(list(paths), **options))


def events_of(items: list[ScannedEvent | ReadProblem]) -> list[ScannedEvent]:
    return [item for item in items if isinstance(item, ScannedEvent)]


def problems_of(items: list[ScannedEvent | ReadProblem]) -> list[ReadProblem]:
    return [item for item in items if isinstance(item, ReadProblem)]


def pretty_objects(*objects: Any) -> str:
    return "\n".join(orjson.dumps(o, option=orjson.OPT_INDENT_2).decode() for o in objects)


# --- format detection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("Security.evtx", b"ElfFile\x00" + bytes(100), "evtx"),
        ("renamed.log", b"ElfFile\x00" + bytes(100), "evtx"),
        ("events.json", lines(*(orjson.dumps(WINDOWS_EVENT).decode() for _ in range(3))), "jsonl"),
        ("events.txt", lines(orjson.dumps(ECS_EVENT).decode()), "jsonl"),
        ("array.json", orjson.dumps([WINDOWS_EVENT, ECS_EVENT]), "json"),
        ("pretty.jsonl", pretty_objects(WINDOWS_EVENT, ECS_EVENT), "json"),
        ("auth.log", lines(*AUTH_LOG), "syslog"),
        ("access.log", lines(*ACCESS_LOG), "access"),
        ("weird-name", lines(*ACCESS_LOG), "access"),
        ("u_ex261128.log", lines(*W3C_LOG), "w3c"),
        ("empty.json", b"", "json"),
        ("empty.log", b"", "syslog"),
        ("bom.log", b"\xef\xbb\xbf" + lines(*ACCESS_LOG).encode(), "access"),
        ("latin1.log", b"caf\xe9 is not utf-8\n", "syslog"),
    ],
)
def test_detect_format_looks_at_content(
    tmp_path: Path, name: str, content: bytes | str, expected: str
) -> None:
    assert expected in FORMATS
    assert detect_format(write(tmp_path / name, content)) == expected


@pytest.mark.parametrize(
    "compress",
    [gzip.compress, bz2.compress, lzma.compress],
    ids=["gzip", "bzip2", "xz"],
)
def test_detect_format_sees_through_compression(
    tmp_path: Path, compress: Callable[[bytes], bytes]
) -> None:
    path = write(tmp_path / "access.log.2.gz", compress(lines(*ACCESS_LOG).encode()))
    assert detect_format(path) == "access"


# --- line formats -------------------------------------------------------------------------


def test_syslog_file_lines_go_through_the_syslog_normalizer(tmp_path: Path) -> None:
    path = write(tmp_path / "auth.log", lines(*AUTH_LOG))
    items = scan(path, timezone=timezone(timedelta(hours=7)))
    events = events_of(items)
    assert problems_of(items) == []
    assert [event.record for event in events] == [1, 3, 4]  # the blank line 2 counts, yields none
    name = str(path.resolve())
    first = events[0].event
    assert first["event"]["id"] == stable_id("scan", name, "1")
    assert first["@timestamp"] == "2026-11-28T03:00:00.000000Z"  # local +07:00 -> UTC
    assert first["event"]["original"] == AUTH_LOG[0]
    assert first["host"]["name"] == "web01"
    assert first["log"]["file"] == {"path": name, "record": 1}
    assert first["event"]["ingested"] == "2026-11-28T12:00:00.000000Z"  # the file's mtime
    assert events[1].event["log"]["syslog"]["priority"] == 38
    assert events[2].event["@timestamp"] == "2026-11-28T03:00:06.000000Z"
    assert all(event.path == name for event in events)


def test_invalid_utf8_lines_are_decoded_with_escapes_and_tagged(tmp_path: Path) -> None:
    data = b"Nov 28 10:00:00 web01 app: caf\xe9 \xff\n" + AUTH_LOG[0].encode() + b"\n"
    (bad, good) = events_of(scan(write(tmp_path / "messages", data)))
    assert bad.event["event"]["original"] == "Nov 28 10:00:00 web01 app: caf\\xe9 \\xff"
    assert "invalid_utf8" in bad.event["tags"]
    assert bad.event["soc"]["original_b64"]
    assert "invalid_utf8" not in good.event["tags"]


def test_access_log_lines_with_module_from_the_directory(tmp_path: Path) -> None:
    path = write(tmp_path / "var/log/nginx/access.log", lines(*ACCESS_LOG))
    events = events_of(scan(path))
    assert [event.record for event in events] == [1, 2]
    assert events[1].event["url"]["path"] == "/.env"
    assert events[1].event["event"]["module"] == "nginx"
    assert events[1].event["event"]["id"] == stable_id("scan", str(path.resolve()), "2")
    assert events[1].event["log"]["file"]["record"] == 2


def test_access_log_keeps_unparsable_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "access.log", lines(*ACCESS_LOG, "not an access line"))
    events = events_of(scan(path))
    assert len(events) == 3
    assert events[2].event["tags"] == ["access_log_unparsed"]
    assert events[2].event["@timestamp"] == "2026-11-28T12:00:00.000000Z"
    assert events[0].event["event"]["module"] == "http"


def test_w3c_file_skips_directives_and_numbers_data_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "W3SVC1/u_ex261128.log", lines(*W3C_LOG))
    (event,) = events_of(scan(path))
    assert event.record == 3
    assert event.event["event"]["module"] == "iis"
    assert event.event["source"]["ip"] == "203.0.113.7"


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)],
)
def test_compressed_files_read_like_plain_ones(
    tmp_path: Path, suffix: str, compress: Callable[[bytes], bytes]
) -> None:
    plain = write(tmp_path / "plain/auth.log", lines(*AUTH_LOG))
    packed = write(tmp_path / f"auth.log.2{suffix}", compress(lines(*AUTH_LOG).encode()))
    expected = [(e.record, e.event["event"]["original"]) for e in events_of(scan(plain))]
    actual = [(e.record, e.event["event"]["original"]) for e in events_of(scan(packed))]
    assert actual == expected


def test_truncated_gzip_keeps_what_was_read_and_reports_the_rest(tmp_path: Path) -> None:
    text = lines(
        *(f"Nov 28 10:00:{n % 60:02d} web01 app: line {n} {'x' * 50}" for n in range(2000))
    )
    packed = gzip.compress(text.encode())
    path = write(tmp_path / "app.log.gz", packed[: len(packed) // 2])
    items = scan(path)
    events, problems = events_of(items), problems_of(items)
    assert 0 < len(events) < 2000
    assert len(problems) == 1
    assert problems[0].record == events[-1].record + 1
    assert "EOFError" in problems[0].reason or "BadGzipFile" in problems[0].reason


# --- JSON -----------------------------------------------------------------------------------


def test_json_lines_route_windows_ecs_and_other_objects(tmp_path: Path) -> None:
    content = lines(
        orjson.dumps(WINDOWS_EVENT).decode(),
        orjson.dumps(ECS_EVENT).decode(),
        orjson.dumps({**ECS_EVENT, "event": {"id": "own-id"}}).decode(),
        orjson.dumps(OTHER_OBJECT).decode(),
        "{broken json",
        "[1, 2]",
    )
    path = write(tmp_path / "events.jsonl", content)
    items = scan(path)
    name = str(path.resolve())
    windows, ecs, own, other = events_of(items)
    assert windows.event["process"]["executable"] == "C:\\Windows\\System32\\whoami.exe"
    assert windows.event["event"]["id"] == stable_id("scan", name, "1")
    assert windows.event["log"]["file"] == {"path": name, "record": 1}
    assert ecs.event["event"] == {"kind": "alert", "id": stable_id("scan", name, "2")}
    assert ecs.event["message"] == "m"
    assert own.event["event"]["id"] == "own-id"
    assert other.event["msg"] == "login"
    assert other.event["log"] == "text, not a mapping"  # kept as is: no room for log.file
    assert other.event["event"]["id"] == stable_id("scan", name, "4")
    assert [(p.record, p.reason.split(":")[0]) for p in problems_of(items)] == [
        (5, "not a JSON value"),
        (6, "a JSON list, not an object"),
    ]


def test_json_array_and_back_to_back_objects(tmp_path: Path) -> None:
    array = write(tmp_path / "a.json", orjson.dumps([WINDOWS_EVENT, ECS_EVENT, OTHER_OBJECT]))
    pretty = write(tmp_path / "b.json", pretty_objects(WINDOWS_EVENT, ECS_EVENT, OTHER_OBJECT))
    for path in (array, pretty):
        events = events_of(scan(path))
        assert [event.record for event in events] == [1, 2, 3]
        assert events[0].event["event"]["code"] == "1"
        assert events[2].event["msg"] == "login"


def test_json_value_spanning_many_read_chunks(tmp_path: Path) -> None:
    big = {"Event": {**WINDOWS_EVENT["Event"], "EventData": {"Payload": "A" * 3_000_000}}}
    path = write(tmp_path / "big.json", pretty_objects(ECS_EVENT, big, ECS_EVENT))
    events = events_of(scan(path))
    assert [event.record for event in events] == [1, 2, 3]
    assert len(events[1].event["winlog"]["event_data"]["Payload"]) == 3_000_000


def test_json_file_cut_mid_value_reports_the_cut(tmp_path: Path) -> None:
    text = pretty_objects(ECS_EVENT, WINDOWS_EVENT)
    path = write(tmp_path / "cut.json", text[: len(text) - 40])
    items = scan(path)
    assert [type(item).__name__ for item in items] == ["ScannedEvent", "ReadProblem"]
    assert items[1].record == 2


# --- EVTX ---------------------------------------------------------------------------------


def regression_evtx() -> list[Path]:
    return sorted(REGRESSION.rglob("*.evtx")) if REGRESSION.is_dir() else []


@needs_regression_data
def test_every_regression_evtx_record_is_read_with_scan_fields() -> None:
    items = scan(REGRESSION)
    evtx = [item for item in items if item.path.endswith(".evtx")]
    assert problems_of(evtx) == []
    assert len(evtx) >= 238
    assert {item.path for item in evtx} == {str(p.resolve()) for p in regression_evtx()}
    for item in events_of(evtx):
        assert item.event["log"]["file"] == {"path": item.path, "record": item.record}
        assert item.event["event"]["id"] == stable_id("scan", item.path, str(item.record))
        assert item.event["winlog"]["channel"]


@needs_regression_data
def test_evtx_records_are_numbered_and_ids_repeat_on_rescan() -> None:
    several = next(path for path in regression_evtx() if sum(1 for _ in scan(path)) > 1)
    first, again = events_of(scan(several)), events_of(scan(several))
    assert [event.record for event in first] == list(range(1, len(first) + 1))
    assert [e.event["event"]["id"] for e in first] == [e.event["event"]["id"] for e in again]
    record_ids = [int(event.event["winlog"]["record_id"]) for event in first]
    assert record_ids == sorted(record_ids)


@needs_regression_data
def test_gzipped_evtx_reads_like_the_plain_file(tmp_path: Path) -> None:
    source = regression_evtx()[0]
    packed = write(tmp_path / "Security.evtx.gz", gzip.compress(source.read_bytes()))
    plain = [e.event["winlog"]["record_id"] for e in events_of(scan(source))]
    assert [e.event["winlog"]["record_id"] for e in events_of(scan(packed))] == plain


def two_chunk_evtx(first: bytes, second: bytes) -> bytes:
    """A file with the chunks of two real files, header fixed to count both."""
    header = bytearray(first[:4096])
    struct.pack_into("<Q", header, 16, 1)  # last chunk number
    struct.pack_into("<H", header, 42, 2)  # chunk count
    return bytes(header) + first[4096:] + second[4096:]


@needs_regression_data
def test_corrupt_evtx_chunk_is_reported_and_the_next_chunk_still_read(tmp_path: Path) -> None:
    first, second = (path.read_bytes() for path in regression_evtx()[:2])
    damaged = bytearray(first[4096:])
    damaged[0:8] = b"XXXXXXXX"  # the first chunk's magic
    path = write(
        tmp_path / "damaged.evtx", two_chunk_evtx(first, second)[:4096] + damaged + second[4096:]
    )
    items = scan(path)
    assert isinstance(items[0], ReadProblem)
    assert items[0].record == 1
    assert "corrupt EVTX data" in items[0].reason
    assert [type(item).__name__ for item in items[1:]] == ["ScannedEvent"] * (len(items) - 1)
    assert len(items) > 1


@needs_regression_data
def test_truncated_evtx_is_reported_after_the_records_it_holds(tmp_path: Path) -> None:
    first, second = (path.read_bytes() for path in regression_evtx()[:2])
    whole = two_chunk_evtx(first, second)
    path = write(tmp_path / "cut.evtx", whole[: 4096 + 65536 + 3000])
    items = scan(path)
    events, problems = events_of(items), problems_of(items)
    assert len(events) == len(events_of(scan(regression_evtx()[0])))
    assert len(problems) == 1
    assert "truncated" in problems[0].reason
    assert problems[0].record == events[-1].record + 1


def test_garbage_with_the_evtx_magic_is_reported_and_other_files_still_read(
    tmp_path: Path,
) -> None:
    write(tmp_path / "a/garbage.evtx", b"ElfFile\x00" + os.urandom(70_000))
    write(tmp_path / "b/tiny.evtx", b"ElfFile\x00")
    write(tmp_path / "c/auth.log", lines(*AUTH_LOG))
    items = scan(tmp_path)
    kinds = {(Path(item.path).name, type(item).__name__) for item in items}
    assert kinds == {
        ("garbage.evtx", "ReadProblem"),
        ("tiny.evtx", "ReadProblem"),
        ("auth.log", "ScannedEvent"),
    }
    assert len(events_of(items)) == 3


# --- paths ----------------------------------------------------------------------------------


def test_missing_path_is_a_problem_and_the_scan_goes_on(tmp_path: Path) -> None:
    log = write(tmp_path / "auth.log", lines(*AUTH_LOG))
    items = scan(tmp_path / "nope", log)
    assert items[0] == ReadProblem(
        str(tmp_path / "nope"), 0, "cannot read: No such file or directory"
    )
    assert len(events_of(items)) == 3


def test_fifo_and_broken_link_are_reported_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    write(tmp_path / "z.log", lines(*AUTH_LOG))
    items = scan(tmp_path)
    assert [(Path(p.path).name, p.reason) for p in problems_of(items)] == [
        ("dangling", "cannot read: No such file or directory"),
        ("pipe", "not a regular file (device, FIFO or socket): not read"),
    ]
    assert len(events_of(items)) == 3


def test_directory_that_cannot_be_listed_is_reported(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root lists directories whatever their mode")
    locked = tmp_path / "locked"
    write(locked / "auth.log", lines(*AUTH_LOG))
    locked.chmod(0)
    try:
        (problem,) = scan(tmp_path)
    finally:
        locked.chmod(0o755)
    assert problem == ReadProblem(str(locked), 0, "cannot list directory: Permission denied")


def test_directories_are_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b/z.log", lines(AUTH_LOG[0]))
    write(tmp_path / "b/a.log", lines(AUTH_LOG[0]))
    write(tmp_path / "a/deep/er/x.log", lines(AUTH_LOG[0]))
    write(tmp_path / "c.log", lines(AUTH_LOG[0]))
    names = [Path(item.path).relative_to(tmp_path.resolve()) for item in scan(tmp_path)]
    assert names == [Path("c.log"), Path("a/deep/er/x.log"), Path("b/a.log"), Path("b/z.log")]


def test_symlinked_directory_loop_does_not_trap_the_walk(tmp_path: Path) -> None:
    write(tmp_path / "logs/auth.log", lines(*AUTH_LOG))
    (tmp_path / "logs/loop").symlink_to(tmp_path / "logs", target_is_directory=True)
    assert len(events_of(scan(tmp_path))) == 3


def test_files_are_named_by_their_real_path_through_links_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """log.file.path (and so the events' ids) is the file's real absolute path, whichever way
    the scan reached it: a relative path, a symlinked directory, a symlinked file."""
    real = write(tmp_path / "real/dir/auth.log", lines(AUTH_LOG[0]))
    other = write(tmp_path / "real/other.log", lines(AUTH_LOG[0]))
    (tmp_path / "via").symlink_to(tmp_path / "real/dir", target_is_directory=True)
    (tmp_path / "real/dir/link.log").symlink_to(other)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real/dir/deeper").mkdir()
    given = [
        Path("via/auth.log"),
        Path("via/link.log"),
        Path("real/dir/auth.log"),
        Path("via/deeper/../auth.log"),
        Path("via"),
    ]
    named = [item.path for item in scan(*given)]
    assert named == [
        str(real.resolve()),
        str(other.resolve()),
        str(real.resolve()),
        str(real.resolve()),
        str(real.resolve()),
        str(other.resolve()),
    ]
    assert named == [str(path.resolve()) for path in [*given[:4], real, other]]


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = write(tmp_path / "secret.log", lines(*AUTH_LOG))
    path.chmod(0)
    (problem,) = scan(path)
    assert isinstance(problem, ReadProblem)
    assert problem.record == 0
    assert "PermissionError" in problem.reason
