"""The rule index: of the hundreds of rules routed to an event, find the few that can match.

For each rule we derive its *requirements* from its condition tree: up to two sets of
(field, literal) alternatives, each of which must have at least one pair occur in the event
(case-folded substring) for the rule to have any chance. An AND's requirements are those of its
children (the two most selective are kept: `url contains X and method is GET` needs both the
URL literal and GET, not GET alone); OR unites its children's, NOT and values we cannot reduce to
a literal (regexes, numbers compared by size, CIDRs, nulls) give none: a rule without any is
always a candidate. Per route, one Aho-Corasick automaton per field scans
the event's value once for every literal of every rule, so the cost grows with the event's size,
not with the number of rules. Only candidates are then evaluated in full; the index can only
widen, never narrow, what the full evaluation decides.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from re import _parser  # type: ignore[attr-defined]
from threading import get_ident
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import ahocorasick
import orjson
import re2
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    SigmaBool,
    SigmaExpansion,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
)

from soc.detect import codegen
from soc.detect.compiler import (
    _MISSING,
    Event,
    Getter,
    event_field,
    event_json_caseless,
    event_json_folded,
    event_text_joined,
    field_values,
    getter,
    pattern_literals,
    string_shape,
)
from soc.detect.memo import Memo, ValueMemo
from soc.detect.routing import Route

try:  # SIMD literal matching; x86-64 wheels only: elsewhere RE2 scans (see `_LiteralSet`).
    import hyperscan as _hyperscan
except ImportError:  # pragma: no cover - depends on the platform
    _hyperscan = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from soc.detect.rules import CompiledRule

log = logging.getLogger(__name__)

#: (field or None for keywords, literal); at least one of a requirement's pairs must occur.
Requirement = frozenset[tuple[str | None, str]]
#: Of the rules of a route, those whose requirement 0 and those whose requirement 1 was met.
Hits = tuple[frozenset[int], frozenset[int]]
NO_SLOTS: frozenset[int] = frozenset()
#: Nothing met: shared, read only.
NO_PAIR: Hits = (NO_SLOTS, NO_SLOTS)


def split_slots(slots: AbstractSet[int]) -> Hits:
    """Slots (rule position * 2 + requirement number) as the positions meeting requirement 0 and
    those meeting requirement 1."""
    if not slots:
        return NO_PAIR
    return (
        frozenset(slot >> 1 for slot in slots if not slot & 1),
        frozenset(slot >> 1 for slot in slots if slot & 1),
    )


def _united(found: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> Hits:
    """The automata's finds (each literal's positions for requirement 0 and for 1) as one."""
    if not found:
        return NO_PAIR
    return (
        NO_SLOTS.union(*[first for first, _ in found]),
        NO_SLOTS.union(*[second for _, second in found]),
    )


#: Literals shorter than this are too common to narrow anything.
MIN_LITERAL = 3


#: ASCII characters too common in logs for a literal of one or two of them to narrow (letters,
#: digits, white space and the punctuation of paths, URLs, command lines and key=value pairs).
_COMMON = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\r\n.,:;/\\-_=\"'()[]@&?+*#!"
)


def _narrows(literal: str) -> bool:
    """Rare enough to narrow: three characters, or a shorter literal with a character logs seldom
    hold: any non-ASCII one (an emoji or a Cyrillic look-alike), or ASCII such as the backtick,
    the caret, `{`, `$`, `%` or `|` (PowerShell's token obfuscation, cmd's `^^`, `${env:`): rules
    built on them would else run on every event of their route."""
    if len(literal) >= MIN_LITERAL:
        return True
    return any(character not in _COMMON for character in literal)


#: Fields that routing already decides (and that pipelines add to rules as conditions): every
#: event that reaches a route's rules has them, so requiring them narrows nothing. (`event.code`
#: is not among them: within a channel such as Security it is the best discriminator there is.)
ROUTING_FIELDS = frozenset({"winlog.channel", "event.module", "event.dataset", "event.category"})
#: Fragments found in most Windows process events: as a rule's only requirement they would
#: make it a candidate for nearly everything, so an AND prefers any other child.
_UBIQUITOUS = frozenset(
    {".exe", ".dll", "c:\\", "\\windows\\", "\\system32\\", "microsoft", "http", "windows"}
)


def _cost(needed: Requirement) -> float:
    """Roughly how often a requirement lets an event through: many or short literals let
    more through. Used only to choose among the children of an AND."""
    return sum(
        (50.0 if literal in _UBIQUITOUS else 1.0) / len(literal) ** 2 for _, literal in needed
    )


def _regex_literals(value: SigmaRegularExpression) -> set[str] | None:
    try:
        parsed = _parser.parse(str(value.regexp))
    except (re.error, RecursionError, OverflowError):
        return None
    literals = pattern_literals(parsed, _narrows)
    return {literal.casefold() for literal in literals} if literals else None


def _value_literals(value: Any, on_field: bool = False) -> set[str] | None:
    """Literals of which at least one occurs (case-folded) in any text the value matches.
    `on_field`: the literal is looked for in one field's value, where even a short number
    narrows (`EventID: 16` as the text `16` in `event.code`, which holds a few digits)."""
    if isinstance(value, SigmaExpansion):
        found: set[str] = set()
        for item in value.values:
            literals = _value_literals(item, on_field)
            if literals is None:
                return None
            found |= literals
        return found
    if isinstance(value, SigmaRegularExpression):
        return _regex_literals(value)
    if isinstance(value, SigmaBool) or not isinstance(value, (SigmaString, SigmaNumber)):
        return None
    if isinstance(value, SigmaNumber):
        if not isinstance(value.number, int):
            return None
        text = str(value.number)
        return {text} if on_field or _narrows(text) else None
    shape = string_shape(value)
    if shape is not None:
        literal = shape[1]
        # A whole short value of one field (`EventID: 16` after `values_to_str`) narrows too.
        if on_field and shape[0] == "exact" and literal:
            return {literal}
    else:
        pieces = "".join(p if isinstance(p, str) else "\0" for p in value.s).split("\0")
        literal = max(pieces, key=len).casefold() if pieces else ""
    return {literal} if _narrows(literal) else None


#: Requirements kept per rule: each must be met, so each more narrows the candidates further;
#: two already take nearly all there is to take (more would add scanning, not selectivity).
MAX_REQUIREMENTS = 2


def requirements(node: Any) -> list[Requirement]:
    """The requirements of a pySigma condition node, all of which an event must meet for the
    node to match it, cheapest first; empty when it cannot be narrowed."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        name = event_field(node.field)
        literals = None if name in ROUTING_FIELDS else _value_literals(node.value, on_field=True)
        return [] if literals is None else [frozenset((name, lit) for lit in literals)]
    if isinstance(node, ConditionValueExpression):
        literals = _value_literals(node.value)
        return [] if literals is None else [frozenset((None, lit) for lit in literals)]
    if isinstance(node, ConditionOR):
        # Any child may be the one that matches: one requirement, the union of one of each.
        united: set[tuple[str | None, str]] = set()
        for arg in node.args:
            child = requirements(arg)
            if not child:
                return []
            united |= child[0]
        return [frozenset(united)]
    if isinstance(node, ConditionAND):
        every = {needed for arg in node.args for needed in requirements(arg)}
        return sorted(every, key=lambda needed: (_cost(needed), sorted(map(repr, needed))))
    return []  # NOT, and anything else: no narrowing


def requirement(node: Any) -> Requirement | None:
    """The single most selective requirement of a node, or None when it cannot be narrowed."""
    found = requirements(node)
    return found[0] if found else None


def rule_requirements(conditions: Sequence[Any]) -> tuple[Requirement, ...]:
    """A rule's requirements (at most MAX_REQUIREMENTS). A rule with several conditions matches
    when any does: their cheapest requirements unite into one."""
    if len(conditions) == 1:
        return tuple(requirements(conditions[0])[:MAX_REQUIREMENTS])
    united: set[tuple[str | None, str]] = set()
    for condition in conditions:
        child = requirement(condition)
        if child is None:
            return ()
        united |= child
    return (frozenset(united),)


@dataclass
class RouteIndex:
    """The rules of one route, indexed by the literals they require.

    The automata give *slots*: rule position * 2 + the number of the requirement (0 or 1). What
    an event's values hit is kept split (`Hits`): the positions whose requirement 0 was met, and
    those whose requirement 1 was; a rule is a candidate when every requirement it has was met,
    which set operations decide in C."""

    route: Route
    rules: list[CompiledRule]
    #: Positions (in `rules`) of rules with no requirement: always candidates.
    always: list[int] = field(default_factory=list)
    automata: dict[str | None, Any] = field(default_factory=dict)
    #: The automata of fields (keywords apart) with the field's name, getter and memo (see
    #: `ValueMemo`): iterated for every event.
    field_automata: tuple[tuple[str, Getter, Any, Memo], ...] = ()
    memo: ValueMemo = field(default_factory=ValueMemo)
    #: Positions of rules with two requirements (their slot 1 must be hit too).
    pairs: frozenset[int] = frozenset()
    #: Positions of rules with one requirement.
    singles: frozenset[int] = frozenset()
    #: Each rule's `matches`, by position (read per candidate without the attribute look-up).
    predicates: list[Callable[[Event], bool]] = field(default_factory=list)
    #: What the field automata find in an event: the positions whose requirement 0, and those
    #: whose requirement 1, was met (see `_field_scanner`).
    scan_fields: Callable[[Event], tuple[set[int], set[int]]] = field(
        default=lambda event: (set(), set()), repr=False, compare=False
    )

    @classmethod
    def build(
        cls, route: Route, rules: list[CompiledRule], memo: ValueMemo | None = None
    ) -> RouteIndex:
        """`rules` carry their requirements (`rule.requirements`). `memo`: shared by the
        routes of a rule set, so that its budget bounds them all."""
        index = cls(route, rules, memo=memo or ValueMemo())
        index.predicates = [rule.matches for rule in rules]
        words: dict[str | None, dict[str, set[int]]] = {}
        pairs: set[int] = set()
        for position, rule in enumerate(rules):
            if not rule.requirements:
                index.always.append(position)
                continue
            if len(rule.requirements) > 1:
                pairs.add(position)
            for number, needed in enumerate(rule.requirements[:MAX_REQUIREMENTS]):
                for name, literal in needed:
                    words.setdefault(name, {}).setdefault(literal, set()).add(position * 2 + number)
        index.pairs = frozenset(pairs)
        index.singles = frozenset(
            position for position, rule in enumerate(rules) if len(rule.requirements) == 1
        )
        for name, literals in words.items():
            automaton = ahocorasick.Automaton()
            for literal, slots in literals.items():
                # Kept split (`Hits`): a value's finds are then united, never sorted out.
                first, second = split_slots(slots)
                automaton.add_word(literal, (tuple(sorted(first)), tuple(sorted(second))))
            automaton.make_automaton()
            index.automata[name] = automaton
        index.field_automata = tuple(
            (name, getter(name), automaton, index.memo.new_map())
            for name, automaton in index.automata.items()
            if name is not None
        )
        index.scan_fields = _field_scanner(index.field_automata, index.memo)
        return index

    def keyword_literals(self) -> dict[str, tuple[int, ...]]:
        """Keyword literals -> the slots requiring them, for `KeywordScan`."""
        needed: dict[str, set[int]] = {}
        for position, rule in enumerate(self.rules):
            for number, requirement in enumerate(rule.requirements[:MAX_REQUIREMENTS]):
                for name, literal in requirement:
                    if name is None:
                        needed.setdefault(literal, set()).add(position * 2 + number)
        return {literal: tuple(sorted(slots)) for literal, slots in needed.items()}

    def candidates(self, event: Event, keyword_hits: Hits | None = None) -> list[int]:
        """Positions of the rules to evaluate, in order (read only: it may be `always` itself).
        `keyword_hits`: what a `KeywordScan` of the event found for this route, when it scanned
        for every route at once."""
        if keyword_hits is None:
            keyword_hits = NO_PAIR
            keywords = self.automata.get(None)
            if keywords is not None:
                keyword_hits = _united(
                    [found for _, found in keywords.iter(event_text_joined(event))]
                )
        if self.field_automata:
            first, second = self.scan_fields(event)
            if keyword_hits is not NO_PAIR:
                first.update(keyword_hits[0])
                second.update(keyword_hits[1])
        elif keyword_hits is NO_PAIR:
            return self.always  # nothing to scan, nothing found: a route of keyword rules
        else:
            first, second = set(keyword_hits[0]), set(keyword_hits[1])
        found = first & self.singles
        if second:
            found.update(first & second)  # `second` holds rules with two requirements only
        if self.always:
            found.update(self.always)
        return sorted(found)

    @property
    def indexed(self) -> int:
        return len(self.rules) - len(self.always)


def _field_scanner(
    automata: tuple[tuple[str, Getter, Any, Memo], ...], values: ValueMemo
) -> Callable[[Event], tuple[set[int], set[int]]]:
    """What the field automata find in an event (the positions meeting requirement 0, those
    meeting requirement 1), as generated code (soc/detect/codegen.py) reading each field once,
    with the getters the rules use (the index sees what they see).
    A string's or an integer's slots are kept by its text (`ValueMemo`); lists and other values
    are scanned as `field_values` gives their texts."""
    keep = values.keep

    def miss(number: int, value: str) -> Hits:
        _, _, automaton, memo = automata[number]
        answer = _united([found for _, found in automaton.iter(value.casefold())])
        keep(memo, value, answer, (len(answer[0]) + len(answer[1])) << 4)
        return answer

    def other(number: int, value: Any, first: set[int], second: set[int]) -> None:
        automaton = automata[number][2]
        for text in field_values(value):
            for _, (firsts, seconds) in automaton.iter(text.casefold()):
                first.update(firsts)
                second.update(seconds)

    names = [name for name, _, _, _ in automata]
    prelude, nodes = codegen.fetch_prelude(names)
    memos = "".join(f", m{number}=MEMOS[{number}]" for number in range(len(names)))
    lines = [f"def scan(event, M=M, G=G, NO=NO, miss=miss, other=other, type=type{memos}):"]
    lines += prelude
    lines.append("    first = set()")
    lines.append("    second = set()")

    def remembered(number: str, memo: str, depth: str) -> list[str]:
        return [
            f"{depth}s = {memo}.get(v)",
            f"{depth}if s is None:",
            f"{depth}    s = miss({number}, v)",
            f"{depth}if s is not NO:",
            f"{depth}    first.update(s[0])",
            f"{depth}    if s[1]:",
            f"{depth}        second.update(s[1])",
        ]

    def on_value(number: str, memo: str, depth: str) -> list[str]:
        return [
            f"{depth}if type(v) is str:",
            *remembered(number, memo, depth + "    "),
            f"{depth}elif v is not M:",
            f"{depth}    if type(v) is int:",  # a status code, an event id: kept by its text
            f"{depth}        v = str(v)",
            *remembered(number, memo, depth + "        "),
            f"{depth}    else:",
            f"{depth}        other({number}, v, first, second)",
        ]

    def one_by_one(numbers: list[int], depth: str, flat: bool) -> list[str]:
        code: list[str] = []
        for number in numbers:
            general = f"v = G[{number}](event)"
            fetched = codegen.fetch(names[number], "v", general, nodes, flat)
            code += [depth[4:] + line for line in fetched]
            code += on_value(str(number), f"m{number}", depth)
        return code

    def body(depth: str, flat: bool) -> list[str]:
        code: list[str] = []
        for group, (parent, numbers) in enumerate(_groups(names).items()):
            if not parent or len(numbers) < _GROUP_FROM:
                code += one_by_one(numbers, depth, flat)
                continue
            # Many fields under one object (`winlog.event_data`: 50 for the Security channel's
            # rules, of which an event holds a dozen or two): the object's own items are walked
            # instead, when it is a plain dict (or absent) and no field is given flat.
            namespace[f"AT{group}"] = {names[n].rsplit(".", 1)[1]: n for n in numbers}
            code.append(f"{depth}x = event")
            for part in parent.split("."):
                step = f"x.get({part!r}, M) if type(x) is dict else (x if x is M else None)"
                code.append(f"{depth}x = {step}")
            walked = "(type(x) is dict or x is M)"
            if flat:
                namespace[f"FLAT{group}"] = frozenset(names[n] for n in numbers)
                walked += f" and FLAT{group}.isdisjoint(event)"
            code.append(f"{depth}if {walked}:")
            code.append(f"{depth}    if x is not M:")
            code.append(f"{depth}        for key, v in x.items():")
            code.append(f"{depth}            number = AT{group}.get(key)")
            code.append(f"{depth}            if number is not None:")
            code += on_value("number", "MEMOS[number]", depth + "                ")
            code.append(f"{depth}else:")
            code += one_by_one(numbers, depth + "    ", flat)
        return code

    namespace: dict[str, Any] = {"NAMES": frozenset(names)}
    # Events seldom give a field flat (a top-level key holding the dotted name): one check for
    # all of them spares each field its probe for one.
    if names:
        lines.append("    if NAMES.isdisjoint(event):")
        lines += body("        ", flat=False)
        lines.append("    else:")
        lines += body("        ", flat=True)
    lines.append("    return first, second")
    namespace |= {
        "M": _MISSING,
        "NO": NO_PAIR,
        "G": tuple(get for _, get, _, _ in automata),
        "MEMOS": tuple(memo for _, _, _, memo in automata),
        "miss": miss,
        "other": other,
    }
    scan: Callable[[Event], tuple[set[int], set[int]]] = codegen.build(
        lines, "scan", namespace, f"index scan of {len(names)} fields"
    )
    return scan


#: Fields under one object from which the index walks the object's items instead of fetching
#: each field.
_GROUP_FROM = 8


def _groups(names: Sequence[str]) -> dict[str, list[int]]:
    """Field numbers by the path of the object holding them ("" for top-level names)."""
    groups: dict[str, list[int]] = {}
    for number, name in enumerate(names):
        groups.setdefault(name.rsplit(".", 1)[0] if "." in name else "", []).append(number)
    return groups


class KeywordScan:
    """The keyword literals of every route in one scan: an event's texts (all its fields
    joined, a kilobyte or more) are scanned once, not once per admitted route.

    The scan reads the event as JSON (`event_json_caseless`) with a set of the escaped literals
    (`_LiteralSet`: Hyperscan, 0.6-0.9 us for a Windows event; an RE2 set's DFA where Hyperscan
    has no wheel, 5 us; the Aho-Corasick automaton took 100 us on the emoji and homoglyph
    literals' large alphabet). The automaton stays as the fallback for a text neither can take
    (lone surrogates do not encode to UTF-8), a scan that did not complete, or a set that
    cannot be built."""

    def __init__(self, routes: Sequence[RouteIndex]) -> None:
        entries: dict[str, list[tuple[int, tuple[int, ...]]]] = {}
        #: Positions of the routes that have keyword literals.
        self.routes: frozenset[int] = frozenset(
            route for route, index in enumerate(routes) if None in index.automata
        )
        for route in sorted(self.routes):
            for literal, positions in routes[route].keyword_literals().items():
                entries.setdefault(literal, []).append((route, positions))
        self._automaton: Any = None
        self._grouped: dict[tuple[int, ...], Mapping[int, Hits]] = {}
        self._set: _LiteralSet | None = None
        self._json_set: _LiteralSet | None = None
        if entries:
            self._automaton = ahocorasick.Automaton()
            for literal, found in entries.items():
                self._automaton.add_word(literal, tuple(found))
            self._automaton.make_automaton()
            self._set = _LiteralSet.build(entries)
            # Events are scanned as folded JSON (see `event_json_folded`): for the literals
            # as JSON escapes them.
            escaped: dict[str, list[tuple[int, tuple[int, ...]]]] = {}
            for literal, found in entries.items():
                escaped.setdefault(orjson.dumps(literal)[1:-1].decode(), []).extend(found)
            self._json_set = _LiteralSet.build(escaped)
        #: The event's JSON as the set scans it: as it is where the scan ignores ASCII case.
        self._json_view: Callable[[Event], bytes] = (
            event_json_caseless
            if self._json_set is not None and self._json_set.caseless
            else event_json_folded
        )

    def hits(self, event: Event) -> Mapping[int, Hits]:
        """By route position: the requirements (see `RouteIndex`) whose keyword literals occur in
        the event. Read only: the same answer serves every event whose scan found the same
        literals."""
        if self._automaton is None:
            return NO_HITS
        if self._json_set is not None:
            json = self._json_view(event)
            if json:
                numbers = self._json_set.numbers(json)
                if numbers is not None:
                    # Events of a kind find the same few literals (or none): their grouping by
                    # route is kept by the literals found, not rebuilt per event.
                    found = self._grouped.get(numbers)
                    if found is None:
                        if len(self._grouped) >= _GROUPINGS_KEPT:
                            self._grouped.clear()
                        found = self._grouped[numbers] = _by_route(self._json_set.payloads(numbers))
                    return found
        return _by_route(self._scan_texts(event))

    def _scan_texts(self, event: Event) -> list[_Payload]:
        """The hits in the event's folded texts (for events `event_json_folded` cannot give,
        and scans RE2 could not complete)."""
        text = event_text_joined(event)
        matched = self._set.find(text) if self._set is not None else None
        if matched is None:
            matched = [entries for _, entries in self._automaton.iter(text)]
        return matched


#: Memory the RE2 set's DFA may use (allocated as states are met, not up front).
_SET_MEMORY = 256 << 20


_Payload = tuple[tuple[int, tuple[int, ...]], ...]
#: Groupings of keyword hits by route kept by the literals found (`KeywordScan.hits`).
_GROUPINGS_KEPT = 4096
#: No keyword hits for any route: shared, read only.
NO_HITS: Mapping[int, Hits] = MappingProxyType({})


def _by_route(matched: Sequence[_Payload]) -> Mapping[int, Hits]:
    found: dict[int, set[int]] = {}
    for entries in matched:
        for route, positions in entries:
            rules = found.get(route)
            if rules is None:
                found[route] = set(positions)
            else:
                rules.update(positions)
    return {route: split_slots(slots) for route, slots in found.items()}


class _LiteralSet:
    """A set of literals scanned for in one pass, each with its payload: Hyperscan where it is
    installed (x86-64), else an RE2 set. Literal numbers start at 1; `numbers` also reports 0, the
    mark of a scan that ran to the end, so that both engines answer alike."""

    #: Whether the scan ignores the case of ASCII letters (texts need not be lowered first).
    caseless = False

    def __init__(self, payloads: list[_Payload]) -> None:
        self._payloads = payloads

    @classmethod
    def build(cls, entries: dict[str, list[tuple[int, tuple[int, ...]]]]) -> _LiteralSet | None:
        """The set, or None when neither engine can build it (the automaton then scans)."""
        if _hyperscan is not None:
            built = _HyperscanSet.build(entries)
            if built is not None:
                return built
        return _Re2Set.build(entries)

    def numbers(self, text: str | bytes) -> tuple[int, ...] | None:
        """The numbers of the literals in `text`, in order, with 0; None when the scan did not
        complete (or the engine cannot take the text: a lone surrogate)."""
        raise NotImplementedError

    def payloads(self, numbers: Sequence[int]) -> list[_Payload]:
        payloads = self._payloads
        return [payloads[number] for number in numbers if number]

    def find(self, text: str | bytes) -> list[_Payload] | None:
        """The payloads of the literals in `text`; None as for `numbers`."""
        numbers = self.numbers(text)
        return None if numbers is None else self.payloads(numbers)


class _Re2Set(_LiteralSet):
    """An RE2 set. Pattern 0 is the empty pattern, which matches every text: a scan that does not
    report it did not run to the end (RE2 answers "no match" when its DFA runs out of memory),
    and `numbers` says so instead of hiding rules."""

    def __init__(self, compiled: Any, payloads: list[_Payload]) -> None:
        super().__init__(payloads)
        self._set = compiled

    @classmethod
    def build(cls, entries: dict[str, list[tuple[int, tuple[int, ...]]]]) -> _Re2Set | None:
        """The set, or None when it cannot be built or misses a literal in a text that holds
        them all (the same check at start-up as at every scan)."""
        options = re2.Options()
        options.log_errors = False
        options.max_mem = _SET_MEMORY
        literal_set = re2.Set.SearchSet(options)
        payloads: list[_Payload] = [()]
        try:
            literal_set.Add("")
            for literal, found in entries.items():
                literal_set.Add(re2.escape(literal))
                payloads.append(tuple(found))
            literal_set.Compile()
            every = literal_set.Match("\n".join(entries)) or []
        except (re2.error, UnicodeEncodeError):
            return None
        if sorted(every) != list(range(len(payloads))):
            log.warning("keyword scan falls back to Aho-Corasick: RE2 set missed literals")
            return None
        return cls(literal_set, payloads)

    def numbers(self, text: str | bytes) -> tuple[int, ...] | None:
        try:
            numbers = self._set.Match(text)
        except UnicodeEncodeError:
            return None
        if not numbers or 0 not in numbers:
            return None
        return tuple(sorted(numbers))


#: A complete scan that found no literal.
_NONE_FOUND = (0,)


def _collect(number: int, start: int, end: int, flags: int, found: list[int]) -> None:
    found.append(number)


class _HyperscanSet(_LiteralSet):
    """A Hyperscan literal database (SIMD literal matching: 0.6-0.9 us for a Windows event's
    kilobyte and a half of folded JSON against the 490 keyword literals of the SigmaHQ rule set,
    where the RE2 set's DFA took 5.6 us). Each literal is reported once (single-match), ASCII
    letters matched whatever their case (the literals are folded: a text needs folding beyond
    ASCII only). Scratch space is per thread: Hyperscan's may not be shared by two scans at once.
    """

    caseless = True

    def __init__(self, database: Any, payloads: list[_Payload]) -> None:
        super().__init__(payloads)
        self._database = database
        self._scratch: dict[int, Any] = {}

    @classmethod
    def build(cls, entries: dict[str, list[tuple[int, tuple[int, ...]]]]) -> _HyperscanSet | None:
        assert _hyperscan is not None
        payloads: list[_Payload] = [()]
        patterns: list[bytes] = []
        for literal, found in entries.items():
            patterns.append(literal.encode("utf-8", "surrogatepass"))
            payloads.append(tuple(found))
        database = _hyperscan.Database(mode=_hyperscan.HS_MODE_BLOCK)
        try:
            database.compile(
                expressions=patterns,
                ids=list(range(1, len(patterns) + 1)),
                elements=len(patterns),
                flags=[_hyperscan.HS_FLAG_SINGLEMATCH | _hyperscan.HS_FLAG_CASELESS]
                * len(patterns),
                literal=True,
            )
        except _hyperscan.error as exc:
            log.warning("keyword scan without Hyperscan: %s", exc)
            return None
        built = cls(database, payloads)
        every = built.numbers(b"\n".join(patterns))
        if every != tuple(range(len(payloads))):
            log.warning("keyword scan without Hyperscan: it missed literals")
            return None
        return built

    def numbers(self, text: str | bytes) -> tuple[int, ...] | None:
        if type(text) is not bytes:
            try:
                text = str(text).encode()
            except UnicodeEncodeError:
                return None
        scratch = self._scratch.get(get_ident())
        if scratch is None:
            scratch = self._scratch[get_ident()] = _hyperscan.Scratch(self._database)
        found = [0]
        try:
            # Positional: the binding parses keyword arguments at 0.25 us a call.
            self._database.scan(text, _collect, 0, found, scratch)
        except _hyperscan.error:
            return None
        if len(found) == 1:
            return _NONE_FOUND  # most events: no keyword literal at all
        found.sort()
        return tuple(found)
