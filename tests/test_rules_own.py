"""The project's own rules: each loads, and each one's test events match and miss as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from soc.detect.rules import load_rules
from soc.detect.ruletests import rule_tests_path, run_rule_tests

RULES = Path(__file__).resolve().parent.parent / "rules"


def test_every_own_rule_loads_and_is_routed() -> None:
    ruleset = load_rules([RULES])
    assert ruleset.problems == []
    assert ruleset.unrouted == []
    assert len(ruleset.rules) >= 2


@pytest.mark.parametrize("rule", load_rules([RULES]).rules, ids=lambda rule: rule.path.stem)
def test_every_own_rule_has_positive_and_negative_test_events(rule) -> None:  # type: ignore[no-untyped-def]
    spec = yaml.safe_load(rule_tests_path(rule).read_text())
    assert spec.get("match"), f"{rule.path}: no events that must match"
    assert spec.get("nomatch"), f"{rule.path}: no events that must not match"


def test_own_rules_pass_their_test_events() -> None:
    failures = [
        str(failure)
        for _, rule_failures in run_rule_tests(load_rules([RULES]))
        for failure in rule_failures or []
    ]
    assert failures == []


def test_a_wrong_expectation_is_reported(tmp_path: Path) -> None:
    rule = next(RULES.rglob("sshd_invalid_user.yml"))
    (tmp_path / rule.name).write_text(rule.read_text())
    (tmp_path / "sshd_invalid_user.tests.yml").write_text(
        yaml.safe_dump(
            {
                "match": [
                    "<38>Nov 28 10:00:00 h sshd[1]: Accepted password for x from "
                    "10.0.0.1 port 1 ssh2"
                ],
                "nomatch": [],
            }
        )
    )
    results = list(run_rule_tests(load_rules([tmp_path])))
    assert [len(failures or []) for _, failures in results] == [1]
