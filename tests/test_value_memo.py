"""The index and the rules' field tests remember their answers for string values they have
seen (`soc/detect/memo.py`): what they decide is what a fresh evaluation decides, whatever the
memo holds, and its memory stays within its budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from soc.detect import index as index_module
from soc.detect import memo as memo_module
from soc.detect.compiler import compile_condition
from soc.detect.memo import ValueMemo, compiling_with
from soc.detect.routing import Route
from soc.detect.rules import LoadOptions, RuleSet, load_rules

ROUTE = Route(logsource=(("product", "test"),), alternatives=((),))


def ruleset(tmp_path: Path, *detections: dict[str, Any]) -> RuleSet:
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, detection in enumerate(detections):
        path = tmp_path / f"rule{number}.yml"
        path.write_text(
            yaml.safe_dump(
                {
                    "title": f"t{number}",
                    "id": f"00000000-0000-4000-8000-{number:012d}",
                    "logsource": {"product": "test"},
                    "detection": detection,
                }
            )
        )
        paths.append(path)
    rules = load_rules(paths, LoadOptions(routes=(ROUTE,)))
    assert not rules.problems, rules.problems
    return rules


DETECTIONS = (
    {"s": {"image|endswith": "\\whoami.exe"}, "condition": "s"},
    {"s": {"image|contains": "\\temp\\", "cmd|contains": "-enc"}, "condition": "s"},
    {"s": {"cmd|contains": ["mimikatz", "sekurlsa"]}, "condition": "s"},
)
EVENTS: list[dict[str, Any]] = [
    {"image": "C:\\Windows\\whoami.exe", "cmd": "whoami /all"},
    {"image": "C:\\Users\\a\\Temp\\x.exe", "cmd": "x.exe -enc AAAA"},
    {"image": "C:\\Users\\a\\Temp\\x.exe", "cmd": "x.exe /quiet"},
    {"image": "C:\\tools\\m.exe", "cmd": "m.exe SEKURLSA::logonpasswords"},
    {"image": "C:\\Windows\\WHOAMI.EXE", "cmd": ["list", "mimikatz"]},
    {"image": "C:\\Windows\\notepad.exe", "cmd": 12345},
]


def test_candidates_are_those_of_a_fresh_scan_on_every_repeat(tmp_path: Path) -> None:
    rules = ruleset(tmp_path / "remembering", *DETECTIONS)
    (index,) = rules.routes
    fresh = ruleset(tmp_path / "forgetting", *DETECTIONS)
    (reference,) = fresh.routes
    fresh.memo.budget = fresh.memo.left = 0  # never remembers: every value evaluated
    expected = [reference.candidates(event) for event in EVENTS]
    assert expected == [[0], [1], [], [2], [0, 2], []]
    matched = [[r.title for r in fresh.match(event)] for event in EVENTS]
    assert matched == [["t0"], ["t1"], [], ["t2"], ["t0", "t2"], []]
    for _ in range(3):  # first pass fills the memo, the next ones answer from it
        assert [index.candidates(event) for event in EVENTS] == expected
        assert [[r.title for r in rules.match(event)] for event in EVENTS] == matched
    held: set[object] = {value for memo in index.memo.maps for value in memo}
    # String values are remembered, case kept (folding is part of the scan); lists and numbers
    # are scanned every time.
    assert "C:\\Windows\\whoami.exe" in held and "C:\\Windows\\WHOAMI.EXE" in held
    assert "list" not in held and 12345 not in held
    assert not fresh.memo.held()


def test_a_field_test_keeps_its_answer_for_the_value_alone(tmp_path: Path) -> None:
    """A test on `cmd` answers by value: the same command line with other fields around it is
    answered from the memo, and right; an unseen command line is evaluated."""
    rules = ruleset(tmp_path, {"s": {"cmd|contains": "-enc", "user": "bob"}, "condition": "s"})
    (rule,) = rules.rules
    before = rules.memo.held()
    assert rule.matches({"cmd": "p.exe -ENC aa", "user": "bob"})
    assert rules.memo.held() == before  # met once: not kept yet
    assert rule.matches({"cmd": "p.exe -ENC aa", "user": "bob"})
    assert rules.memo.held() == before + 2  # met again: both fields' answers kept
    assert not rule.matches({"cmd": "p.exe -ENC aa", "user": "eve"})
    assert rule.matches({"cmd": "p.exe -ENC aa", "user": "BOB"})
    assert not rule.matches({"cmd": "p.exe /quiet", "user": "bob"})
    assert rule.matches({"cmd": ["x", "p.exe -ENC aa"], "user": "bob"})  # a list: evaluated


def test_a_condition_compiled_alone_keeps_nothing(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, {"s": {"cmd|contains": "-enc"}, "condition": "s"})
    (rule,) = rules.rules
    assert rule.sigma is not None
    tree = rule.sigma.detection.parsed_condition[0].parsed
    memo = ValueMemo()
    alone = compile_condition(tree)
    with compiling_with(memo):
        remembering = compile_condition(tree)
    for predicate in (alone, remembering, alone, remembering):
        assert predicate({"cmd": "x -enc y"}) and not predicate({"cmd": "x"})
    assert memo.held() == 2


def test_the_budget_bounds_every_memo_of_a_rule_set_together(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, *DETECTIONS)
    (index,) = rules.routes
    memo = index.memo
    budget = 10 * (memo_module.ENTRY_COST + 20)
    memo.budget = memo.left = budget
    for number in range(200):
        event = {"image": f"C:\\Temp\\{number:08d}.exe", "cmd": f"run {number:08d} -enc"}
        for _ in range(2):  # each value comes back once: kept the second time
            assert index.candidates(event) == [1]
            held = sum(len(v) + memo_module.ENTRY_COST for m in memo.maps for v in m)
            held += sum(len(m.seen) * memo_module.SEEN_COST for m in memo.maps)
            assert held <= budget and 0 <= memo.left <= budget
    assert memo.resets >= 30  # 400 values of about 180 each through room for 10
    # Still right after the resets, from the memo and from a fresh scan.
    assert index.candidates({"image": "C:\\x\\whoami.exe", "cmd": "-"}) == [0]
    assert index.candidates({"image": "C:\\x\\whoami.exe", "cmd": "-"}) == [0]


def test_values_met_once_are_not_kept(tmp_path: Path) -> None:
    """A field whose values never repeat (a counter in a message) keeps nothing and never
    empties the memos of the values that do repeat."""
    rules = ruleset(tmp_path, *DETECTIONS)
    (index,) = rules.routes
    memo = rules.memo
    # Room for the sets of hashes of the few maps on `cmd`, each capped.
    memo.budget = memo.left = 16 * memo_module.SEEN_KEPT * memo_module.SEEN_COST
    for _ in range(2):
        assert index.candidates({"image": "C:\\Windows\\whoami.exe", "cmd": "-"}) == [0]
    for number in range(3 * memo_module.SEEN_KEPT):
        event = {"image": "C:\\Windows\\whoami.exe", "cmd": f"run {number} -enc"}
        assert index.candidates(event) == [0]
    held = {value for kept in memo.maps for value in kept}
    assert "C:\\Windows\\whoami.exe" in held and not any(v.startswith("run") for v in held)
    assert memo.resets == 0
    assert all(len(kept.seen) <= memo_module.SEEN_KEPT for kept in memo.maps)


def test_long_values_are_scanned_not_kept(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, *DETECTIONS)
    (index,) = rules.routes
    long_command = "powershell " + "A" * memo_module.MEMO_LONGEST + " mimikatz"
    for _ in range(2):
        assert index.candidates({"image": "p.exe", "cmd": long_command}) == [2]
    held = {value for memo in index.memo.maps for value in memo}
    assert long_command not in held and "p.exe" in held


def test_one_budget_is_shared_by_the_routes_of_a_rule_set(tmp_path: Path) -> None:
    other = Route(logsource=(("product", "other"),), alternatives=((),))
    for number, product in enumerate(("test", "other")):
        (tmp_path / f"{product}.yml").write_text(
            yaml.safe_dump(
                {
                    "title": product,
                    "id": f"00000000-0000-4000-8000-{number:012d}",
                    "logsource": {"product": product},
                    "detection": {"s": {"a|contains": "evil"}, "condition": "s"},
                }
            )
        )
    rules = load_rules([tmp_path], LoadOptions(routes=(ROUTE, other)))
    first, second = rules.routes
    assert first.memo is second.memo is rules.memo
    for _ in range(2):
        assert [first.candidates({"a": "EVIL"}), second.candidates({"a": "evil"})] == [[0], [0]]
    assert {"EVIL", "evil"} <= {value for memo in rules.memo.maps for value in memo}


def test_keyword_hits_are_grouped_once_per_set_of_literals_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keyword scan's grouping by route is kept by the literals found: events that find
    the same literals share it, events that find others (or none) get their own, and what is
    kept stays bounded."""
    monkeypatch.setattr(index_module, "_GROUPINGS_KEPT", 2)
    rules = ruleset(
        tmp_path,
        {"k": ["mimikatz"], "condition": "k"},
        {"k": ["sekurlsa", "lsadump"], "condition": "k"},
    )
    scan = rules.keywords
    cases = [
        ({"m": "run mimikatz now", "t": "1"}, ["t0"]),
        ({"m": "lsadump::sam", "t": "2"}, ["t1"]),
        ({"m": "MIMIKATZ sekurlsa", "t": "3"}, ["t0", "t1"]),
        ({"m": "nothing here", "t": "4"}, []),
        ({"m": "again mimikatz", "t": "5"}, ["t0"]),
    ]
    for _ in range(2):
        for event, expected in cases:
            assert sorted(r.title for r in rules.match(event)) == expected
            assert len(scan._grouped) <= 2
    first, again = scan.hits(cases[0][0]), scan.hits(cases[4][0])
    assert first is again  # one grouping for the same literal found
    assert scan.hits(cases[1][0]) != first


def test_a_memo_whose_values_do_not_come_back_goes_cold_then_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unique command lines: the index's memo of `cmd` stops its bookkeeping (answers stay
    right, scanned as without a memo), the memo of `image`, whose value repeats, stays warm and
    keeps answering; after its cold spell the `cmd` memo keeps repeating values again."""
    monkeypatch.setattr(memo_module, "TRIAL_WINDOW", 64)
    monkeypatch.setattr(memo_module, "COLD_MISSES", 100)
    rules = ruleset(tmp_path, *DETECTIONS)
    (index,) = rules.routes
    maps = {name: kept for name, _, _, kept in index.field_automata}
    for number in range(70):
        event = {"image": "C:\\Windows\\whoami.exe", "cmd": f"run {number} /quiet"}
        assert index.candidates(event) == [0]
    assert maps["cmd"].cold and not maps["image"].cold and rules.memo.colds >= 1
    assert "C:\\Windows\\whoami.exe" in maps["image"] and not maps["cmd"].seen
    # Cold: still right, nothing kept.
    for _ in range(2):
        assert index.candidates({"image": "x.exe", "cmd": "mimikatz 1"}) == [2]
        assert index.candidates({"image": "x.exe", "cmd": "x -ENC 1"}) == []
    assert "mimikatz 1" not in maps["cmd"]
    for number in range(100):
        index.candidates({"image": "x.exe", "cmd": f"later {number}"})
    assert maps["cmd"].cold == 0  # tries again
    for _ in range(2):
        assert index.candidates({"image": "x.exe", "cmd": "mimikatz 2"}) == [2]
    assert "mimikatz 2" in maps["cmd"]


def test_a_field_test_whose_values_do_not_come_back_goes_cold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memo_module, "TRIAL_WINDOW", 64)
    rules = ruleset(tmp_path, {"s": {"cmd|contains": "-enc"}, "condition": "s"})
    (rule,) = rules.rules
    for number in range(80):
        assert rule.matches({"cmd": f"p.exe -ENC {number}"})
        assert not rule.matches({"cmd": f"p.exe /q {number}"})
    assert rules.memo.colds >= 1 and rules.memo.held() == 0
    assert any(kept.cold for kept in rules.memo.maps)
