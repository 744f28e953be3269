"""Rules' own test events: `<rule>.tests.yml` beside each rule, with `match` and `nomatch` lists.

For a single-event rule each entry is one event; for a correlation rule each entry is a sequence
of events fed in order. An event is given as
- a string: a raw syslog line, normalized as the pipeline would;
- `{access: LINE}`: a web access-log line; `{windows: {Event: ...}}`: a Windows event as the
  evtx parser gives it; `{suricata: {...}}`: one Suricata EVE record; `{line: LINE}` or
  `{syslog: LINE}`: a syslog line; `{event: {...}}` or any other mapping: an ECS event as is;
- any of these with `repeat: N`: N copies, with `{n}` (or `{n:02d}`) replaced by 0..N-1.

Every rule the project ships carries both kinds of example, so a change to a rule, a parser or the
engine that breaks a detection shows up as a failing rule test.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from soc.detect.correlation import CorrelationEngine, Match
from soc.detect.rules import TEST_SUFFIX, RuleSet
from soc.detect.stage import event_time
from soc.ids import stable_id
from soc.normalize import NormalizeOptions, normalize
from soc.normalize.web import normalize_access_log
from soc.normalize.windows import normalize_windows
from soc.timeutil import format_ts, utcnow

_COUNTER = re.compile(r"\{n(?::(\d+)d)?\}")


@dataclass(frozen=True, slots=True)
class RuleTestFailure:
    rule_id: str
    path: Path
    expected: bool
    entry: Any

    def __str__(self) -> str:
        verb = "should match but did not" if self.expected else "matched but should not"
        return f"{self.path}: rule {self.rule_id} {verb}: {self.entry!r}"


@dataclass(frozen=True, slots=True)
class RuleTestResult:
    rule_id: str
    title: str
    path: Path
    #: None: the rule has no test file.
    failures: list[RuleTestFailure] | None
    cases: int = 0


def _substitute(value: Any, n: int) -> Any:
    if isinstance(value, str):
        return _COUNTER.sub(lambda m: f"{n:0{m[1]}d}" if m[1] else str(n), value)
    if isinstance(value, list):
        return [_substitute(item, n) for item in value]
    if isinstance(value, Mapping):
        return {key: _substitute(item, n) for key, item in value.items()}
    return value


def _expand(entry: Any) -> list[Any]:
    if isinstance(entry, Mapping) and "repeat" in entry:
        body = {key: value for key, value in entry.items() if key != "repeat"}
        return [_substitute(body, n) for n in range(int(entry["repeat"]))]
    return [entry]


def event_from_entry(entry: Any, options: NormalizeOptions) -> Mapping[str, Any]:
    ident = stable_id("rule-test", repr(entry))
    if isinstance(entry, str) or (isinstance(entry, Mapping) and {"line", "syslog"} & set(entry)):
        line = entry if isinstance(entry, str) else entry.get("line", entry.get("syslog"))
        record = {
            "id": ident,
            "received_at": format_ts(utcnow()),
            "source": {"type": "syslog", "transport": "test", "peer": {"ip": "127.0.0.1"}},
            "data": str(line),
        }
        return normalize(record, options)
    if isinstance(entry, Mapping) and "access" in entry:
        return normalize_access_log(str(entry["access"]), event_id=ident, server="test")
    if isinstance(entry, Mapping) and "windows" in entry:
        return normalize_windows(entry["windows"], record_id=ident)
    if isinstance(entry, Mapping) and isinstance(entry.get("suricata"), Mapping):
        record = {
            "id": ident,
            "format": "suricata",
            "received_at": format_ts(utcnow()),
            "source": {"type": "agent", "transport": "test", "peer": {"ip": "127.0.0.1"}},
            "data": json.dumps(entry["suricata"]),
        }
        return normalize(record, options)
    if isinstance(entry, Mapping) and isinstance(entry.get("event"), Mapping) and len(entry) == 1:
        event = copy.deepcopy(dict(entry["event"]))
    elif isinstance(entry, Mapping):
        event = copy.deepcopy(dict(entry))
    else:
        raise ValueError(f"cannot read test entry {entry!r}")
    event.setdefault("event", {}).setdefault("id", ident)
    return event


def rule_tests_path(rule_path: Path) -> Path:
    return rule_path.with_name(rule_path.name.removesuffix(".yml") + TEST_SUFFIX)


def _single_matches(ruleset: RuleSet, rule_id: str, entry: Any, options: NormalizeOptions) -> bool:
    return any(
        any(hit.id == rule_id for hit in ruleset.match(event_from_entry(event, options)))
        for event in _expand(entry)
    )


def _sequence_fires(
    ruleset: RuleSet, rule_id: str, sequence: Any, options: NormalizeOptions
) -> bool:
    """Feed the events in order through detection and a fresh correlation engine."""
    engine = CorrelationEngine([rule for rule, _ in ruleset.correlations])
    steps = sequence if isinstance(sequence, list) else [sequence]
    fired = False
    latest = 0.0
    for step in steps:
        for entry in _expand(step):
            event = event_from_entry(entry, options)
            timestamp = event_time(dict(event))
            latest = max(latest, timestamp)
            for rule in ruleset.match(event):
                if engine.wants(rule.id, rule.name):
                    match = Match(rule.id, rule.name, timestamp, event, event["event"]["id"])
                    fired |= any(hit.rule.id == rule_id for hit in engine.process(match))
    # Close every window, so that lt/lte conditions are decided too.
    far = latest + 10 * 365 * 86400.0
    fired |= any(hit.rule.id == rule_id for hit in engine.advance(far))
    return fired


def run_rule_tests(
    ruleset: RuleSet, options: NormalizeOptions | None = None
) -> Iterator[RuleTestResult]:
    """Each loaded rule's tests, run through the whole rule set (routing, index, correlation)
    as events would be."""
    options = options or NormalizeOptions()
    subjects: list[tuple[str, str, Path, bool]] = [
        (rule.id, rule.title, rule.path, False) for rule in ruleset.rules + ruleset.unrouted
    ]
    subjects += [(str(rule.id), rule.title, path, True) for rule, path in ruleset.correlations]
    for rule_id, title, path, is_correlation in subjects:
        tests = rule_tests_path(path)
        if not tests.exists():
            yield RuleTestResult(rule_id, title, path, None)
            continue
        spec = yaml.safe_load(tests.read_text("utf-8")) or {}
        failures: list[RuleTestFailure] = []
        cases = 0
        for expected, key in ((True, "match"), (False, "nomatch")):
            for entry in spec.get(key) or []:
                cases += 1
                if is_correlation:
                    matched = _sequence_fires(ruleset, rule_id, entry, options)
                else:
                    matched = _single_matches(ruleset, rule_id, entry, options)
                if matched != expected:
                    failures.append(RuleTestFailure(rule_id, tests, expected, entry))
        yield RuleTestResult(rule_id, title, path, failures, cases)
