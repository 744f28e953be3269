"""Conditions compiled to generated code (soc/detect/compiler.py `_ConditionCode`) decide as the
condition reads: `and`, `or`, `not` and `1 of` in any nesting, and every field read as `lookup`
reads it (flat dotted keys, nested dicts, lists of objects, Mappings), with and without the value
memo, on first sight and from the memo."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.rule import SigmaRule

from soc.detect.compiler import _MISSING as MISSING
from soc.detect.compiler import as_text, compile_condition, lookup
from soc.detect.memo import ValueMemo, compiling_with
from tests.event_shapes import place_fields


def _conditions(detection: dict[str, Any]) -> list[Any]:
    rule = SigmaRule.from_dict(
        {
            "title": "t",
            "id": "00000000-0000-4000-8000-000000000001",
            "logsource": {"product": "test"},
            "detection": detection,
        }
    )
    return [condition.parsed for condition in rule.detection.parsed_condition]


def _compiled(detection: dict[str, Any]) -> list[Any]:
    """The condition compiled without a memo and with one (each called several times)."""
    (tree,) = _conditions(detection)
    with compiling_with(ValueMemo()):
        remembering = compile_condition(tree)
    return [compile_condition(tree), remembering]


NAMES = ["a", "a.b", "a.b.c", "a.b.c.d"]
_leaf = st.one_of(
    st.none(),
    st.sampled_from(["x", "X", "xy", "", "other"]),
    st.integers(0, 2),
    st.booleans(),
)
_node = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=3),
        st.dictionaries(st.sampled_from(["b", "c"]), inner, max_size=2).map(MappingProxyType),
    ),
    max_leaves=8,
)


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = draw(st.dictionaries(st.sampled_from(["a", "z"]), _node, max_size=2))
    return place_fields(draw, event, NAMES, _node, most=3, flat_one_in=5, cut_one_in=6)


def _equals_x(event: Any, name: str) -> bool:
    """`name: x` as the specification reads it: any scalar of the field is x (folded)."""
    found = lookup(event, name)
    if found is MISSING or found is None or isinstance(found, Mapping):
        return False
    items = found if isinstance(found, list) else [found]
    flat: list[Any] = []
    while items:
        item, *items = items
        if isinstance(item, list):
            items = item + items
        elif item is not None and not isinstance(item, Mapping):
            flat.append(item)
    return any(as_text(item).casefold() == "x" for item in flat)


@settings(max_examples=500, deadline=None)
@given(_events())
def test_fields_are_read_as_lookup_reads_them(event: dict[str, Any]) -> None:
    for name in NAMES:
        expected = _equals_x(event, name)
        for predicate in _compiled({"s": {name: "x"}, "condition": "s"}):
            for _ in range(3):
                assert predicate(event) is expected, name


SELECTIONS = {
    "s0": {"a": "x"},
    "s1": {"b|contains": "y"},
    "s2": {"c.d": ["p", "q"]},
    "s3": ["zz"],
}


def _selected(event: dict[str, Any]) -> dict[str, bool]:
    texts = [str(v).casefold() for v in event.values() if not isinstance(v, dict)]
    inner = event.get("c")
    return {
        "s0": str(event.get("a", "")).casefold() == "x",
        "s1": "y" in str(event.get("b", "")).casefold(),
        "s2": isinstance(inner, dict) and str(inner.get("d", "")).casefold() in ("p", "q"),
        "s3": any("zz" in text for text in texts)
        or (isinstance(inner, dict) and "zz" in str(inner.get("d", "")).casefold()),
    }


_condition = st.recursive(
    st.sampled_from(["s0", "s1", "s2", "s3", "1 of s*", "all of s*"]),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda c: f"not {c}"),
    ),
    max_leaves=6,
)
_event = st.fixed_dictionaries(
    {},
    optional={
        "a": st.sampled_from(["x", "X", "y"]),
        "b": st.sampled_from(["xyz", "no", "YY"]),
        "c": st.fixed_dictionaries({}, optional={"d": st.sampled_from(["P", "q", "zz", "r"])}),
        "m": st.sampled_from(["a ZZ b", "none"]),
    },
)


def _truth(condition: str, selected: dict[str, bool]) -> bool:
    python = condition.replace("1 of s*", "(s0 or s1 or s2 or s3)")
    python = python.replace("all of s*", "(s0 and s1 and s2 and s3)")
    return bool(eval(python, {"__builtins__": {}}, dict(selected)))


@settings(max_examples=400, deadline=None)
@given(_condition, st.lists(_event, min_size=1, max_size=4))
def test_and_or_not_decide_as_the_condition_reads(condition: str, events: list[Any]) -> None:
    predicates = _compiled({**SELECTIONS, "condition": condition})
    for event in events * 2:  # the memo's second sighting
        expected = _truth(condition, _selected(event))
        for predicate in predicates:
            assert predicate(event) is expected, (condition, event)
