"""Detection throughput with the whole SigmaHQ rule set, on one core.

Stream: a mix of Windows events (the EVTX records of SigmaHQ's regression data), Linux syslog
(sshd, sudo, cron, generic) and web access logs, normalized beforehand (normalization is measured
by bench/run.py). Three ways to evaluate the same rule set over the same events:

    naive   every compiled rule on every event (no routing, no index)
    routed  log-source routing, then every routed rule
    indexed routing + the Aho-Corasick literal index (what the engine runs)

Prints events/s, the ratios, rule loading time and peak memory. Never fails on a time. The
indexed figures are the best of `--passes` passes over the stream (the engine runs for months:
its steady state, with the value memo warm after the first pass), next to the first pass alone.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soc import heap  # noqa: E402
from soc.detect.rules import CompiledRule, RuleSet, load_rules  # noqa: E402
from soc.normalize import NormalizeOptions, normalize  # noqa: E402
from soc.normalize.web import normalize_access_log  # noqa: E402
from soc.normalize.windows import normalize_windows  # noqa: E402

SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", ROOT.parent / "shared" / "sigma"))

SYSLOG = [
    "<38>Nov 28 10:00:00 web{h} sshd[{p}]: Failed password for root from 203.0.{a}.{b} port {p} ssh2",
    "<38>Nov 28 10:00:00 web{h} sshd[{p}]: Accepted publickey for deploy from 10.1.{a}.{b} port {p} ssh2: ED25519 SHA256:x",
    "<86>Nov 28 10:00:00 web{h} sudo:   deploy : TTY=pts/0 ; PWD=/srv ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
    "<78>Nov 28 10:00:00 web{h} CRON[{p}]: (root) CMD (/usr/lib/php/sessionclean)",
    "<30>Nov 28 10:00:00 web{h} systemd[1]: Started Session {p} of user deploy.",
]
ACCESS = [
    '203.0.{a}.{b} - - [28/Nov/2026:10:00:00 +0700] "GET /portal/index.php?id={p} HTTP/1.1" 200 5120 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"',
    '198.51.{a}.{b} - - [28/Nov/2026:10:00:01 +0700] "GET /dichvucong/tra-cuu?ma_ho_so={p}&q=1%27%20OR%201=1-- HTTP/1.1" 200 812 "-" "sqlmap/1.8"',
    '203.0.{a}.{b} - - [28/Nov/2026:10:00:02 +0700] "POST /wp-login.php HTTP/1.1" 302 0 "-" "python-requests/2.31"',
    '10.1.{a}.{b} - admin [28/Nov/2026:10:00:03 +0700] "GET /static/app.{p}.js HTTP/2.0" 200 99120 "https://portal.example.vn/" "Mozilla/5.0 (X11; Linux x86_64)"',
]  # fmt: skip


def windows_events(limit: int | None = None) -> list[dict[str, Any]]:
    from evtx import PyEvtxParser

    events: list[dict[str, Any]] = []
    for path in sorted((SIGMA / "regression_data").rglob("*.evtx")):
        for record in PyEvtxParser(str(path)).records_json():
            events.append(normalize_windows(orjson.loads(record["data"])))
    return events[:limit] if limit else events


def mixed_stream(count: int) -> list[dict[str, Any]]:
    windows = windows_events()
    options = NormalizeOptions()
    stream: list[dict[str, Any]] = []
    for i in range(count):
        fill = {"h": i % 30, "p": 1000 + i % 50000, "a": i % 250, "b": i % 251}
        kind = i % 10
        if kind < 4:
            stream.append(windows[i % len(windows)])
        elif kind < 7:
            record = {
                "id": f"bench-{i}",
                "received_at": "2026-11-28T03:00:00.000000Z",
                "source": {"type": "syslog", "transport": "tcp", "peer": {"ip": "10.0.0.1"}},
                "data": SYSLOG[i % len(SYSLOG)].format(**fill),
            }
            stream.append(normalize(record, options))
        else:
            line = ACCESS[i % len(ACCESS)].format(**fill)
            stream.append(normalize_access_log(line, event_id=f"web-{i}", server="portal"))
    return stream


def measure(
    events: list[dict[str, Any]], match: Callable[[dict[str, Any]], Iterable[CompiledRule]]
) -> tuple[float, int]:
    hits = 0
    started = time.perf_counter()
    for event in events:
        for _ in match(event):
            hits += 1
    return len(events) / (time.perf_counter() - started), hits


def naive(ruleset: RuleSet) -> Callable[[dict[str, Any]], Iterable[CompiledRule]]:
    every = ruleset.rules + ruleset.unrouted
    return lambda event: [rule for rule in every if rule.matches(event)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--naive-events", type=int, default=2_000)
    parser.add_argument("--passes", type=int, default=3, help="passes of the indexed runs")
    parser.add_argument(
        "--routed-events",
        type=int,
        default=10_000,
        help="events for the routed run and the index check (all of them: minutes)",
    )
    args = parser.parse_args()
    if not (SIGMA / "rules").is_dir():
        print(f"SigmaHQ corpus not found at {SIGMA}: set SOC_SIGMA_PATH")
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
    load_seconds = time.perf_counter() - started
    events = mixed_stream(args.events)
    # As the engine does once its rules are loaded (soc/heap.py): the collector leaves the
    # rule set and the loaded events alone; every mode below runs with it so.
    heap.settle()
    rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # The index and the rules' field tests remember their answers for values seen (ValueMemo).
    # This stream repeats values more than most (its Windows events are the regression records
    # over and over), so the same run without the memo is the figure for a stream whose values
    # never repeat. The baselines below (routed, naive) evaluate without it: plain evaluation.
    memo = ruleset.memo
    budget = memo.budget

    def remembering(on: bool) -> None:
        memo.budget = budget if on else 0
        memo.clear()

    remembering(False)
    unmemoized_rate = max(measure(events, ruleset.match)[0] for _ in range(args.passes))
    remembering(True)
    first_rate, indexed_hits = measure(events, ruleset.match)
    distinct, resets, colds = memo.held(), memo.resets, memo.colds
    indexed_rate = max(
        [first_rate] + [measure(events, ruleset.match)[0] for _ in range(args.passes - 1)]
    )
    checked = events[: args.routed_events]
    # The engine (index and memo) against every routed rule evaluated in full without the memo.
    with_engine = [sorted(r.id for r in ruleset.match(event)) for event in checked]
    remembering(False)
    routed_rate, routed_hits = measure(checked, ruleset.match_unindexed)
    disagreements = sum(
        1
        for event, found in zip(checked, with_engine, strict=True)
        if found != sorted(r.id for r in ruleset.match_unindexed(event))
    )
    naive_rate, _ = measure(events[: args.naive_events], naive(ruleset))
    candidates = sum(
        len(index.candidates(event))
        for event in events[:10_000]
        for index in ruleset.routes
        if index.route.admits(event)
    ) / min(len(events), 10_000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"rules: {len(ruleset.rules)} routed, {len(ruleset.unrouted)} unrouted, {len(ruleset.problems)} problems; loaded in {load_seconds:.1f} s"
    )
    print(f"events: {len(events)} (40% Windows EVTX, 30% Linux syslog, 30% web access)")
    print(f"rules fully evaluated per event (indexed): {candidates:.1f}")
    print()
    print(
        f"naive   (every rule, every event)    : {naive_rate:>10,.0f} events/s  (over {args.naive_events} events)"
    )
    print(
        f"routed  (routing, every routed rule)  : {routed_rate:>10,.0f} events/s  (over {len(checked)} events: {routed_hits} matches)"
    )
    print(
        f"indexed, no value remembered          : {unmemoized_rate:>10,.0f} events/s  (every value scanned: a stream that never repeats one)"
    )
    print(
        f"indexed (routing + literal index)     : {indexed_rate:>10,.0f} events/s  ({indexed_hits} matches; {distinct:,} answers kept by value, {resets} resets, {colds} memos gone cold)"
    )
    print(
        f"  its first pass (memo empty at start) : {first_rate:>10,.0f} events/s  (best of {args.passes} passes above)"
    )
    print()
    print(f"indexed / naive : {indexed_rate / naive_rate:,.0f}x")
    print(f"indexed / indexed without the value memo: {indexed_rate / unmemoized_rate:,.2f}x")
    print(f"indexed / routed: {indexed_rate / routed_rate:,.1f}x")
    print(
        f"events whose matches differ with and without the index and memo (first {len(checked)}): "
        f"{disagreements}"
    )
    print(f"peak RSS: {peak:.0f} MiB (after loading rules: {rss_after_load:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
