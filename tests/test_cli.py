"""The `soc` commands an operator, a rule author and an incident responder run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from soc.cli import _overrides, _parser, main
from soc.detect.rules import rule_files

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
#: The project's own rule files (single-event rules and correlations).
OWN_RULE_FILES = len(list(rule_files([RULES])))
SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", ROOT.parent / "shared" / "sigma"))


@pytest.fixture(autouse=True)
def _in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_rules_check_reports_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(RULES), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["loaded"] == OWN_RULE_FILES
    assert summary["compiled"] == OWN_RULE_FILES - 5 and summary["correlations"] == 5
    assert summary["not_run"] == [] and summary["errors"] == 0


def test_rules_check_names_each_broken_rule_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.yml").write_text((RULES / "linux" / "sshd_invalid_user.yml").read_text())
    (tmp_path / "broken.yml").write_text("title: x\ndetection: [\n")
    (tmp_path / "nocond.yml").write_text(
        "title: t\nid: 11111111-1111-4111-8111-111111111111\nlogsource: {product: linux}\n"
        "detection:\n  sel: {a: 1}\n"
    )
    assert main(["rules", "check", str(tmp_path), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    reasons = {Path(item["path"]).name: item["reason"] for item in summary["not_run"]}
    assert set(reasons) == {"broken.yml", "nocond.yml"}
    assert all(reasons.values())


def test_rules_test_runs_every_rule_s_own_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(RULES)]) == 0
    assert f"rules: {OWN_RULE_FILES} passed, 0 failed, 0 without tests" in capsys.readouterr().out


def test_rules_list_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", str(RULES), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == OWN_RULE_FILES
    states = {row["title"]: row["state"] for row in rows}
    assert states["SSH Brute Force From One Address"] == "correlation"
    assert states["SSH Failed Password"] == "routed"


def test_rules_convert_gives_the_elasticsearch_query_of_the_mapped_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", "convert", str(RULES / "web" / "web_scanner_user_agent.yml")]) == 0
    query = capsys.readouterr().out
    assert "user_agent.original:" in query and "sqlmap" in query


def test_scan_finds_attacks_in_seized_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "auth.log").write_text(
        "".join(
            f"Nov 28 10:00:{i:02d} web01 sshd[42]: Failed password for root from "
            f"203.0.113.7 port {5000 + i} ssh2\n"
            for i in range(12)
        )
        + "Nov 28 10:02:00 web01 sshd[43]: Accepted password for root from 203.0.113.7 "
        "port 6000 ssh2\n"
    )
    (evidence / "access.log").write_text(
        '198.51.100.20 - - [28/Nov/2026:10:00:01 +0700] "GET /?id=1%27%20or%201=1 HTTP/1.1" '
        '200 812 "-" "sqlmap/1.8"\n'
    )
    alerts_file = tmp_path / "alerts.jsonl"
    summary_file = tmp_path / "summary.json"
    code = main(
        ["scan", str(evidence), "--rules", str(RULES), "-o", str(alerts_file),
         "--summary-json", str(summary_file)]
    )  # fmt: skip
    assert code == 0
    alerts = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    names = {alert["rule"]["name"] for alert in alerts}
    assert {
        "SSH Brute Force From One Address",
        "SSH Login Succeeded After Brute Force",
        "SQL Injection Attempt in a Web Request",
        "Web Vulnerability Scanner User Agent",
    } <= names
    single = next(
        a for a in alerts if a["rule"]["name"] == "SQL Injection Attempt in a Web Request"
    )
    assert single["log"]["file"]["path"].endswith("access.log")
    assert single["log"]["file"]["record"] == 1
    assert single["rule"]["level"] == "high" and single["rule"]["id"]
    summary = json.loads(summary_file.read_text())
    assert summary["events"] == 14 and summary["files"] == 2
    assert summary["alerts"] == len(alerts)
    assert "14 events from 2 files" in capsys.readouterr().err


@pytest.mark.skipif(not (SIGMA / "rules").is_dir(), reason=f"SigmaHQ corpus not at {SIGMA}")
def test_every_sigmahq_rule_is_compiled_or_named_with_a_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folders = [
        str(SIGMA / name) for name in ("rules", "rules-emerging-threats", "rules-threat-hunting")
    ]
    main(["rules", "check", *folders, "--json"])
    summary = json.loads(capsys.readouterr().out)
    files = sum(1 for folder in folders for _ in Path(folder).rglob("*.yml"))
    assert summary["loaded"] == files
    assert all(item["reason"] and item["path"] for item in summary["not_run"])
    # every file is either a compiled rule or a rule named with its reason
    assert summary["compiled"] + summary["errors"] >= files
    assert summary["routed"] >= 3000


def test_engine_nice_comes_from_the_command_line_and_is_checked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _parser().parse_args(["engine", "--stages", "index", "--nice", "10"])
    assert _overrides(args)["pipeline"] == {"stages": "index", "nice": 10}
    assert "pipeline" not in _overrides(_parser().parse_args(["engine"]))
    assert main(["engine", "--nice", "20"]) == 2
    assert "pipeline.nice: must be between 0 and 19" in capsys.readouterr().err


#: Sets the niceness the process starts at, lowers its priority as `soc engine` does, then
#: prints the niceness of the main thread and of a thread started afterwards.
_NICER = """
import os, sys, threading
from soc.cli import _lower_priority
start = max(int(sys.argv[1]), os.getpriority(os.PRIO_PROCESS, 0))
os.setpriority(os.PRIO_PROCESS, 0, start)
_lower_priority(int(sys.argv[2]))
seen = []
worker = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, 0)))
worker.start()
worker.join()
print(start, os.getpriority(os.PRIO_PROCESS, 0), seen[0])
"""


@pytest.mark.parametrize(("start", "nice"), [(0, 7), (12, 7), (3, 0)])
def test_lowering_the_priority_reaches_later_threads_and_never_raises_it(
    start: int, nice: int
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NICER, str(start), str(nice)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    began, main_thread, later_thread = map(int, done.stdout.split())
    assert main_thread == later_thread == max(began, nice)
