"""The index's generated field scan (soc/detect/index.py `_field_scanner`, soc/detect/codegen.py)
finds exactly the slots that scanning each field's texts, read by `lookup`, finds: nested and
flat names, lists of objects, Mappings, numbers, fields walked from their common object, and
answers remembered by value."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import ahocorasick
from hypothesis import given, settings
from hypothesis import strategies as st

from soc.detect.compiler import field_values, getter, lookup
from soc.detect.index import _GROUP_FROM, _field_scanner, split_slots
from soc.detect.memo import ValueMemo
from tests.event_shapes import place_fields

#: Ten fields under one object (walked by its items), two under another, one top-level, one
#: four levels deep.
GROUPED = [f"w.d.f{number}" for number in range(10)]
NAMES = [*GROUPED, "p.a", "p.b", "t", "a.b.c.d"]
LITERALS = ["x", "ab", "1", "200", "true", "đà"]


def _automata(memo: ValueMemo) -> tuple[tuple[str, Any, Any, Any], ...]:
    built = []
    for field_number, name in enumerate(NAMES):
        automaton = ahocorasick.Automaton()
        for literal_number, literal in enumerate(LITERALS):
            # As RouteIndex.build files them: the slot's rule under its requirement's number.
            slot = field_number * 100 + literal_number
            first, second = split_slots({slot})
            automaton.add_word(literal, (tuple(first), tuple(second)))
        automaton.make_automaton()
        built.append((name, getter(name), automaton, memo.new_map()))
    return tuple(built)


def _reference(
    automata: tuple[tuple[str, Any, Any, Any], ...], event: Any
) -> tuple[frozenset[int], frozenset[int]]:
    """The slots found scanning each field's texts, split by requirement (`split_slots`)."""
    first: set[int] = set()
    second: set[int] = set()
    for name, _, automaton, _ in automata:
        for text in field_values(lookup(event, name)):
            for _, (firsts, seconds) in automaton.iter(text.casefold()):
                first.update(firsts)
                second.update(seconds)
    return frozenset(first), frozenset(second)


def _scanned(scan: Any, event: Any) -> tuple[frozenset[int], frozenset[int]]:
    first, second = scan(event)
    return frozenset(first), frozenset(second)


_leaf = st.one_of(
    st.none(),
    st.sampled_from(["x", "AB", "Đà Nẵng", "nothing", "", "1x", "TRUE"]),
    st.integers(0, 300),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
)
_node = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["f1", "f2", "a", "b", "d", "c"]), inner, max_size=3),
        st.dictionaries(st.sampled_from(["f3", "a", "d"]), inner, max_size=2).map(MappingProxyType),
    ),
    max_leaves=8,
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = draw(
        st.dictionaries(st.sampled_from(["w", "p", "t", "a", "other"]), _node, max_size=3)
    )
    return place_fields(draw, event, NAMES, _node, most=12, flat_one_in=10, cut_one_in=8)


def test_the_grouped_fields_are_walked_from_their_object() -> None:
    assert len(GROUPED) >= _GROUP_FROM


@settings(max_examples=800, deadline=None)
@given(events())
def test_the_generated_scan_finds_what_scanning_each_field_finds(event: dict[str, Any]) -> None:
    memo = ValueMemo()
    automata = _automata(memo)
    scan = _field_scanner(automata, memo)
    expected = _reference(automata, event)
    for _ in range(3):  # first sighting, remembered on the second, answered from the memo
        assert _scanned(scan, event) == expected


def test_examples() -> None:
    memo = ValueMemo()
    automata = _automata(memo)
    scan = _field_scanner(automata, memo)
    nested = {"w": {"d": {"f0": "X", "f9": 200, "zz": "x"}}, "t": ["ab", {"x": "x"}]}
    assert _scanned(scan, nested) == split_slots({0, 903, 1201}) == _reference(automata, nested)
    # A flat dotted key wins over the nested one, as `lookup` reads it.
    flat = {"w.d.f1": "ab", "w": {"d": {"f1": "x"}}}
    assert _scanned(scan, flat) == split_slots({101}) == _reference(automata, flat)
    # Through a list of objects, as Elasticsearch flattens them.
    listed = {"w": [{"d": {"f2": "x"}}, {"d": {"f2": "1"}}], "p": {"a": True}}
    assert _scanned(scan, listed) == split_slots({200, 202, 1004}) == _reference(automata, listed)
    deep = {"a": {"b": {"c": {"d": "Đà"}}}, "w": MappingProxyType({"d": {"f3": "ab"}})}
    assert _scanned(scan, deep) == split_slots({1305, 301}) == _reference(automata, deep)
    assert _scanned(scan, {"w": {"d": "x"}, "p": None}) == (frozenset(), frozenset())
    # Requirement 1 of a rule (odd slots) lands in the second set, by the rule's position.
    assert split_slots({903, 1201, 0}) == (frozenset({0}), frozenset({451, 600}))
