"""The detection stage over the in-process bus, with the project's own rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from soc.bus.base import ALERTS
from soc.bus.memory import MemoryBus
from soc.detect.rules import RuleSet, load_rules
from soc.detect.stage import Detection, DetectionStage
from soc.normalize import NormalizeOptions, normalize

ROOT = Path(__file__).resolve().parent.parent


class _Breaks:
    """The rule set, except that evaluating it on one event raises (a rule's bug, or an event
    no rule was written for)."""

    def __init__(self, rules: RuleSet, poison: str) -> None:
        self._rules = rules
        self._poison = poison

    def match(self, event: dict[str, Any]) -> Any:
        if event["event"]["id"] == self._poison:
            raise TypeError("unorderable types in a rule's comparison")
        return self._rules.match(event)


def _event(n: int, user: str) -> dict[str, Any]:
    line = f"<38>Nov 28 10:00:{n:02d} web09 sshd[9]: Invalid user {user} from 198.51.100.7 port {n}"
    return normalize(
        {"id": f"r{n}", "received_at": "2026-11-28T03:00:00Z", "data": line,
         "source": {"type": "syslog", "peer": {"ip": "198.51.100.7", "port": 514}}},
        NormalizeOptions(),
    )  # fmt: skip


async def test_an_event_the_rules_fail_on_is_counted_and_the_others_are_detected() -> None:
    detection = Detection.from_rules(load_rules([ROOT / "rules"]))
    events = [_event(n, f"user{n}") for n in range(3)]
    detection.rules = _Breaks(detection.rules, events[1]["event"]["id"])  # type: ignore[assignment]
    bus = MemoryBus()
    await bus.start()
    alerts = await bus.subscribe(ALERTS, "test")
    labels = {"stage": "detect", "reason": "detection_failed"}
    before = REGISTRY.get_sample_value("soc_dropped_total", labels) or 0.0
    await DetectionStage(bus, detection).detect(events)
    raised = await alerts.poll(100, 1.0)
    await bus.close()
    assert {a.value["events"][0]["event"]["id"] for a in raised} == {
        events[0]["event"]["id"],
        events[2]["event"]["id"],
    }
    assert REGISTRY.get_sample_value("soc_dropped_total", labels) == before + 1
