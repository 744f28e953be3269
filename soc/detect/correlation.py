"""Real-time Sigma correlation: Sigma v2 correlation rules evaluated on a stream of rule matches.

The detection stage evaluates single-event rules; each match of a rule that a correlation
references is handed to `CorrelationEngine.process`, which keeps windowed state per correlation
and group and returns the `CorrelationHit`s that fire. Time is event time throughout: the stage
reports progress with `advance(watermark)`, never the wall clock, so a replay of the same events
gives the same hits with the same ids.

Choices where the specification leaves room (and why):

- Windows slide. A `gt`/`gte` condition is decided eagerly in `process()`: it fires as soon as the
  matches of one group that lie within any interval of length `timespan` (inclusive) satisfy it,
  whatever their arrival order within the lateness bound. The windows considered are the largest
  sets of matches that fit in `timespan` and contain the new match, so for counts, distinct counts
  and sums of non-negative values (which only grow with the set) this is exact; for averages,
  medians and percentiles of matches in time order it is the window ending at the new match.
- After a hit the matches it counted are consumed, so a flood of 1,000 matches in one window of an
  `event_count gte 10` rule gives 100 hits, not ~991: one hit per distinct batch of evidence keeps
  the alert queue readable while every batch is still reported.
- `lt`, `lte`, `eq` and `neq` cannot be known before the window is over (one more match may still
  change the answer), so they are decided in `advance()`: a group's window starts at its first
  match, closes at first + timespan, and is decided once `watermark - allowed_lateness` has passed
  the close; its matches are then consumed and the next window starts at the next match. A group
  that never matched has no state, so "fewer than N" cannot fire for it (absence of any event at
  all is not detectable here).
- Temporal types count the distinct referenced rules present in the window (the default condition
  is gte the number of rules). `temporal_ordered` counts the longest prefix of the rule list matched
  in order (non-decreasing event time), so gte N means "the first N rules, in order". A boolean
  condition over rule names (pySigma's `SigmaExtendedCorrelationCondition`) is supported for
  `temporal`: eager when it has no `not`, decided at window close when it has one; for
  `temporal_ordered` its meaning is unspecified and the rule is reported as unsupported.
- A match is late when its timestamp is older than the newest time seen (the newest match or the
  newest watermark) minus `allowed_lateness`; late matches are counted in `stats` and not applied.
  Hits of one correlation fed to another (correlations of correlations) are exempt: a hit decided
  at window close is late by construction.
- A match whose group-by field is missing is not counted (grouping it under an empty value would
  join unrelated events) and is counted in `stats.missing_group_field`. A value_* match without a
  usable value (missing, or not numeric for sum/avg/median/percentile) is counted in
  `stats.values_ignored`.
- State is bounded: for gt/gte a group keeps only the matches within timespan + lateness of its
  newest, for the other conditions the matches of windows not yet decided; a group holds at most
  `max_entries_per_group` (oldest dropped and counted), groups idle for longer than timespan +
  lateness are expired in `advance()` (found through a heap of deadlines, not a scan), and past
  `max_groups` the least recently updated group is evicted and counted.
- `generate: false` (Sigma's default) silences the referenced rules' own alerts: `generate()`
  answers for a base rule, `CorrelationHit.raise_alert` for a correlation that other correlations
  reference. A rule referenced only by correlations that failed to load keeps alerting.
- `group_key()`: when several correlations with different group-bys use a rule, the one with the
  fewest group-by fields is chosen (ties: the first given to the engine). Partitioning by a subset
  of a correlation's group-by fields still keeps each of its groups on one consumer, so this is
  exact whenever those fields are a subset of every other correlation's group-by.
"""

from __future__ import annotations

import heapq
import logging
import math
import operator
from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any, Final, Protocol

import orjson
from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionItem,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from soc.detect.rules import rule_details
from soc.ids import stable_id

log = logging.getLogger(__name__)

#: Contributing event ids kept on a hit: enough to investigate, bounded for the alert document.
MAX_EVENT_IDS: Final = 100
#: Contributing events copied into a hit for the analyst.
MAX_EVENTS: Final = 10
#: Distinct (rule id, rule name) pairs whose routing is cached; cleared when full.
_ROUTE_CACHE_SIZE: Final = 65_536
#: Stale expiry-heap entries tolerated before the heap is rebuilt from the live groups.
_HEAP_SLACK: Final = 1_024

_OPERATORS: Final[dict[SigmaCorrelationConditionOperator, Callable[[float, float], bool]]] = {
    SigmaCorrelationConditionOperator.LT: operator.lt,
    SigmaCorrelationConditionOperator.LTE: operator.le,
    SigmaCorrelationConditionOperator.GT: operator.gt,
    SigmaCorrelationConditionOperator.GTE: operator.ge,
    SigmaCorrelationConditionOperator.EQ: operator.eq,
    SigmaCorrelationConditionOperator.NEQ: operator.ne,
}
#: Conditions that more evidence can only make true: safe to decide as soon as they hold.
_EAGER_OPERATORS: Final = frozenset(
    {SigmaCorrelationConditionOperator.GT, SigmaCorrelationConditionOperator.GTE}
)
_TEMPORAL_TYPES: Final = frozenset(
    {SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED}
)
_NUMERIC_TYPES: Final = frozenset(
    {
        SigmaCorrelationType.VALUE_SUM,
        SigmaCorrelationType.VALUE_AVG,
        SigmaCorrelationType.VALUE_MEDIAN,
        SigmaCorrelationType.VALUE_PERCENTILE,
    }
)
_MISSING: Final = object()

#: One counted match: (event time, event id, event, value for the aggregate).
#: (time, event id, the event as shown (a mapping, or its JSON text), the value extracted)
_Entry = tuple[float, str, Mapping[str, Any] | str, Any]
#: Extracts the aggregate's value from an event; None when the event has no usable value.
_Extract = Callable[[Mapping[str, Any]], Any]
_GroupKey = tuple[int, tuple[str, ...]]


def _ts(entry: _Entry) -> float:
    return entry[0]


# --- public data -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """A rule matched an event: the unit the detection stage hands to the engine.

    `event` is what the engine reads fields from: the whole event, or only the fields its
    correlations read (`CorrelationEngine.fields`), with the whole event as JSON in `shown`
    for the alerts to show. Over Kafka a match travels that way: decoding a whole event into
    dicts cost the correlator 13-15 us a match, the fields and the text 2.5-3 us, and windows
    hold a string per event rather than its dicts."""

    rule_id: str
    rule_name: str | None
    timestamp: float
    event: Mapping[str, Any]
    event_id: str
    shown: str | None = None


@dataclass(frozen=True, slots=True)
class CorrelationRule:
    """What alerting needs of a correlation rule, as plain strings (the pySigma rule in `sigma`)."""

    id: str
    name: str | None
    title: str
    level: str
    tags: tuple[str, ...]
    type: str
    generate: bool
    description: str
    sigma: SigmaCorrelationRule = field(repr=False, compare=False)
    #: What its alert says happened (`details`, as single-event rules carry it), filled from the
    #: alert: the group, `correlation.value`, the first event's entities.
    details: str | None = None


@dataclass(frozen=True, slots=True)
class CorrelationHit:
    """A correlation fired for one group; `id` is stable across replays of the same input."""

    rule: CorrelationRule
    group: tuple[tuple[str, str], ...]
    first_seen: float
    last_seen: float
    value: float
    event_ids: tuple[str, ...]
    events: tuple[Mapping[str, Any], ...]
    id: str
    #: False when every correlation referencing this correlation has `generate: false`.
    raise_alert: bool = True

    def as_match(self) -> Match:
        """This hit as a match of its rule, so that correlations of correlations can count it."""
        return Match(
            rule_id=self.rule.id,
            rule_name=self.rule.name,
            timestamp=self.last_seen,
            event=self._summary(),
            event_id=self.id,
        )

    def _summary(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "correlation": {
                "id": self.id,
                "rule_id": self.rule.id,
                "value": self.value,
                "first_seen": self.first_seen,
                "last_seen": self.last_seen,
            }
        }
        for name, value in self.group:
            _set_path(event, name, value)
        return event


@dataclass(frozen=True, slots=True)
class CorrelationStats:
    """Counters for metrics: nothing the engine drops goes uncounted."""

    matches: int
    hits: int
    late: int
    unreferenced: int
    missing_group_field: int
    values_ignored: int
    entries_dropped: int
    groups_expired: int
    groups_evicted: int
    groups: int
    entries: int
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class CorrelationProblem:
    """A correlation rule the engine cannot evaluate, and why: reported, never silently skipped."""

    rule_id: str | None
    title: str
    reason: str


# --- field access ------------------------------------------------------------------------------


def _lookup(event: Mapping[str, Any], path: str, parts: tuple[str, ...]) -> Any:
    """A field by flat dotted key or nested path; None when absent."""
    value = event.get(path, _MISSING)
    if value is not _MISSING:
        return value
    node: Any = event
    for part in parts:
        if type(node) is not dict and not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _shown(event: Mapping[str, Any] | str) -> Mapping[str, Any]:
    """An event as an alert shows it, from a window entry (decoded if kept as its JSON)."""
    if not isinstance(event, str):
        return event
    try:
        decoded = orjson.loads(event)
    except orjson.JSONDecodeError:
        return {"original": event}
    return decoded if isinstance(decoded, dict) else {"original": event}


def _text(value: Any) -> str | None:
    """A scalar as the text groups and distinct values compare by; None for non-scalars."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _first_scalar(value: Any) -> str | None:
    if isinstance(value, list):
        for item in value:
            text = _text(item)
            if text is not None:
                return text
        return None
    return _text(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _set_path(event: dict[str, Any], path: str, value: str) -> None:
    """Set a dotted field as nested dicts, falling back to the flat key on a conflict."""
    node = event
    *parents, leaf = path.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            event[path] = value
            return
        node = child
    node[leaf] = value


@dataclass(slots=True)
class _Counters:
    """The engine's running counters, shared with the value extractors."""

    matches: int = 0
    hits: int = 0
    late: int = 0
    unreferenced: int = 0
    missing_group_field: int = 0
    values_ignored: int = 0
    entries_dropped: int = 0
    groups_expired: int = 0
    groups_evicted: int = 0
    duplicates: int = 0


def _extract_constant(value: Any) -> _Extract:
    return lambda _event: value


def _extract_texts(path: str, counters: _Counters) -> _Extract:
    """Distinct-countable values of a field: every scalar element of a list counts."""
    parts = tuple(path.split("."))

    def extract(event: Mapping[str, Any]) -> tuple[str, ...] | None:
        value = _lookup(event, path, parts)
        items = value if isinstance(value, list) else [value]
        texts = tuple(text for text in map(_text, items) if text is not None)
        if not texts:
            counters.values_ignored += 1
            return None
        return texts

    return extract


def _extract_numbers(path: str, counters: _Counters) -> _Extract:
    """Numeric values of a field; every value that is not a number is ignored and counted."""
    parts = tuple(path.split("."))

    def extract(event: Mapping[str, Any]) -> tuple[float, ...] | None:
        value = _lookup(event, path, parts)
        items = value if isinstance(value, list) else [value]
        numbers = tuple(number for number in map(_number, items) if number is not None)
        counters.values_ignored += len(items) - len(numbers)
        return numbers or None

    return extract


# --- aggregates over a window ------------------------------------------------------------------


class _Aggregate(Protocol):
    """A running aggregate; values are added at the window's end and removed from its start."""

    def add(self, value: Any) -> None: ...
    def remove(self, value: Any) -> None: ...
    def result(self) -> float | None: ...


class _Count:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def add(self, value: Any) -> None:
        self.n += 1

    def remove(self, value: Any) -> None:
        self.n -= 1

    def result(self) -> float | None:
        return float(self.n)


class _Distinct:
    """Distinct values (value_count) or distinct rule positions (temporal)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[Any, int] = {}

    def add(self, value: tuple[Any, ...]) -> None:
        counts = self.counts
        for item in value:
            counts[item] = counts.get(item, 0) + 1

    def remove(self, value: tuple[Any, ...]) -> None:
        counts = self.counts
        for item in value:
            left = counts[item] - 1
            if left:
                counts[item] = left
            else:
                del counts[item]

    def result(self) -> float | None:
        return float(len(self.counts))


class _Ordered:
    """Longest prefix of the rule list matched in order; values are the rule's list positions."""

    __slots__ = ("length", "positions")

    def __init__(self, length: int) -> None:
        self.length = length
        self.positions: deque[tuple[int, ...]] = deque()

    def add(self, value: tuple[int, ...]) -> None:
        self.positions.append(value)

    def remove(self, value: tuple[int, ...]) -> None:
        self.positions.popleft()

    def result(self) -> float | None:
        matched = 0
        for positions in self.positions:
            if matched in positions:
                matched += 1
                if matched == self.length:
                    break
        return float(matched)


class _Sum:
    __slots__ = ("n", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.n = 0

    def add(self, value: tuple[float, ...]) -> None:
        self.total += sum(value)
        self.n += len(value)

    def remove(self, value: tuple[float, ...]) -> None:
        self.total -= sum(value)
        self.n -= len(value)

    def result(self) -> float | None:
        return self.total if self.n else None


class _Avg(_Sum):
    __slots__ = ()

    def result(self) -> float | None:
        return self.total / self.n if self.n else None


class _Percentile:
    """Linear-interpolated percentile (numpy's default) over a sorted list of the values."""

    __slots__ = ("percent", "values")

    def __init__(self, percent: float) -> None:
        self.percent = percent
        self.values: list[float] = []

    def add(self, value: tuple[float, ...]) -> None:
        for number in value:
            insort(self.values, number)

    def remove(self, value: tuple[float, ...]) -> None:
        for number in value:
            del self.values[bisect_left(self.values, number)]

    def result(self) -> float | None:
        values = self.values
        if not values:
            return None
        rank = (len(values) - 1) * self.percent / 100
        low = math.floor(rank)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (rank - low)


# --- conditions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Threshold:
    compare: Callable[[float, float], bool]
    count: float

    def holds(self, aggregate: _Aggregate) -> bool:
        value = aggregate.result()
        return value is not None and self.compare(value, self.count)


_Predicate = Callable[[Collection[Any]], bool]


@dataclass(frozen=True, slots=True)
class _Expression:
    """A boolean condition over the rules present in the window (temporal only)."""

    predicate: _Predicate

    def holds(self, aggregate: _Aggregate) -> bool:
        return isinstance(aggregate, _Distinct) and self.predicate(aggregate.counts.keys())


class _Unsupported(Exception):
    """A correlation rule this engine cannot evaluate; becomes a `CorrelationProblem`."""


def _compile_expression(
    node: CorrelationConditionItem | SigmaRuleReference,
    positions: Mapping[str, tuple[int, ...]],
) -> tuple[_Predicate, bool]:
    """The expression as a predicate over present rule positions, and whether it is monotone."""
    if isinstance(node, SigmaRuleReference):
        wanted = positions.get(node.reference)
        if wanted is None:
            raise _Unsupported(f"condition names an unknown rule {node.reference!r}")
        return (lambda present: any(p in present for p in wanted)), True
    compiled = [_compile_expression(arg, positions) for arg in node.args]
    predicates = [predicate for predicate, _ in compiled]
    monotone = all(flag for _, flag in compiled)
    if isinstance(node, CorrelationConditionNOT):
        (inner,) = predicates
        return (lambda present: not inner(present)), False
    if isinstance(node, CorrelationConditionAND):
        return (lambda present: all(p(present) for p in predicates)), monotone
    if isinstance(node, CorrelationConditionOR):
        return (lambda present: any(p(present) for p in predicates)), monotone
    raise _Unsupported(f"unknown condition operator {type(node).__name__}")


# --- compiled rules ----------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Correlation:
    index: int
    info: CorrelationRule
    timespan: float
    group_names: tuple[str, ...]
    condition: _Threshold | _Expression
    eager: bool
    new_aggregate: Callable[[], _Aggregate]
    #: Whether hits raise alerts (see `CorrelationEngine.generate`); set once all rules are known.
    raise_alert: bool = True


@dataclass(eq=False, frozen=True, slots=True)
class _Feed:
    """How matches of one referenced rule feed one correlation."""

    correlation: _Correlation
    group_fields: tuple[tuple[str, tuple[str, ...]], ...]
    extract: _Extract
    #: Every field `group_fields` and `extract` read.
    reads: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Route:
    """Everything the engine needs about one (rule id, rule name), computed once."""

    feeds: tuple[_Feed, ...]
    key_feed: _Feed | None
    generate: bool
    #: Every field the feeds read: (dotted path, its parts).
    reads: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class _Reference:
    """A referenced rule: the strings it may be called by, and its positions in the rule list."""

    ids: frozenset[str]
    names: frozenset[str]
    positions: tuple[int, ...]


def _rule_info(rule: SigmaCorrelationRule) -> CorrelationRule:
    ident = str(rule.id) if rule.id is not None else rule.name
    if ident is None:
        raise _Unsupported("correlation rule has neither id nor name")
    return CorrelationRule(
        id=ident,
        name=rule.name,
        title=rule.title,
        level=str(rule.level) if rule.level else "medium",
        tags=tuple(str(tag) for tag in rule.tags),
        type=str(rule.type),
        generate=rule.generate,
        description=rule.description or "",
        sigma=rule,
        details=rule_details(rule),
    )


def _references(rule: SigmaCorrelationRule) -> list[_Reference]:
    """The referenced rules, merged by identity; handles resolved and unresolved references."""
    refs: list[SigmaRuleReference] = list(rule.referenced_rules or rule.rules or [])
    if not refs and isinstance(rule.condition, SigmaExtendedCorrelationCondition):
        refs = [SigmaRuleReference(name) for name in rule.condition.get_referenced_rules()]
    merged: dict[str, tuple[set[str], set[str], list[int]]] = {}
    for position, ref in enumerate(refs):
        target = getattr(ref, "rule", None)
        target_id = str(target.id) if target is not None and target.id is not None else None
        target_name = target.name if target is not None else None
        ids, names, positions = merged.setdefault(
            target_id or target_name or ref.reference, (set(), set(), [])
        )
        ids.update(filter(None, (ref.reference, target_id)))
        names.update(filter(None, (ref.reference, target_name)))
        positions.append(position)
    if not merged:
        raise _Unsupported("correlation references no rules")
    return [
        _Reference(frozenset(ids), frozenset(names), tuple(positions))
        for ids, names, positions in merged.values()
    ]


def _field_for(rule: SigmaCorrelationRule, name: str, reference: _Reference) -> str:
    """The referenced rule's own field for a group-by or condition field (aliases applied)."""
    alias = rule.aliases.aliases.get(name)
    if alias is not None:
        known = reference.ids | reference.names
        for ref, field_name in alias.mapping.items():
            if ref.reference in known:
                return field_name
    return name


def _aggregate_factory(rule: SigmaCorrelationRule, length: int) -> Callable[[], _Aggregate]:
    kind = rule.type
    if kind is SigmaCorrelationType.EVENT_COUNT:
        return _Count
    if kind in (SigmaCorrelationType.VALUE_COUNT, SigmaCorrelationType.TEMPORAL):
        return _Distinct
    if kind is SigmaCorrelationType.TEMPORAL_ORDERED:
        return lambda: _Ordered(length)
    if kind is SigmaCorrelationType.VALUE_SUM:
        return _Sum
    if kind is SigmaCorrelationType.VALUE_AVG:
        return _Avg
    if kind is SigmaCorrelationType.VALUE_MEDIAN:
        return lambda: _Percentile(50)
    if kind is SigmaCorrelationType.VALUE_PERCENTILE:
        percent = getattr(rule.condition, "percentile", None)
        if percent is None or not 0 <= percent <= 100:
            raise _Unsupported("value_percentile needs a condition percentile between 0 and 100")
        return lambda: _Percentile(percent)
    raise _Unsupported(f"correlation type {kind} is not supported")


def _condition(
    rule: SigmaCorrelationRule, references: list[_Reference]
) -> tuple[_Threshold | _Expression, bool]:
    """The compiled condition and whether it can be decided eagerly."""
    condition = rule.condition
    if isinstance(condition, SigmaExtendedCorrelationCondition):
        if rule.type is not SigmaCorrelationType.TEMPORAL:
            raise _Unsupported("a boolean condition is only supported for temporal correlations")
        positions = {
            name: reference.positions for reference in references for name in reference.names
        }
        predicate, monotone = _compile_expression(condition.parsed, positions)
        return _Expression(predicate), monotone
    compare = _OPERATORS[condition.op]
    return _Threshold(compare, float(condition.count)), condition.op in _EAGER_OPERATORS


def _value_field(rule: SigmaCorrelationRule) -> str | None:
    fieldref = getattr(rule.condition, "fieldref", None)
    if isinstance(fieldref, list):
        if len(fieldref) != 1:
            raise _Unsupported("a condition over several fields is not supported")
        return str(fieldref[0])
    return fieldref


def _extractor(
    rule: SigmaCorrelationRule, reference: _Reference, counters: _Counters
) -> tuple[_Extract, str | None]:
    """What each match contributes: nothing (event_count), its rule's positions in the rule list
    (temporal types), or the values of the condition field (value_* types); and that field."""
    if rule.type in _TEMPORAL_TYPES:
        return _extract_constant(reference.positions), None
    if rule.type is SigmaCorrelationType.EVENT_COUNT:
        return _extract_constant(()), None
    value_field = _value_field(rule)
    if value_field is None:
        raise _Unsupported(f"{rule.type} needs a condition field")
    path = _field_for(rule, value_field, reference)
    if rule.type in _NUMERIC_TYPES:
        return _extract_numbers(path, counters), path
    return _extract_texts(path, counters), path


def _compile(
    rule: SigmaCorrelationRule, index: int, counters: _Counters
) -> tuple[_Correlation, list[tuple[_Reference, _Feed]]]:
    if rule.errors:
        raise _Unsupported("; ".join(str(error) for error in rule.errors))
    info = _rule_info(rule)
    references = _references(rule)
    condition, eager = _condition(rule, references)
    group_names = tuple(rule.group_by or ())
    correlation = _Correlation(
        index=index,
        info=info,
        timespan=float(rule.timespan.seconds),
        group_names=group_names,
        condition=condition,
        eager=eager,
        new_aggregate=_aggregate_factory(rule, sum(len(r.positions) for r in references)),
    )
    feeds = []
    for reference in references:
        paths = tuple(_field_for(rule, name, reference) for name in group_names)
        extract, value_path = _extractor(rule, reference, counters)
        feed = _Feed(
            correlation=correlation,
            group_fields=tuple((path, tuple(path.split("."))) for path in paths),
            extract=extract,
            reads=(*paths, value_path) if value_path else paths,
        )
        feeds.append((reference, feed))
    return correlation, feeds


# --- per-group state ---------------------------------------------------------------------------


class _Group:
    """The matches of one correlation and group, sorted by event time.

    For eager conditions `entries[lo:]` is the active window (within timespan of the newest match)
    and `aggregate` covers exactly it; older entries are kept for out-of-order arrivals.
    """

    __slots__ = ("aggregate", "correlation", "entries", "lo", "newest")

    def __init__(self, correlation: _Correlation) -> None:
        self.correlation = correlation
        self.entries: deque[_Entry] = deque()
        self.lo = 0
        self.aggregate = correlation.new_aggregate()
        self.newest = -math.inf

    def add_eager(self, entry: _Entry, lateness: float) -> tuple[list[_Entry], float] | None:
        """Count an entry; returns the window consumed by a hit when the condition now holds.
        An entry in time order is the fast path: O(1) amortized, the only window to check being
        the one ending at it."""
        if entry[0] < self.newest:
            return self._insert_between(entry)
        entries = self.entries
        aggregate = self.aggregate
        entries.append(entry)
        aggregate.add(entry[3])
        self.newest = entry[0]
        start = entry[0] - self.correlation.timespan
        while entries[self.lo][0] < start:
            aggregate.remove(entries[self.lo][3])
            self.lo += 1
        horizon = start - lateness
        while entries[0][0] < horizon:
            entries.popleft()
            self.lo -= 1
        if self.correlation.condition.holds(aggregate):
            return self._consume_active()
        return None

    def _consume_active(self) -> tuple[list[_Entry], float]:
        value = _value(self.aggregate)
        entries = self.entries
        window = [entries.pop() for _ in range(len(entries) - self.lo)]
        window.reverse()
        self.aggregate = self.correlation.new_aggregate()
        return window, value

    def _insert_between(self, entry: _Entry) -> tuple[list[_Entry], float] | None:
        """The slow path for an out-of-order entry: every window containing it is examined."""
        items = list(self.entries)
        position = bisect_right(items, entry[0], key=_ts)
        items.insert(position, entry)
        found = _find_window(items, position, self.correlation)
        fired = None
        if found is not None:
            start, end, value = found
            fired = items[start:end], value
            del items[start:end]
        self.entries = deque(items)
        self._rebuild_active()
        return fired

    def _rebuild_active(self) -> None:
        self.lo = bisect_left(self.entries, self.newest - self.correlation.timespan, key=_ts)
        self.aggregate = self.correlation.new_aggregate()
        for entry in islice(self.entries, self.lo, None):
            self.aggregate.add(entry[3])

    def add_deferred(self, entry: _Entry) -> bool:
        """Store an entry for a later decision; True when the group's window now starts earlier."""
        entries = self.entries
        self.newest = max(self.newest, entry[0])
        if not entries or entry[0] >= entries[-1][0]:
            entries.append(entry)
            return len(entries) == 1
        position = bisect_right(entries, entry[0], key=_ts)
        entries.insert(position, entry)
        return position == 0

    def take_window(self) -> list[_Entry]:
        """Remove and return the first window: the matches up to first + timespan."""
        entries = self.entries
        close = entries[0][0] + self.correlation.timespan
        window = []
        while entries and entries[0][0] <= close:
            window.append(entries.popleft())
        return window

    def drop_oldest(self) -> None:
        entry = self.entries.popleft()
        if not self.correlation.eager:
            return
        if self.lo:
            self.lo -= 1
        else:
            self.aggregate.remove(entry[3])

    def deadline(self, lateness: float) -> float:
        """Event time after which `advance()` must look at this group again."""
        span = self.correlation.timespan + lateness
        if self.correlation.eager or not self.entries:
            return self.newest + span
        return self.entries[0][0] + span


def _value(aggregate: _Aggregate) -> float:
    value = aggregate.result()
    return 0.0 if value is None else value


def _find_window(
    items: list[_Entry], position: int, correlation: _Correlation
) -> tuple[int, int, float] | None:
    """The first maximal window (start at a match, span timespan) containing items[position]
    where the condition holds, as (start, end, value); a two-pointer sweep, O(len(items))."""
    span = correlation.timespan
    first = bisect_left(items, items[position][0] - span, key=_ts)
    aggregate = correlation.new_aggregate()
    end = removed = first
    for start in range(first, position + 1):
        if start > first and items[start][0] == items[start - 1][0]:
            continue
        while removed < start:
            aggregate.remove(items[removed][3])
            removed += 1
        limit = items[start][0] + span
        while end < len(items) and items[end][0] <= limit:
            aggregate.add(items[end][3])
            end += 1
        if correlation.condition.holds(aggregate):
            return start, end, _value(aggregate)
    return None


# --- the engine --------------------------------------------------------------------------------


class CorrelationEngine:
    """Windowed state for a set of correlation rules; feed it matches, advance it in event time."""

    def __init__(
        self,
        rules: Sequence[SigmaCorrelationRule],
        *,
        allowed_lateness: float = 60.0,
        max_groups: int = 100_000,
        max_entries_per_group: int = 10_000,
        remember_matches: int = 100_000,
    ) -> None:
        """`remember_matches`: how many recent matches (rule and event) are remembered so that
        one fed again is not counted twice (see `process`)."""
        if allowed_lateness < 0 or max_groups < 1 or max_entries_per_group < 1:
            raise ValueError("allowed_lateness must be >= 0, the caps >= 1")
        if remember_matches < 0:
            raise ValueError("remember_matches must be >= 0")
        self._remember = remember_matches
        #: The latest matches counted, (rule id, event id), and the same oldest first.
        self._counted: set[tuple[str, str]] = set()
        self._counted_order: deque[tuple[str, str]] = deque()
        self._lateness = float(allowed_lateness)
        self._max_groups = max_groups
        self._max_entries = max_entries_per_group
        self._counters = _Counters()
        self._groups: OrderedDict[_GroupKey, _Group] = OrderedDict()
        self._heap: list[tuple[float, _GroupKey]] = []
        self._routes: dict[tuple[str, str | None], _Route] = {}
        self._by_id: dict[str, list[_Feed]] = {}
        self._by_name: dict[str, list[_Feed]] = {}
        self._max_ts = -math.inf
        self.correlations: tuple[CorrelationRule, ...] = ()
        self.problems: tuple[CorrelationProblem, ...] = ()
        self._load(rules)
        self._max_depth = len(self.correlations)

    def _load(self, rules: Sequence[SigmaCorrelationRule]) -> None:
        loaded: list[_Correlation] = []
        problems: list[CorrelationProblem] = []
        for rule in rules:
            try:
                correlation, feeds = _compile(rule, len(loaded), self._counters)
            except _Unsupported as exc:
                ident = str(rule.id) if rule.id is not None else rule.name
                problems.append(CorrelationProblem(ident, rule.title, str(exc)))
                log.warning("correlation not loaded rule_id=%s reason=%s", ident, exc)
                continue
            loaded.append(correlation)
            for reference, feed in feeds:
                for ident in reference.ids:
                    self._by_id.setdefault(ident, []).append(feed)
                for name in reference.names:
                    self._by_name.setdefault(name, []).append(feed)
        for correlation in loaded:
            correlation.raise_alert = self.generate(correlation.info.id, correlation.info.name)
        self.correlations = tuple(correlation.info for correlation in loaded)
        self.problems = tuple(problems)
        # A match can matter for as long as the longest chain of windows it may feed stays
        # open: every correlation's timespan (a chain is at most all of them) plus the lateness.
        self.horizon = sum(c.timespan for c in loaded) + self._lateness if loaded else 0.0

    # -- routing

    def _route(self, rule_id: str, rule_name: str | None) -> _Route:
        route = self._routes.get((rule_id, rule_name))
        if route is None:
            route = self._build_route(rule_id, rule_name)
            if len(self._routes) >= _ROUTE_CACHE_SIZE:
                self._routes.clear()
            self._routes[rule_id, rule_name] = route
        return route

    def _build_route(self, rule_id: str, rule_name: str | None) -> _Route:
        found = self._by_id.get(rule_id, []) + self._by_name.get(rule_name or "", [])
        feeds = sorted(dict.fromkeys(found), key=lambda feed: feed.correlation.index)
        key_feed = min(
            feeds, key=lambda feed: (len(feed.group_fields), feed.correlation.index), default=None
        )
        generate = not feeds or any(feed.correlation.info.generate for feed in feeds)
        reads = dict.fromkeys(path for feed in feeds for path in feed.reads)
        return _Route(
            tuple(feeds),
            key_feed,
            generate,
            tuple((path, tuple(path.split("."))) for path in reads),
        )

    def wants(self, rule_id: str, rule_name: str | None) -> bool:
        """Whether any correlation references this rule (by id or by name)."""
        return bool(self._route(rule_id, rule_name).feeds)

    def generate(self, rule_id: str, rule_name: str | None) -> bool:
        """Whether the rule's own matches should still raise alerts: False only when every
        correlation that references it says `generate: false` (Sigma's default)."""
        return self._route(rule_id, rule_name).generate

    def fields(
        self, rule_id: str, rule_name: str | None, event: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The fields of an event that the correlations fed by this rule read, flat by dotted
        name (absent ones left out): all the engine needs of a match's event (see `Match`)."""
        found = {}
        for path, parts in self._route(rule_id, rule_name).reads:
            value = _lookup(event, path, parts)
            if value is not None:
                found[path] = value
        return found

    def group_key(self, match: Match) -> str:
        """A stable partitioning key ("field=value|..."), so one consumer owns a group's state;
        "" for a rule no correlation references or a correlation without group-by."""
        feed = self._route(match.rule_id, match.rule_name).key_feed
        if feed is None:
            return ""
        values = (_first_scalar(_lookup(match.event, *spec)) or "" for spec in feed.group_fields)
        return "|".join(
            f"{name}={value}"
            for name, value in zip(feed.correlation.group_names, values, strict=True)
        )

    # -- feeding

    def process(self, match: Match) -> list[CorrelationHit]:
        """Count one match; returns the hits that fire now, chained correlations included.

        Delivery is at least once: a batch of events evaluated again (its detection stage
        retried a publish, or its engine died before committing) sends the same matches again.
        A match of a rule and an event among the last `remember_matches` counted is not counted
        a second time, or five failed logins seen twice would pass for ten."""
        counters = self._counters
        counters.matches += 1
        route = self._routes.get((match.rule_id, match.rule_name))
        if route is None:
            route = self._route(match.rule_id, match.rule_name)
        feeds = route.feeds
        if not feeds:
            counters.unreferenced += 1
            return []
        timestamp = match.timestamp
        if timestamp < self._max_ts - self._lateness:
            counters.late += 1
            return []
        if self._remember:
            counted = self._counted
            ident = (match.rule_id, match.event_id)
            if ident in counted:
                counters.duplicates += 1
                return []
            counted.add(ident)
            order = self._counted_order
            order.append(ident)
            if len(order) > self._remember:
                counted.discard(order.popleft())
        if timestamp > self._max_ts:
            self._max_ts = timestamp
        return self._feed_all(feeds, match, 0)

    def _feed_all(self, feeds: Sequence[_Feed], match: Match, depth: int) -> list[CorrelationHit]:
        hits: list[CorrelationHit] = []
        for feed in feeds:
            hit = self._feed(feed, match)
            if hit is not None:
                hits.append(hit)
                hits.extend(self._chain(hit, depth))
        return hits

    def _chain(self, hit: CorrelationHit, depth: int) -> list[CorrelationHit]:
        """Feed a hit to the correlations that reference its rule (bounded against cycles)."""
        if depth >= self._max_depth:
            return []
        feeds = self._route(hit.rule.id, hit.rule.name).feeds
        return self._feed_all(feeds, hit.as_match(), depth + 1) if feeds else []

    def _feed(self, feed: _Feed, match: Match) -> CorrelationHit | None:
        event = match.event
        values = self._group_values(feed, event)
        if values is None:
            return None
        value = feed.extract(event)
        if value is None:
            return None
        correlation = feed.correlation
        key = (correlation.index, values)
        group = self._groups.get(key)
        created = group is None
        if group is None:
            group = self._open_group(key, correlation)
        else:
            self._groups.move_to_end(key)
        shown = match.shown
        entry = (match.timestamp, match.event_id, event if shown is None else shown, value)
        fired = None
        if correlation.eager:
            fired = group.add_eager(entry, self._lateness)
            reschedule = created
        else:
            reschedule = group.add_deferred(entry)
        if reschedule:
            self._push(group.deadline(self._lateness), key)
        if len(group.entries) > self._max_entries:
            self._cap_entries(group)
        return None if fired is None else self._hit(correlation, values, *fired)

    def _group_values(self, feed: _Feed, event: Mapping[str, Any]) -> tuple[str, ...] | None:
        values = []
        for path, parts in feed.group_fields:
            value = _lookup(event, path, parts)
            if type(value) is not str:
                value = _first_scalar(value)
                if value is None:
                    self._counters.missing_group_field += 1
                    return None
            values.append(value)
        return tuple(values)

    def _open_group(self, key: _GroupKey, correlation: _Correlation) -> _Group:
        groups = self._groups
        if len(groups) >= self._max_groups:
            groups.popitem(last=False)
            self._counters.groups_evicted += 1
        group = groups[key] = _Group(correlation)
        return group

    def _cap_entries(self, group: _Group) -> None:
        while len(group.entries) > self._max_entries:
            group.drop_oldest()
            self._counters.entries_dropped += 1

    def _hit(
        self,
        correlation: _Correlation,
        values: tuple[str, ...],
        window: list[_Entry],
        value: float,
    ) -> CorrelationHit:
        self._counters.hits += 1
        info = correlation.info
        group = tuple(zip(correlation.group_names, values, strict=True))
        first = window[0]
        return CorrelationHit(
            rule=info,
            group=group,
            first_seen=first[0],
            last_seen=window[-1][0],
            value=value,
            event_ids=tuple(entry[1] for entry in window[:MAX_EVENT_IDS]),
            events=tuple(_shown(entry[2]) for entry in window[:MAX_EVENTS]),
            id=stable_id("correlation", info.id, *chain.from_iterable(group), first[1]),
            raise_alert=correlation.raise_alert,
        )

    # -- event time

    def _push(self, deadline: float, key: _GroupKey) -> None:
        """Schedule a group; entries of evicted or rescheduled groups go stale and are skipped,
        and once they outnumber the live groups the heap is rebuilt in place (amortized O(1))."""
        heap = self._heap
        heapq.heappush(heap, (deadline, key))
        if len(heap) > 2 * len(self._groups) + _HEAP_SLACK:
            heap[:] = [
                (group.deadline(self._lateness), live) for live, group in self._groups.items()
            ]
            heapq.heapify(heap)

    def advance(self, watermark: float) -> list[CorrelationHit]:
        """Event time reached `watermark`: decide windows that closed before watermark -
        allowed_lateness (lt/lte/eq/neq and non-monotone expressions) and expire idle groups."""
        self._max_ts = max(self._max_ts, watermark)
        hits: list[CorrelationHit] = []
        heap = self._heap
        while heap and heap[0][0] < watermark:
            _, key = heapq.heappop(heap)
            group = self._groups.get(key)
            if group is not None:
                hits.extend(self._settle(key, group, watermark))
        return hits

    def _settle(self, key: _GroupKey, group: _Group, watermark: float) -> list[CorrelationHit]:
        """Expire an idle eager group, or decide the closed windows of a deferred one."""
        correlation = group.correlation
        if correlation.eager:
            self._expire_or_reschedule(key, group, watermark)
            return []
        decided: list[CorrelationHit] = []
        cutoff = watermark - self._lateness
        while group.entries and group.entries[0][0] + correlation.timespan < cutoff:
            hit = self._decide(correlation, key[1], group.take_window())
            if hit is not None:
                decided.append(hit)
        if group.entries:
            self._push(group.deadline(self._lateness), key)
        else:
            self._groups.pop(key, None)
            self._counters.groups_expired += 1
        return decided + [chained for hit in decided for chained in self._chain(hit, 0)]

    def _expire_or_reschedule(self, key: _GroupKey, group: _Group, watermark: float) -> None:
        deadline = group.deadline(self._lateness)
        if deadline < watermark:
            del self._groups[key]
            self._counters.groups_expired += 1
        else:
            self._push(deadline, key)

    def _decide(
        self, correlation: _Correlation, values: tuple[str, ...], window: list[_Entry]
    ) -> CorrelationHit | None:
        aggregate = correlation.new_aggregate()
        for entry in window:
            aggregate.add(entry[3])
        if not correlation.condition.holds(aggregate):
            return None
        return self._hit(correlation, values, window, _value(aggregate))

    def drops(self) -> tuple[int, int, int, int]:
        """Late matches, groups expired, groups evicted and matches fed twice so far: what the
        stage counts after every batch, without `stats`' walk over every group."""
        counters = self._counters
        return counters.late, counters.groups_expired, counters.groups_evicted, counters.duplicates

    @property
    def groups(self) -> int:
        return len(self._groups)

    @property
    def stats(self) -> CorrelationStats:
        """A snapshot of the counters; `entries` sums over the groups (O(groups), for metrics)."""
        counters = self._counters
        return CorrelationStats(
            matches=counters.matches,
            hits=counters.hits,
            late=counters.late,
            unreferenced=counters.unreferenced,
            missing_group_field=counters.missing_group_field,
            values_ignored=counters.values_ignored,
            entries_dropped=counters.entries_dropped,
            groups_expired=counters.groups_expired,
            groups_evicted=counters.groups_evicted,
            groups=len(self._groups),
            duplicates=counters.duplicates,
            entries=sum(len(group.entries) for group in self._groups.values()),
        )
