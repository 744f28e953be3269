"""Notifications: routing, templates, the window that prevents floods, the outbox, each channel's
request format against local fakes, token refresh, the delivery log API and `soc notify test`."""

from __future__ import annotations

import asyncio
import email
import json
import subprocess
import sys
import time
from datetime import datetime
from email.message import Message as MailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from soc.api.app import create_app
from soc.config import ConfigError, NotifyParamConfig, NotifyRouteConfig
from soc.notify.api import attach
from soc.notify.channels import zns_phone
from soc.notify.models import DeliveryError
from soc.notify.outbox import PARKED, PENDING, SENT
from soc.notify.routing import Router, validate_notify
from soc.notify.templates import notice_from_incident, render_text, zns_template_data
from soc.store.sqlite import SqliteStore
from tests.notify_fakes import (
    BOT_TOKEN,
    RECIPIENTS,
    FakeProvider,
    FakeSmtp,
    channels_config,
    incident_doc,
    incident_record,
    make_certificate,
    route_to_all,
)
from tests.notify_harness import Clock, make_config, start, wait_until

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def provider() -> Any:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path)


@pytest.fixture
def smtp(certificate: tuple[Path, Path]) -> Any:
    with FakeSmtp(*certificate) as fake:
        yield fake


def _local(hour: int, minute: int = 0, day: int = 30) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=ZONE)  # 30 Nov 2026 is a Monday


# Routing


def test_routes_match_on_severity_agency_rule_tag_and_time_of_day() -> None:
    def route(**kw: Any) -> NotifyRouteConfig:
        recipients = ({"channel": "zalo", "to": kw.pop("to")},)
        from soc.config import NotifyRecipientConfig

        return NotifyRouteConfig(
            recipients=tuple(NotifyRecipientConfig(**r) for r in recipients), **kw
        )

    router = Router(
        [
            route(name="critical", min_severity="critical", to="duty"),
            route(name="agency", min_severity="medium", agencies=("so-tttt",), to="it-head"),
            route(name="rule", min_severity="low", rules=("ssh-brute",), to="ssh-team"),
            route(name="tag", min_severity="low", tags=("vip",), to="vip-desk"),
            route(name="office", min_severity="low", hours="08:00-17:30", days=("mon",), to="day"),
            route(name="night", min_severity="low", hours="22:00-06:00", to="night"),
        ]
    )
    doc = incident_doc("i1", 3)  # high, agency so-tttt, rule ssh-brute, no tags

    def to(change: str, moment: datetime, **changes: Any) -> set[str]:
        changed = incident_doc("i1", 3, **changes)
        if "agency" in changes:
            changed["organization"]["id"] = changes["agency"]
        return {t.recipient for t in router.targets(changed if changes else doc, change, moment)}

    assert to("created", _local(9)) == {"it-head", "ssh-team", "day"}
    assert to("created", _local(23)) == {"it-head", "ssh-team", "night"}
    assert to("created", _local(3)) == {"it-head", "ssh-team", "night"}
    assert to("created", _local(9, day=29)) == {"it-head", "ssh-team"}  # Sunday
    assert "duty" in to("created", _local(9), severity="critical")
    assert "vip-desk" in to("created", _local(9), tags=["vip"])
    assert to("created", _local(12), severity="informational") == set()
    # A change the routes do not ask for reaches nobody.
    assert to("commented", _local(9)) == set()


def test_a_recipient_named_by_two_routes_gets_one_message(tmp_path: Path) -> None:
    channels = [{"name": "zalo", "type": "zalo_oa"}]
    config = make_config(
        tmp_path, channels, [route_to_all(channels), route_to_all(channels, name="again")]
    )
    router = Router(config.notify.routes)
    assert len(router.targets(incident_doc("i1", 1), "created", _local(9))) == 1


def test_bad_notify_configuration_is_refused_with_the_key_named(tmp_path: Path) -> None:
    channels = [{"name": "zalo", "type": "zalo_oa"}]
    wrong = [
        ({"routes": [{"recipients": [{"channel": "mail", "to": "x"}]}]}, "no channel named"),
        ({"routes": [{"min_severity": "urgent"}]}, "min_severity"),
        ({"routes": [{"hours": "8-17"}]}, "hours"),
        ({"routes": [{"changes": ["deleted"]}]}, "changes"),
        ({"channels": [{"name": "x", "type": "sms"}]}, "type"),
        ({"channels": [{"name": "h", "type": "webhook"}]}, "secret"),
        ({"routes": [{"recipients": [{"channel": "zalo"}]}]}, r"recipients\[0\]\.to"),
        ({"channels": [{"name": "m", "type": "email", "base_url": "smtp.example:25"}]}, "smtp"),
        ({"channels": [{"name": "m", "type": "email", "base_url": "smtp://x"}]}, "sender"),
    ]
    for settings, named in wrong:
        merged = {"channels": channels, "routes": [], **settings}
        # Refused when the configuration is loaded, as a wrong key anywhere else is.
        with pytest.raises(ConfigError, match=named):
            make_config(tmp_path, merged.pop("channels"), merged.pop("routes"))
    validate_notify(make_config(tmp_path, channels, []).notify)
    with pytest.raises(ConfigError, match="template_params"):
        make_config(tmp_path, [{"name": "z", "template_params": "title"}], [])


# Templates


def test_messages_are_vietnamese_by_default_english_on_request_with_a_console_link() -> None:
    doc = incident_doc("abc123", 4)
    vi = notice_from_incident(
        doc, kind="new", language="vi", console_url="https://soc/", new_alerts=4
    )
    en = notice_from_incident(
        doc, kind="new", language="en", console_url="https://soc", new_alerts=4
    )
    text_vi, text_en = render_text(vi, ZONE, 2000), render_text(en, ZONE, 2000)
    assert "Sự cố mới" in text_vi and "Mức độ: cao" in text_vi
    assert "New incident" in text_en and "Severity: high" in text_en
    assert text_vi.endswith("https://soc/#/incidents/abc123")
    assert text_en.endswith("https://soc/#/incidents/abc123")
    # Times are shown in the province's zone: 01:00 UTC is 08:00 in Hà Nội.
    assert "08:00 29/11/2026" in text_vi


def test_long_texts_are_cut_to_the_channel_limit_and_keep_the_link() -> None:
    doc = incident_doc("abc123", 4, title="Ư" * 5000)
    doc["related"]["hosts"] = [f"host-{i:04d}.stttt.example.gov.vn" for i in range(500)]
    notice = notice_from_incident(
        doc, kind="new", language="vi", console_url="https://soc", new_alerts=1
    )
    for limit in (2000, 4096, 120):
        text = render_text(notice, ZONE, limit)
        assert len(text) <= limit
        assert text.endswith("https://soc/#/incidents/abc123")
    params = (
        NotifyParamConfig("title", "title", 30),
        NotifyParamConfig("link", "url", 200),
        NotifyParamConfig("count", "alert_count", 10),
    )
    data = zns_template_data(notice, params, ZONE)
    assert len(data["title"]) == 30 and data["title"].endswith("…")
    assert data == {"title": data["title"], "link": "https://soc/#/incidents/abc123", "count": "4"}


def test_zns_phone_numbers_take_zalos_form_and_bad_ones_are_refused_for_good() -> None:
    assert zns_phone("0912 345 678") == "84912345678"
    assert zns_phone("+84912345678") == "84912345678"
    assert zns_phone("84.912.345.678") == "84912345678"
    with pytest.raises(DeliveryError) as refused:
        zns_phone("12345")
    assert refused.value.retryable is False


# The window, the outbox and every channel


async def test_ten_thousand_alerts_on_one_incident_give_one_message_and_one_digest_per_channel(
    tmp_path: Path, provider: FakeProvider, smtp: FakeSmtp, certificate: tuple[Path, Path]
) -> None:
    channels = channels_config(provider.url, smtp, certificate[0])
    config = make_config(tmp_path, channels, [route_to_all(channels)], window_seconds=600)
    clock = Clock()
    running = await start(config, clock)
    try:
        records = [incident_record("created", incident_doc("inc-1", 1))]
        records += [incident_record("grown", incident_doc("inc-1", n)) for n in range(2, 10_002)]
        await running.publish(records)
        await running.drained()

        def delivered() -> int:
            http = sum(len(provider.state.of(k)) for k in ("zalo_oa", "zalo_zns", "telegram"))
            return http + len(provider.state.of("webhook")) + len(smtp.messages)

        await wait_until(lambda: delivered() == 5)
        clock.shift += 601  # the window ends: what it held goes out as one digest
        await wait_until(lambda: delivered() == 10)
        clock.shift += 601  # a window with nothing held sends nothing
        await asyncio.sleep(2.5)  # more than two ticks of the digest clock
        assert running.notifier.outbox.depth() == 0
    finally:
        await running.close()
    assert provider.state.violations == []
    assert delivered() == 10
    texts = [r.body["message"]["text"] for r in provider.state.of("zalo_oa")]
    assert texts[0].startswith("[SOC] Sự cố mới (cao)")
    assert "Thêm 10000 cảnh báo" in texts[1] and "tổng 10001" in texts[1]
    assert "Tổng hợp sự cố" in provider.state.of("telegram")[1].body["text"]
    zns = provider.state.of("zalo_zns")
    assert [z.body["template_data"]["count"] for z in zns] == ["1", "10001"]
    assert zns[0].body["phone"] == "84912345678"
    hooks = provider.state.of("webhook")
    assert [h.body["notice"]["kind"] for h in hooks] == ["new", "digest"]
    assert hooks[1].body["notice"]["new_alerts"] == 10_000
    mails = [email.message_from_bytes(raw) for _, _, raw in smtp.messages]
    assert [m["To"] for m in mails] == [RECIPIENTS["mail"]] * 2
    _check_mail(mails[1], "Tổng hợp sự cố")


def _check_mail(mail: MailMessage, headline: str) -> None:
    assert mail.is_multipart()
    parts = {part.get_content_type(): part for part in mail.walk()}
    text = parts["text/plain"].get_payload(decode=True).decode("utf-8")
    html = parts["text/html"].get_payload(decode=True).decode("utf-8")
    assert headline in text and "https://soc.stttt.example.gov.vn/#/incidents/" in text
    assert "<a href='https://soc.stttt.example.gov.vn/#/incidents/" in html
    assert mail["Message-ID"].endswith("@soc.notify>")


async def test_a_replayed_batch_enqueues_nothing_twice(
    tmp_path: Path, provider: FakeProvider
) -> None:
    channels = channels_config(provider.url, None, None)
    config = make_config(tmp_path, channels, [route_to_all(channels)], window_seconds=1)
    clock = Clock()
    running = await start(config, clock)
    try:
        records = [incident_record("created", incident_doc(f"inc-{i}", 1)) for i in range(20)]
        await running.publish(records)
        await running.drained()
        await wait_until(lambda: len(provider.state.received) == 80)
        # The same records again (a consumer that crashed before committing), later on.
        clock.shift += 5
        await running.publish(records)
        await running.drained()
        await wait_until(lambda: running.notifier.outbox.depth() == 0)
        items, total = running.notifier.outbox.search(agencies=None, limit=1000)
    finally:
        await running.close()
    assert total == 80 and {m.status for m in items} == {SENT}
    assert len(provider.state.received) == 80
    assert len(set(provider.state.keys("webhook"))) == 20


async def test_a_zalo_error_in_a_200_answer_is_not_an_acceptance(
    tmp_path: Path, provider: FakeProvider
) -> None:
    channels = channels_config(provider.url, None, None)[:1]
    config = make_config(tmp_path, channels, [route_to_all(channels)])
    provider.state.failure_modes = ("zalo_error",)
    provider.state.fail_until = float("inf")
    running = await start(config)
    try:
        await running.publish([incident_record("created", incident_doc("inc-1", 1))])
        await wait_until(lambda: provider.state.failures >= 3)
        (message,) = running.notifier.outbox.search(agencies=None)[0]
        assert message.status == PENDING and "error -32" in (message.last_error or "")
        provider.state.fail_until = 0
        await wait_until(lambda: len(provider.state.received) == 1)
    finally:
        await running.close()
    assert provider.state.received[0].kind == "zalo_oa"


async def test_an_expired_zalo_token_is_refreshed_and_the_new_pair_survives_a_restart(
    tmp_path: Path, provider: FakeProvider
) -> None:
    channels = channels_config(provider.url, None, None)[:2]
    config = make_config(tmp_path, channels, [route_to_all(channels)])
    # Zalo has moved on: the configured access token is no longer valid.
    provider.state.access_token, provider.state.token_generation = "zalo-access-x", 0
    running = await start(config)
    try:
        await running.publish([incident_record("created", incident_doc("inc-1", 1))])
        await wait_until(lambda: len(provider.state.received) == 2)
    finally:
        await running.close()
    # OA and ZNS belong to one Zalo app: one refresh serves both (the refresh token is
    # single-use), and the pair is kept in the outbox.
    assert provider.state.refreshes == 1
    assert {r.headers["access_token"] for r in provider.state.received} == {"zalo-access-1"}
    # After a restart the kept pair is used: no refresh, no rejected request.
    requests = provider.state.requests
    running = await start(config)
    try:
        await running.publish([incident_record("created", incident_doc("inc-2", 1))])
        await wait_until(lambda: len(provider.state.received) == 4)
    finally:
        await running.close()
    assert provider.state.refreshes == 1 and provider.state.requests == requests + 2


async def test_a_refused_request_is_parked_at_once_and_an_admin_can_retry_it(
    tmp_path: Path, provider: FakeProvider
) -> None:
    channels = channels_config(provider.url, None, None)
    hook = next(c for c in channels if c["name"] == "hook")
    hook["secret"] = "not-the-receivers-key"  # the receiver refuses the signature: HTTP 400
    config = make_config(tmp_path, [hook], [route_to_all([hook])])
    running = await start(config)
    store = SqliteStore(tmp_path / "api.db")
    await store.open()
    app = create_app(store, "t0ken")
    attach(app, running.notifier.outbox, config.notify)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://soc",
        headers={"Authorization": "Bearer t0ken"},
    )
    try:
        await running.publish([incident_record("created", incident_doc("inc-1", 1))])
        await wait_until(lambda: running.notifier.outbox.counts().get("hook", {}).get(PARKED) == 1)
        log = (await client.get("/api/v1/notifications/deliveries?status=parked")).json()
        assert log["total"] == 1
        parked = log["items"][0]
        assert parked["attempts"] == 1 and "http_4xx" in parked["last_error"]
        assert parked["notice"]["incident_id"] == "inc-1"
        listed = (await client.get("/api/v1/notifications/channels")).json()
        assert listed == [
            {
                "name": "hook",
                "type": "webhook",
                "base_url": f"{provider.url}/hooks",
                "messages": {"parked": 1},
            }
        ]
        # The operator fixes the key; the retry goes through.
        running.notifier.channels["hook"].config = hook_config_with_secret(config, "hook")
        answer = await client.post(f"/api/v1/notifications/deliveries/{parked['id']}/retry")
        assert answer.status_code == 200 and answer.json()["status"] == PENDING
        running.notifier.dispatcher.wake()
        await wait_until(lambda: len(provider.state.of("webhook")) == 1)
        again = await client.post(f"/api/v1/notifications/deliveries/{parked['id']}/retry")
        assert again.status_code == 409
        missing = await client.post("/api/v1/notifications/deliveries/nope/retry")
        assert missing.status_code == 404
        anonymous = await client.get(
            "/api/v1/notifications/deliveries", headers={"Authorization": ""}
        )
        assert anonymous.status_code == 401
    finally:
        await client.aclose()
        await store.close()
        await running.close()
    assert provider.state.violations == ["/hooks/soc: bad X-SOC-Signature"]


def hook_config_with_secret(config: Any, name: str) -> Any:
    import dataclasses

    from tests.notify_fakes import WEBHOOK_SECRET

    channel = next(c for c in config.notify.channels if c.name == name)
    return dataclasses.replace(channel, secret=WEBHOOK_SECRET)


async def test_email_over_implicit_tls_with_authentication(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    with FakeSmtp(*certificate, implicit=True) as smtps:
        channels = channels_config("http://unused", smtps, certificate[0])
        mail = [c for c in channels if c["name"] == "mail"]
        config = make_config(tmp_path, mail, [route_to_all(mail, language="en")])
        running = await start(config)
        try:
            await running.publish([incident_record("created", incident_doc("inc-1", 2))])
            await wait_until(lambda: len(smtps.messages) == 1)
        finally:
            await running.close()
        sender, rcpts, raw = smtps.messages[0]
    assert sender == "soc@stttt.example.gov.vn" and rcpts == [RECIPIENTS["mail"]]
    message = email.message_from_bytes(raw)
    _check_mail(message, "New incident")
    assert message["Subject"].startswith("[SOC] New incident (high)")


def test_email_refuses_a_relay_without_tls_unless_asked_by_name(tmp_path: Path) -> None:
    from soc.config import NotifyChannelConfig
    from soc.notify.channels import make_channel

    mail = NotifyChannelConfig(name="mail", type="email", base_url="smtp.example:25", sender="a@b")
    with pytest.raises(ConfigError, match="smtp\\+insecure"):
        make_channel(mail, _NoTokens(), ZONE)
    plain = NotifyChannelConfig(
        name="mail", type="email", base_url="smtp+insecure://relay.local", sender="a@b"
    )
    assert make_channel(plain, _NoTokens(), ZONE).type == "email"


class _NoTokens:
    def load_token(self, channel: str) -> None:
        return None

    def save_token(self, channel: str, token: Any, now: float) -> None:
        return None


def test_backoff_is_full_jitter_under_a_growing_cap(tmp_path: Path) -> None:
    from soc.notify.service import Dispatcher

    config = make_config(tmp_path, [], [], backoff_ms=1000, backoff_max_ms=8000)
    dispatcher = Dispatcher(None, {}, config.notify)  # type: ignore[arg-type]
    for attempts, ceiling in ((0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0)):
        delays = [dispatcher.backoff(attempts) for _ in range(2000)]
        assert min(delays) >= 0 and max(delays) <= ceiling
        # Full jitter spreads retries over the whole interval, not around its end.
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_notify_test_command_prints_the_providers_answer(
    tmp_path: Path, provider: FakeProvider
) -> None:
    channels = channels_config(provider.url, None, None)
    config_file = tmp_path / "soc.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "notify": {"channels": channels, "routes": [route_to_all(channels)]},
            }
        )
    )

    def soc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "soc", "--config", str(config_file), *args],
            capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
        )  # fmt: skip

    sent = soc("notify", "test", "tg", "--language", "en")
    assert sent.returncode == 0, sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["accepted"] is True and answer["provider_id"] == "7"
    assert "The SOC notification channel works." in provider.state.of("telegram")[0].body["text"]
    assert BOT_TOKEN not in sent.stdout
    provider.state.fail_until = float("inf")
    failed = soc("notify", "test", "zalo")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["reason"] == "http_5xx"
    unknown = soc("notify", "test", "sms")
    assert unknown.returncode == 2 and "no channel named 'sms'" in unknown.stderr


async def test_the_delivery_log_shows_a_user_their_agencies_only_and_retry_needs_an_admin(
    tmp_path: Path, provider: FakeProvider
) -> None:
    from soc.api.auth import Principal, require_principal
    from soc.store.base import Scope

    channels = channels_config(provider.url, None, None)
    hook = next(c for c in channels if c["name"] == "hook")
    config = make_config(tmp_path, [hook], [route_to_all([hook])])
    provider.state.fail_until = float("inf")
    running = await start(config)
    store = SqliteStore(tmp_path / "api.db")
    await store.open()
    app = create_app(store, "t0ken")
    attach(app, running.notifier.outbox, config.notify)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://soc")
    as_user: dict[str, Principal] = {}
    app.dependency_overrides[require_principal] = lambda: as_user["principal"]
    try:
        other = incident_doc("inc-2", 1)
        other["organization"]["id"] = "ubnd-huyen"
        await running.publish(
            [
                incident_record("created", incident_doc("inc-1", 1)),
                incident_record("created", other),
            ]
        )
        await wait_until(lambda: running.notifier.outbox.depth() == 2)
        as_user["principal"] = Principal("it-head", Scope(frozenset({"ubnd-huyen"})), "admin")
        mine = (await client.get("/api/v1/notifications/deliveries")).json()
        assert mine["total"] == 1 and mine["items"][0]["incident_id"] == "inc-2"
        theirs = next(
            m for m in running.notifier.outbox.search(agencies=None)[0] if m.agency == "so-tttt"
        )
        hidden = await client.post(f"/api/v1/notifications/deliveries/{theirs.id}/retry")
        assert hidden.status_code == 404
        as_user["principal"] = Principal("analyst", Scope.everything(), "analyst")
        refused = await client.post(f"/api/v1/notifications/deliveries/{theirs.id}/retry")
        assert refused.status_code == 403
        everything = (await client.get("/api/v1/notifications/deliveries?status=pending")).json()
        assert everything["total"] == 2
    finally:
        await client.aclose()
        await store.close()
        await running.close()


async def test_a_status_change_in_the_window_is_told_at_its_end_and_old_state_is_purged(
    tmp_path: Path, provider: FakeProvider
) -> None:
    channels = [c for c in channels_config(provider.url, None, None) if c["name"] == "tg"]
    route = route_to_all(channels, changes=["created", "grown", "status"])
    config = make_config(tmp_path, channels, [route])
    clock = Clock()
    running = await start(config, clock)
    try:
        await running.publish([incident_record("created", incident_doc("inc-1", 1))])
        await wait_until(lambda: len(provider.state.received) == 1)
        acknowledged = incident_doc("inc-1", 1, status="acknowledged")
        await running.publish([incident_record("status", acknowledged)])
        await running.drained()
        assert running.notifier.outbox.depth() == 0  # held: the window is open
        clock.shift += 601
        await wait_until(lambda: len(provider.state.received) == 2)
        outbox = running.notifier.outbox
        # The provider has it; the outbox marks it sent a moment later (marks are batched).
        await wait_until(lambda: outbox.depth() == 0)
        assert outbox.purge_sent(clock() + 1) == 2
        with outbox.transaction() as tx:
            assert tx.window("inc-1", "tg", RECIPIENTS["tg"]) is not None  # still open
        assert outbox.purge_sent(clock() + 700) == 0
        with outbox.transaction() as tx:
            assert tx.window("inc-1", "tg", RECIPIENTS["tg"]) is None
    finally:
        await running.close()
    told = provider.state.of("telegram")[1].body["text"]
    assert told.startswith("[SOC] Sự cố thay đổi (cao)")
    assert "chuyển sang trạng thái đã tiếp nhận" in told


def test_a_providers_wait_request_is_honoured_from_header_or_telegram_body() -> None:
    from soc.notify.channels import _retry_after

    header = httpx.Response(429, headers={"Retry-After": "12"})
    telegram = httpx.Response(
        429, json={"ok": False, "error_code": 429, "parameters": {"retry_after": 7}}
    )
    assert _retry_after(header) == 12.0
    assert _retry_after(telegram) == 7.0
    assert _retry_after(httpx.Response(429, text="slow down")) is None


def test_a_message_says_what_the_latest_alert_found() -> None:
    """The incident keeps its latest alert's details (the rule's, rendered); the message shows
    them, and a ZNS template may ask for them. An alert without details changes nothing."""
    from datetime import UTC, datetime

    from soc.incidents.model import add_alerts

    doc = incident_doc("abc123", 4)
    said = {
        "@timestamp": "2026-11-29T01:05:00.000000Z",
        "rule": {"id": "r1", "name": "Suricata Alert - High Severity", "level": "high"},
        "message": "ET EXPLOIT Apache log4j RCE Attempt ¦ 203.0.113.5:40000 -> 10.0.0.8:80",
    }
    plain = {**said, "message": "Suricata Alert - High Severity"}
    now = datetime(2026, 11, 29, 1, 6, tzinfo=UTC)
    folded = add_alerts(add_alerts(doc, [said], now), [plain], now)
    assert folded["incident"]["last_message"] == said["message"]
    for language, label in (("vi", "Chi tiết"), ("en", "Details")):
        notice = notice_from_incident(
            folded, kind="new", language=language, console_url="https://soc", new_alerts=1
        )
        assert f"{label}: {said['message']}" in render_text(notice, ZONE, 2000)
        params = (NotifyParamConfig("detail", "details", 40),)
        assert zns_template_data(notice, params, ZONE)["detail"].startswith("ET EXPLOIT Apache")
    bare = notice_from_incident(
        doc, kind="new", language="en", console_url="https://soc", new_alerts=1
    )
    assert "Details:" not in render_text(bare, ZONE, 2000)


async def test_sends_run_at_most_concurrency_ahead_of_a_slow_disk(
    tmp_path: Path, provider: FakeProvider
) -> None:
    """A send the provider accepted is sent again after a crash until its outcome is written.
    While the outbox's writes stall, sending goes on only until `concurrency` outcomes wait for
    the disk, so a crash can repeat at most twice `concurrency` messages."""
    concurrency = 2
    channels = [c for c in channels_config(provider.url, None, None) if c["name"] == "hook"]
    config = make_config(tmp_path, channels, [route_to_all(channels)], concurrency=concurrency)
    running = await start(config)
    written: set[str] = set()
    record = running.notifier.outbox.record

    def stalled(outcomes: Any) -> None:
        time.sleep(0.3)  # a disk slow to sync (the dispatcher runs this in a thread)
        record(outcomes)
        written.update(outcome.message_id for outcome in outcomes)

    running.notifier.outbox.record = stalled  # type: ignore[method-assign]
    ahead = 0
    try:
        await running.publish(
            [incident_record("created", incident_doc(f"inc-{n}", 1)) for n in range(40)]
        )
        while len(written) < 40:
            accepted = {r.key for r in provider.state.of("webhook")}
            ahead = max(ahead, len(accepted - written))
            await asyncio.sleep(0.01)
    finally:
        await running.close()
    assert len(provider.state.of("webhook")) == 40
    assert 0 < ahead <= 2 * concurrency
