"""The rule index: of the hundreds of rules routed to an event, find the few that can match.

For each rule we derive a *requirement* from its condition tree: a set of (field, literal)
alternatives of which at least one must occur in the event (case-folded substring) for the rule
to have any chance. AND keeps its most selective child's requirement, OR unites its children's,
NOT and values we cannot reduce to a literal (regexes, numbers compared by size, CIDRs, nulls)
give none: such rules are always candidates. Per route, one Aho-Corasick automaton per field scans
the event's value once for every literal of every rule, so the cost grows with the event's size,
not with the number of rules. Only candidates are then evaluated in full; the index can only
widen, never narrow, what the full evaluation decides.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ahocorasick
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    SigmaBool,
    SigmaExpansion,
    SigmaNumber,
    SigmaString,
)

from soc.detect.compiler import Event, _as_text, event_field, lookup, string_leaves, string_shape
from soc.detect.routing import Route

if TYPE_CHECKING:
    from soc.detect.rules import CompiledRule

#: (field or None for keywords, literal); at least one of a requirement's pairs must occur.
Requirement = frozenset[tuple[str | None, str]]
#: Literals shorter than this are too common to narrow anything.
MIN_LITERAL = 3


def _value_literals(value: Any) -> set[str] | None:
    """Literals of which at least one occurs (case-folded) in any text the value matches."""
    if isinstance(value, SigmaExpansion):
        found: set[str] = set()
        for item in value.values:
            literals = _value_literals(item)
            if literals is None:
                return None
            found |= literals
        return found
    if isinstance(value, SigmaBool) or not isinstance(value, (SigmaString, SigmaNumber)):
        return None
    if isinstance(value, SigmaNumber):
        if not isinstance(value.number, int):
            return None
        text = str(value.number)
        return {text} if len(text) >= MIN_LITERAL else None
    shape = string_shape(value)
    if shape is not None:
        literal = shape[1]
    else:
        pieces = "".join(p if isinstance(p, str) else "\0" for p in value.s).split("\0")
        literal = max(pieces, key=len).casefold() if pieces else ""
    return {literal} if len(literal) >= MIN_LITERAL else None


def requirement(node: Any) -> Requirement | None:
    """The requirement of a pySigma condition node, or None when it cannot be narrowed."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        literals = _value_literals(node.value)
        if literals is None:
            return None
        name = event_field(node.field)
        return frozenset((name, literal) for literal in literals)
    if isinstance(node, ConditionValueExpression):
        literals = _value_literals(node.value)
        return None if literals is None else frozenset((None, lit) for lit in literals)
    if isinstance(node, ConditionOR):
        united: set[tuple[str | None, str]] = set()
        for arg in node.args:
            child = requirement(arg)
            if child is None:
                return None
            united |= child
        return frozenset(united)
    if isinstance(node, ConditionAND):
        children = [child for arg in node.args if (child := requirement(arg)) is not None]
        if not children:
            return None
        return min(children, key=lambda r: (len(r), -min(len(lit) for _, lit in r)))
    if isinstance(node, ConditionNOT):
        return None
    return None


def rule_requirement(conditions: Sequence[Any]) -> Requirement | None:
    """A rule with several conditions matches when any does: their requirements unite."""
    united: set[tuple[str | None, str]] = set()
    for condition in conditions:
        child = requirement(condition)
        if child is None:
            return None
        united |= child
    return frozenset(united)


def _values_text(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _values_text(item)
    elif isinstance(value, (str, int, float)):
        yield _as_text(value).casefold()


@dataclass
class RouteIndex:
    """The rules of one route, indexed by the literals they require."""

    route: Route
    rules: list[CompiledRule]
    #: Positions (in `rules`) of rules with no requirement: always candidates.
    always: list[int] = field(default_factory=list)
    automata: dict[str | None, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, route: Route, rules: list[CompiledRule]) -> RouteIndex:
        """`rules` carry their requirement (`rule.requirement`)."""
        index = cls(route, rules)
        words: dict[str | None, dict[str, set[int]]] = {}
        for position, rule in enumerate(rules):
            needed = rule.requirement
            if not needed:
                index.always.append(position)
                continue
            for name, literal in needed:
                words.setdefault(name, {}).setdefault(literal, set()).add(position)
        for name, literals in words.items():
            automaton = ahocorasick.Automaton()
            for literal, positions in literals.items():
                automaton.add_word(literal, tuple(sorted(positions)))
            automaton.make_automaton()
            index.automata[name] = automaton
        return index

    def candidates(self, event: Event) -> list[int]:
        found: set[int] = set(self.always)
        for name, automaton in self.automata.items():
            texts = string_leaves(event) if name is None else _values_text(lookup(event, name))
            for text in texts:
                for _, positions in automaton.iter(text.casefold() if name is None else text):
                    found.update(positions)
        return sorted(found)

    @property
    def indexed(self) -> int:
        return len(self.rules) - len(self.always)
