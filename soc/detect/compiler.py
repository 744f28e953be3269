"""Compile a pySigma condition tree into plain Python predicates over ECS events.

pySigma parses a rule into typed values (SigmaString, SigmaNumber, ...) and a condition tree. We
compile each leaf once into a closure, and the tree into nested closures, so that evaluating an
event costs a few attribute look-ups and string compares instead of walking pySigma objects.

Semantics follow the Sigma specification (REFERENCE.md, "Sigma semantics that bite"): strings
match case-insensitively unless `|cased`, regexes are unanchored and case-sensitive unless `|i`,
numbers compare as numbers first and as strings second, a list-valued field matches when any
element does, and `null` means absent or null.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import re2
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

Event = Mapping[str, Any]
Predicate = Callable[[Event], bool]
#: Tests one scalar field value (never a list, never None).
ValueTest = Callable[[Any], bool]

_MISSING = object()


class CompileError(ValueError):
    """A rule uses something this compiler cannot evaluate; the message says what."""


@dataclass(frozen=True, slots=True)
class CompileOptions:
    #: Values for `|expand` placeholders (`%admins%` -> the names configured for it).
    placeholders: Mapping[str, Sequence[str]] = field(default_factory=dict)


#: Elasticsearch multi-field suffixes that pipelines put on field names (`ecs_windows` maps
#: `Image` to `process.executable.caseless`); in an event the value is at the base field.
_MULTI_FIELD_SUFFIXES = (".caseless", ".keyword", ".text")


def event_field(name: str) -> str:
    for suffix in _MULTI_FIELD_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def lookup(event: Event, name: str) -> Any:
    """A field by its Sigma/ECS name: a flat key holding the dotted name, or a nested path.
    Returns _MISSING when absent, so that a present null stays distinguishable."""
    value = event.get(name, _MISSING)
    if value is not _MISSING or "." not in name:
        return value
    node: Any = event
    for part in name.split("."):
        if isinstance(node, Mapping):
            node = node.get(part, _MISSING)
            if node is _MISSING:
                return _MISSING
        else:
            return _MISSING
    return node


def _scalars(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    elif value is not None and value is not _MISSING and not isinstance(value, Mapping):
        yield value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def string_leaves(node: Any) -> Iterator[str]:
    """Every scalar in an event as text, for keyword detections (which search all fields)."""
    if isinstance(node, Mapping):
        for value in node.values():
            yield from string_leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from string_leaves(value)
    elif node is not None:
        yield _as_text(node)


def _string_test(value: SigmaString) -> ValueTest:
    cased = isinstance(value, SigmaCasedString)
    parts = list(value.s)
    if any(not isinstance(p, (str, SpecialChars)) for p in parts):
        raise CompileError(f"unfilled placeholder in value {value!r}")
    inner = parts[1:-1] if len(parts) > 1 else []
    simple_inner = all(isinstance(p, str) for p in inner)
    fold: Callable[[str], str] = (lambda s: s) if cased else str.casefold
    if all(isinstance(p, str) for p in parts):
        expected = fold("".join(p for p in parts if isinstance(p, str)))
        return lambda v: fold(_as_text(v)) == expected
    multi = SpecialChars.WILDCARD_MULTI
    if len(parts) >= 2 and simple_inner:
        head, tail = parts[0], parts[-1]
        literal = fold("".join(p for p in inner if isinstance(p, str)))
        if head is multi and tail is multi:
            return lambda v: literal in fold(_as_text(v))
        if head is multi and isinstance(tail, str):
            suffix = literal + fold(tail)
            return lambda v: fold(_as_text(v)).endswith(suffix)
        if tail is multi and isinstance(head, str):
            prefix = fold(head) + literal
            return lambda v: fold(_as_text(v)).startswith(prefix)
    if parts == [multi]:
        return lambda v: True
    pattern = "".join(
        ".*" if p is multi else "." if p is SpecialChars.WILDCARD_SINGLE else re.escape(str(p))
        for p in parts
    )
    flags = re.DOTALL | (0 if cased else re.IGNORECASE)
    compiled = re.compile(pattern, flags)
    return lambda v: compiled.fullmatch(_as_text(v)) is not None


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_INLINE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


def _regex_test(value: SigmaRegularExpression) -> ValueTest:
    """Rule regexes run under RE2: linear time whatever the pattern, so a pathological regex
    in one rule cannot stall the stream. Patterns RE2 cannot run (look-arounds,
    back-references) are refused with the reason, never run unguarded."""
    pattern = str(value.regexp)
    flags = "".join(sorted(_INLINE_FLAGS[flag] for flag in value.flags))
    try:
        compiled = re2.compile(f"(?{flags}){pattern}" if flags else pattern, _RE2_OPTIONS)
    except re2.error as exc:
        try:
            re.compile(pattern)
        except re.error as invalid:
            raise CompileError(f"invalid regular expression {pattern!r}: {invalid}") from None
        raise CompileError(
            f"regular expression {pattern!r} needs features RE2 cannot run in linear time: {exc}"
        ) from None
    return lambda v: compiled.search(_as_text(v)) is not None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _number_test(value: SigmaNumber) -> ValueTest:
    expected = float(value.number)
    text = str(value.number)

    def test(v: Any) -> bool:
        number = _number(v)
        return number == expected if number is not None else _as_text(v) == text

    return test


_COMPARE: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
    CompareOperators.NEQ: lambda a, b: a != b,
}


def _compare_test(value: SigmaCompareExpression) -> ValueTest:
    operator = _COMPARE[value.op]
    bound = float(value.number.number)

    def test(v: Any) -> bool:
        number = _number(v)
        return number is not None and operator(number, bound)

    return test


def _cidr_test(value: SigmaCIDRExpression) -> ValueTest:
    network = value.network

    def test(v: Any) -> bool:
        try:
            return ipaddress.ip_address(_as_text(v).strip()) in network
        except ValueError:
            return False

    return test


def _bool_test(value: SigmaBool) -> ValueTest:
    expected = bool(value.boolean)
    text = "true" if expected else "false"
    return lambda v: v is expected if isinstance(v, bool) else _as_text(v).casefold() == text


_TIME_PARTS: dict[TimestampPart, Callable[[datetime], int]] = {
    TimestampPart.MINUTE: lambda moment: moment.minute,
    TimestampPart.HOUR: lambda moment: moment.hour,
    TimestampPart.DAY: lambda moment: moment.day,
    TimestampPart.WEEK: lambda moment: moment.isocalendar().week,
    TimestampPart.MONTH: lambda moment: moment.month,
    TimestampPart.YEAR: lambda moment: moment.year,
}


def _timestamp_part_test(value: SigmaTimestampPart) -> ValueTest:
    """`|hour: 3` and friends: the part of the field's time (UTC, as events store it)."""
    part = _TIME_PARTS[value.timestamp_part]
    expected = int(value.number)

    def test(v: Any) -> bool:
        try:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                moment = datetime.fromtimestamp(v, tz=None)
            else:
                moment = datetime.fromisoformat(_as_text(v))
        except (ValueError, OverflowError, OSError):
            return False
        return part(moment) == expected

    return test


def value_test(value: Any, options: CompileOptions | None = None) -> ValueTest:
    """A test for one scalar field value against one Sigma value."""
    if isinstance(value, SigmaString) and value.contains_placeholder():
        return _expand_test(value, options or CompileOptions())
    if isinstance(value, SigmaString):
        return _string_test(value)
    if isinstance(value, SigmaRegularExpression):
        return _regex_test(value)
    if isinstance(value, SigmaBool):
        return _bool_test(value)
    if isinstance(value, SigmaTimestampPart):
        return _timestamp_part_test(value)
    if isinstance(value, SigmaNumber):
        return _number_test(value)
    if isinstance(value, SigmaCompareExpression):
        return _compare_test(value)
    if isinstance(value, SigmaCIDRExpression):
        return _cidr_test(value)
    if isinstance(value, SigmaExpansion):
        tests = [value_test(item, options) for item in value.values]
        return lambda v: any(test(v) for test in tests)
    raise CompileError(f"unsupported value type {type(value).__name__}")


def _expand_test(value: SigmaString, options: CompileOptions) -> ValueTest:
    """`|expand`: each placeholder becomes the alternatives configured for it."""

    def replacements(placeholder: Placeholder) -> Iterator[SigmaString]:
        values = options.placeholders.get(placeholder.name)
        if not values:
            raise CompileError(
                f"placeholder %{placeholder.name}% has no values configured "
                "(set detect.placeholders)"
            )
        for item in values:
            yield SigmaString(item)

    tests = [_string_test(expanded) for expanded in value.replace_placeholders(replacements)]
    return lambda v: any(test(v) for test in tests)


def string_shape(value: Any) -> tuple[str, str] | None:
    """(kind, casefolded literal) for the common case-insensitive strings: `exact`, `prefix`,
    `suffix` or `contains`; None for anything else (cased, `?`, inner `*`, placeholders)."""
    if not isinstance(value, SigmaString) or isinstance(value, SigmaCasedString):
        return None
    multi = SpecialChars.WILDCARD_MULTI
    parts = list(value.s)
    head = bool(parts) and parts[0] is multi
    rest = parts[1:] if head else parts
    tail = bool(rest) and rest[-1] is multi
    core = rest[:-1] if tail else rest
    if not all(isinstance(part, str) for part in core):
        return None
    literal = "".join(str(part) for part in core).casefold()
    kind = {(False, False): "exact", (False, True): "prefix", (True, False): "suffix"}.get(
        (head, tail), "contains"
    )
    return kind, literal


def _fused_test(shapes: list[tuple[str, str]]) -> ValueTest:
    """One test for an OR-list of plain strings on one field: the value is folded once, exact
    values are a set look-up, prefixes and suffixes one `startswith`/`endswith` call each."""
    exact = frozenset(literal for kind, literal in shapes if kind == "exact")
    prefixes = tuple(literal for kind, literal in shapes if kind == "prefix")
    suffixes = tuple(literal for kind, literal in shapes if kind == "suffix")
    contained = tuple(literal for kind, literal in shapes if kind == "contains")

    def test(v: Any) -> bool:
        text = _as_text(v).casefold()
        return (
            text in exact
            or (bool(prefixes) and text.startswith(prefixes))
            or (bool(suffixes) and text.endswith(suffixes))
            or any(literal in text for literal in contained)
        )

    return test


def _on_field(name: str, test: ValueTest) -> Predicate:
    """Apply a value test to a field: absent or null never matches, lists match on any item."""

    def predicate(event: Event) -> bool:
        found = lookup(event, name)
        if found is _MISSING or found is None or isinstance(found, Mapping):
            return False
        if isinstance(found, list):
            return any(test(item) for item in _scalars(found))
        return test(found)

    return predicate


def _field_predicate(name: str, value: Any, options: CompileOptions) -> Predicate:
    field_name = event_field(name)
    if isinstance(value, SigmaNull):
        return lambda event: lookup(event, field_name) in (None, _MISSING)
    if isinstance(value, SigmaExists):
        wanted = bool(value.exists)
        return lambda event: (lookup(event, field_name) is not _MISSING) == wanted
    if isinstance(value, SigmaFieldReference):
        return _fieldref_predicate(field_name, value)
    return _on_field(field_name, value_test(value, options))


def _fieldref_predicate(name: str, value: SigmaFieldReference) -> Predicate:
    other = event_field(value.field)

    def predicate(event: Event) -> bool:
        left = [_as_text(v).casefold() for v in _scalars(lookup(event, name))]
        right = [_as_text(v).casefold() for v in _scalars(lookup(event, other))]
        for a in left:
            for b in right:
                if value.starts_with and a.startswith(b):
                    return True
                if value.ends_with and a.endswith(b):
                    return True
                if not (value.starts_with or value.ends_with) and a == b:
                    return True
        return False

    return predicate


def _keyword_predicate(value: Any, options: CompileOptions) -> Predicate:
    test = value_test(value, options)
    return lambda event: any(test(text) for text in string_leaves(event))


def _compile_or(args: list[Any], options: CompileOptions) -> Predicate:
    """OR: plain-string alternatives on the same field are fused into one test per field."""
    fused: dict[str, list[tuple[str, str]]] = {}
    others: list[Any] = []
    for arg in args:
        shape = (
            string_shape(arg.value)
            if isinstance(arg, ConditionFieldEqualsValueExpression)
            else None
        )
        if shape is None:
            others.append(arg)
        else:
            fused.setdefault(event_field(arg.field), []).append(shape)
    parts = [_on_field(name, _fused_test(shapes)) for name, shapes in fused.items()]
    parts += [compile_condition(arg, options) for arg in others]
    if len(parts) == 1:
        return parts[0]
    return lambda event: any(part(event) for part in parts)


def compile_condition(node: Any, options: CompileOptions | None = None) -> Predicate:
    """Compile a pySigma parsed condition (`rule.detection.parsed_condition[i].parsed`)."""
    options = options or CompileOptions()
    if isinstance(node, ConditionAND):
        parts = [compile_condition(arg, options) for arg in node.args]
        return lambda event: all(part(event) for part in parts)
    if isinstance(node, ConditionOR):
        return _compile_or(list(node.args), options)
    if isinstance(node, ConditionNOT):
        inner = compile_condition(node.args[0], options)
        return lambda event: not inner(event)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_predicate(node.field, node.value, options)
    if isinstance(node, ConditionValueExpression):
        return _keyword_predicate(node.value, options)
    raise CompileError(f"unsupported condition element {type(node).__name__}")
