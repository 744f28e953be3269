"""Keeping the cyclic garbage collector off what lives as long as the process.

A loaded SigmaHQ rule set is ~400 MiB of Python objects (pySigma's parsed rules, compiled
predicates, automata). The collector re-examines long-lived objects on every full collection,
and a stream allocates fast enough (an event is a few dozen dicts and strings) to trigger them
often: frozen out of its sight, detection ran 15% faster and Kafka's record decoding (which
allocates every event) twice as fast. Reference counting still frees everything as usual; only
reference cycles among frozen objects wait, which is why a rule reload unfreezes first.

Full collections are also spaced out (a thousand middle-generation collections apart instead of
ten): a stage holds a batch of up to 10,000 decoded events, which the default re-walked over and
over while the next batch was decoded (Kafka record decoding 15.8 -> 9.8 us an event).
"""

from __future__ import annotations

import gc

#: The collector's thresholds before `settle`, restored by `release`.
_DEFAULT_THRESHOLDS = gc.get_threshold()
#: Youngest and middle generations as by default; full collections a hundred times rarer.
_STREAM_THRESHOLDS = (_DEFAULT_THRESHOLDS[0], _DEFAULT_THRESHOLDS[1], 1000)


def settle() -> None:
    """Collect what is garbage now, then exempt every object still alive from collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_STREAM_THRESHOLDS)


def release() -> None:
    """When the rule set's user stops (tests run several in one process): collect as usual."""
    gc.unfreeze()
    gc.set_threshold(*_DEFAULT_THRESHOLDS)


def resettle() -> None:
    """After swapping a rule set: let the collector reclaim the old one, then settle again."""
    gc.unfreeze()
    settle()
