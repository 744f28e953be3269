"""Hypothesis helpers for events that hold given fields at their dotted paths: nested, given flat
(a top-level key holding the dotted name), or cut short by something else on the way, where
arbitrary dicts would seldom reach three levels down."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def place_fields(
    draw: st.DrawFn,
    event: dict[str, Any],
    names: list[str],
    values: st.SearchStrategy[Any],
    *,
    most: int,
    flat_one_in: int,
    cut_one_in: int,
) -> dict[str, Any]:
    """Put up to `most` of `names` into `event` with values drawn from `values`: one in
    `flat_one_in` as a flat dotted key, and on the way down one object in `cut_one_in` replaced
    by a drawn value (a list, a scalar, a Mapping) that the path then runs into."""
    for name in draw(st.lists(st.sampled_from(names), max_size=most)):
        value = draw(values)
        if draw(st.integers(0, flat_one_in - 1)) == 0:
            event[name] = value
            continue
        node = event
        *path, last = name.split(".")
        for part in path:
            child = node.get(part)
            if not isinstance(child, dict):
                cut = draw(st.integers(0, cut_one_in - 1)) == 0
                child = node[part] = draw(values) if cut else {}
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[last] = value
    return event
