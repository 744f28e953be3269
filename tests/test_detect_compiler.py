"""The first-version Sigma compiler: each construct the foundation promises, matched and not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from soc.detect.routing import Route
from soc.detect.rules import LoadOptions, load_rules

HEADER = {
    "title": "t",
    "id": "00000000-0000-4000-8000-000000000001",
    "logsource": {"product": "test"},
}
ROUTE = Route(logsource=(("product", "test"),), alternatives=((),))
OPTIONS = LoadOptions(routes=(ROUTE,))


def matcher(tmp_path: Path, detection: dict[str, Any]):  # type: ignore[no-untyped-def]
    path = tmp_path / "rule.yml"
    path.write_text(yaml.safe_dump({**HEADER, "detection": detection}))
    ruleset = load_rules([path], OPTIONS)
    assert not ruleset.problems, ruleset.problems
    (rule,) = ruleset.rules
    return rule.matches


CASES = [
    # (detection, event, expected)
    ({"s": {"user.name": "Root"}, "condition": "s"}, {"user": {"name": "root"}}, True),
    ({"s": {"user.name": "root"}, "condition": "s"}, {"user": {"name": "rooty"}}, False),
    ({"s": {"user.name": "root"}, "condition": "s"}, {"user.name": "ROOT"}, True),
    ({"s": {"a": "ad*n"}, "condition": "s"}, {"a": "ADMIN"}, True),
    ({"s": {"a": "ad?in"}, "condition": "s"}, {"a": "admin"}, True),
    ({"s": {"a": "ad?in"}, "condition": "s"}, {"a": "adn"}, False),
    ({"s": {"a": "lit\\*eral"}, "condition": "s"}, {"a": "lit*eral"}, True),
    ({"s": {"a": "lit\\*eral"}, "condition": "s"}, {"a": "litXXeral"}, False),
    ({"s": {"a|contains": "Mimi"}, "condition": "s"}, {"a": "run mimikatz.exe"}, True),
    ({"s": {"a|startswith": "/tmp/"}, "condition": "s"}, {"a": "/TMP/x"}, True),
    ({"s": {"a|startswith": "/tmp/"}, "condition": "s"}, {"a": "/var/tmp/x"}, False),
    ({"s": {"a|endswith": ".sh"}, "condition": "s"}, {"a": "x.SH"}, True),
    ({"s": {"a|contains|all": ["x", "y"]}, "condition": "s"}, {"a": "y..x"}, True),
    ({"s": {"a|contains|all": ["x", "y"]}, "condition": "s"}, {"a": "x alone"}, False),
    ({"s": {"a|contains|cased": "Mimi"}, "condition": "s"}, {"a": "mimikatz"}, False),
    ({"s": {"a": ["x", "y"]}, "condition": "s"}, {"a": "Y"}, True),
    ({"s": {"a": "x"}, "condition": "s"}, {"a": ["q", "X"]}, True),
    ({"s": {"a": "x"}, "condition": "s"}, {"b": "x"}, False),
    ({"s": {"id": 4688}, "condition": "s"}, {"id": "4688"}, True),
    ({"s": {"id": 4688}, "condition": "s"}, {"id": 4688}, True),
    ({"s": {"id": 4688}, "condition": "s"}, {"id": 4689}, False),
    ({"s": {"ok": True}, "condition": "s"}, {"ok": True}, True),
    ({"s": {"ok": "true"}, "condition": "s"}, {"ok": True}, True),
    ({"s": {"a": None}, "condition": "s"}, {"b": 1}, True),
    ({"s": {"a": None}, "condition": "s"}, {"a": None}, True),
    ({"s": {"a": None}, "condition": "s"}, {"a": "x"}, False),
    ({"s": {"a": ""}, "condition": "s"}, {"a": ""}, True),
    ({"s": {"a": ""}, "condition": "s"}, {}, False),
    ({"s": {"a|re": "^ab+c$"}, "condition": "s"}, {"a": "abbbc"}, True),
    ({"s": {"a|re": "b+c"}, "condition": "s"}, {"a": "xxABC"}, False),
    ({"s": {"a|re|i": "b+c"}, "condition": "s"}, {"a": "xxABC"}, True),
    ({"s": {"ip|cidr": "10.0.0.0/8"}, "condition": "s"}, {"ip": "10.2.3.4"}, True),
    ({"s": {"ip|cidr": "10.0.0.0/8"}, "condition": "s"}, {"ip": "11.2.3.4"}, False),
    ({"s": {"n|gte": 5}, "condition": "s"}, {"n": "7"}, True),
    ({"s": {"n|lt": 5}, "condition": "s"}, {"n": 7}, False),
    ({"s": {"a|exists": True}, "condition": "s"}, {"a": None}, True),
    ({"s": {"a|exists": False}, "condition": "s"}, {"a": 1}, False),
    ({"k": ["evil"], "condition": "k"}, {"message": "an EVIL thing"}, True),
    ({"k": ["evil thing"], "condition": "k"}, {"a": "evil", "b": "thing"}, False),
    ({"k": ["a*c"], "condition": "k"}, {"message": "xx abc yy"}, True),
    ({"k": ["*evil*"], "condition": "k"}, {"message": "an EVIL thing"}, True),
    ({"k": ["*evil*"], "condition": "k"}, {"deep": {"er": ["x", "evil"]}}, True),
    ({"k": ["*evil*"], "condition": "k"}, {"message": "benign"}, False),
    ({"a": {"x": 1}, "b": {"y": 2}, "condition": "a and not b"}, {"x": 1, "y": 3}, True),
    ({"a": {"x": 1}, "b": {"y": 2}, "condition": "a and not b"}, {"x": 1, "y": 2}, False),
    ({"a": {"x": 1}, "b": {"y": 2}, "condition": "a or b"}, {"y": 2}, True),
    ({"sel1": {"x": 1}, "sel2": {"y": 2}, "condition": "1 of sel*"}, {"y": 2}, True),
    ({"sel1": {"x": 1}, "sel2": {"y": 2}, "condition": "all of sel*"}, {"y": 2}, False),
    ({"sel1": {"x": 1}, "sel2": {"y": 2}, "condition": "all of them"}, {"x": 1, "y": 2}, True),
    ({"s": [{"x": 1}, {"y": 2}], "condition": "s"}, {"y": 2}, True),
    ({"s": {"x": 1, "y": 2}, "condition": "s"}, {"y": 2}, False),
    ({"f": {"a|fieldref": "b"}, "condition": "f"}, {"a": "Same", "b": "same"}, True),
    ({"f": {"a|fieldref": "b"}, "condition": "f"}, {"a": "one", "b": "two"}, False),
]


@pytest.mark.parametrize(("detection", "event", "expected"), CASES)
def test_sigma_semantics(
    tmp_path: Path, detection: dict[str, Any], event: dict[str, Any], expected: bool
) -> None:
    assert matcher(tmp_path, detection)(event) is expected


def test_a_broken_rule_file_is_reported_and_the_others_still_load(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(yaml.safe_dump({**HEADER, "detection": {"s": {"a": 1}, "condition": "s"}}))
    (tmp_path / "broken.yml").write_text("title: [unclosed\n")
    (tmp_path / "bad_condition.yml").write_text(
        yaml.safe_dump(
            {
                **HEADER,
                "id": "00000000-0000-4000-8000-000000000002",
                "detection": {"s": {"a": 1}, "condition": "s and missing"},
            }
        )
    )
    bad_regex = {**HEADER, "id": "00000000-0000-4000-8000-000000000003"}
    bad_regex["detection"] = {"s": {"a|re": "(unclosed"}, "condition": "s"}
    (tmp_path / "bad_regex.yml").write_text(yaml.safe_dump(bad_regex))
    ruleset = load_rules([tmp_path], OPTIONS)
    assert [r.path.name for r in ruleset.rules] == ["good.yml"]
    reported = {p.path.name: p.reason for p in ruleset.problems}
    assert set(reported) == {"broken.yml", "bad_condition.yml", "bad_regex.yml"}
    assert all(reason for reason in reported.values())


def test_a_rule_without_a_route_is_reported_as_unrouted_not_evaluated(tmp_path: Path) -> None:
    path = tmp_path / "rule.yml"
    rule = {**HEADER, "logsource": {"product": "nowhere"}}
    path.write_text(yaml.safe_dump({**rule, "detection": {"s": {"a": 1}, "condition": "s"}}))
    ruleset = load_rules([path], OPTIONS)
    assert ruleset.rules == [] and len(ruleset.unrouted) == 1
    assert list(ruleset.match({"a": 1})) == []


def test_routing_admits_only_events_of_the_log_source(tmp_path: Path) -> None:
    path = tmp_path / "rule.yml"
    rule = {**HEADER, "logsource": {"product": "linux", "service": "sshd"}}
    path.write_text(yaml.safe_dump({**rule, "detection": {"s": {"a": 1}, "condition": "s"}}))
    ruleset = load_rules([path])
    logged = {"module": "system"}
    assert len(list(ruleset.match({"a": 1, "event": logged, "process": {"name": "sshd"}}))) == 1
    assert list(ruleset.match({"a": 1, "event": logged, "process": {"name": "cron"}})) == []
    # A process named sshd that Sysmon saw start is not sshd's own log.
    seen = {"module": "sysmon"}
    assert list(ruleset.match({"a": 1, "event": seen, "process": {"name": "sshd"}})) == []


def test_duplicate_rule_ids_are_reported(tmp_path: Path) -> None:
    body = yaml.safe_dump({**HEADER, "detection": {"s": {"a": 1}, "condition": "s"}})
    (tmp_path / "a.yml").write_text(body)
    (tmp_path / "b.yml").write_text(body)
    ruleset = load_rules([tmp_path], OPTIONS)
    assert len(ruleset.rules) == 1
    assert "duplicate rule id" in ruleset.problems[0].reason


def test_a_pathological_regex_does_not_stall_matching(tmp_path: Path) -> None:
    import threading

    predicate = matcher(tmp_path, {"s": {"a|re": "^(a+)+$"}, "condition": "s"})
    event = {"a": "a" * 64 + "!"}  # exponential for a backtracking engine
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(predicate(event)), daemon=True)
    worker.start()
    worker.join(30)
    assert result == [False], "the regex did not finish: the stream would stall"


def test_regexes_run_with_their_flags_and_unanchored(tmp_path: Path) -> None:
    multiline = matcher(tmp_path, {"s": {"a|re|m": "^second$"}, "condition": "s"})
    assert multiline({"a": "first\nsecond\nthird"})
    dotall = matcher(tmp_path, {"s": {"a|re|s": "one.two"}, "condition": "s"})
    assert dotall({"a": "one\ntwo"})
    assert not matcher(tmp_path, {"s": {"a|re": "one.two"}, "condition": "s"})({"a": "one\ntwo"})
    nested = matcher(tmp_path, {"s": {"a|re|i": "(ab|cd)+e"}, "condition": "s"})
    assert nested({"a": "xxABcdE"})


def test_expand_placeholders_are_filled_from_configuration(tmp_path: Path) -> None:
    from soc.detect.compiler import CompileOptions
    from soc.detect.rules import LoadOptions

    path = tmp_path / "rule.yml"
    detection = {"s": {"user.name|expand": "%admins%"}, "condition": "s"}
    path.write_text(yaml.safe_dump({**HEADER, "detection": detection}))
    filled = LoadOptions(
        routes=(ROUTE,), compile=CompileOptions(placeholders={"admins": ["root", "adm*"]})
    )
    (rule,) = load_rules([path], filled).rules
    assert rule.matches({"user": {"name": "administrator"}})
    assert not rule.matches({"user": {"name": "bob"}})
    unfilled = load_rules([path], OPTIONS)
    assert "%admins%" in unfilled.problems[0].reason


def test_timestamp_part_modifiers(tmp_path: Path) -> None:
    night = matcher(tmp_path, {"s": {"@timestamp|hour": 2}, "condition": "s"})
    assert night({"@timestamp": "2026-11-28T02:15:00.000000Z"})
    assert not night({"@timestamp": "2026-11-28T14:15:00.000000Z"})


@pytest.mark.parametrize(
    ("modifier", "value", "text"),
    [
        ("base64offset|contains", "evil", "ZXZpbA"),
        ("base64", "evil", "ZXZpbA=="),
        ("wide|base64offset|contains", "ping", "cABpAG4AZwA"),
        ("windash|contains", "-enc", "powershell /enc AAAA"),
    ],
)
def test_encoding_modifiers(tmp_path: Path, modifier: str, value: str, text: str) -> None:
    assert matcher(tmp_path, {"s": {f"a|{modifier}": value}, "condition": "s"})({"a": text})
