"""SigmaHQ's own regression data: every sample matches its rule at least `match_count` times,
through the whole engine as the stream runs it (EVTX -> Windows normalizer -> field mapping ->
routing -> index -> evaluation), and the index never hides a match the full evaluation finds."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from soc.detect.rules import RuleSet, load_rules

SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", Path(__file__).resolve().parents[2] / "shared/sigma"))
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not (SIGMA / "regression_data").is_dir(),
    reason=f"SigmaHQ regression data not found at {SIGMA} (set SOC_SIGMA_PATH)",
)


@dataclass(frozen=True)
class Sample:
    rule_id: str
    evtx: Path
    match_count: int


def _samples() -> list[Sample]:
    if not (SIGMA / "regression_data").is_dir():
        return []
    samples = []
    for info in sorted((SIGMA / "regression_data").rglob("info.yml")):
        spec = yaml.safe_load(info.read_text())
        rule_id = spec["rule_metadata"][0]["id"]
        for test in spec.get("regression_tests_info") or []:
            if test.get("type") == "evtx":
                samples.append(Sample(rule_id, SIGMA / test["path"], test.get("match_count") or 1))
    return samples


SAMPLES = _samples()


def _rule_paths(ids: set[str]) -> list[Path]:
    pattern = re.compile(r"^id:\s*([0-9a-f-]{36})\s*$", re.MULTILINE)
    found = []
    for folder in ("rules", "rules-emerging-threats", "rules-threat-hunting"):
        for path in (SIGMA / folder).rglob("*.yml"):
            match = pattern.search(path.read_text(errors="replace"))
            if match and match[1] in ids:
                found.append(path)
    return found


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    paths = _rule_paths({sample.rule_id for sample in SAMPLES})
    return load_rules([*paths, ROOT / "rules"])


def _events(path: Path) -> Iterator[dict[str, Any]]:
    from evtx import PyEvtxParser

    from soc.normalize.windows import normalize_windows

    for record in PyEvtxParser(str(path)).records_json():
        yield normalize_windows(orjson.loads(record["data"]))


def test_every_sample_rule_is_loaded(ruleset: RuleSet) -> None:
    loaded = {rule.id for rule in ruleset.rules}
    missing = {sample.rule_id for sample in SAMPLES} - loaded
    unrouted = {rule.id: rule.logsource for rule in ruleset.unrouted}
    problems = {p.rule_id: p.reason for p in ruleset.problems}
    assert not missing, {rid: unrouted.get(rid) or problems.get(rid) for rid in missing}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.evtx.parent.name)
def test_sample_matches_its_rule(ruleset: RuleSet, sample: Sample) -> None:
    hits = 0
    for event in _events(sample.evtx):
        indexed = [rule.id for rule in ruleset.match(event)]
        assert indexed == [rule.id for rule in ruleset.match_unindexed(event)]
        hits += indexed.count(sample.rule_id)
    assert hits >= sample.match_count
