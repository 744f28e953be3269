"""The rule set is frozen out of the cyclic collector's sight while it is in use, and a reload
hands the old one back to it: nothing the engine drops stays in memory for good."""

from __future__ import annotations

import gc
import weakref

from soc import heap


class Node:
    """An object in a reference cycle, as pySigma's condition trees are (child <-> parent)."""

    def __init__(self) -> None:
        self.me = self


def test_settled_objects_wait_and_a_resettle_reclaims_them() -> None:
    try:
        old = Node()
        gone = weakref.ref(old)
        before = gc.get_threshold()
        heap.settle()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[2] == 1000  # full collections spaced out
        del old
        gc.collect()
        assert gone() is not None, "a frozen cycle is not collected: settle froze nothing"
        heap.resettle()  # what a rule reload does after swapping in the new set
        assert gone() is None
        assert gc.get_freeze_count() > 0
    finally:
        heap.release()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
