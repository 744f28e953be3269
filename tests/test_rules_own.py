"""The project's own rules: each loads, and each one's test events match and miss as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from soc.detect.rules import RuleSet, load_rules, rule_files
from soc.detect.ruletests import rule_tests_path, run_rule_tests

RULES = Path(__file__).resolve().parent.parent / "rules"


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_rules([RULES])


def test_every_own_rule_loads_and_is_routed(ruleset: RuleSet) -> None:
    assert ruleset.problems == []
    assert ruleset.unrouted == []
    assert len(ruleset.rules) + len(ruleset.correlations) == len(list(rule_files([RULES])))
    assert {rule.title for rule, _ in ruleset.correlations} >= {
        "SSH Brute Force From One Address",
        "SSH Password Spraying From One Address",
        "SSH Login Succeeded After Brute Force",
        "Windows Logon Brute Force From One Address",
        "Port Scan From One Address",
    }


@pytest.mark.parametrize("path", list(rule_files([RULES])), ids=lambda path: path.stem)
def test_every_own_rule_has_attack_tags_and_both_kinds_of_test_events(path: Path) -> None:
    rule = yaml.safe_load(path.read_text())
    if "detection.external" in rule["tags"]:
        # A product's own detections, promoted: which technique is the product's signature's to
        # say (the alert carries it), not one technique for every signature.
        assert rule.get("details"), f"{path}: an external detection's alert must name it"
    else:
        assert any(tag.startswith("attack.t") for tag in rule["tags"]), f"{path}: no ATT&CK"
    spec = yaml.safe_load(rule_tests_path(path).read_text())
    assert spec.get("match"), f"{path}: no events that must match"
    assert spec.get("nomatch"), f"{path}: no events that must not match"


def test_own_rules_pass_their_test_events(ruleset: RuleSet) -> None:
    results = list(run_rule_tests(ruleset))
    failures = [str(f) for result in results for f in result.failures or []]
    assert failures == []
    assert all(result.failures is not None for result in results)
    assert sum(result.cases for result in results) >= 60


def test_every_own_rule_says_what_happened_in_its_alerts(ruleset: RuleSet) -> None:
    """Each single-event rule's details, rendered for its first matching test event, fill at
    least one field and leave no placeholder behind."""
    from soc.detect.alerts import build_alert
    from soc.detect.ruletests import event_from_entry
    from soc.normalize import NormalizeOptions

    for rule in ruleset.rules:
        assert rule.details, f"{rule.path}: no details"
        entry = yaml.safe_load(rule_tests_path(rule.path).read_text())["match"][0]
        message = build_alert(rule, event_from_entry(entry, NormalizeOptions()))["message"]
        placeholders = re.findall(r"%[\w.@-]+%", rule.details)
        assert message != rule.title, f"{rule.path}: {message}"
        assert not any(p in message for p in placeholders), f"{rule.path}: {message}"
    for rule, _ in ruleset.correlations:
        assert rule.custom_attributes.get("details"), f"{rule.title}: no details"


def test_a_wrong_expectation_is_reported(tmp_path: Path) -> None:
    rule = next(RULES.rglob("sshd_invalid_user.yml"))
    (tmp_path / rule.name).write_text(rule.read_text())
    accepted = "<38>Nov 28 10:00:00 h sshd[1]: Accepted password for x from 10.0.0.1 port 1 ssh2"
    (tmp_path / "sshd_invalid_user.tests.yml").write_text(
        yaml.safe_dump({"match": [accepted], "nomatch": []})
    )
    (result,) = run_rule_tests(load_rules([tmp_path]))
    assert result.failures is not None and len(result.failures) == 1
    assert "should match but did not" in str(result.failures[0])


def test_rules_are_switched_off_by_id_path_status_and_level() -> None:
    from soc.detect.rules import LoadOptions, RuleFilter

    # Single-event rules: every file but the correlations (each file holds one rule).
    single = sum(
        "correlation" not in yaml.safe_load(path.read_text()) for path in rule_files([RULES])
    )

    def enabled(rule_filter: RuleFilter) -> set[str]:
        loaded = load_rules([RULES], LoadOptions(filter=rule_filter))
        assert len(loaded.rules) + len(loaded.disabled) == single
        return {rule.title for rule in loaded.rules}

    everything = enabled(RuleFilter())
    by_id = enabled(RuleFilter(disabled_ids=frozenset({"6c3f2d1a-8e4b-4f0a-b8c2-9d5e7a1b3c22"})))
    assert everything - by_id == {"SSH Login Attempt With an Invalid User"}
    by_path = enabled(RuleFilter(disabled_paths=("*/web/*",)))
    assert not any(title.startswith("Web") or "Web" in title for title in by_path)
    assert enabled(RuleFilter(statuses=frozenset({"stable"}))) == set()
    high = enabled(RuleFilter(min_level="high"))
    assert high == {
        "SQL Injection Attempt in a Web Request",
        "Path Traversal Attempt in a Web Request",
        "Web Shell Access",
        "Linux User Account Created With UID 0",
        "Account Added to an Administrators Group",
        "Suricata Alert - High Severity",
        "FortiGate Intrusion Prevention - High Severity",
        "FortiGate Antivirus Detection",
        "Security Product Detection Over CEF - High Severity",
    }
