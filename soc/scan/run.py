"""`soc scan`: the stream's detection engine over files, as an incident responder runs Hayabusa
or Chainsaw on a seized server. Same normalizers, same rules, same correlations, same alerts;
alerts go out as JSON lines, a summary at the end."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import IO, Any

import orjson

from soc.detect.alerts import build_alert, build_correlation_alert
from soc.detect.correlation import CorrelationHit, Match
from soc.detect.rules import RuleSet
from soc.detect.stage import Detection, event_time
from soc.scan.readers import ReadProblem, ScannedEvent, read_events

#: Progress is redrawn at most this often (seconds).
_PROGRESS_EVERY = 0.5


@dataclass
class ScanSummary:
    events: int = 0
    files: set[str] = field(default_factory=set)
    alerts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    problems: list[ReadProblem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate, 1),
            "alerts": sum(self.alerts.values()),
            "alerts_by_rule": [
                {"id": rule_id, "name": name, "level": level, "count": count}
                for (rule_id, name, level), count in self.alerts.most_common()
            ],
            "problems": [
                {"path": p.path, "record": p.record, "reason": p.reason} for p in self.problems
            ],
        }


def _located(alert: dict[str, Any], scanned: ScannedEvent | None) -> dict[str, Any]:
    """Where the alert came from: the file and the record number within it."""
    if scanned is not None:
        alert["log"] = {"file": {"path": scanned.path, "record": scanned.record}}
    return alert


def scan(
    paths: Sequence[Path],
    ruleset: RuleSet,
    output: IO[bytes],
    *,
    timezone: tzinfo,
    progress: IO[str] | None = None,
) -> ScanSummary:
    summary = ScanSummary()
    # Files are read one after another, not in time order: allow any disorder within a month.
    detection = Detection.from_rules(ruleset, allowed_lateness=30 * 86400.0)
    engine = detection.correlations
    started = last_drawn = time.perf_counter()
    latest = 0.0

    def emit(alert: dict[str, Any]) -> None:
        rule = alert["rule"]
        summary.alerts[rule["id"], rule["name"], rule["level"]] += 1
        output.write(orjson.dumps(alert) + b"\n")

    def emit_hits(hits: list[CorrelationHit]) -> None:
        for hit in hits:
            if hit.raise_alert:
                emit(build_correlation_alert(hit))

    for item in read_events(paths, timezone=timezone):
        if isinstance(item, ReadProblem):
            summary.problems.append(item)
            continue
        summary.events += 1
        summary.files.add(item.path)
        event = item.event
        for rule in ruleset.match(event):
            if engine.wants(rule.id, rule.name):
                timestamp = event_time(event)
                latest = max(latest, timestamp)
                emit_hits(
                    engine.process(
                        Match(rule.id, rule.name, timestamp, event, event["event"]["id"])
                    )
                )
            if engine.generate(rule.id, rule.name):
                emit(_located(build_alert(rule, event), item))
        if progress is not None and time.perf_counter() - last_drawn > _PROGRESS_EVERY:
            last_drawn = time.perf_counter()
            rate = summary.events / (last_drawn - started)
            progress.write(
                f"\r{summary.events:,} events, {sum(summary.alerts.values()):,} alerts, "
                f"{len(summary.files)} files, {rate:,.0f} events/s"
            )
            progress.flush()
    # Files are not in time order across each other: close every window at the end.
    emit_hits(engine.advance(latest + 10 * 365 * 86400.0))
    summary.seconds = time.perf_counter() - started
    if progress is not None:
        progress.write("\n")
    return summary


def print_summary(summary: ScanSummary, stream: IO[str] = sys.stderr) -> None:
    stream.write(
        f"{summary.events:,} events from {len(summary.files)} files in {summary.seconds:.2f} s "
        f"({summary.rate:,.0f} events/s); {sum(summary.alerts.values()):,} alerts\n"
    )
    for (_, name, level), count in summary.alerts.most_common():
        stream.write(f"  {count:>7,}  {level:<13} {name}\n")
    for problem in summary.problems:
        stream.write(f"  problem: {problem.path} record {problem.record}: {problem.reason}\n")
