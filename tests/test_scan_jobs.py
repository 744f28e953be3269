"""`soc scan --jobs N`: files read and matched in worker processes give the alerts and the
summary one process gives, correlations included when their matches come from files that
different workers read."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from soc.cli import main
from soc.detect.rules import RuleSet, load_rules
from soc.scan import run as scan_run
from soc.scan.run import ScanError, ScanSummary, scan

ROOT = Path(__file__).resolve().parents[1]
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")

pytestmark = pytest.mark.skipif(
    "fork" not in __import__("multiprocessing").get_all_start_methods(),
    reason="worker processes are forked: this platform cannot fork",
)


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_rules([ROOT / "rules"])


def failed_logins(first: int, count: int) -> str:
    return "".join(
        f"Nov 28 10:{(first + i) // 60:02d}:{(first + i) % 60:02d} web01 sshd[42]: Failed "
        f"password for root from 203.0.113.7 port {5000 + first + i} ssh2\n"
        for i in range(count)
    )


def evidence(root: Path) -> Path:
    """Many small files in nested folders: a brute force split over four of them (no file
    alone holds enough failures), its success in a fifth, web attacks, a file that is not
    valid data and a FIFO (reported, not read)."""
    for part in range(4):
        write(root / f"srv{part}/auth.log", failed_logins(part * 3, 3))
    write(
        root / "srv9/auth.log",
        "Nov 28 10:02:00 web01 sshd[43]: Accepted password for root from 203.0.113.7 "
        "port 6000 ssh2\n",
    )
    for n in range(30):
        write(
            root / f"web/{n:02d}/access.log",
            f'198.51.100.{n} - - [28/Nov/2026:10:00:{n:02d} +0700] "GET /?id=1%27%20or%201=1 '
            f'HTTP/1.1" 200 812 "-" "sqlmap/1.8"\n'
            f'10.0.0.{n} - - [28/Nov/2026:10:00:{n:02d} +0700] "GET /index.html HTTP/1.1" '
            f'200 99 "-" "Mozilla/5.0"\n',
        )
    write(root / "broken/events.json", '[{"a": 1}, {"b": ')
    os.mkfifo(root / "broken/pipe")
    return root


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def comparable(output: bytes) -> list[bytes]:
    """Alert lines without the time each was made, in a stable order."""
    lines = []
    for line in output.splitlines():
        alert = orjson.loads(line)
        del alert["event"]["created"]
        lines.append(orjson.dumps(alert, option=orjson.OPT_SORT_KEYS))
    return sorted(lines)


def scanned(paths: list[Path], ruleset: RuleSet, jobs: int) -> tuple[ScanSummary, bytes]:
    output = io.BytesIO()
    summary = scan(paths, ruleset, output, timezone=ZONE, jobs=jobs)
    return summary, output.getvalue()


def summary_of(summary: ScanSummary) -> dict[str, Any]:
    shown = summary.as_dict()
    del shown["seconds"], shown["events_per_second"]
    return shown


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of two files: the scan's files spread over many tasks and both workers."""
    monkeypatch.setattr(scan_run, "_BATCH_FILES", 2)


def test_workers_give_the_alerts_and_summary_of_one_process(
    tmp_path: Path, ruleset: RuleSet, small_batches: None
) -> None:
    root = evidence(tmp_path / "evidence")
    alone, alone_output = scanned([root], ruleset, jobs=1)
    shared, shared_output = scanned([root], ruleset, jobs=2)
    assert summary_of(shared) == summary_of(alone)
    assert comparable(shared_output) == comparable(alone_output)
    names = {orjson.loads(line)["rule"]["name"] for line in shared_output.splitlines()}
    # The correlations saw matches from files read by different workers.
    assert {"SSH Brute Force From One Address", "SSH Login Succeeded After Brute Force"} <= names
    assert shared.events == 4 * 3 + 1 + 30 * 2 + 1  # and the object before the cut JSON
    assert [Path(problem.path).name for problem in shared.problems] == ["events.json", "pipe"]


def test_a_file_with_many_alerts_goes_through_a_spill_file(
    tmp_path: Path, ruleset: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan_run, "_SPILL_BYTES", 1000)
    root = evidence(tmp_path / "evidence")
    spills: list[str] = []
    taken = scan_run._take

    def take(run: Any, result: Any) -> None:
        if result.spilled is not None:
            spills.append(result.spilled)
        taken(run, result)

    monkeypatch.setattr(scan_run, "_take", take)
    _, alone_output = scanned([root], ruleset, jobs=1)
    _, shared_output = scanned([root], ruleset, jobs=2)
    assert spills, "no file's alerts went through a spill file"
    assert comparable(shared_output) == comparable(alone_output)
    assert not any(Path(path).exists() for path in spills)
    assert not any(Path(path).parent.exists() for path in spills)


def test_a_worker_that_dies_stops_the_scan_with_a_clear_error(
    tmp_path: Path, ruleset: RuleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(_task: Any) -> Any:
        os._exit(9)

    monkeypatch.setattr(scan_run, "_scan_task", die)
    root = evidence(tmp_path / "evidence")
    with pytest.raises(ScanError, match="--jobs 1"):
        scanned([root], ruleset, jobs=2)


def test_cli_scans_with_jobs_and_refuses_a_count_below_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = evidence(tmp_path / "evidence")
    outputs = []
    for jobs in ("1", "2"):
        target = tmp_path / f"alerts-{jobs}.jsonl"
        code = main(
            ["scan", str(root), "--rules", str(ROOT / "rules"), "-o", str(target), "-j", jobs]
        )
        assert code == 0
        outputs.append(comparable(target.read_bytes()))
    assert outputs[0] == outputs[1] and outputs[0]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", str(root), "--jobs", "0"])
    assert exit_info.value.code == 2
    assert "'0' is not a whole number of at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_interrupted_scan_reports_what_it_read_and_leaves_no_worker(
    tmp_path: Path, ruleset: RuleSet, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    """Ctrl-C: the scan stops, its summary says so and counts what was read, correlation
    windows stay open (their decision would rest on part of the evidence), and no worker
    process is left running."""
    root = evidence(tmp_path / "evidence")
    taken = {"files": 0}
    hook = "_take" if jobs > 1 else "_Run.item"
    original = scan_run._take if jobs > 1 else scan_run._Run.item

    def interrupting(*args: Any) -> None:
        taken["files"] += 1
        if taken["files"] == 5:
            raise KeyboardInterrupt
        original(*args)

    if jobs > 1:
        monkeypatch.setattr(scan_run, "_take", interrupting)
    else:
        monkeypatch.setattr(scan_run._Run, "item", interrupting)
    summary, output = scanned([root], ruleset, jobs=jobs)
    assert summary.interrupted, hook
    assert summary.as_dict()["interrupted"] is True
    assert 0 < summary.events < 4 * 3 + 1 + 30 * 2 + 1
    names = {orjson.loads(line)["rule"]["name"] for line in output.splitlines()}
    assert "SSH Brute Force From One Address" not in names  # its window was not closed
    assert __import__("multiprocessing").active_children() == []


def test_ctrl_c_stops_soc_scan_with_its_summary_and_status_130(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    log = tmp_path / "auth.log"
    log.write_text(failed_logins(0, 60) * 8000)  # far more than a few seconds of scanning
    alerts = tmp_path / "alerts.jsonl"
    command = [sys.executable, "-m", "soc", "scan", str(log), "--rules", str(ROOT / "rules")]
    process = subprocess.Popen(
        [*command, "-o", str(alerts), "--jobs", "2"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (alerts.exists() and alerts.stat().st_size) and process.poll() is None:
        assert time.monotonic() < deadline, "no alert written in two minutes"
        time.sleep(0.05)  # until the workers' first results are written: scanning is under way
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()[-2000:]
    text = err.decode()
    assert "interrupted:" in text and "Traceback" not in text
    read = int(text.split(" events from")[0].replace(",", "").split()[-1])
    assert read < 60 * 8000
    leftover = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True)
    assert leftover.stdout == b""
