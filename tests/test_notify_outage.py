"""The providers down for a minute: every message still arrives afterwards, and none twice."""

from __future__ import annotations

import asyncio
import email
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from soc import metrics
from soc.notify.outbox import SENT
from tests.notify_fakes import (
    FakeProvider,
    FakeSmtp,
    channels_config,
    incident_doc,
    incident_record,
    make_certificate,
    route_to_all,
)
from tests.notify_harness import make_config, start, wait_until

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 60
_INCIDENT = re.compile(r"#/incidents/(inc-\d+)")


def _once_each(ids: list[str], expected: set[str], channel: str) -> None:
    counts = Counter(ids)
    assert set(counts) == expected, f"{channel}: missing {sorted(expected - set(counts))[:5]}"
    twice = [ident for ident, n in counts.items() if n > 1]
    assert not twice, f"{channel}: delivered more than once: {twice[:5]}"


async def test_a_minute_long_outage_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    cert, key = make_certificate(tmp_path)
    smtp = FakeSmtp(cert, key)
    with FakeProvider() as provider:
        channels = channels_config(provider.url, smtp, cert)
        config = make_config(
            tmp_path,
            channels,
            [route_to_all(channels)],
            backoff_ms=200,
            backoff_max_ms=5000,
            max_attempts=1000,
            concurrency=4,
        )
        # Every HTTP request fails, in each of the ways a provider fails; the mail relay is off.
        provider.state.failure_modes = ("http503", "zalo_error", "reset", "rate_limited")
        provider.state.fail_until = time.time() + OUTAGE_SECONDS
        failed_before = sum(
            s.value for m in metrics.NOTIFICATIONS_FAILED.collect() for s in m.samples
            if s.name.endswith("_total")
        )  # fmt: skip
        running = await start(config)
        try:
            first = [incident_record("created", incident_doc(f"inc-{i}", 1)) for i in range(30)]
            await running.publish(first)
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            second = [
                incident_record("created", incident_doc(f"inc-{i}", 1)) for i in range(30, 60)
            ]
            await running.publish(second)
            await asyncio.sleep(max(0.0, provider.state.fail_until - time.time()))
            with smtp:  # the relay is back, on the same port
                await wait_until(lambda: running.notifier.outbox.depth() == 0, within=60)
                mails = smtp.messages
            outbox_items, total = running.notifier.outbox.search(agencies=None, limit=1000)
        finally:
            await running.close()
        expected = {f"inc-{i}" for i in range(60)}
        assert provider.state.violations == []
        assert provider.state.failures > 100  # the outage was real and retried throughout
        _once_each(
            [_INCIDENT.findall(r.body["message"]["text"])[0] for r in provider.state.of("zalo_oa")],
            expected,
            "zalo_oa",
        )
        _once_each(
            [_INCIDENT.findall(r.body["text"])[0] for r in provider.state.of("telegram")],
            expected,
            "telegram",
        )
        _once_each(
            [r.body["notice"]["incident_id"] for r in provider.state.of("webhook")],
            expected,
            "webhook",
        )
        zns_ids = [r.key for r in provider.state.of("zalo_zns")]
        assert len(zns_ids) == len(set(zns_ids)) == 60
        _once_each(
            [email.message_from_bytes(raw)["X-SOC-Incident"] for _, _, raw in mails],
            expected,
            "email",
        )
        assert total == 300 and {m.status for m in outbox_items} == {SENT}
        assert max(m.attempts for m in outbox_items) > 3
        failed_after = sum(
            s.value for m in metrics.NOTIFICATIONS_FAILED.collect() for s in m.samples
            if s.name.endswith("_total")
        )  # fmt: skip
        assert failed_after - failed_before >= provider.state.failures
