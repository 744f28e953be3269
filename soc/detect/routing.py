"""Log-source routing: which events a Sigma rule's product/category/service stands for.

Routes come from YAML (`soc/detect/logsources.yml` by default). A route admits an event when any
of its alternatives holds; an alternative holds when every one of its fields has one of the
accepted values (case-insensitive; numbers compare by their text, so `event.code: 4688` and
`"4688"` are the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from soc.detect.compiler import Event, lookup

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
