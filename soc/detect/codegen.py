"""Generated straight-line Python for the per-event loops that read many fields.

Routing and the rule index read a dozen fields or more of every event. Calling one getter per
field (a closure walking the dotted path) cost as much as the work done with the values: 3-5 us
an event for routing alone. The code generated here fetches each path's first object once for
all the fields under it and walks plain dicts inline; a path through anything else (a Mapping, a
list of objects, a scalar where an object was expected) is left to the field's own getter, which
reads it as `compiler.lookup` does. Sigma conditions read their fields the same way, as one
expression (`fetch_expression`). The generated code is ours: names from configuration and rules
enter it only as `repr()` literals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fetch_prelude(names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Lines (indented for a function body, `get = event.get` first) fetching the first object of
    every dotted path, and the variable holding each."""
    firsts = sorted({name.split(".")[0] for name in names if "." in name})
    nodes = {first: f"n{number}" for number, first in enumerate(firsts)}
    lines = ["    get = event.get"]
    lines += [f"    {nodes[first]} = get({first!r}, M)" for first in firsts]
    return lines, nodes


def fetch(
    name: str, value: str, general: str, nodes: dict[str, str], flat: bool = True
) -> list[str]:
    """Lines setting `value` to the field `name` of `event` (M when absent): a flat key holding
    the dotted name first, then the path. `general`: a statement reading the field the general
    way into `value`. `flat=False`: for code that knows the event has no such flat key."""
    first, *rest = name.split(".")
    if not rest:
        return [f"    {value} = get({name!r}, M)"]
    if flat:
        lines = [
            f"    {value} = get({name!r}, M)",
            f"    if {value} is M and {nodes[first]} is not M:",
        ]
    else:
        lines = [f"    {value} = M", f"    if {nodes[first]} is not M:"]
    lines.append(f"        x = {nodes[first]}")
    lines += _walk(rest, value, general, "        ", first_level=True)
    return lines


def _walk(parts: list[str], value: str, general: str, depth: str, first_level: bool) -> list[str]:
    """Code that walks `x` down `parts` through plain dicts into `value`; anything else on the way
    but a missing key (a list of objects, a Mapping, a scalar) runs `general`."""
    lines = [f"{depth}if type(x) is dict:", f"{depth}    x = x.get({parts[0]!r}, M)"]
    if len(parts) == 1:
        lines.append(f"{depth}    {value} = x")
    else:
        lines += _walk(parts[1:], value, general, depth + "    ", first_level=False)
    # The first object is known to be present; below it a missing key ends the path: no value.
    lines.append(f"{depth}else:" if first_level else f"{depth}elif x is not M:")
    lines.append(f"{depth}    {general}")
    return lines


def fetch_expression(name: str, general: str) -> str:
    """`fetch` as one expression, for code that must be one (a condition): the field `name` of
    `event` as `getter(name)` reads it (`general`: the name of that getter), the flat dotted key
    first, then the path through plain dicts, the getter for anything else on the way (a list of
    objects, a Mapping) and for paths of four parts or more."""
    if "." not in name:
        return f"get({name!r}, M)"
    first, *rest = name.split(".")
    if len(rest) > 2:
        return f"{general}(event)"
    if len(rest) == 1:
        walk = f"(n.get({rest[0]!r}, M) if type(n := get({first!r}, M)) is dict"
        walk += f" else (M if n is M else {general}(event)))"
    else:
        inner = f"(x.get({rest[1]!r}, M) if type(x := n.get({rest[0]!r}, M)) is dict"
        inner += f" else (M if x is M else {general}(event)))"
        walk = f"({inner} if type(n := get({first!r}, M)) is dict"
        walk += f" else (M if n is M else {general}(event)))"
    return f"(v if (v := get({name!r}, M)) is not M else {walk})"


def build(lines: list[str], name: str, namespace: dict[str, Any], label: str) -> Any:
    """Compile the function `name` defined by `lines` in `namespace`."""
    code = compile("\n".join(lines), f"<{label}>", "exec")
    exec(code, namespace)  # noqa: S102 - our own code, see the module's docstring
    return namespace[name]
