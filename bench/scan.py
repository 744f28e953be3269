"""`soc scan` events per second over SigmaHQ's regression EVTX files, with the whole SigmaHQ
rule set, rule loading reported apart: in one process (`--jobs 1`, the baseline) and with the
default worker processes (one per CPU), and the ratio. Never fails on a time."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soc import heap  # noqa: E402
from soc.detect.rules import load_rules  # noqa: E402
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
    rates: dict[int, float] = {}
    # Interleaved, best of three: the VM's noise hits both alike.
    for _ in range(3):
        for jobs in sorted({1, default_jobs()}):
            # Alerts written to a file, as `soc scan -o` does (a BytesIO of hundreds of
            # megabytes would time its own growth).
            with open(os.devnull, "wb") as output:
                summary = scan(
                    files * rounds,
                    ruleset,
                    output,
                    timezone=ZoneInfo("Asia/Ho_Chi_Minh"),
                    jobs=jobs,
                )
            rates[jobs] = max(rates.get(jobs, 0.0), summary.rate)
            events, alerts = summary.events, sum(summary.alerts.values())
    for jobs, rate in rates.items():
        print(f"soc scan --jobs {jobs} over {len(files)} EVTX files x{rounds}: {rate:>8,.0f} events/s "
              f"({events:,} events, {alerts:,} alerts, reading + normalizing + detecting)")  # fmt: skip
    if len(rates) > 1:
        print(f"--jobs {max(rates)} / --jobs 1: {rates[max(rates)] / rates[1]:.2f}x "
              f"({os.cpu_count()} CPUs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
