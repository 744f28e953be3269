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
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
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
    SpecialChars,
)

Event = Mapping[str, Any]
Predicate = Callable[[Event], bool]
#: Tests one scalar field value (never a list, never None).
ValueTest = Callable[[Any], bool]

_MISSING = object()


class CompileError(ValueError):
    """A rule uses something this compiler cannot evaluate; the message says what."""


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


_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


def _regex_test(value: SigmaRegularExpression) -> ValueTest:
    flags = 0
    for flag in value.flags:
        flags |= _RE_FLAGS[flag]
    try:
        compiled = re.compile(str(value.regexp), flags)
    except re.error as exc:
        raise CompileError(f"invalid regular expression {str(value.regexp)!r}: {exc}") from None
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


def value_test(value: Any) -> ValueTest:
    """A test for one scalar field value against one Sigma value."""
    if isinstance(value, SigmaString):
        return _string_test(value)
    if isinstance(value, SigmaRegularExpression):
        return _regex_test(value)
    if isinstance(value, SigmaBool):
        return _bool_test(value)
    if isinstance(value, SigmaNumber):
        return _number_test(value)
    if isinstance(value, SigmaCompareExpression):
        return _compare_test(value)
    if isinstance(value, SigmaCIDRExpression):
        return _cidr_test(value)
    if isinstance(value, SigmaExpansion):
        tests = [value_test(item) for item in value.values]
        return lambda v: any(test(v) for test in tests)
    raise CompileError(f"unsupported value type {type(value).__name__}")


def _field_predicate(field: str, value: Any) -> Predicate:
    if isinstance(value, SigmaNull):
        return lambda event: lookup(event, field) in (None, _MISSING)
    if isinstance(value, SigmaExists):
        wanted = bool(value.exists)
        return lambda event: (lookup(event, field) is not _MISSING) == wanted
    if isinstance(value, SigmaFieldReference):
        return _fieldref_predicate(field, value)
    test = value_test(value)

    def predicate(event: Event) -> bool:
        found = lookup(event, field)
        if found is _MISSING or found is None:
            return False
        if isinstance(found, list):
            return any(test(item) for item in _scalars(found))
        if isinstance(found, Mapping):
            return False
        return test(found)

    return predicate


def _fieldref_predicate(field: str, value: SigmaFieldReference) -> Predicate:
    other = value.field

    def predicate(event: Event) -> bool:
        left = [_as_text(v).casefold() for v in _scalars(lookup(event, field))]
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


def _keyword_predicate(value: Any) -> Predicate:
    test = value_test(value)
    return lambda event: any(test(text) for text in string_leaves(event))


def compile_condition(node: Any) -> Predicate:
    """Compile a pySigma parsed condition (`rule.detection.parsed_condition[i].parsed`)."""
    if isinstance(node, ConditionAND):
        parts = [compile_condition(arg) for arg in node.args]
        return lambda event: all(part(event) for part in parts)
    if isinstance(node, ConditionOR):
        parts = [compile_condition(arg) for arg in node.args]
        return lambda event: any(part(event) for part in parts)
    if isinstance(node, ConditionNOT):
        inner = compile_condition(node.args[0])
        return lambda event: not inner(event)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_predicate(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return _keyword_predicate(node.value)
    raise CompileError(f"unsupported condition element {type(node).__name__}")
