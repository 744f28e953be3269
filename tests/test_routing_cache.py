"""Routing decisions are kept by the values of the routing fields: the same values get the
same routes without testing the table again, and values that compare equal across types
(1, 1.0, True) are never taken for one another."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from soc.detect.compiler import _MISSING as MISSING
from soc.detect.compiler import getter, lookup
from soc.detect.routing import RouteTable, parse_routes, routing_key
from tests.event_shapes import place_fields

ROUTES = parse_routes(
    [
        {"logsource": {"product": "a"}, "where": {"event.code": ["1"]}},
        {"logsource": {"product": "b"}, "where": {"event.code": ["1.0"]}},
        {
            "logsource": {"product": "c"},
            "where": {"event.code": ["4624"], "winlog.channel": ["security"]},
        },
        {
            "logsource": {"product": "d"},
            "where": {"event.category": ["process"], "event.module": ["sysmon"]},
        },
    ],
    "test",
)


def test_the_same_routing_values_get_the_same_routes_from_the_kept_decision() -> None:
    table = RouteTable(ROUTES)
    event = {"event": {"code": "4624"}, "winlog": {"channel": "Security"}, "message": "x"}
    first = table.admitted(event)
    assert first == (2,)
    assert len(table._decided) == 1
    other = {"event": {"code": "4624"}, "winlog": {"channel": "Security"}, "message": "y"}
    assert table.admitted(other) is first  # decided once: the message is not a routing field
    assert table.admitted({"event": {"code": "4624"}, "winlog": {"channel": "System"}}) == ()
    lists = {"event": {"category": ["process"], "module": "sysmon"}}
    assert table.admitted(lists) == (3,)
    assert table.admitted({"event": {"category": ["file"], "module": "sysmon"}}) == ()


def test_numbers_and_booleans_are_routed_by_their_own_text_never_from_a_kept_decision() -> None:
    table = RouteTable(ROUTES)
    assert table.admitted({"event": {"code": 1}}) == (0,)
    assert table.admitted({"event": {"code": 1.0}}) == (1,)
    assert table.admitted({"event": {"code": True}}) == ()
    assert table.admitted({"event": {"code": "1"}}) == (0,)
    assert table.admitted({"event": {"code": {"nested": "1"}}}) == ()


def _reference_key(names: list[str], event: dict[str, Any]) -> tuple[Any, ...]:
    """The routing key read by one `lookup` per field, a list as a tuple."""
    values = [lookup(event, name) for name in names]
    return tuple(tuple(value) if type(value) is list else value for value in values)


NAMES = ["event.code", "winlog.event_data.EventType", "process", "a.b.c.d", "log.level"]
_leaf = st.one_of(
    st.none(),
    st.sampled_from(["x", "Security", "4624", ""]),
    st.integers(-2, 2),
    st.booleans(),
    st.lists(st.sampled_from(["p", "q"]), max_size=2),
)
_node = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.dictionaries(st.sampled_from(["code", "event_data", "EventType", "b", "c", "d"]), inner),
        st.lists(inner, max_size=2),
        st.dictionaries(st.sampled_from(["code", "b"]), inner).map(MappingProxyType),
    ),
    max_leaves=6,
)
_event = st.dictionaries(
    st.sampled_from(["event", "winlog", "process", "a", "log", "event.code", "log.level", "x"]),
    _node,
)


@st.composite
def _placed(draw: st.DrawFn) -> dict[str, Any]:
    """Events that hold the routing fields at their paths (nested, flat, or cut short by
    something else on the way), where arbitrary dicts would seldom reach three levels down."""
    event: dict[str, Any] = draw(_event)
    return place_fields(draw, event, NAMES, _node, most=4, flat_one_in=2, cut_one_in=6)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(_event, _placed()))
def test_the_generated_routing_key_reads_fields_as_lookup_does(event: dict[str, Any]) -> None:
    key = routing_key(NAMES, [getter(name) for name in NAMES])
    assert key(event) == _reference_key(NAMES, event)


def test_routing_key_examples() -> None:
    key = routing_key(NAMES, [getter(name) for name in NAMES])
    plain = {"event": {"code": "4624"}, "winlog": {"event_data": {"EventType": "x"}}}
    assert key(plain) == ("4624", "x", MISSING, MISSING, MISSING)
    flat = {"event.code": "1", "event": {"code": "2"}, "log": {"level": ["a", "b"]}}
    assert key(flat) == ("1", MISSING, MISSING, MISSING, ("a", "b"))
    deep = {"a": {"b": {"c": {"d": "z"}}}, "process": None}
    assert key(deep) == (MISSING, MISSING, None, "z", MISSING)
    through = {"event": [{"code": "a"}, {"code": "b"}]}
    assert key(through) == (("a", "b"), MISSING, MISSING, MISSING, MISSING)
    assert key({"event": {"code": 4624}}) == (4624, MISSING, MISSING, MISSING, MISSING)
    assert routing_key([], [])({"event": {}}) == ()
    assert routing_key(["event.code"], [getter("event.code")])({"event": {"code": "1"}}) == ("1",)


def test_only_decisions_for_texts_are_kept_and_objects_are_routed_afresh() -> None:
    table = RouteTable(ROUTES)
    assert table.admitted({"event": {"code": 1}}) == (0,)
    assert table.admitted({"event": {"code": ["1"]}}) == (0,)
    assert table.admitted({"event": {"code": [1.0]}}) == (1,)
    assert table.admitted({"event": {"code": [True]}}) == ()
    (kept,) = table._decided  # the list of one text; the numbers were not kept
    assert ("1",) in kept
    # Unhashable values (an object, an object inside a list) are routed without the cache.
    assert table.admitted({"event": {"code": {"x": "1"}}}) == ()
    assert table.admitted({"event": {"category": [{"x": 1}], "module": "sysmon"}}) == ()
    assert table.admitted({"event": {"category": ["process"], "module": "sysmon"}}) == (3,)
    for kept in table._decided:
        for value in kept:
            assert (
                type(value) is str
                or value is None
                or value is MISSING
                or (type(value) is tuple and all(type(item) is str for item in value))
            )
