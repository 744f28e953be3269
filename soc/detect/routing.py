"""Log-source routing: which events a Sigma rule's product/category/service stands for.

Routes come from YAML (`soc/detect/logsources.yml` by default). A route admits an event when any
of its alternatives holds; an alternative holds when every one of its fields has one of the
accepted values (case-insensitive; numbers compare by their text, so `event.code: 4688` and
`"4688"` are the same).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from soc.detect import codegen
from soc.detect.compiler import _MISSING, Event, Getter, field_values, getter, lookup

LogsourceKey = tuple[tuple[str, str], ...]
Alternative = tuple[tuple[str, frozenset[str]], ...]


def logsource_key(product: Any, category: Any, service: Any) -> LogsourceKey:
    pairs = [
        (name, str(value).lower())
        for name, value in (("product", product), ("category", category), ("service", service))
        if value
    ]
    return tuple(sorted(pairs))


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, (Mapping, list)):
        return None
    return str(value).casefold()


@dataclass(frozen=True, slots=True)
class Route:
    logsource: LogsourceKey
    alternatives: tuple[Alternative, ...]

    def admits(self, event: Event) -> bool:
        return any(self._holds(alternative, event) for alternative in self.alternatives)

    @staticmethod
    def _holds(alternative: Alternative, event: Event) -> bool:
        for name, accepted in alternative:
            value = lookup(event, name)
            values = value if isinstance(value, list) else (value,)
            if not any(_text(v) in accepted for v in values):
                return False
        return True

    def describe(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.logsource)


def _alternative(spec: Any, origin: str) -> Alternative:
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"{origin}: expected a mapping of field -> accepted values")
    alternative = []
    for name, values in spec.items():
        listed = values if isinstance(values, list) else [values]
        alternative.append((str(name), frozenset(str(v).casefold() for v in listed)))
    return tuple(alternative)


def parse_routes(entries: Any, origin: str) -> list[Route]:
    if not isinstance(entries, list):
        raise ValueError(f"{origin}: expected a list of routes")
    routes = []
    for index, entry in enumerate(entries):
        where = f"{origin}: route {index}"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("logsource"), Mapping):
            raise ValueError(f"{where}: expected a 'logsource' mapping")
        source = entry["logsource"]
        key = logsource_key(source.get("product"), source.get("category"), source.get("service"))
        alternatives: tuple[Alternative, ...]
        if "where" in entry:
            alternatives = (_alternative(entry["where"], where),)
        elif isinstance(entry.get("any"), list) and entry["any"]:
            alternatives = tuple(_alternative(spec, where) for spec in entry["any"])
        else:
            raise ValueError(f"{where}: expected 'where' or a non-empty 'any' list")
        routes.append(Route(key, alternatives))
    return routes


def load_routes(path: Path | None = None) -> list[Route]:
    """Routes from YAML: the packaged table when no path is given."""
    if path is None:
        text = resources.files("soc.detect").joinpath("logsources.yml").read_text("utf-8")
        return parse_routes(yaml.safe_load(text), "soc/detect/logsources.yml")
    return parse_routes(yaml.safe_load(path.read_text("utf-8")), str(path))


#: Fields tried first to dispatch on: the most selective ones events reliably carry.
_DISPATCH_PRIORITY = (
    "event.code",
    "winlog.channel",
    "event.dataset",
    "process.name",
    "event.module",
)
_Check = tuple[Getter, frozenset[str]]
#: Routing decisions kept (by the values of the routing fields) before the table starts over.
_DECISIONS_KEPT = 4096


def _check_holds(checks: tuple[_Check, ...], event: Event) -> bool:
    for get, accepted in checks:
        value = get(event)
        values = value if isinstance(value, list) else (value,)
        if not any(_text(v) in accepted for v in values):
            return False
    return True


class RouteTable:
    """Which routes admit an event, found by dictionary look-ups rather than by testing each of
    ~100 routes: every alternative is filed under the value of one field (the most selective it
    names); an event looks up its own values of those few fields and tests only the rest of the
    alternatives found there."""

    def __init__(self, routes: list[Route]) -> None:
        self._getters: dict[str, Getter] = {}
        self._table: dict[str, dict[str, list[tuple[int, tuple[_Check, ...]]]]] = {}
        self._unconditional: list[int] = []
        for position, route in enumerate(routes):
            for alternative in route.alternatives:
                self._file(position, alternative)
        #: (getter of the dispatch field, its table), for the per-event loop.
        self._dispatch = tuple((self._getters[name], table) for name, table in self._table.items())
        #: The values of every field routing reads; they decide the routes, and a stream has few
        #: combinations of them (channel, event code, program...): decisions are kept by them.
        self._key = routing_key(list(self._getters), list(self._getters.values()))
        self._decided: dict[tuple[Any, ...], tuple[int, ...]] = {}

    def _file(self, position: int, alternative: Alternative) -> None:
        if not alternative:
            self._unconditional.append(position)
            return
        names = [name for name, _ in alternative]
        key = next((name for name in _DISPATCH_PRIORITY if name in names), names[0])
        for name, _ in alternative:
            self._getters.setdefault(name, getter(name))
        rest = tuple((self._getters[n], accepted) for n, accepted in alternative if n != key)
        values = dict(alternative)[key]
        table = self._table.setdefault(key, {})
        for value in values:
            table.setdefault(value, []).append((position, rest))

    def admitted(self, event: Event) -> tuple[int, ...]:
        """Positions of the routes admitting the event, in route order."""
        key = self._key(event)
        try:
            decided = self._decided.get(key)
        except TypeError:  # an object among the values, or a list inside a list: unhashable
            return self._admit(event)
        if decided is None:
            decided = self._admit(event)
            # Only keys of texts are kept. Values that compare equal across types (1, 1.0,
            # True) route differently, and none of them equals a text, None, the absent marker
            # or a tuple of texts: an event with such a value never finds a kept decision, and
            # is routed afresh every time.
            if all(map(_keepable, key)):
                if len(self._decided) >= _DECISIONS_KEPT:
                    self._decided.clear()
                self._decided[key] = decided
        return decided

    def _admit(self, event: Event) -> tuple[int, ...]:
        found = set(self._unconditional)
        for get, table in self._dispatch:
            for item in field_values(get(event)):
                for position, rest in table.get(item.casefold(), ()):
                    if position not in found and _check_holds(rest, event):
                        found.add(position)
        return tuple(sorted(found))


RoutingKey = Callable[[Event], tuple[Any, ...]]


def routing_key(names: list[str], getters: list[Getter]) -> RoutingKey:
    """The values of the routing fields as one tuple, a list as a tuple (see `RouteTable.admitted`
    for which are kept). Generated code (soc/detect/codegen.py): the getters one by one cost 3-5
    us an event, a tenth of detection."""
    prelude, nodes = codegen.fetch_prelude(names)
    lines = ["def key(event, M=M, G=G, type=type, dict=dict, list=list, tuple=tuple):"]
    lines += prelude
    for number, name in enumerate(names):
        value = f"v{number}"
        lines += codegen.fetch(name, value, f"{value} = G[{number}](event)", nodes)
        lines.append(f"    if type({value}) is list:")
        lines.append(f"        {value} = tuple({value})")
    values = ", ".join(f"v{number}" for number in range(len(names)))
    lines.append(f"    return ({values}{',' if len(names) == 1 else ''})")
    namespace: dict[str, Any] = {"M": _MISSING, "G": tuple(getters)}
    key: RoutingKey = codegen.build(lines, "key", namespace, f"routing key of {len(names)} fields")
    return key


def _keepable(value: Any) -> bool:
    """A routing value whose decision may be kept: a text, None, absent, or a tuple of texts."""
    kind = type(value)
    if kind is str or value is None or value is _MISSING:
        return True
    return kind is tuple and all(type(item) is str for item in value)
