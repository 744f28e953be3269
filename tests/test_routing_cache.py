"""Routing decisions are kept by the values of the routing fields: the same values get the
same routes without testing the table again, and values that compare equal across types
(1, 1.0, True) are never taken for one another."""

from __future__ import annotations

from soc.detect.routing import RouteTable, parse_routes

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
