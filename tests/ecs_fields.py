"""Reading expected fields out of nested ECS events, shared by the normalizer tests."""

from __future__ import annotations

from typing import Any

#: A field the event does not have (distinct from a present null).
ABSENT = object()


def field(event: dict[str, Any], dotted: str) -> Any:
    node: Any = event
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return ABSENT
        node = node[key]
    return node


def assert_fields(event: dict[str, Any], expected: dict[str, Any]) -> None:
    actual = {name: field(event, name) for name in expected}
    assert actual == expected
