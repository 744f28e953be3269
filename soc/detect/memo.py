"""Answers kept by value: what the engine decided about a field value it has seen.

A log stream repeats its values: the same executables, users, parent processes, registry keys
and URLs come back event after event. What the index's automata find in a value, and what a
rule's test on one field answers for it, depend on the value alone, so they are kept, keyed by
the value, and the next event that carries it is answered by one dictionary look-up instead of
folding and scanning it again.

Only `str` values are kept (1, 1.0 and True are equal keys that tests tell apart), and only up
to `MEMO_LONGEST` characters: a 30 KB PowerShell command line seen once would take the room of
hundreds of short values that do repeat. Memory is bounded for all the memos of a rule set
together: when the characters they hold exceed the budget every one is emptied, and fills again
with what still repeats. A stream whose values never repeat pays one insertion per value.
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


class ValueMemo:
    """The budget and the memos (dicts keyed by value) it bounds. `budget=0`: nothing kept."""

    def __init__(self, budget: int = MEMO_CHARACTERS) -> None:
        self.budget = budget
        self.left = budget
        self.maps: list[dict[str, Any]] = []
        #: Times every memo was emptied for room.
        self.resets = 0

    def new_map(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        self.maps.append(found)
        return found

    def keep(self, memo: dict[str, Any], value: str, answer: Any, size: int = 0) -> None:
        """Remember `answer` for `value` in `memo` (one of this budget's), room permitting.
        `size`: what the answer holds beyond `ENTRY_COST` (a set of slots: 16 bytes each)."""
        if len(value) > MEMO_LONGEST or not self.budget:
            return
        cost = len(value) + ENTRY_COST + size
        self.left -= cost
        if self.left < 0:
            for kept in self.maps:
                kept.clear()
            self.left = self.budget - cost
            self.resets += 1
        memo[value] = answer

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
