"""The detection stage: `soc.events` in, `soc.alerts` out."""

from __future__ import annotations

import logging
from collections import Counter

from soc import metrics
from soc.bus.base import ALERTS, EVENTS, Bus, Delivered, Message
from soc.detect.alerts import build_alert, grouping_key
from soc.detect.rules import RuleSet
from soc.timeutil import parse_ts, utcnow

log = logging.getLogger(__name__)


class DetectionStage:
    name = "detect"
    topic = EVENTS

    def __init__(self, bus: Bus, rules: RuleSet) -> None:
        self._bus = bus
        self.rules = rules

    async def handle(self, batch: list[Delivered]) -> None:
        alerts: list[Message] = []
        hits: Counter[tuple[str, str]] = Counter()
        for record in batch:
            event = record.value
            for rule in self.rules.match(event):
                alert = build_alert(rule, event)
                alerts.append(Message(grouping_key(alert), alert))
                hits[rule.id, rule.level] += 1
                _observe_latency(event)
        await self._bus.publish(ALERTS, alerts)
        for (rule_id, level), count in hits.items():
            metrics.RULE_HITS.labels(rule_id, level).inc(count)


def _observe_latency(event: dict[str, object]) -> None:
    inner = event.get("event")
    ingested = inner.get("ingested") if isinstance(inner, dict) else None
    if isinstance(ingested, str):
        try:
            delay = (utcnow() - parse_ts(ingested)).total_seconds()
        except ValueError:
            return
        metrics.ALERT_LATENCY_SECONDS.observe(max(delay, 0.0))
