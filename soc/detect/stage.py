"""The detection stages.

`detect`: `soc.events` in; single-event rule hits out to `soc.alerts`, and the matches that
correlation rules need out to `soc.matches`, keyed by the correlation's group-by value so that one
consumer owns all the state of a group (DESIGN.md).

`correlate`: `soc.matches` in, correlation hits out to `soc.alerts`. Its windows live in memory;
after a restart they refill from the matches that follow (the offsets of matches still inside a
window are not held back yet), so a window that straddles a restart can be missed.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from soc import metrics
from soc.bus.base import ALERTS, DETECTED, EVENTS, MATCHES, Bus, Delivered, Message, encode
from soc.detect.alerts import build_alert, build_correlation_alert, grouping_key
from soc.detect.correlation import CorrelationEngine, CorrelationHit, Match
from soc.detect.rules import RuleSet
from soc.stage import HOT_CHUNK
from soc.timeutil import parse_ts, utcnow

log = logging.getLogger(__name__)


@dataclass
class Detection:
    """What the stages evaluate: swapped as a whole when rules are reloaded."""

    rules: RuleSet
    correlations: CorrelationEngine

    @classmethod
    def from_rules(cls, rules: RuleSet, allowed_lateness: float = 60.0) -> Detection:
        engine = CorrelationEngine(
            [rule for rule, _ in rules.correlations], allowed_lateness=allowed_lateness
        )
        for problem in engine.problems:
            log.warning(
                "correlation rule not evaluated rule_id=%s title=%s reason=%s",
                problem.rule_id, problem.title, problem.reason,
            )  # fmt: skip
        return cls(rules, engine)


def event_time(event: dict[str, Any]) -> float:
    stamp = event.get("@timestamp")
    if isinstance(stamp, str):
        try:
            return parse_ts(stamp).timestamp()
        except ValueError:
            pass
    return utcnow().timestamp()


class Detected:
    """What evaluating events produced, published at once: the matches correlations need, the
    alerts, and the hits per rule (counted once they are published)."""

    __slots__ = ("alerts", "events", "hits", "matches")

    def __init__(self) -> None:
        self.events = 0
        self.matches: list[Message] = []
        self.alerts: list[Message] = []
        self.hits: Counter[tuple[str, str]] = Counter()


class DetectionStage:
    name = "detect"
    topic = EVENTS

    def __init__(self, bus: Bus, detection: Detection) -> None:
        self._bus = bus
        self.detection = detection
        self._encode = bus.carries_bytes

    async def handle(self, batch: list[Delivered]) -> None:
        # Events detected where they were normalized (a chained engine) are skipped, undecoded:
        # a `--stages detect` process beside chained ones then costs nothing twice.
        detected = self.output()
        for start in range(0, len(batch), HOT_CHUNK):
            records = batch[start : start + HOT_CHUNK]
            chunk = [record for record in records if not _marked(record)]
            if len(chunk) < len(records):
                metrics.DETECT_SKIPPED.inc(len(records) - len(chunk))
            # The bytes as published, where the bus kept them: a match's event text is those.
            self.evaluate(
                [record.value for record in chunk], detected, [record.raw for record in chunk]
            )
        await self.publish(detected)

    async def detect(self, events: Sequence[dict[str, Any]]) -> None:
        """Evaluate the rules on a batch of events and publish what they raised."""
        detected = self.output()
        self.evaluate(events, detected)
        await self.publish(detected)

    def output(self) -> Detected:
        return Detected()

    def evaluate(
        self,
        events: Sequence[dict[str, Any]],
        detected: Detected,
        encoded: Sequence[bytes | None] | None = None,
    ) -> None:
        """Evaluate the rules on events, adding the alerts and the matches that correlations
        need to `detected`. The normalizing stage calls this on each chunk of events as it
        normalizes them, where detection runs in the same process (see `NormalizeStage`): the
        alerts are built, and encoded for a bus that carries bytes, while the events are hot.
        `encoded`: each event's JSON where its producer made it already (else None), so that a
        match's event text is not made a second time."""
        # One rule set for the whole call; a batch's chunks are evaluated with no await between
        # them, so a reload never splits a batch either.
        detection = self.detection
        engine = detection.correlations
        encode_now = self._encode
        alerts, matches, hits = detected.alerts, detected.matches, detected.hits
        for position, event in enumerate(events):
            before = len(matches), len(alerts)
            shown: str | None = None
            try:
                for rule in detection.rules.match(event):
                    hits[rule.id, rule.level] += 1
                    if engine.wants(rule.id, rule.name):
                        if encode_now:
                            # Only the fields the correlations read, and the event as text
                            # (see `Match`): made once per event, however many rules it hit.
                            if shown is None:
                                made = encoded[position] if encoded is not None else None
                                text = made if made is not None else encode(event)
                                shown = text.decode("utf-8", "surrogatepass")
                            fields = engine.fields(rule.id, rule.name, event)
                        else:
                            fields = event  # in process: handed over, never copied
                        match = Match(
                            rule.id,
                            rule.name,
                            event_time(event),
                            fields,
                            event["event"]["id"],
                            shown,
                        )
                        matches.append(
                            _outgoing(engine.group_key(match), _match_value(match), encode_now)
                        )
                    if engine.generate(rule.id, rule.name):
                        alert = build_alert(rule, event)
                        alerts.append(_outgoing(grouping_key(alert), alert, encode_now))
                        _observe_latency(event)
            except Exception:
                # One event the rules cannot take must not hold up every event after it (nor,
                # chained, their normalizing and indexing): it is stored as usual, undetected,
                # counted and logged with its id for a rule fix and a hunt.
                del matches[before[0] :], alerts[before[1] :]
                metrics.DROPPED.labels(self.name, "detection_failed").inc()
                log.exception("event not detected event_id=%s", _event_id(event))
        detected.events += len(events)

    async def publish(self, detected: Detected) -> None:
        """Publish what `evaluate` produced: the matches, then the alerts."""
        await self._bus.publish(MATCHES, detected.matches)
        await self._bus.publish(ALERTS, detected.alerts)
        for (rule_id, level), count in detected.hits.items():
            metrics.RULE_HITS.labels(rule_id, level).inc(count)


def _outgoing(key: str, value: dict[str, Any], as_bytes: bool) -> Message:
    """An alert or match to publish: for a bus of bytes, encoded now and its value let go
    (`Message.bytes_only`); else the value itself."""
    return Message.bytes_only(key, encode(value)) if as_bytes else Message(key, value)


def _marked(record: Delivered) -> bool:
    return any(name == DETECTED for name, _ in record.headers)


def _event_id(event: Any) -> str:
    inner = event.get("event") if isinstance(event, dict) else None
    return str(inner.get("id")) if isinstance(inner, dict) else "?"


def _match_value(match: Match) -> dict[str, Any]:
    value = {
        "rule_id": match.rule_id,
        "rule_name": match.rule_name,
        "timestamp": match.timestamp,
        "event_id": match.event_id,
        "event": match.event,
    }
    if match.shown is not None:
        value["event_json"] = match.shown
    return value


class CorrelationStage:
    name = "correlate"
    topic = MATCHES

    def __init__(
        self,
        bus: Bus,
        detection: Detection,
        *,
        replay: bool = False,
        max_held: int | None = None,
    ) -> None:
        """With `replay` (a durable bus), the stage commits only up to the oldest match its
        windows may still need, so that after a restart or a rebalance the next owner of a
        partition rebuilds the open windows by reading those matches again; the alerts they
        raise again carry the same ids and are stored once.

        `max_held` bounds the matches held back so (the in-process bus keeps every uncommitted
        record in memory and stops publishers at its capacity: holding more would stall the
        stream). Beyond it the oldest are committed anyway and counted; the running windows
        keep them, only a restart would miss them."""
        self._bus = bus
        self.detection = detection
        self._watermark = 0.0
        self._replay = replay
        self._max_held = max_held
        #: Per partition: (offset, match time) of the records read and maybe still needed.
        self._held: dict[int, deque[tuple[int, float]]] = {}
        self._next: dict[int, int] = {}

    def held_positions(self) -> dict[int, int] | None:
        """Per partition, the next offset to commit; None: commit everything read."""
        if not self._replay:
            return None
        cutoff = self._watermark - self.detection.correlations.horizon
        for held in self._held.values():
            while held and held[0][1] < cutoff:
                held.popleft()
        if self._max_held is not None:
            excess = sum(len(held) for held in self._held.values()) - self._max_held
            if excess > 0:
                metrics.CORRELATION_REPLAY_RELEASED.inc(excess)
                while excess > 0:
                    # The oldest match of all partitions goes first.
                    oldest = min((h for h in self._held.values() if h), key=lambda h: h[0][1])
                    oldest.popleft()
                    excess -= 1
        return {
            partition: held[0][0] if held else self._next[partition]
            for partition, held in self._held.items()
        }

    async def handle(self, batch: list[Delivered]) -> None:
        engine = self.detection.correlations
        found: list[CorrelationHit] = []
        before = engine.drops()
        for record in batch:
            value = record.value
            shown = value.get("event_json")
            match = Match(
                value["rule_id"],
                value.get("rule_name"),
                float(value["timestamp"]),
                value["event"],
                value["event_id"],
                shown if isinstance(shown, str) else None,
            )
            if self._replay and record.offset < self._next.get(record.partition, -1):
                continue  # read again after a rebalance: already in this engine's windows
            self._watermark = max(self._watermark, match.timestamp)
            if self._replay:
                self._held.setdefault(record.partition, deque()).append(
                    (record.offset, match.timestamp)
                )
                self._next[record.partition] = record.offset + 1
            found += engine.process(match)
        found += engine.advance(self._watermark)
        alerts = []
        for hit in found:
            if hit.raise_alert:
                alert = build_correlation_alert(hit)
                alerts.append(Message(grouping_key(alert), alert))
                metrics.RULE_HITS.labels(hit.rule.id, hit.rule.level).inc()
        await self._bus.publish(ALERTS, alerts)
        _count_correlation(before, engine)


def _count_correlation(before: tuple[int, int, int, int], engine: CorrelationEngine) -> None:
    late, expired, evicted, duplicates = engine.drops()
    metrics.CORRELATION_LATE.inc(late - before[0])
    metrics.CORRELATION_DUPLICATES.inc(duplicates - before[3])
    metrics.CORRELATION_EVICTED.labels("expired").inc(expired - before[1])
    metrics.CORRELATION_EVICTED.labels("cap").inc(evicted - before[2])
    metrics.CORRELATION_GROUPS.set(engine.groups)


def _observe_latency(event: dict[str, Any]) -> None:
    inner = event.get("event")
    ingested = inner.get("ingested") if isinstance(inner, dict) else None
    if isinstance(ingested, str):
        try:
            delay = (utcnow() - parse_ts(ingested)).total_seconds()
        except ValueError:
            return
        metrics.ALERT_LATENCY_SECONDS.observe(max(delay, 0.0))
