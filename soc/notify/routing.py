"""Routes: which incident changes reach which recipients on which channels.

A route holds when every condition it names holds (severity at or above a level, agency, rule,
tag, day and time of day in the province's zone); its recipients each get the message on their
channel. A recipient named by several routes gets one message, not several.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from soc.config import ConfigError, NotifyConfig, NotifyRouteConfig
from soc.notify.models import (
    CHANGES,
    CHANNEL_TYPES,
    LANGUAGES,
    SEVERITIES,
    Target,
    severity_rank,
)
from soc.notify.templates import ZNS_VALUES

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")


@dataclass(frozen=True, slots=True)
class Route:
    config: NotifyRouteConfig
    start: time | None
    end: time | None

    def matches(self, incident_doc: Mapping[str, Any], change: str, now: datetime) -> bool:
        """`now` is local time in the notify zone."""
        route = self.config
        incident = incident_doc.get("incident") or {}
        if change not in route.changes:
            return False
        if severity_rank(str(incident.get("severity", ""))) < severity_rank(route.min_severity):
            return False
        agency = (incident_doc.get("organization") or {}).get("id")
        if route.agencies and agency not in route.agencies:
            return False
        if route.rules and (incident.get("rule") or {}).get("id") not in route.rules:
            return False
        if route.tags and not set(route.tags) & set(incident.get("tags") or ()):
            return False
        if route.days and DAYS[now.weekday()] not in route.days:
            return False
        if self.start is not None and self.end is not None:
            moment = now.time()
            if self.start <= self.end:
                return self.start <= moment < self.end
            return moment >= self.start or moment < self.end  # the window wraps past midnight
        return True


class Router:
    def __init__(self, routes: Sequence[NotifyRouteConfig]) -> None:
        self.routes = [_compile(route, i) for i, route in enumerate(routes)]

    def targets(self, incident_doc: Mapping[str, Any], change: str, now: datetime) -> list[Target]:
        """Distinct recipients of every route that holds, in route order."""
        seen: dict[tuple[str, str], Target] = {}
        for route in self.routes:
            if not route.matches(incident_doc, change, now):
                continue
            for recipient in route.config.recipients:
                key = (recipient.channel, recipient.to)
                if key not in seen:
                    language = recipient.language or route.config.language
                    seen[key] = Target(recipient.channel, recipient.to, language)
        return list(seen.values())


def _compile(route: NotifyRouteConfig, index: int) -> Route:
    where = f"notify.routes[{index}]"
    match = _HOURS.fullmatch(route.hours) if route.hours else None
    if route.hours and not match:
        raise ConfigError(f"{where}.hours: expected HH:MM-HH:MM, got {route.hours!r}")
    if match is None:
        return Route(route, None, None)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        return Route(route, time(h1, m1), time(h2, m2))
    except ValueError:
        raise ConfigError(f"{where}.hours: not a time of day: {route.hours!r}") from None


def validate_notify(config: NotifyConfig) -> None:
    """Check what the schema cannot: names, choices and references between channels and routes.
    Raises ConfigError naming the key."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"notify.timezone: unknown time zone {config.timezone!r}") from None
    if config.window_seconds < 1:
        raise ConfigError("notify.window_seconds: must be at least 1")
    if config.concurrency < 1 or config.max_attempts < 1:
        raise ConfigError("notify.concurrency and notify.max_attempts: must be at least 1")
    names: set[str] = set()
    types = {channel.name: channel.type for channel in config.channels}
    for i, channel in enumerate(config.channels):
        where = f"notify.channels[{i}]"
        if not channel.name:
            raise ConfigError(f"{where}.name: required")
        if channel.name in names:
            raise ConfigError(f"{where}.name: duplicate channel {channel.name!r}")
        names.add(channel.name)
        if channel.type not in CHANNEL_TYPES:
            raise ConfigError(f"{where}.type: expected one of {', '.join(CHANNEL_TYPES)}")
        for j, param in enumerate(channel.template_params):
            if param.value not in ZNS_VALUES:
                raise ConfigError(
                    f"{where}.template_params[{j}].value: expected one of {', '.join(ZNS_VALUES)}"
                )
        if channel.type == "zalo_zns" and not channel.template_id:
            raise ConfigError(f"{where}.template_id: required for zalo_zns")
        if channel.type == "telegram" and not channel.bot_token:
            raise ConfigError(f"{where}.bot_token: required for telegram")
        if channel.type == "webhook" and not channel.secret:
            raise ConfigError(f"{where}.secret: required for webhook (requests are signed)")
        if channel.type == "email":
            scheme = channel.base_url.split("://", 1)[0] if "://" in channel.base_url else ""
            if scheme not in ("smtp", "smtps", "smtp+insecure"):
                raise ConfigError(
                    f"{where}.base_url: expected smtp://HOST:PORT (STARTTLS), smtps://HOST:PORT"
                    " or smtp+insecure://HOST:PORT"
                )
            if not channel.sender:
                raise ConfigError(f"{where}.sender: required for email")
    for i, route in enumerate(config.routes):
        where = f"notify.routes[{i}]"
        _compile(route, i)
        if route.min_severity not in SEVERITIES:
            raise ConfigError(f"{where}.min_severity: expected one of {', '.join(SEVERITIES)}")
        if route.language not in LANGUAGES:
            raise ConfigError(f"{where}.language: expected one of {', '.join(LANGUAGES)}")
        if unknown := set(route.changes) - set(CHANGES):
            raise ConfigError(f"{where}.changes: unknown change {sorted(unknown)[0]!r}")
        if unknown := set(route.days) - set(DAYS):
            raise ConfigError(f"{where}.days: unknown day {sorted(unknown)[0]!r}")
        for j, recipient in enumerate(route.recipients):
            if recipient.channel not in names:
                raise ConfigError(
                    f"{where}.recipients[{j}].channel: no channel named {recipient.channel!r}"
                )
            if not recipient.to and types[recipient.channel] != "webhook":
                raise ConfigError(f"{where}.recipients[{j}].to: required")
            if recipient.language and recipient.language not in LANGUAGES:
                raise ConfigError(f"{where}.recipients[{j}].language: expected vi or en")
