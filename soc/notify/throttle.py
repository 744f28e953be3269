"""No flood: at most one message per incident, channel and recipient per window.

The first change of an incident is told at once and opens a window; what arrives while it is open
is held (only the latest count and facts are kept); when it closes with something held, one
digest goes out and opens the next window. A window that closes with nothing held lets the next
change be told at once again.

Replays are harmless: a message's id is derived from (incident, channel, recipient, window
number), and a record no newer than what the window has seen changes nothing.
"""

from __future__ import annotations

import dataclasses

from soc.ids import stable_id
from soc.notify.models import Notice, Target
from soc.notify.outbox import Transaction, Window

#: Changes told by their alert count; the others (status, assigned, ...) by their kind.
COUNTED = frozenset({"created", "grown"})


def message_id(incident_id: str, channel: str, recipient: str, window_seq: int) -> str:
    return stable_id("notify", incident_id, channel, recipient, str(window_seq))


def admit(
    tx: Transaction,
    target: Target,
    snapshot: Notice,
    change: str,
    at: float,
    now: float,
    window_seconds: int,
) -> str | None:
    """Apply one incident change for one target; the id of the message enqueued, if any."""
    incident = snapshot.incident_id
    count = snapshot.alert_count
    current = tx.window(incident, target.channel, target.recipient)
    if current is None:
        kind = "new" if change in COUNTED else "change"
        return _send(tx, target, snapshot, kind, change, count, 0, at, now, window_seconds)
    if at <= current.last_at and count <= current.latest_count:
        return None  # a replay of a record already taken into account
    if change in COUNTED and count <= current.latest_count:
        return None  # nothing new to tell
    latest = max(count, current.latest_count)
    pending = current.pending_change if change in COUNTED else change
    if now < current.window_end:
        tx.put_window(
            dataclasses.replace(
                current,
                latest_count=latest,
                last_at=max(at, current.last_at),
                pending_change=pending,
                snapshot=snapshot if count >= current.latest_count else current.snapshot,
            )
        )
        return None
    # The window is over and the digest clock has not run yet: this record opens the next one.
    new_alerts = latest - current.sent_count
    kind = "update" if new_alerts > 0 else "change"
    snapshot = dataclasses.replace(snapshot, alert_count=latest)
    return _send(
        tx, target, snapshot, kind, pending, new_alerts, current.seq, at, now, window_seconds,
        language=current.language,
    )  # fmt: skip


def close_due_windows(tx: Transaction, now: float, window_seconds: int, limit: int) -> list[str]:
    """Digests for windows that ended with something held back; ids of the messages enqueued."""
    enqueued = []
    for current in tx.due_windows(now, limit):
        target = Target(current.channel, current.recipient, current.language)
        new_alerts = current.latest_count - current.sent_count
        kind = "digest" if new_alerts > 0 else "change"
        ident = _send(
            tx, target, current.snapshot, kind, current.pending_change, new_alerts,
            current.seq, current.last_at, now, window_seconds, origin=current.window_end,
        )  # fmt: skip
        if ident:
            enqueued.append(ident)
    return enqueued


def _send(
    tx: Transaction,
    target: Target,
    snapshot: Notice,
    kind: str,
    change: str,
    new_alerts: int,
    seq: int,
    at: float,
    now: float,
    window_seconds: int,
    *,
    language: str | None = None,
    origin: float | None = None,
) -> str | None:
    language = language or target.language
    notice = dataclasses.replace(
        snapshot,
        kind=kind,
        language=language,
        new_alerts=new_alerts if kind != "new" else snapshot.alert_count,
        change=change,
        window_seconds=window_seconds,
    )
    ident = message_id(snapshot.incident_id, target.channel, target.recipient, seq)
    added = tx.enqueue(ident, target.channel, target.recipient, notice, now, origin or at)
    tx.put_window(
        Window(
            incident_id=snapshot.incident_id,
            channel=target.channel,
            recipient=target.recipient,
            language=language,
            seq=seq + 1,
            window_end=now + window_seconds,
            sent_count=snapshot.alert_count,
            latest_count=snapshot.alert_count,
            last_at=at,
            pending_change="",
            snapshot=notice,
        )
    )
    return ident if added else None
