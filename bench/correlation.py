"""Correlation updates per second: matches fed to the engine for the project's own correlation
rules (brute force by source, spraying by distinct users, port scan by distinct ports), with
thousands of groups live at once. Never fails on a time."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soc.detect.correlation import CorrelationEngine, Match  # noqa: E402
from soc.detect.rules import load_rules  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--matches", type=int, default=300_000)
    parser.add_argument("--sources", type=int, default=500)
    args = parser.parse_args()
    ruleset = load_rules([ROOT / "rules"])
    engine = CorrelationEngine([rule for rule, _ in ruleset.correlations])
    by_name = {rule.name: rule for rule in ruleset.rules}
    kinds = [
        (by_name["sshd_failed_password"], lambda i: {"user": {"name": "root"}}),
        (by_name["sshd_invalid_user"], lambda i: {"user": {"name": f"user{i % 50}"}}),
        (by_name["net_tcp_probe"], lambda i: {"destination": {"port": 1 + i % 1000}}),
    ]
    matches = []
    for i in range(args.matches):
        rule, extra = kinds[i % len(kinds)]
        source = (i // len(kinds)) % args.sources  # every kind cycles through every source
        event = {"source": {"ip": f"10.0.{source // 250}.{source % 250}"}, **extra(i)}
        matches.append(Match(rule.id, rule.name, 1_800_000_000 + i * 0.01, event, f"e{i}"))
    started = time.perf_counter()
    hits = 0
    for position, match in enumerate(matches):
        hits += len(engine.process(match))
        if position % 10_000 == 0:
            hits += len(engine.advance(match.timestamp))
    elapsed = time.perf_counter() - started
    stats = engine.stats
    print(f"correlation rules: {len(engine.correlations)}; matches: {args.matches:,}; "
          f"groups live at the end: {stats.groups:,}")  # fmt: skip
    print(f"correlation updates: {args.matches / elapsed:>10,.0f} matches/s  ({hits:,} hits, "
          f"{stats.groups_expired:,} groups expired, {stats.groups_evicted:,} evicted)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
