"""What a notification is about (`Notice`), whom it goes to (`Target`), and what a provider said
(`Accepted`, `DeliveryError`). A notice keeps facts, not text: each channel renders it within its
own limits at send time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("informational", "low", "medium", "high", "critical")
CHANNEL_TYPES = ("zalo_oa", "zalo_zns", "email", "webhook", "telegram")
LANGUAGES = ("vi", "en")
CHANGES = ("created", "grown", "status", "assigned", "commented", "reopened")


def severity_rank(name: str) -> int:
    """Position on the Sigma scale; unknown names rank lowest."""
    return SEVERITIES.index(name) if name in SEVERITIES else 0


@dataclass(frozen=True, slots=True)
class Target:
    """One recipient on one channel, in one language."""

    channel: str
    recipient: str
    language: str = "vi"


@dataclass(frozen=True, slots=True)
class Notice:
    """The facts one message tells. `kind`: `new` (first message on an incident), `update` (the
    first in a later window), `digest` (what a window held back), `change` (a status change the
    route asked for), `test` (`soc notify test`)."""

    kind: str
    language: str
    incident_id: str
    title: str
    severity: str
    status: str
    agency: str
    rule_id: str
    rule_name: str
    alert_count: int
    #: Alerts not told before this message (held back in the window, or since the last message).
    new_alerts: int
    first_seen: str
    last_seen: str
    url: str
    hosts: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    change: str = ""
    window_seconds: int = 0
    #: What the incident's latest alert says happened (its rule's details), when it says more
    #: than the rule's name.
    last_message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notice:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider took the message: its id for it (if any) and its answer, for the log."""

    provider_id: str
    answer: str


class DeliveryError(Exception):
    """A send that did not go through. `retryable` False means retrying cannot help (the
    provider refused the request itself): the message is parked at once for an operator."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
