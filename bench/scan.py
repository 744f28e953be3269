"""`soc scan` events per second with the whole SigmaHQ rule set, rule loading reported apart:
in one process (`--jobs 1`, the baseline) and with the default worker processes (one per
CPU), and the ratio. Over SigmaHQ's regression EVTX files (many small files), and over one
large file, which the workers read in parts: Windows events as JSON lines (the regression
records as the evtx package renders them, repeated) and a syslog file (sshd, sudo, cron,
web). Never fails on a time."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import make_lines  # noqa: E402
from soc import heap  # noqa: E402
from soc.detect.rules import RuleSet, load_rules  # noqa: E402
from soc.scan.run import default_jobs, scan  # noqa: E402

SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", ROOT.parent / "shared" / "sigma"))


def main() -> int:
    if not (SIGMA / "regression_data").is_dir():
        print(f"SigmaHQ regression data not found at {SIGMA}: set SOC_SIGMA_PATH")
        return 0
    started = time.perf_counter()
    ruleset = load_rules(
        [
            SIGMA / "rules",
            SIGMA / "rules-emerging-threats",
            SIGMA / "rules-threat-hunting",
            ROOT / "rules",
        ]
    )
    loaded = time.perf_counter() - started
    files = sorted((SIGMA / "regression_data").rglob("*.evtx"))
    rounds = 20  # the sample is small (a few hundred records): scan it repeatedly
    heap.settle()  # as `soc scan` does before it scans (and forks its workers)
    print(f"rules loaded in {loaded:.1f} s ({len(ruleset.rules)} routed)")
    compare(f"{len(files)} EVTX files x{rounds}", files * rounds, ruleset)
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as folder:
        jsonl = windows_jsonl(files, Path(folder) / "events.jsonl")
        compare("one JSON-lines file of Windows events", [jsonl], ruleset, passes=2)
        compare("one syslog file", [syslog_file(Path(folder) / "messages")], ruleset, passes=2)
    return 0


def compare(what: str, paths: list[Path], ruleset: RuleSet, passes: int = 3) -> None:
    """Both job counts over the same paths, interleaved, best of `passes`: the VM's noise hits
    both alike."""
    rates: dict[int, float] = {}
    for _ in range(passes):
        for jobs in sorted({1, default_jobs()}):
            # Alerts written to a file, as `soc scan -o` does (a BytesIO of hundreds of
            # megabytes would time its own growth).
            with open(os.devnull, "wb") as output:
                summary = scan(
                    paths, ruleset, output, timezone=ZoneInfo("Asia/Ho_Chi_Minh"), jobs=jobs
                )
            rates[jobs] = max(rates.get(jobs, 0.0), summary.rate)
            events, alerts = summary.events, sum(summary.alerts.values())
    size = sum(path.stat().st_size for path in paths) / 2**20
    for jobs, rate in rates.items():
        print(f"soc scan --jobs {jobs} over {what} ({size:,.0f} MiB): {rate:>8,.0f} events/s "
              f"({events:,} events, {alerts:,} alerts, reading + normalizing + detecting)")  # fmt: skip
    if len(rates) > 1:
        print(f"  --jobs {max(rates)} / --jobs 1: {rates[max(rates)] / rates[1]:.2f}x "
              f"({os.cpu_count()} CPUs)")  # fmt: skip


def windows_jsonl(files: list[Path], path: Path, events: int = 30_000) -> Path:
    """The regression records as JSON lines, repeated to `events` lines."""
    from evtx import PyEvtxParser

    records = [
        orjson.dumps(orjson.loads(record["data"]))
        for file in files
        for record in PyEvtxParser(str(file)).records_json()
    ]
    with path.open("wb") as out:
        for n in range(events):
            out.write(records[n % len(records)] + b"\n")
    return path


def syslog_file(path: Path, lines: int = 200_000) -> Path:
    path.write_bytes(b"\n".join(make_lines(lines)) + b"\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
