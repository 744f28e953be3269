"""Answers kept by value: what the engine decided about a field value it has seen.

A log stream repeats its values: the same executables, users, parent processes, registry keys
and URLs come back event after event. What the index's automata find in a value, and what a
rule's test on one field answers for it, depend on the value alone, so they are kept, keyed by
the value, and the next event that carries it is answered by one dictionary look-up instead of
folding and scanning it again.

Only `str` values are kept (1, 1.0 and True are equal keys that tests tell apart), and only up
to `MEMO_LONGEST` characters: a 30 KB PowerShell command line seen once would take the room of
hundreds of short values that do repeat. A value is kept the second time it is met, not the
first: a field whose values never repeat (a message with a counter in it, a URL with a session
id) fills no memo, only a bounded set of the hashes seen once, and does not push out the values
that do repeat. Memory is bounded for all the memos of a rule set together: when what they hold
exceeds the budget every one is emptied, and fills again with what still repeats.

A memo whose values rarely come back stops trying for a while ("cold"): fewer than one in
`COLD_RATIO` of its last `TRIAL_WINDOW` misses was a value met before. It still answers the
values it holds, but misses skip the bookkeeping (hashing, the set of first sightings, the set of
slots built to be kept), so a stream of values that never repeat costs about what it cost with
no memo at all. After `COLD_MISSES` misses it tries again, in case the stream changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

#: Characters of field values (plus `ENTRY_COST` an entry) the memos of a rule set may hold.
MEMO_CHARACTERS = 32 << 20
#: What an entry costs beyond its value's characters: the dict slot, the answer, the header.
ENTRY_COST = 160
#: Longer values are evaluated every time.
MEMO_LONGEST = 2048
#: What remembering that a value was seen once costs (a hash in a set).
SEEN_COST = 64
#: Hashes of values seen once kept per memo (then forgotten all at once).
SEEN_KEPT = 4096


#: Misses over which a memo judges whether its values come back.
TRIAL_WINDOW = 2048
#: Below one value met before in this many misses, the memo goes cold.
COLD_RATIO = 16
#: Misses a cold memo lets pass before it tries again.
COLD_MISSES = 1 << 16


class Memo(dict[str, Any]):
    """Answers by value, the hashes of the values seen once (not kept yet), and whether it is
    cold: the misses it still lets pass without bookkeeping (0: warm)."""

    __slots__ = ("again", "cold", "seen", "trials")

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()
        self.cold = 0
        #: Misses in the current window, and how many were values met before.
        self.trials = 0
        self.again = 0


class ValueMemo:
    """The budget and the memos (dicts keyed by value) it bounds. `budget=0`: nothing kept."""

    def __init__(self, budget: int = MEMO_CHARACTERS) -> None:
        self.budget = budget
        self.left = budget
        self.maps: list[Memo] = []
        #: Times every memo was emptied for room.
        self.resets = 0
        #: Times a memo went cold.
        self.colds = 0

    def new_map(self) -> Memo:
        found = Memo()
        self.maps.append(found)
        return found

    def keep(self, memo: Memo, value: str, answer: Any, size: int = 0) -> None:
        """Remember `answer` for `value` in `memo` (one of this budget's) if the value was met
        before, room permitting. `size`: what the answer holds beyond `ENTRY_COST` (a set of
        slots: 16 bytes each). While `memo.cold`, it only counts that down."""
        if memo.cold:  # its values do not come back: no bookkeeping for a while
            memo.cold -= 1
            return
        if len(value) > MEMO_LONGEST or not self.budget:
            return
        seen = memo.seen
        key = hash(value)
        if key in seen:
            seen.discard(key)
            self.left -= len(value) + ENTRY_COST + size - SEEN_COST
            memo[value] = answer
            memo.again += 1
        else:
            if len(seen) >= SEEN_KEPT:
                self.left += len(seen) * SEEN_COST
                seen.clear()
            seen.add(key)
            self.left -= SEEN_COST
        memo.trials += 1
        if memo.trials >= TRIAL_WINDOW:
            if memo.again * COLD_RATIO < memo.trials:
                # Its values do not come back: stop hashing and remembering first sightings.
                memo.cold = COLD_MISSES
                self.left += len(seen) * SEEN_COST
                seen.clear()
                self.colds += 1
            memo.trials = memo.again = 0
        if self.left < 0:
            for kept in self.maps:
                kept.clear()
                kept.seen.clear()
            self.left = self.budget
            self.resets += 1

    def clear(self) -> None:
        """Forget every answer and what was learnt of each memo's values (as at start)."""
        for kept in self.maps:
            kept.clear()
            kept.seen.clear()
            kept.cold = kept.trials = kept.again = 0
        self.left = self.budget

    def held(self) -> int:
        """Values held, over every memo."""
        return sum(len(kept) for kept in self.maps)


_COMPILING: ContextVar[ValueMemo | None] = ContextVar("soc_detect_memo", default=None)


@contextlib.contextmanager
def compiling_with(memo: ValueMemo) -> Iterator[None]:
    """Rules compiled inside keep their field tests' answers in `memo` (see `current`)."""
    token = _COMPILING.set(memo)
    try:
        yield
    finally:
        _COMPILING.reset(token)


def current() -> ValueMemo | None:
    """The memo of the rule set being compiled; None outside `compiling_with` (a predicate
    compiled alone, in a test or a one-off conversion, keeps nothing)."""
    return _COMPILING.get()
