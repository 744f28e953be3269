"""Compile a pySigma condition tree into plain Python predicates over ECS events.

pySigma parses a rule into typed values (SigmaString, SigmaNumber, ...) and a condition tree. We
compile each value once into a test (a closure), and the tree into one generated function that
reads the fields and combines the tests inline (`_ConditionCode`), so that evaluating an event
costs a few dict look-ups and string compares instead of walking pySigma objects or calling a
closure per node.

Semantics follow the Sigma specification (REFERENCE.md, "Sigma semantics that bite"): strings
match case-insensitively unless `|cased`, regexes are unanchored and case-sensitive unless `|i`,
numbers compare as numbers first and as strings second, a list-valued field matches when any
element does, and `null` means absent or null.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from re import _parser  # type: ignore[attr-defined]
from typing import Any

import ahocorasick
import orjson
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

from soc.detect import codegen
from soc.detect import memo as memo_module

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


Getter = Callable[[Event], Any]


def getter(name: str) -> Getter:
    """A compiled `lookup` for one field name: the path is split once, not per event."""
    if "." not in name:
        return lambda event: event.get(name, _MISSING)
    first, *rest = name.split(".")

    def get(event: Event) -> Any:
        value = event.get(name, _MISSING)
        if value is not _MISSING:
            return value
        node = event.get(first, _MISSING)
        for index, part in enumerate(rest):
            if type(node) is dict or isinstance(node, Mapping):
                node = node.get(part, _MISSING)
            elif type(node) is list:
                return _through_list(node, rest[index:])
            else:
                return _MISSING
        return node

    if len(rest) == 1:
        return _two_parts(name, first, rest[0], get)
    if len(rest) == 2:
        return _three_parts(name, first, rest[0], rest[1], get)
    return get


def _two_parts(name: str, first: str, second: str, general: Getter) -> Getter:
    """`user.name` through plain dicts without the general loop (rules read such fields
    millions of times); anything else (a Mapping, a list) goes the general way."""

    def get(event: Event) -> Any:
        value = event.get(name, _MISSING)
        if value is not _MISSING:
            return value
        node = event.get(first, _MISSING)
        if type(node) is dict:
            return node.get(second, _MISSING)
        return _MISSING if node is _MISSING else general(event)

    return get


def _three_parts(name: str, first: str, second: str, third: str, general: Getter) -> Getter:
    """`process.parent.executable`, `winlog.event_data.X`: as `_two_parts`, one level deeper."""

    def get(event: Event) -> Any:
        value = event.get(name, _MISSING)
        if value is not _MISSING:
            return value
        node = event.get(first, _MISSING)
        if type(node) is dict:
            node = node.get(second, _MISSING)
            if type(node) is dict:
                return node.get(third, _MISSING)
        return _MISSING if node is _MISSING else general(event)

    return get


def _through_list(items: list[Any], parts: Sequence[str]) -> Any:
    """A path that runs into an array of objects (`dns.answers.data`) holds the values of
    every element, as in Elasticsearch, which indexes such arrays flattened: a list, or
    _MISSING when no element has the field."""
    values: list[Any] = []
    for item in items:
        node = item
        for index, part in enumerate(parts):
            if isinstance(node, Mapping):
                node = node.get(part, _MISSING)
            elif type(node) is list:
                node = _through_list(node, parts[index:])
                break
            else:
                node = _MISSING
                break
        if node is _MISSING:
            continue
        if type(node) is list:
            values.extend(node)
        else:
            values.append(node)
    return values if values else _MISSING


def lookup(event: Event, name: str) -> Any:
    """A field by its Sigma/ECS name: a flat key holding the dotted name, or a nested path
    (through arrays of objects too). Returns _MISSING when absent, so that a present null
    stays distinguishable."""
    value = event.get(name, _MISSING)
    if value is not _MISSING or "." not in name:
        return value
    node: Any = event
    parts = name.split(".")
    for index, part in enumerate(parts):
        if isinstance(node, Mapping):
            node = node.get(part, _MISSING)
            if node is _MISSING:
                return _MISSING
        elif type(node) is list:
            return _through_list(node, parts[index:])
        else:
            return _MISSING
    return node


def _scalars(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    elif value is not None and value is not _MISSING and not isinstance(value, Mapping):
        yield value


def as_text(value: Any) -> str:
    if type(value) is str:  # nearly every value: no ABC check, no str() call
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def string_leaves(node: Any) -> list[str]:
    """Every scalar in an event as text, for keyword detections (which search all fields).
    Iterative: a recursive generator costs several times more on events of ~100 fields."""
    texts: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is str:
            texts.append(item)
        elif kind is list:
            stack.extend(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif item is not None:
            texts.append(as_text(item))
    return texts


class _EventViews:
    """Views of the event being matched, computed once for all the rules it meets: its texts
    (keywords search every field) and its case-folded values by dotted path (the index scans
    them). Holding the event itself (not its id) makes the identity check safe: a cached event
    cannot be freed and its address reused by another."""

    __slots__ = ("all_folded", "caseless", "event", "folded", "joined", "json", "texts")

    def __init__(self) -> None:
        self.event: object = None
        self.texts: tuple[str, ...] | None = None
        self.folded: tuple[str, ...] | None = None
        self.joined: str | None = None
        #: The event as folded JSON without its raw record; b"" when it cannot be one.
        self.json: bytes | None = None
        #: The same for a scan that ignores ASCII case (`event_json_caseless`).
        self.caseless: bytes | None = None

    def of(self, event: Event) -> _EventViews:
        if event is not self.event:
            self.event = event
            self.texts = self.folded = self.joined = self.json = self.caseless = None
        return self


_VIEWS = _EventViews()


#: Not searched by keywords: the raw record repeats every parsed value (as JSON, with escapes
#: that would not match), and searching it again would double the cost of every keyword rule.
_NOT_KEYWORD_SEARCHED = "event.original"


def event_texts(event: Event) -> tuple[str, ...]:
    """Every scalar of the event as text but the raw record (cached for the event): the values
    alone, without the dotted paths that cost a fifth of detection to build."""
    views = _VIEWS.of(event)
    if views.texts is None:
        views.texts = tuple(string_leaves(_without_raw_record(event)))
    return views.texts


def _without_raw_record(event: Event) -> Event:
    """The event as keywords see it: without `event.original` (nested or as a flat key); the
    event itself when it has none, copies of the two levels concerned when it has."""
    shown = event
    inner = event.get("event")
    if isinstance(inner, Mapping) and "original" in inner:
        # dict's own copies (in C), then the record deleted: a third of what rebuilding the two
        # levels by comprehension cost (the keyword scan serializes this for every event).
        inner = dict(inner)
        del inner["original"]
        shown = dict(event)
        shown["event"] = inner
    if _NOT_KEYWORD_SEARCHED in shown:
        shown = {k: v for k, v in shown.items() if k != _NOT_KEYWORD_SEARCHED}
    return shown


#: Types whose JSON form differs from their text in `event_texts`: refused, not converted.
_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def event_json_folded(event: Event) -> bytes:
    """The event (but its raw record) serialized as JSON (UTF-8) and case-folded; b"" when a
    value cannot be JSON as `event_texts` renders it (a lone surrogate, an integer beyond 64
    bits, a date). The keyword scan reads this instead of the joined texts: calls in C instead
    of a walk over every value.

    Every text of the event is in it with JSON's escapes. Escaping goes character by character
    and folding never makes or takes a character JSON escapes, so fold(JSON(text)) equals
    JSON(fold(text)) and a folded literal, escaped, occurs in it wherever the literal occurs
    in a folded text (the scan finds more, never less: keys, `null`). When no character of it
    changes under Unicode folding but ASCII letters (nearly every event: "®" and lower-case
    Vietnamese do not), lowering the ASCII bytes is that folding, at a twentieth of the cost."""
    views = _VIEWS.of(event)
    if views.json is None:
        views.json = event_json_caseless(event).lower()
    return views.json


def event_json_caseless(event: Event) -> bytes:
    """What `event_json_folded` gives, for a scan that ignores the case of ASCII letters (and
    so needs no lowering): the JSON as it is when no character of it but ASCII letters changes
    under folding, folded in full when one does; b"" when the event cannot be JSON."""
    views = _VIEWS.of(event)
    if views.caseless is None:
        views.caseless = b""
        try:
            raw = orjson.dumps(_without_raw_record(event), option=_JSON_OPTIONS)
        except TypeError:
            return views.caseless  # b"": the folded texts, walked
        if raw.isascii() or _folds_as_ascii(raw):
            views.caseless = raw  # ASCII letters only differ from the folded text
        else:
            views.caseless = raw.decode().casefold().encode()
    return views.caseless


_ASCII = bytes(range(0x80))


def _folds_as_ascii(raw: bytes) -> bool:
    """Whether no non-ASCII character of this UTF-8 text changes under case folding. Deleting
    the ASCII bytes leaves the multi-byte characters whole (their bytes are all 0x80 and up),
    and folding maps character by character: a few bytes to fold instead of the whole text."""
    rest = raw.translate(None, _ASCII).decode()
    return rest == rest.casefold()


def field_values(value: Any) -> tuple[str, ...] | list[str]:
    """What a getter found, as the texts it holds: a scalar's text, a list's scalars' texts
    (objects inside left out, as field tests test them), nothing for absent, null or an
    object."""
    kind = type(value)
    if kind is str:
        return (value,)
    if value is _MISSING or value is None or kind is dict:
        return ()
    if kind is list:
        return [as_text(item) for item in _scalars(value)]
    if isinstance(value, Mapping):
        return ()
    return (as_text(value),)


def event_texts_folded(event: Event) -> tuple[str, ...]:
    views = _VIEWS.of(event)
    if views.folded is None:
        views.folded = tuple([text.casefold() for text in event_texts(event)])
    return views.folded


def event_text_joined(event: Event) -> str:
    """All the event's folded texts in one string, for a single scan by the keyword index.
    (Folding the joined text equals joining the folded texts: folding never touches the
    separator, and it is one C call instead of one per text.)"""
    views = _VIEWS.of(event)
    if views.joined is None:
        views.joined = "\n".join(event_texts(event)).casefold()
    return views.joined


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
        return lambda v: fold(as_text(v)) == expected
    multi = SpecialChars.WILDCARD_MULTI
    if len(parts) >= 2 and simple_inner:
        head, tail = parts[0], parts[-1]
        literal = fold("".join(p for p in inner if isinstance(p, str)))
        if head is multi and tail is multi:
            return lambda v: literal in fold(as_text(v))
        if head is multi and isinstance(tail, str):
            suffix = literal + fold(tail)
            return lambda v: fold(as_text(v)).endswith(suffix)
        if tail is multi and isinstance(head, str):
            prefix = fold(head) + literal
            return lambda v: fold(as_text(v)).startswith(prefix)
    if parts == [multi]:
        return lambda v: True
    pattern = "".join(
        ".*" if p is multi else "." if p is SpecialChars.WILDCARD_SINGLE else re.escape(str(p))
        for p in parts
    )
    flags = re.DOTALL | (0 if cased else re.IGNORECASE)
    compiled = re.compile(pattern, flags)
    # The longest run of plain characters must occur in any match: a substring test in C
    # rejects most values before the regex (whose leading `.*` backtracks) runs.
    piece = fold(longest_piece(value))

    def test(v: Any) -> bool:
        text = as_text(v)
        return piece in fold(text) and compiled.fullmatch(text) is not None

    return test


def longest_piece(value: SigmaString) -> str:
    """The longest run of plain characters between wildcards (not case-folded)."""
    runs = "".join(p if isinstance(p, str) else "\0" for p in value.s).split("\0")
    return max(runs, key=len)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_INLINE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


def _backtracking_safe(pattern: str) -> bool:
    """True when Python's backtracking engine runs the pattern in polynomial time: no repeat
    holds another repeat or an alternation (the shapes of catastrophic backtracking, such as
    `(a+)+` or `(a|aa)*`), and no back-reference."""

    def walk(items: Any, inside_repeat: bool) -> bool:
        for op, arg in items:
            if op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT):
                if inside_repeat or not walk(arg[2], True):
                    return False
            elif op is _parser.BRANCH:
                if inside_repeat or not all(walk(branch, inside_repeat) for branch in arg[1]):
                    return False
            elif op is _parser.SUBPATTERN:
                if not walk(arg[-1], inside_repeat):
                    return False
            elif op in (_parser.GROUPREF, _parser.GROUPREF_EXISTS) or (
                op in (_parser.ASSERT, _parser.ASSERT_NOT) and not walk(arg[1], inside_repeat)
            ):
                return False
        return True

    try:
        return walk(_parser.parse(pattern), False)
    except (re.error, RecursionError, OverflowError):
        return False


def pattern_literals(items: Any, narrows: Callable[[str], bool]) -> set[str] | None:
    """Literals one of which any match of a parsed regex sequence must contain: the longest run
    of plain characters, or what a group, a branch or a repeat of at least one requires (as
    written: the caller decides what case-insensitive flags mean for them). `narrows` says
    which literals are worth requiring."""
    candidates: list[set[str]] = []
    run: list[str] = []
    for op, arg in items:
        if op is _parser.LITERAL:
            run.append(chr(arg))
            continue
        if run:
            candidates.append({"".join(run)})
            run = []
        inner: set[str] | None = None
        if op is _parser.SUBPATTERN:
            inner = pattern_literals(arg[-1], narrows)
        elif op is _parser.BRANCH:
            branches = [pattern_literals(branch, narrows) for branch in arg[1]]
            if all(branch is not None for branch in branches):
                inner = set().union(*(b for b in branches if b is not None))
        elif op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT) and arg[0] >= 1:
            inner = pattern_literals(arg[2], narrows)
        if inner is not None:
            candidates.append(inner)
    if run:
        candidates.append({"".join(run)})
    usable = [c for c in candidates if all(narrows(lit) for lit in c)]
    if not usable:
        return None
    return min(usable, key=lambda c: sum(1 / len(lit) ** 2 for lit in c))


#: An inline flag group that turns on case-insensitive matching, globally or for a group.
_INLINE_IGNORECASE = re.compile(r"\(\?[a-zA-Z]*i")


def _regex_guard(source: str) -> tuple[str, ...] | None:
    """Literals of which a case-sensitive regex's every match contains one, as written (even a
    single character: a substring test in C is far cheaper than a failed search, which tries
    every position of a long command line)."""
    if _INLINE_IGNORECASE.search(source):
        return None
    try:
        literals = pattern_literals(_parser.parse(source), bool)
    except (re.error, RecursionError, OverflowError):
        return None
    return tuple(sorted(literals)) if literals else None


def _guarded(search: Callable[[str], Any], guard: tuple[str, ...] | None) -> ValueTest:
    if guard is None:
        return lambda v: search(as_text(v)) is not None
    if len(guard) == 1:
        (only,) = guard

        def test_one(v: Any) -> bool:
            text = as_text(v)
            return only in text and search(text) is not None

        return test_one

    def test(v: Any) -> bool:
        text = as_text(v)
        for literal in guard:
            if literal in text:
                return search(text) is not None
        return False

    return test


def _regex_test(value: SigmaRegularExpression) -> ValueTest:
    """A pathological regex in one rule must not stall the stream. Patterns whose shape cannot
    backtrack catastrophically run on Python's engine (its call costs a fifth of RE2's from
    Python); the others run under RE2, in linear time whatever the input. A pattern neither can
    run safely (back-references, or look-arounds inside repeats) is refused with the reason."""
    pattern = str(value.regexp)
    flags = "".join(sorted(_INLINE_FLAGS[flag] for flag in value.flags))
    source = f"(?{flags}){pattern}" if flags else pattern
    if _backtracking_safe(pattern):
        try:
            fast = re.compile(source)
            return _guarded(fast.search, _regex_guard(source))
        except re.error:
            pass  # RE2 may still read it; if not, the error below names the pattern
    try:
        compiled = re2.compile(source, _RE2_OPTIONS)
    except re2.error as exc:
        try:
            re.compile(pattern)
        except re.error as invalid:
            raise CompileError(f"invalid regular expression {pattern!r}: {invalid}") from None
        raise CompileError(
            f"regular expression {pattern!r} needs features RE2 cannot run in linear time: {exc}"
        ) from None
    # Unguarded: Python's parser may read RE2 syntax (POSIX classes) as other literals.
    return _guarded(compiled.search, None)


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
        return number == expected if number is not None else as_text(v) == text

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
            return ipaddress.ip_address(as_text(v).strip()) in network
        except ValueError:
            return False

    return test


def _bool_test(value: SigmaBool) -> ValueTest:
    expected = bool(value.boolean)
    text = "true" if expected else "false"
    return lambda v: v is expected if isinstance(v, bool) else as_text(v).casefold() == text


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
                moment = datetime.fromisoformat(as_text(v))
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


#: Past this many `contains` alternatives, one Aho-Corasick scan beats a loop of `in` tests.
_AUTOMATON_FROM = 8


def _contains_test(literals: tuple[str, ...]) -> Callable[[str], bool]:
    if not literals:
        return lambda text: False
    if "" in literals:
        return lambda text: True
    if all(len(literal) == 1 for literal in literals):
        # A character class runs in C and cannot backtrack (emoji and homoglyph lists).
        characters = re.compile("[" + "".join(re.escape(c) for c in sorted(literals)) + "]")
        return lambda text: characters.search(text) is not None
    if len(literals) == 1:
        (only,) = literals
        return lambda text: only in text
    if len(literals) < _AUTOMATON_FROM:

        def some_in(text: str) -> bool:
            for literal in literals:
                if literal in text:
                    return True
            return False

        return some_in
    if not all(literal.isascii() for literal in literals):
        # The automaton slows down ten-fold on large non-ASCII alphabets (emoji lists: 30 us a
        # value); RE2 compiles the alternation to one DFA (2 us).
        try:
            alternation = re2.compile("|".join(re2.escape(lit) for lit in literals), _RE2_OPTIONS)
            return lambda text: alternation.search(text) is not None
        except re2.error:
            pass
    automaton = ahocorasick.Automaton()
    for literal in literals:
        automaton.add_word(literal, literal)
    automaton.make_automaton()
    return lambda text: next(automaton.iter(text), None) is not None


def _folded_test(shapes: list[tuple[str, str]]) -> Callable[[str], bool]:
    """One test over already case-folded text for an OR-list of plain strings: exact values are
    a set look-up, prefixes and suffixes one `startswith`/`endswith` call each, contained
    literals a loop or an automaton. Only the kinds present are tested: an empty kind would
    still cost a call per value."""
    exact = frozenset(literal for kind, literal in shapes if kind == "exact")
    prefixes = tuple(literal for kind, literal in shapes if kind == "prefix")
    suffixes = tuple(literal for kind, literal in shapes if kind == "suffix")
    contained = tuple(literal for kind, literal in shapes if kind == "contains")
    tests: list[Callable[[str], bool]] = []
    if exact:
        tests.append(exact.__contains__)
    if prefixes:
        tests.append(lambda text: text.startswith(prefixes))
    if suffixes:
        tests.append(lambda text: text.endswith(suffixes))
    if contained:
        tests.append(_contains_test(contained))
    if not tests:
        return lambda text: False
    if len(tests) == 1:
        return tests[0]
    return lambda text: any(test(text) for test in tests)


def _fused_test(shapes: list[tuple[str, str]]) -> ValueTest:
    """One test for an OR-list of plain strings on one field: the value is folded once."""
    folded = _folded_test(shapes)
    return lambda v: folded(as_text(v).casefold())


def _on_other(found: Any, kind: type, test: ValueTest) -> bool:
    """A field test for what a getter found that is not a `str`: absent or null never matches,
    lists match on any item."""
    if found is _MISSING or found is None or kind is dict:
        return False
    if kind is list:
        for item in _scalars(found):
            if test(item):
                return True
        return False
    return not isinstance(found, Mapping) and test(found)


def _field_predicate(name: str, value: SigmaNull | SigmaExists | SigmaFieldReference) -> Predicate:
    """A field's presence (`null`, `exists`) or its comparison with another field; value tests
    are generated inline (`_ConditionCode.field`)."""
    field_name = event_field(name)
    get = getter(field_name)
    if isinstance(value, SigmaNull):
        return lambda event: get(event) in (None, _MISSING)
    if isinstance(value, SigmaExists):
        wanted = bool(value.exists)
        return lambda event: (get(event) is not _MISSING) == wanted
    return _fieldref_predicate(field_name, value)


def _fieldref_predicate(name: str, value: SigmaFieldReference) -> Predicate:
    other = event_field(value.field)
    get_left, get_right = getter(name), getter(other)

    def predicate(event: Event) -> bool:
        found_left, found_right = get_left(event), get_right(event)
        if type(found_left) is str and type(found_right) is str:  # the usual case, no lists
            a, b = found_left.casefold(), found_right.casefold()
            if value.starts_with or value.ends_with:
                return (value.starts_with and a.startswith(b)) or (
                    value.ends_with and a.endswith(b)
                )
            return a == b
        left = [as_text(v).casefold() for v in _scalars(found_left)]
        right = [as_text(v).casefold() for v in _scalars(found_right)]
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


def keyword_value(value: Any) -> Any:
    """Keywords are searched *in* the event's values, as Elasticsearch's backend converts them
    (`*value*`) and as SigmaHQ's keyword rules are written (`attempt to execute code on stack
    by`): an unbound string gets wildcards at both ends."""
    if not isinstance(value, SigmaString):
        return value
    multi = SpecialChars.WILDCARD_MULTI
    parts = list(value.s)
    if not parts or parts[0] is not multi:
        parts.insert(0, multi)
    if len(parts) == 1 or parts[-1] is not multi:
        parts.append(multi)
    widened = copy.copy(value)
    widened.s = parts
    return widened


def _keyword_predicate(value: Any, options: CompileOptions) -> Predicate:
    widened = keyword_value(value)
    test = value_test(widened, options)
    if not isinstance(widened, SigmaString) or widened.contains_placeholder():
        return lambda event: any(test(text) for text in event_texts(event))
    # A text that matches contains the longest plain run (folded: folding keeps substrings), so
    # all texts joined must too: one scan rejects most events before any text is tested.
    piece = longest_piece(widened).casefold()
    return lambda event: (
        piece in event_text_joined(event) and any(test(text) for text in event_texts(event))
    )


def _fused_keywords(shapes: list[tuple[str, str]]) -> Predicate:
    """Keywords that are only contained literals are searched once in all the event's texts
    joined (a literal without the separator cannot straddle two texts)."""
    if all(kind == "contains" and "\n" not in literal for kind, literal in shapes):
        contained = _contains_test(tuple(literal for _, literal in shapes))
        return lambda event: contained(event_text_joined(event))
    folded = _folded_test(shapes)
    return lambda event: any(folded(text) for text in event_texts_folded(event))


def any_of(parts: Sequence[Predicate]) -> Predicate:
    """OR of predicates (a rule's several conditions), short-circuiting: closures for two and
    three, a plain loop beyond (`any(genexpr)` costs a generator per call)."""
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda event: first(event) or second(event)
    if len(parts) == 3:
        first, second, third = parts
        return lambda event: first(event) or second(event) or third(event)
    frozen = tuple(parts)

    def some(event: Event) -> bool:
        for part in frozen:
            if part(event):
                return True
        return False

    return some


def compile_condition(node: Any, options: CompileOptions | None = None) -> Predicate:
    """Compile a pySigma parsed condition (`rule.detection.parsed_condition[i].parsed`) into one
    generated function (`_ConditionCode`)."""
    return _ConditionCode(options or CompileOptions()).function(node)


def _other_value(found: Any, test: ValueTest) -> bool:
    return _on_other(found, type(found), test)


class _ConditionCode:
    """A condition tree as one generated Python function: `and`, `or` and `not` of the leaves
    inline, and each test of a field value inline too (the field read through plain dicts, the
    answer looked up by value in the memo, the test called only when it is not there). Nested
    closures for the same tree cost a Python call for every node and two for every field test
    (its getter, its memo): 17 field tests and 129 calls for a Windows process event's 7
    candidate rules. Leaves of other kinds (keywords, null, exists, field references) stay
    closures called from the function. What each leaf decides is unchanged: the same value
    tests, the same memo (`ValueMemo`), the same reading of fields as `lookup`."""

    def __init__(self, options: CompileOptions) -> None:
        self.options = options
        self.values = memo_module.current()
        self.namespace: dict[str, Any] = {"M": _MISSING, "_other": _other_value}

    def _name(self, prefix: str, value: Any) -> str:
        name = f"{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def function(self, node: Any) -> Predicate:
        expression = self.node(node)
        lines = ["def condition(event):", "    get = event.get", f"    return {expression}"]
        predicate: Predicate = codegen.build(lines, "condition", self.namespace, "sigma condition")
        return predicate

    def node(self, node: Any) -> str:
        if isinstance(node, ConditionAND):
            return "(" + " and ".join(self.node(arg) for arg in node.args) + ")"
        if isinstance(node, ConditionOR):
            return self.any_of(list(node.args))
        if isinstance(node, ConditionNOT):
            return f"(not {self.node(node.args[0])})"
        if isinstance(node, ConditionFieldEqualsValueExpression):
            value = node.value
            if isinstance(value, (SigmaNull, SigmaExists, SigmaFieldReference)):
                return self.call(_field_predicate(node.field, value))
            return self.field(event_field(node.field), value_test(value, self.options))
        if isinstance(node, ConditionValueExpression):
            return self.call(_keyword_predicate(node.value, self.options))
        raise CompileError(f"unsupported condition element {type(node).__name__}")

    def any_of(self, args: list[Any]) -> str:
        """OR: plain-string alternatives on the same field are fused into one test per field,
        plain keywords into one search of the event's texts."""
        fused: dict[str, list[tuple[str, str]]] = {}
        keywords: list[tuple[str, str]] = []
        others: list[Any] = []
        for arg in args:
            if isinstance(arg, ConditionValueExpression):
                shape = string_shape(keyword_value(arg.value))
            elif isinstance(arg, ConditionFieldEqualsValueExpression):
                shape = string_shape(arg.value)
            else:
                shape = None
            if shape is None:
                others.append(arg)
            elif isinstance(arg, ConditionValueExpression):
                keywords.append(shape)
            else:
                fused.setdefault(event_field(arg.field), []).append(shape)
        parts = [self.field(name, _fused_test(shapes)) for name, shapes in fused.items()]
        if keywords:
            parts.append(self.call(_fused_keywords(keywords)))
        parts += [self.node(arg) for arg in others]
        return "(" + " or ".join(parts) + ")"

    def call(self, predicate: Predicate) -> str:
        return f"{self._name('L', predicate)}(event)"

    def field(self, name: str, test: ValueTest) -> str:
        """A value test on a field: absent or null never matches, lists match on any item, a
        string's answer is kept by value when compiling with a memo."""
        fetched = codegen.fetch_expression(name, self._name("G", getter(name)))
        tested = self._name("T", test)
        other = f"_other(v, {tested})"
        if self.values is None:
            return f"({tested}(v) if type(v := {fetched}) is str else {other})"
        memo = self.values.new_map()
        kept = self._name("m", memo)
        miss = self._name("K", _remember(self.values, memo, test))
        found = f"(r if (r := {kept}.get(v)) is not None else {miss}(v))"
        return f"({found} if type(v := {fetched}) is str else {other})"


def _remember(values: memo_module.ValueMemo, memo: memo_module.Memo, test: ValueTest) -> ValueTest:
    """The test of a string not in the memo, kept for the next time (see `ValueMemo.keep`)."""
    keep = values.keep

    def remembering(value: str) -> bool:
        answer = test(value)
        keep(memo, value, answer)
        return answer

    return remembering
