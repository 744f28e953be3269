"""`soc notify test CHANNEL`: one test message through a configured channel, straight to the
provider (not through the outbox), and the provider's answer on stdout."""

from __future__ import annotations

import json
import time
from typing import TextIO
from zoneinfo import ZoneInfo

from soc.config import Config, ConfigError
from soc.notify.channels import make_channel
from soc.notify.models import DeliveryError, Notice
from soc.notify.outbox import Outbox
from soc.notify.routing import validate_notify
from soc.notify.service import outbox_path
from soc.notify.templates import incident_url
from soc.timeutil import format_ts, utcnow


def sample_notice(config: Config, language: str) -> Notice:
    now = format_ts(utcnow())
    return Notice(
        kind="test",
        language=language,
        incident_id="test",
        title="SOC",
        severity="informational",
        status="new",
        agency="",
        rule_id="",
        rule_name="",
        alert_count=0,
        new_alerts=0,
        first_seen=now,
        last_seen=now,
        url=incident_url(config.notify.console_url, "test"),
    )


def default_recipient(config: Config, channel: str) -> str | None:
    """The first recipient any route names on this channel."""
    for route in config.notify.routes:
        for recipient in route.recipients:
            if recipient.channel == channel:
                return recipient.to
    return None


async def send_test(
    config: Config, channel_name: str, to: str | None, language: str, out: TextIO
) -> int:
    validate_notify(config.notify)
    chosen = [c for c in config.notify.channels if c.name == channel_name]
    if not chosen:
        names = ", ".join(c.name for c in config.notify.channels) or "none configured"
        raise ConfigError(f"notify: no channel named {channel_name!r} (channels: {names})")
    recipient = to if to is not None else default_recipient(config, channel_name)
    if recipient is None:
        raise ConfigError(f"notify: no recipient for {channel_name!r}: give --to")
    # The outbox holds refreshed Zalo tokens; a test send must use (and keep) them too.
    outbox = Outbox(outbox_path(config))
    channel = make_channel(chosen[0], outbox, ZoneInfo(config.notify.timezone))
    ident = f"test-{int(time.time())}"
    try:
        accepted = await channel.send(recipient, sample_notice(config, language), ident)
    except DeliveryError as exc:
        print(json.dumps({"accepted": False, "reason": exc.reason, "answer": exc.detail},
                         ensure_ascii=False), file=out)  # fmt: skip
        return 1
    finally:
        await channel.close()
        outbox.close()
    print(
        json.dumps(
            {"accepted": True, "provider_id": accepted.provider_id, "answer": accepted.answer},
            ensure_ascii=False,
        ),
        file=out,
    )
    return 0
