"""`soc scan --format csv`: a timeline a responder opens in a spreadsheet: one row an alert,
the same rows whether one process or several scanned, Vietnamese text intact, and no cell a
spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from soc.cli import main
from soc.detect.rules import load_rules
from soc.scan.run import scan
from tests.ecs_fields import ZONE

ROOT = Path(__file__).resolve().parents[1]


def evidence(root: Path) -> Path:
    """Failed SSH logins (a brute force), one of them for a user whose name starts with '=',
    and a web attack with a Vietnamese query."""
    root.mkdir(parents=True)
    (root / "auth.log").write_text(
        "".join(
            f"Nov 28 10:00:{n:02d} web01 sshd[42]: Failed password for "
            f"{'=cmd|calc' if n == 3 else 'root'} from 203.0.113.7 port {5000 + n} ssh2\n"
            for n in range(12)
        )
    )
    (root / "access.log").write_text(
        '198.51.100.9 - - [28/Nov/2026:10:00:01 +0700] "GET /tra-cuu?q=%27%20or%201=1--&ten=Nguyễn '
        'HTTP/1.1" 200 812 "-" "sqlmap/1.8"\n'
    )
    return root


def rows(data: bytes) -> list[dict[str, str]]:
    assert data.startswith("\ufeff".encode()), "no byte-order mark: Excel would garble Vietnamese"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_csv_timeline_has_one_row_an_alert(tmp_path: Path, jobs: int) -> None:
    root = evidence(tmp_path / "evidence")
    rules = load_rules([ROOT / "rules"])
    output = io.BytesIO()
    summary = scan([root], rules, output, timezone=ZONE, jobs=jobs, output_format="csv")
    found = rows(output.getvalue())
    assert len(found) == sum(summary.alerts.values()) > 0
    assert list(found[0]) == [
        "Timestamp", "Level", "Rule", "Host", "Log", "EventCode", "User", "SourceIP", "Details",
        "File", "Record", "RuleId",
    ]  # fmt: skip
    failed = [row for row in found if row["Rule"] == "SSH Failed Password"]
    assert len(failed) == 12
    assert {row["SourceIP"] for row in failed} == {"203.0.113.7"}
    assert {row["Host"] for row in failed} == {"web01"}
    assert sorted(int(row["Record"]) for row in failed) == list(range(1, 13))
    assert all(row["File"].endswith("auth.log") for row in failed)
    # A value a spreadsheet would run as a formula is written as text.
    assert "'=cmd|calc" in {row["User"] for row in failed}
    assert not any(cell.startswith(("=", "+", "@")) for row in found for cell in row.values())
    web = [row for row in found if row["Log"] == "web.access"]
    assert web and any("Nguyễn" in row["Details"] for row in web)
    (brute,) = [row for row in found if row["Rule"] == "SSH Brute Force From One Address"]
    assert brute["Details"] == "event_count: source.ip=203.0.113.7 value=10"
    assert brute["File"].endswith("auth.log") and brute["Record"] == "1"  # its first event


def test_soc_scan_writes_the_csv_timeline_that_one_and_two_jobs_agree_on(tmp_path: Path) -> None:
    root = evidence(tmp_path / "evidence")
    written = []
    for jobs in ("1", "2"):
        target = tmp_path / f"timeline-{jobs}.csv"
        command = ["scan", str(root), "--rules", str(ROOT / "rules"), "--format", "csv"]
        assert main([*command, "-o", str(target), "-j", jobs]) == 0
        written.append(sorted(tuple(row.values()) for row in rows(target.read_bytes())))
    assert written[0] == written[1] and written[0]
