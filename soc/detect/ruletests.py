"""Rules' own test events: `<rule>.tests.yml` beside each rule, with `match` and `nomatch` lists.

An entry is a raw syslog line (normalized as the pipeline would) or an ECS event mapping. Every
rule the project ships carries both kinds of example, so a change to a rule, a parser or the
compiler that breaks a detection shows up as a failing rule test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from soc.detect.rules import TEST_SUFFIX, CompiledRule, RuleSet
from soc.normalize import NormalizeOptions, normalize
from soc.timeutil import format_ts, utcnow


@dataclass(frozen=True, slots=True)
class RuleTestFailure:
    rule_id: str
    path: Path
    expected: bool
    entry: Any

    def __str__(self) -> str:
        verb = "should match but did not" if self.expected else "matched but should not"
        return f"{self.path}: rule {self.rule_id} {verb}: {self.entry!r}"


def event_from_entry(entry: Any, options: NormalizeOptions) -> Mapping[str, Any]:
    if isinstance(entry, Mapping):
        return entry
    record = {
        "id": f"test-{abs(hash(entry))}",
        "received_at": format_ts(utcnow()),
        "source": {"type": "syslog", "transport": "test", "peer": {"ip": "127.0.0.1", "port": 0}},
        "data": str(entry),
    }
    return normalize(record, options)


def rule_tests_path(rule: CompiledRule) -> Path:
    return rule.path.with_name(rule.path.name.removesuffix(".yml") + TEST_SUFFIX)


def run_rule_tests(
    ruleset: RuleSet, options: NormalizeOptions | None = None
) -> Iterator[tuple[CompiledRule, list[RuleTestFailure] | None]]:
    """For each rule: None when it has no test file, else its failures (empty: all passed).
    A test runs through the whole rule set, routing included, as an event would."""
    options = options or NormalizeOptions()
    for rule in ruleset.rules + ruleset.unrouted:
        path = rule_tests_path(rule)
        if not path.exists():
            yield rule, None
            continue
        spec = yaml.safe_load(path.read_text("utf-8")) or {}
        failures = []
        for expected, key in ((True, "match"), (False, "nomatch")):
            for entry in spec.get(key) or []:
                event = event_from_entry(entry, options)
                matched = any(hit.id == rule.id for hit in ruleset.match(event))
                if matched != expected:
                    failures.append(RuleTestFailure(rule.id, path, expected, entry))
        yield rule, failures
