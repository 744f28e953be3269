"""The SigmaHQ corpus through the loader: nothing crashes, every rule not run has a reason.

The full engine (its own issue) must compile them all; this guards the foundation's promise
that a rule it cannot run is reported, never silently ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from soc.detect.rules import load_rules, rule_files

SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", Path(__file__).resolve().parents[2] / "shared/sigma"))

pytestmark = pytest.mark.skipif(
    not (SIGMA / "rules").is_dir(),
    reason=f"SigmaHQ corpus not found at {SIGMA} (set SOC_SIGMA_PATH to run these tests)",
)


def test_linux_rules_load_or_are_reported_with_a_reason() -> None:
    path = SIGMA / "rules" / "linux"
    files = list(rule_files([path]))
    ruleset = load_rules([path])
    accounted = len(ruleset.rules) + len(ruleset.unrouted) + len(ruleset.problems)
    assert accounted >= len(files)
    assert all(problem.reason for problem in ruleset.problems)
    assert len(ruleset.rules) + len(ruleset.unrouted) > 0.9 * len(files)
