"""The engine's shortcuts (literal guards before regexes, keyword lists searched in the joined
texts, one keyword scan for all routes, short whole values in the index) decide exactly what
the full evaluation decides: each case is checked through the rule's own predicate and through
the indexed rule set."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml

from soc.detect import index as index_module
from soc.detect.compiler import _MISSING as MISSING
from soc.detect.compiler import event_json_caseless, event_json_folded, getter, lookup
from soc.detect.index import _HyperscanSet, _LiteralSet, _Re2Set
from soc.detect.routing import Route
from soc.detect.rules import LoadOptions, RuleSet, load_rules

ROUTE = Route(logsource=(("product", "test"),), alternatives=((),))
OTHER = Route(logsource=(("product", "other"),), alternatives=((),))
OPTIONS = LoadOptions(routes=(ROUTE, OTHER))


def ruleset(tmp_path: Path, *detections: dict[str, Any], product: str = "test") -> RuleSet:
    paths = []
    for number, detection in enumerate(detections):
        path = tmp_path / f"rule{number}.yml"
        rule = {
            "title": f"t{number}",
            "id": f"00000000-0000-4000-8000-{number:012d}",
            "logsource": {"product": product},
            "detection": detection,
        }
        path.write_text(yaml.safe_dump(rule))
        paths.append(path)
    rules = load_rules(paths, OPTIONS)
    assert not rules.problems, rules.problems
    return rules


CASES = [
    # A case-sensitive regex's literal guard: present, absent, present only in other case.
    ({"s": {"a|re": "x`\\w+`"}, "condition": "s"}, {"a": "ie`x`abc`"}, True),
    ({"s": {"a|re": "x`\\w+`"}, "condition": "s"}, {"a": "plain text"}, False),
    ({"s": {"a|re": "Evil\\d"}, "condition": "s"}, {"a": "evil1"}, False),
    # Case-insensitive regexes are not guarded by their literals as written.
    ({"s": {"a|re|i": "Evil\\d"}, "condition": "s"}, {"a": "EVIL1"}, True),
    ({"s": {"a|re": "(?i)Evil\\d"}, "condition": "s"}, {"a": "eViL1"}, True),
    ({"s": {"a|re": "x(?i:Evil)"}, "condition": "s"}, {"a": "xEVIL"}, True),
    ({"s": {"a|re": "ab|cd"}, "condition": "s"}, {"a": "zzcd"}, True),
    # Inner wildcards: the longest plain run is only a pre-check.
    ({"s": {"a": "*select * from*"}, "condition": "s"}, {"a": "SELECT a FROM t"}, True),
    ({"s": {"a": "*select * from*"}, "condition": "s"}, {"a": "from x select"}, False),
    ({"k": ["select * from"], "condition": "k"}, {"q": "1 SELECT x FROM y"}, True),
    ({"k": ["select * from"], "condition": "k"}, {"q": "select x", "r": "y from"}, False),
    # Keyword lists of contained literals: searched once in all texts, never across two.
    ({"k": ["union select", "or 1=1"], "condition": "k"}, {"u": "x OR 1=1"}, True),
    ({"k": ["union select", "or 1=1"], "condition": "k"}, {"u": "union", "v": "select"}, False),
    ({"k": ["union select", "or 1=1"], "condition": "k"}, {"event": {"original": "or 1=1"}}, False),
    # Short whole values in the index: numbers as text and as numbers, other values.
    ({"s": {"code": 16}, "condition": "s"}, {"code": "16"}, True),
    ({"s": {"code": 16}, "condition": "s"}, {"code": 16}, True),
    ({"s": {"code": 16}, "condition": "s"}, {"code": "160"}, False),
    ({"s": {"code": "16"}, "condition": "s"}, {"code": ["1", "16"]}, True),
    ({"s": {"code": "16"}, "condition": "s"}, {"code": "1"}, False),
    # Field references: strings compare folded, lists element by element.
    ({"s": {"a|fieldref": "b"}, "condition": "s"}, {"a": "C:\\X.exe", "b": "c:\\x.EXE"}, True),
    ({"s": {"a|fieldref": "b"}, "condition": "s"}, {"a": "x", "b": "y"}, False),
    ({"s": {"a|fieldref": "b"}, "condition": "s"}, {"a": ["y", "x"], "b": "X"}, True),
    ({"s": {"a|fieldref": "b"}, "condition": "s"}, {"a": "x"}, False),
    # Two requirements of an AND: both must be met for the rule to be evaluated at all.
    (
        {"s": {"m": "GET", "u|contains": ["/etc/passwd", "win.ini"]}, "condition": "s"},
        {"m": "get", "u": "/x?f=../../etc/passwd"},
        True,
    ),
    (
        {"s": {"m": "GET", "u|contains": ["/etc/passwd", "win.ini"]}, "condition": "s"},
        {"m": "GET", "u": "/index.php"},
        False,
    ),
    (
        {"s": {"m": "GET", "u|contains": ["/etc/passwd", "win.ini"]}, "condition": "s"},
        {"m": "POST", "u": "/etc/passwd"},
        False,
    ),
    (
        {
            "a": {"m": "GET"},
            "b": {"u|contains": "win.ini"},
            "c": {"u|endswith": ".bak"},
            "condition": "a and (b or c)",
        },
        {"m": "GET", "u": "/site.BAK"},
        True,
    ),
    (
        {
            "a": {"m": "GET"},
            "b": {"u|contains": "win.ini"},
            "c": {"u|endswith": ".bak"},
            "condition": "a and (b or c)",
        },
        {"m": "GET", "u": "/site.zip"},
        False,
    ),
    (
        {"a": {"m": "GET"}, "b": {"u|contains": "win.ini"}, "condition": "a and not b"},
        {"m": "GET", "u": "/x"},
        True,
    ),
    # Events are scanned as folded JSON: escaped quotes, backslashes and control characters
    # still match, keys and nulls only widen the pre-selection, never the result.
    (
        {"k": ['c:\\windows\\temp\\"x'], "condition": "k"},
        {"a": 'run C:\\Windows\\Temp\\"X" now'},
        True,
    ),
    ({"k": ["a\tb"], "condition": "k"}, {"m": "xx A\tB yy"}, True),
    ({"k": ["process"], "condition": "k"}, {"process": {"name": "x"}, "n": None}, False),
    ({"k": ["null"], "condition": "k"}, {"n": None}, False),
    # Non-ASCII text folds as Python folds it: Vietnamese, the sharp s.
    ({"k": ["thất bại"], "condition": "k"}, {"m": "Đăng nhập THẤT BẠI"}, True),
    ({"k": ["strasse"], "condition": "k"}, {"m": "Hauptstraße 1"}, True),
    # Keyword texts come from every nested value and list item but the raw record.
    ({"k": ["evil.exe"], "condition": "k"}, {"p": [{"q": ["a", {"r": "x EVIL.EXE"}]}]}, True),
    ({"k": ["4624"], "condition": "k"}, {"event": {"code": 4624}}, True),
    ({"k": ["true"], "condition": "k"}, {"flag": True}, True),
    ({"k": ["evil.exe"], "condition": "k"}, {"event.original": "evil.exe", "m": "x"}, False),
]


@pytest.mark.parametrize(("detection", "event", "expected"), CASES)
def test_shortcut_decides_as_the_full_evaluation(
    tmp_path: Path, detection: dict[str, Any], event: dict[str, Any], expected: bool
) -> None:
    rules = ruleset(tmp_path, detection)
    (rule,) = rules.rules
    assert rule.matches(event) is expected
    assert [r.id for r in rules.match(event)] == ([rule.id] if expected else [])


def test_one_keyword_scan_serves_every_admitted_route(tmp_path: Path) -> None:
    """Keyword rules on two routes that both admit the event: each route's rule is found
    from the single scan, and a route whose literal is absent gets none."""
    for number, (product, keyword) in enumerate((("test", "alpha beta"), ("other", "gamma"))):
        rule = {
            "title": product,
            "id": f"00000000-0000-4000-8000-{number:012d}",
            "logsource": {"product": product},
            "detection": {"k": [keyword], "condition": "k"},
        }
        (tmp_path / f"{product}.yml").write_text(yaml.safe_dump(rule))
    rules = load_rules([tmp_path], OPTIONS)
    assert not rules.problems and len(rules.routes) == 2
    assert sorted(r.title for r in rules.match({"m": "ALPHA BETA, Gamma"})) == ["other", "test"]
    assert [r.title for r in rules.match({"m": "gamma only"})] == ["other"]
    assert [r.title for r in rules.match({"m": "alpha", "n": "beta"})] == []


def test_keyword_scan_takes_texts_re2_cannot_encode(tmp_path: Path) -> None:
    """A lone surrogate (from a broken UTF-16 record) cannot go to RE2 as UTF-8: the event is
    scanned by the fallback automaton and its keyword rule still matches."""
    rules = ruleset(tmp_path, {"k": ["mimikatz"], "condition": "k"})
    assert rules.keywords._set is not None, "the RE2 set is the scan under test"
    event = {"message": "run MIMIKATZ \udc80 now"}
    assert [r.title for r in rules.match(event)] == ["t0"]
    assert list(rules.match({"message": "benign \udc80"})) == []


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"a": {"b": {"c": "X"}}}, True),
        ({"a.b.c": "x"}, True),
        ({"a": {"b.c": "x"}}, False),  # a nested flat key is not the path (as before)
        ({"a": [{"b": {"c": "q"}}, {"b": {"c": "x"}}]}, True),
        ({"a": {"b": [{"c": "x"}]}}, True),
        ({"a": MappingProxyType({"b": {"c": "x"}})}, True),
        ({"a": {"b": "x"}}, False),
        ({"a": {"c": "x"}}, False),
        ({}, False),
    ],
)
def test_field_paths_of_two_and_three_parts_resolve_as_the_general_lookup(
    event: dict[str, Any], expected: bool
) -> None:
    three = getter("a.b.c")
    assert (three(event) is not MISSING) is (lookup(event, "a.b.c") is not MISSING)
    assert three(event) == lookup(event, "a.b.c")
    found = three(event)
    values = found if isinstance(found, list) else [found]
    assert ("x" in [str(v).lower() for v in values]) is expected
    two = getter("a.b")
    assert two(event) == lookup(event, "a.b")


def test_an_and_is_a_candidate_only_when_both_its_requirements_are_met(tmp_path: Path) -> None:
    """`method is GET and URL contains X`: GET alone (every page view) must not make the rule
    a candidate; the URL literal with another method must not either."""
    rules = ruleset(
        tmp_path, {"s": {"m": "GET", "u|contains": ["/etc/passwd", "win.ini"]}, "condition": "s"}
    )
    (index,) = [index for index in rules.routes if index.rules]
    (rule,) = index.rules
    assert len(rule.requirements) == 2
    assert index.candidates({"m": "GET", "u": "/index.php"}) == []
    assert index.candidates({"m": "POST", "u": "/etc/passwd"}) == []
    assert index.candidates({"m": "GET", "u": "/../etc/passwd"}) == [0]


def test_events_are_scanned_as_folded_json_and_the_rest_as_folded_texts(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, {"k": ["mimikatz"], "condition": "k"})
    assert rules.keywords._json_set is not None, "the JSON scan is the path under test"
    plain = {"m": "run MIMIKATZ", "event": {"original": "x" * 10_000}}
    assert event_json_folded(plain) == b'{"m":"run mimikatz","event":{}}'
    # For a scan that ignores ASCII case: as it is, unless a character beyond ASCII folds.
    assert event_json_caseless(plain) == b'{"m":"run MIMIKATZ","event":{}}'
    assert event_json_caseless({"m": "WIN® đà"}) == '{"m":"WIN® đà"}'.encode()
    assert event_json_caseless({"m": "WIN® Đà"}) == '{"m":"win® đà"}'.encode()
    # Only the raw record is left out: other keys of `event`, other fields named `original`.
    around = {"event": {"code": "1", "original": "RAW", "kind": "X"}, "u": {"original": "Y"}}
    assert event_json_folded(around) == b'{"event":{"code":"1","kind":"x"},"u":{"original":"y"}}'
    assert around["event"]["original"] == "RAW", "the event itself is left as it was"
    flat = {"event.original": "RAW", "event": {"original": "RAW2"}, "m": "M"}
    assert event_json_folded(flat) == b'{"event":{},"m":"m"}'
    # ASCII letters lowered, characters without case kept; or folded in full when needed.
    assert event_json_folded({"m": "WIN® Đà"}) == '{"m":"win® đà"}'.encode()
    assert event_json_folded({"m": "WIN® đà"}) == '{"m":"win® đà"}'.encode()
    assert event_json_folded({"m": "STRAẞE"}) == b'{"m":"strasse"}'
    # Non-ASCII characters that fold to ASCII (the Kelvin sign), beside ones that do not.
    assert event_json_folded({"m": "® \u212a ©"}) == '{"m":"® k ©"}'.encode()
    assert event_json_folded({"m": 2**70}) == b""  # not a JSON number: the folded texts
    assert event_json_folded({"m": "\udc80"}) == b""  # a lone surrogate: the folded texts
    for event in (plain, {"m": "Đà Nẵng MIMIKATZ"}, {"m": 2**70, "n": "mimikatz"}):
        assert [r.title for r in rules.match(event)] == ["t0"]
    # Before and after the record, and a record equal to another field's value.
    for event in (
        {"event": {"original": "mimikatz", "x": "mimikatz"}},
        {"a": "mimikatz", "event": {"original": "mimikatz"}},
        {"event": {"original": "run mimikatz"}, "b": {"original": "run mimikatz"}},
    ):
        assert [r.title for r in rules.match(event)] == ["t0"]
    assert list(rules.match({"event": {"original": "mimikatz", "x": "y"}})) == []


class _GaveUp:
    """RE2's answer when its DFA runs out of memory mid-scan: no match at all. (Not reliably
    provoked with real inputs at the budget the engine gives RE2, hence the stand-in.)"""

    def Match(self, text: object) -> None:
        return None


def test_a_scan_re2_did_not_complete_falls_back_instead_of_hiding_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "_hyperscan", None)  # RE2 where Hyperscan is missing
    rules = ruleset(tmp_path, {"k": ["mimikatz"], "condition": "k"})
    assert isinstance(rules.keywords._json_set, _Re2Set)
    assert isinstance(rules.keywords._set, _Re2Set)
    event = {"m": "run MIMIKATZ now"}
    # A completed scan reports the always-matching pattern 0 with the literals it found.
    assert rules.keywords._json_set.find(b'"run mimikatz now"') == [((0, (0,)),)]
    assert rules.keywords._json_set.find(b"nothing") == []
    rules.keywords._json_set._set = _GaveUp()
    rules.keywords._set._set = _GaveUp()
    assert rules.keywords._json_set.find(b"nothing") is None
    assert [r.title for r in rules.match(event)] == ["t0"]  # found by the automaton


needs_hyperscan = pytest.mark.skipif(
    index_module._hyperscan is None, reason="Hyperscan has no wheel for this platform"
)
#: Literals as keyword rules give them (folded), with overlaps, prefixes of one another, JSON
#: escapes, non-ASCII and emoji; each with a payload naming it.
LITERALS = [
    "mimikatz",
    "mimi",
    "katz",
    "sekurlsa::logonpasswords",
    "c:\\\\windows\\\\temp",
    "\\u00e9t\\u00e9",
    "Đà nẵng".casefold(),
    "\U0001f600",
    "aaa",
    '\\"quoted\\"',
]
TEXTS = [
    b"",
    b"nothing here",
    b"run mimikatz now",
    b"mimikatz mimikatz sekurlsa::logonpasswords",
    b'{"p":"c:\\\\windows\\\\temp\\\\x.exe"}',
    "đà nẵng \U0001f600 aaaa".encode(),
    b"aa aa aaa katz",
    b'say \\"quoted\\" mimi',
    b"RUN MimiKatz NOW, SEKURLSA::LogonPasswords",
    b'{"p":"C:\\\\Windows\\\\TEMP\\\\x.exe"}',
    "Đà Nẵng AAA \U0001f600".encode(),
]


def _entries() -> dict[str, list[tuple[int, tuple[int, ...]]]]:
    return {literal: [(0, (number,))] for number, literal in enumerate(LITERALS)}


@needs_hyperscan
@pytest.mark.parametrize("text", TEXTS)
def test_hyperscan_and_re2_find_the_same_literals(text: bytes) -> None:
    entries = _entries()
    fast, reference = _HyperscanSet.build(entries), _Re2Set.build(entries)
    assert fast is not None and reference is not None
    # Hyperscan ignores ASCII case (the texts it gets are folded but for ASCII letters); RE2
    # reads folded texts.
    folded = text.lower()
    expected = sorted(n for n, literal in enumerate(LITERALS) if literal.encode() in folded)
    assert [payload[0][1][0] for payload in fast.find(text) or []] == expected
    assert fast.numbers(text) == fast.numbers(folded) == reference.numbers(folded)


@needs_hyperscan
def test_the_keyword_scan_uses_hyperscan_where_installed(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, {"k": ["mimikatz"], "condition": "k"})
    assert isinstance(rules.keywords._json_set, _HyperscanSet)
    assert [r.title for r in rules.match({"m": "RUN MimiKatz"})] == ["t0"]
    assert list(rules.match({"m": "benign"})) == []


class _Failing:
    def scan(self, *args: object, **kwargs: object) -> None:
        raise index_module._hyperscan.error("scratch in use")


@needs_hyperscan
def test_a_hyperscan_scan_that_fails_falls_back_instead_of_hiding_rules(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, {"k": ["mimikatz"], "condition": "k"})
    literals = rules.keywords._json_set
    assert isinstance(literals, _HyperscanSet)
    literals._database = _Failing()
    assert literals.find(b"mimikatz") is None
    assert [r.title for r in rules.match({"m": "run MIMIKATZ now"})] == ["t0"]
    assert list(rules.match({"m": "benign"})) == []


@needs_hyperscan
def test_hyperscan_scans_from_several_threads_at_once() -> None:
    """Hyperscan's scratch space may serve one scan at a time: each thread gets its own."""
    from concurrent.futures import ThreadPoolExecutor

    fast = _HyperscanSet.build(_entries())
    assert fast is not None
    expected = [fast.numbers(text) for text in TEXTS]
    long_texts = [text * 200 for text in TEXTS]
    expected_long = [fast.numbers(text) for text in long_texts]

    def scan_all(_: int) -> bool:
        return all(
            fast.numbers(text) == want
            for _ in range(50)
            for text, want in zip(TEXTS + long_texts, expected + expected_long, strict=True)
        )

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(scan_all, range(8)))
    assert None not in expected


def test_a_literal_set_is_none_when_no_engine_builds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "_hyperscan", None)
    monkeypatch.setattr(_Re2Set, "build", classmethod(lambda cls, entries: None))
    assert _LiteralSet.build(_entries()) is None


@pytest.mark.parametrize(
    ("detection", "present", "absent"),
    [
        ({"s": {"c|contains": ["^^", ",;,"]}, "condition": "s"}, "c^^md /c", "cmd /c dir"),
        ({"s": {"c|re": r"\w+`(?:\w+|-|.)`\w"}, "condition": "s"}, "IN`V`oke", "Invoke-Expr"),
        ({"s": {"c|re": r"(?i)\$\{`?e`?n`?v"}, "condition": "s"}, "${ENV:path}", "env path"),
    ],
)
def test_short_literals_of_rare_characters_narrow_and_decide_as_evaluation(
    tmp_path: Path, detection: dict[str, Any], present: str, absent: str
) -> None:
    """`^^` or a backtick is rare in logs: a rule built on one is indexed by it, not evaluated on
    every event of its route, and the index never hides an event the rule matches."""
    rules = ruleset(tmp_path, detection)
    (index,) = [index for index in rules.routes if index.rules]
    (rule,) = index.rules
    assert rule.requirements, "the rule is indexed by its short literal"
    assert index.always == []
    assert index.candidates({"c": absent}) == []
    assert index.candidates({"c": present}) == [0]
    assert [r.title for r in rules.match({"c": present})] == ["t0"]
    assert list(rules.match({"c": absent})) == []


def test_short_common_literals_do_not_narrow(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, {"s": {"c|contains": ["-f", "ab"]}, "condition": "s"})
    (index,) = [index for index in rules.routes if index.rules]
    assert index.always == [0]
    assert [r.title for r in rules.match({"c": "x -f y"})] == ["t0"]


def test_a_rule_needing_a_keyword_and_a_field_is_a_candidate_only_with_both(
    tmp_path: Path,
) -> None:
    """Its two requirements come from two scans (the keyword scan of every route at once, the
    route's field scan): it is evaluated only when both found theirs."""
    rules = ruleset(
        tmp_path, {"k": ["mimikatz"], "s": {"u|contains": "/etc/passwd"}, "condition": "k and s"}
    )
    (index,) = [index for index in rules.routes if index.rules]
    (rule,) = index.rules
    assert len(rule.requirements) == 2 and index.pairs == {0}
    both = {"m": "MIMIKATZ", "u": "/../etc/passwd"}
    keyword_only = {"m": "mimikatz", "u": "/index"}
    field_only = {"m": "benign", "u": "/etc/passwd"}
    route = rules.routes.index(index)
    for event, expected in ((both, [0]), (keyword_only, []), (field_only, [])):
        hits = rules.keywords.hits(event).get(route)
        assert index.candidates(event, hits) == expected
        assert index.candidates(event) == expected  # the route's own keyword automaton
        assert [r.title for r in rules.match(event)] == (["t0"] if expected else [])
