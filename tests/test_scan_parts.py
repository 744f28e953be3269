"""`soc scan --jobs N` over one large file: the file is read in parts by several workers, and
the alerts, their record numbers and event ids, the problems and the summary are what one
process reading the whole file gives, damaged EVTX chunks (whose headers mislead the plan)
and an error that ends a file included."""

from __future__ import annotations

import gzip
import io
import itertools
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import yaml

from soc.detect.rules import RuleSet, load_rules
from soc.normalize import NormalizeOptions
from soc.scan import readers
from soc.scan import run as scan_run
from soc.scan.readers import ReadProblem, ScannedEvent, Span, read_file, split_file
from soc.scan.run import ScanSummary, scan

ROOT = Path(__file__).resolve().parents[1]
SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", ROOT.parent / "shared" / "sigma"))
REGRESSION = SIGMA / "regression_data"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
OPTIONS = NormalizeOptions(timezone=ZONE)
CHUNK = 65536

pytestmark = pytest.mark.skipif(
    "fork" not in __import__("multiprocessing").get_all_start_methods(),
    reason="worker processes are forked: this platform cannot fork",
)
needs_regression_data = pytest.mark.skipif(
    not REGRESSION.is_dir(),
    reason=f"SigmaHQ regression_data not found at {REGRESSION} (set SOC_SIGMA_PATH to run)",
)


# --- evidence ------------------------------------------------------------------------------


def regression_chunks() -> tuple[bytes, list[bytes]]:
    """A file header and every chunk of SigmaHQ's regression EVTX files (each chunk holds its
    own templates and strings, so chunks of different files make one valid file)."""
    header = b""
    chunks = []
    for path in sorted(REGRESSION.rglob("*.evtx")):
        data = path.read_bytes()
        header = header or data[:4096]
        chunks += [data[at : at + CHUNK] for at in range(4096, len(data) - CHUNK + 1, CHUNK)]
    return header, chunks


def damaged_evtx(path: Path) -> Path:
    """Every regression chunk in one file, with what seized files hold: a chunk of garbage
    (the parser reports it), a chunk never written (zeros: passed over), a chunk whose header
    announces 40 records but holds one (the plan's count is wrong from there on) and a
    chunk cut short at the end."""
    header, chunks = regression_chunks()
    misleading = bytearray(chunks[120])
    first = struct.unpack_from("<Q", misleading, 8)[0]
    struct.pack_into("<Q", misleading, 16, first + 39)
    struct.pack_into("<I", misleading, 124, zlib.crc32(misleading[:120] + misleading[128:512]))
    body = [
        *chunks[:50],
        bytes(range(256)) * 256,
        *chunks[50:100],
        bytes(CHUNK),
        *chunks[100:120],
        bytes(misleading),
        *chunks[121:],
        chunks[0][:30000],
    ]
    path.write_bytes(header + b"".join(body))
    return path


def syslog_lines(count: int) -> bytes:
    """Failed and accepted SSH logins, with what real files hold: a byte-order mark, blank
    lines, CRLF endings, a line that is not UTF-8, lines of many lengths, no final newline."""
    lines = [b"\xef\xbb\xbf<38>Nov 28 09:59:59 web01 sshd[1]: Server listening on 0.0.0.0"]
    for n in range(count):
        second = f"{n // 60 % 60:02d}:{n % 60:02d}"
        if n % 97 == 0:
            lines.append(b"")
        if n % 211 == 0:
            lines.append(b"<38>Nov 28 10:00:00 web01 sshd[2]: bad \xff\xfe bytes")
        ending = b"\r" if n % 5 == 0 else b""
        text = (
            f"<38>Nov 28 10:{second} web{n % 3} sshd[{n}]: Failed password for "
            f"{'root' if n % 4 else 'admin' + 'x' * (n % 50)} from 203.0.113.{n % 7} port "
            f"{1000 + n} ssh2"
        )
        if n % 50 == 49:
            text = f"<38>Nov 28 10:{second} web{n % 3} sshd[{n}]: Accepted password for root from 203.0.113.{n % 7} port {n} ssh2"  # noqa: E501
        lines.append(text.encode() + ending)
    return b"\n".join(lines)


def access_lines(count: int) -> bytes:
    lines = []
    for n in range(count):
        attack = "/?id=1%27%20or%201=1" if n % 9 == 0 else f"/static/{n}.css"
        agent = "sqlmap/1.8" if n % 13 == 0 else "Mozilla/5.0"
        lines.append(
            f"198.51.100.{n % 200} - - [28/Nov/2026:10:{n // 60 % 60:02d}:{n % 60:02d} +0700] "
            f'"GET {attack} HTTP/1.1" 200 {n} "-" "{agent}"'
        )
    return "\n".join(lines).encode() + b"\n\n"


def jsonl_lines(count: int) -> bytes:
    """ECS events as JSON lines, one of them not JSON."""
    lines = []
    for n in range(count):
        lines.append(
            orjson.dumps(
                {
                    "@timestamp": f"2026-11-28T03:{n // 60 % 60:02d}:{n % 60:02d}Z",
                    "event": {"category": ["process"], "type": ["start"]},
                    "host": {"name": f"web{n % 3}"},
                    "process": {"command_line": f"/bin/sh -c 'echo {n}'" + " x" * (n % 40)},
                }
            )
        )
        if n == count // 3:
            lines.append(b'{"cut": ')
    return b"\n".join(lines) + b"\n"


# --- helpers -------------------------------------------------------------------------------


def items(path: Path, spans: list[Span] | None = None) -> list[tuple[Any, ...]]:
    """What the reader gives, as comparable tuples: each event's record and id, each
    problem's record and reason."""
    name = str(path)
    read = [read_file(path, name, OPTIONS)] if spans is None else []
    read += [read_file(path, name, OPTIONS, span) for span in spans or []]
    found: list[tuple[Any, ...]] = []
    for stream in read:
        for item in stream:
            if isinstance(item, ScannedEvent):
                found.append(("event", item.record, item.event["event"]["id"]))
            else:
                assert isinstance(item, ReadProblem)
                found.append(("problem", item.record, item.reason))
    return found


def scanned(path: Path, ruleset: RuleSet, jobs: int) -> tuple[ScanSummary, list[dict[str, Any]]]:
    output = io.BytesIO()
    summary = scan([path], ruleset, output, timezone=ZONE, jobs=jobs)
    alerts = []
    for line in output.getvalue().splitlines():
        alert = orjson.loads(line)
        del alert["event"]["created"]
        alerts.append(alert)
    return summary, alerts


def summary_of(summary: ScanSummary) -> dict[str, Any]:
    shown = summary.as_dict()
    del shown["seconds"], shown["events_per_second"]
    return shown


def single_event(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts of single-event rules, in the order written (a file's, part after part)."""
    return [alert for alert in alerts if "events" in alert and "log" in alert]


def correlation(alerts: list[dict[str, Any]]) -> list[bytes]:
    """Correlation alerts, which come after the single-event alerts of the part that closed
    them, in a stable order."""
    return sorted(
        orjson.dumps(alert, option=orjson.OPT_SORT_KEYS)
        for alert in alerts
        if not ("events" in alert and "log" in alert)
    )


class Parts:
    """Spies, in the scanning process, on the parts taken and the parts read again here."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken: list[Span] = []
        self.read_here: list[Span] = []
        checked, scan_task = scan_run._Parts.checked, scan_run._scan_task
        parent = os.getpid()

        def spy_checked(parts: Any, task: Any, result: Any) -> Any:
            if task.span is not None:
                self.taken.append(task.span)
            return checked(parts, task, result)

        def spy_scan_task(task: Any) -> Any:
            if os.getpid() == parent:
                self.read_here.append(task.span)
            return scan_task(task)

        monkeypatch.setattr(scan_run._Parts, "checked", spy_checked)
        monkeypatch.setattr(scan_run, "_scan_task", spy_scan_task)


@pytest.fixture(scope="module")
def own_rules() -> RuleSet:
    return load_rules([ROOT / "rules"])


@pytest.fixture(scope="module")
def regression_rules() -> RuleSet:
    """The SigmaHQ rules whose regression samples the EVTX evidence is made of."""
    ids = set()
    for info in REGRESSION.rglob("info.yml"):
        ids.add(yaml.safe_load(info.read_text())["rule_metadata"][0]["id"])
    pattern = re.compile(r"^id:\s*([0-9a-f-]{36})\s*$", re.MULTILINE)
    paths = [
        path
        for folder in ("rules", "rules-emerging-threats", "rules-threat-hunting")
        for path in sorted((SIGMA / folder).rglob("*.yml"))
        if (found := pattern.search(path.read_text(errors="replace"))) and found[1] in ids
    ]
    return load_rules(paths)


# --- the reader: parts read alone give what the whole file gives ---------------------------


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("auth.log", lambda: syslog_lines(3000)),
        ("access.log", lambda: access_lines(3000)),
        ("events.jsonl", lambda: jsonl_lines(2000)),
    ],
)
def test_line_file_parts_number_their_lines_as_the_whole_file(
    tmp_path: Path, name: str, make: Any
) -> None:
    path = tmp_path / name
    path.write_bytes(make())
    size = path.stat().st_size
    spans = split_file(path, size, 10_000)
    assert spans is not None
    spans = list(spans)
    assert len(spans) >= size // 10_000 - 1
    assert all(span.counted for span in spans)
    assert spans[-1].stop is None
    # The parts cover the file, end to end, each after a newline.
    data = path.read_bytes()
    assert spans[0].start == 0
    for before, after in itertools.pairwise(spans):
        assert before.stop == after.start and data[after.start - 1 : after.start] == b"\n"
    whole = items(path)
    assert items(path, spans) == whole
    assert len(whole) > 1500


@needs_regression_data
def test_evtx_parts_number_their_records_as_the_whole_file(tmp_path: Path) -> None:
    header, chunks = regression_chunks()
    path = tmp_path / "Security.evtx"
    path.write_bytes(header + b"".join(chunks))
    spans = split_file(path, path.stat().st_size, 10 * CHUNK)
    assert spans is not None
    spans = list(spans)
    assert [span.start for span in spans] == [4096 + n * 10 * CHUNK for n in range(len(spans))]
    assert len(spans) == len(chunks) // 10
    whole = items(path)
    # Each part numbered from the base the chunk headers predicted: the whole file's numbers.
    assert items(path, spans) == whole
    assert len(whole) == 238


def test_files_read_whole(tmp_path: Path) -> None:
    """Small files, compressed files, and formats whose records need what comes before them
    (W3C's #Fields, a JSON array's brackets) are not split."""
    lines = access_lines(2000)
    cases = {
        "small.log": lines[:5000],
        "access.log.gz": gzip.compress(lines),
        "u_ex.log": b"#Software: IIS\n#Fields: date time cs-method cs-uri-stem\n"
        + b"2026-11-28 10:00:00 GET /index.html\n" * 3000,
        "events.json": b"[" + b",".join(orjson.dumps({"n": n}) for n in range(5000)) + b"]",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert split_file(path, len(data), 10_000) is None, name
    assert split_file(tmp_path / "gone.log", 10**6, 10_000) is None


# --- the scan: several workers over one file ------------------------------------------------


@needs_regression_data
def test_a_damaged_evtx_file_scanned_in_parts_gives_what_one_process_gives(
    tmp_path: Path, regression_rules: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = damaged_evtx(tmp_path / "Security.evtx")
    monkeypatch.setattr(scan_run, "_PART_BYTES", 16 * CHUNK)
    parts = Parts(monkeypatch)
    alone, alone_alerts = scanned(path, regression_rules, jobs=1)
    assert not parts.taken, "one job read the file in parts"
    shared, shared_alerts = scanned(path, regression_rules, jobs=2)
    assert len(parts.taken) >= 12
    # The misleading header (chunk 122, in part 7) made the plan's numbers wrong after its
    # part: those parts were read again here, numbered on from what the parts before held.
    assert parts.read_here and all(span is not None for span in parts.read_here)
    assert parts.read_here[0].start == 4096 + (122 // 16 + 1) * 16 * CHUNK
    assert summary_of(shared) == summary_of(alone)
    assert single_event(shared_alerts) == single_event(alone_alerts)
    assert correlation(shared_alerts) == correlation(alone_alerts)
    assert len(single_event(alone_alerts)) > 150
    reasons = [problem.reason for problem in alone.problems]
    assert any("corrupt EVTX data" in reason for reason in reasons)
    assert any("file truncated" in reason for reason in reasons)
    records = [alert["log"]["file"]["record"] for alert in single_event(shared_alerts)]
    assert records == sorted(records)


@pytest.mark.parametrize(
    ("name", "make"),
    [("auth.log", lambda: syslog_lines(4000)), ("access.log", lambda: access_lines(4000))],
)
def test_a_line_file_scanned_in_parts_gives_what_one_process_gives(
    tmp_path: Path, own_rules: RuleSet, monkeypatch: pytest.MonkeyPatch, name: str, make: Any
) -> None:
    path = tmp_path / name
    path.write_bytes(make())
    monkeypatch.setattr(scan_run, "_PART_BYTES", 20_000)
    parts = Parts(monkeypatch)
    alone, alone_alerts = scanned(path, own_rules, jobs=1)
    shared, shared_alerts = scanned(path, own_rules, jobs=2)
    assert len(parts.taken) >= 10
    assert not parts.read_here, "a counted part was read again"
    assert summary_of(shared) == summary_of(alone)
    assert single_event(shared_alerts) == single_event(alone_alerts)
    assert correlation(shared_alerts) == correlation(alone_alerts)
    assert single_event(alone_alerts)
    if name == "auth.log":  # brute force across the parts' boundaries
        assert correlation(alone_alerts)


def test_an_error_that_ends_a_file_ends_it_for_the_parts_after_it(
    tmp_path: Path, own_rules: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl_lines(3000))
    monkeypatch.setattr(scan_run, "_PART_BYTES", 40_000)
    from_json = readers._from_json

    def failing(value: Any, *args: Any) -> Any:
        if value.get("process", {}).get("command_line", "").startswith("/bin/sh -c 'echo 1500'"):
            raise RuntimeError("the disk went away")
        return from_json(value, *args)

    monkeypatch.setattr(readers, "_from_json", failing)  # forked workers inherit it
    parts = Parts(monkeypatch)
    alone, _ = scanned(path, own_rules, jobs=1)
    shared, _ = scanned(path, own_rules, jobs=2)
    assert len(parts.taken) >= 4
    assert summary_of(shared) == summary_of(alone)
    assert alone.events == 1500
    assert alone.problems[-1].reason == "RuntimeError: the disk went away"
