"""postfix and dovecot over syslog -> ECS (module system, dataset system.mail)."""

from typing import Any

import pytest

from soc.normalize import NormalizeOptions, normalize
from tests.ecs_fields import ABSENT, assert_fields


def mail_event(program: str, message: str) -> dict[str, Any]:
    line = f"<22>Nov 28 04:14:15 mail01 {program}: {message}"
    record = {"id": "m1", "received_at": "2026-11-28T21:13:55Z", "data": line}
    return normalize(record, NormalizeOptions())


def test_smtpd_connect_names_the_client() -> None:
    event = mail_event("postfix/smtpd[3001]", "connect from mx.partner.vn[198.51.100.25]")
    assert_fields(
        event,
        {
            "event.module": "system",
            "event.dataset": "system.mail",
            "event.action": "smtp_connect",
            "source.ip": "198.51.100.25",
            "source.domain": "mx.partner.vn",
            "process.name": "postfix/smtpd",
        },
    )


def test_smtpd_disconnect_with_failed_auth_counters() -> None:
    event = mail_event(
        "postfix/submission/smtpd[3002]",
        "disconnect from unknown[203.0.113.50] ehlo=1 auth=0/1 rset=1 quit=1 commands=3/4",
    )
    assert_fields(
        event,
        {
            "event.action": "smtp_disconnect",
            "source.ip": "203.0.113.50",
            "source.domain": ABSENT,
            "postfix.auth_failed": True,
            "postfix.commands.auth": "0/1",
        },
    )


def test_sasl_authentication_failure_is_a_failed_login() -> None:
    event = mail_event(
        "postfix/smtpd[3003]",
        "warning: unknown[203.0.113.50]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
    )
    assert_fields(
        event,
        {
            "event.action": "smtp_auth_failure",
            "event.category": ["authentication", "email"],
            "event.outcome": "failure",
            "source.ip": "203.0.113.50",
            "postfix.sasl_method": "LOGIN",
        },
    )


def test_reject_names_stage_code_reason_and_addresses() -> None:
    event = mail_event(
        "postfix/smtpd[3004]",
        "NOQUEUE: reject: RCPT from unknown[203.0.113.51]: 554 5.7.1 <x@gmail.com>: Relay access"
        " denied; from=<spam@bad.example> to=<x@gmail.com> proto=ESMTP helo=<WIN-ABC>",
    )
    assert_fields(
        event,
        {
            "event.action": "smtp_reject",
            "event.outcome": "failure",
            "postfix.stage": "RCPT",
            "postfix.response_code": 554,
            "postfix.dsn": "5.7.1",
            "postfix.reason": "<x@gmail.com>: Relay access denied",
            "postfix.helo": "WIN-ABC",
            "email.from.address": ["spam@bad.example"],
            "email.to.address": ["x@gmail.com"],
            "source.ip": "203.0.113.51",
        },
    )


def test_client_line_with_sasl_user_is_a_successful_login() -> None:
    event = mail_event(
        "postfix/smtpd[3005]",
        "3F2A81C0B1: client=unknown[203.0.113.52], sasl_method=PLAIN, sasl_username=ketoan",
    )
    assert_fields(
        event,
        {
            "event.action": "smtp_auth_success",
            "event.outcome": "success",
            "user.name": "ketoan",
            "postfix.queue_id": "3F2A81C0B1",
        },
    )


@pytest.mark.parametrize(
    ("status", "outcome"), [("sent", "success"), ("bounced", "failure"), ("deferred", "unknown")]
)
def test_delivery_status_sets_the_outcome(status: str, outcome: str) -> None:
    event = mail_event(
        "postfix/smtp[3006]",
        f"3F2A81C0B1: to=<chi@example.com>, relay=mx.example.com[93.184.216.34]:25,"
        f" delay=1.4, delays=0.1/0/0.6/0.7, dsn=2.0.0, status={status} (250 2.0.0 Ok: queued)",
    )
    assert_fields(
        event,
        {
            "event.action": "mail_delivery",
            "event.outcome": outcome,
            "postfix.status": status,
            "postfix.response": "250 2.0.0 Ok: queued",
            "email.to.address": ["chi@example.com"],
            "destination.ip": "93.184.216.34",
            "destination.port": 25,
            "destination.domain": "mx.example.com",
        },
    )


def test_qmgr_queued_and_removed() -> None:
    queued = mail_event(
        "postfix/qmgr[900]",
        "3F2A81C0B1: from=<vanthu@so.gov.vn>, size=20480, nrcpt=3 (queue active)",
    )
    assert_fields(
        queued,
        {
            "event.action": "mail_queued",
            "email.from.address": ["vanthu@so.gov.vn"],
            "postfix.size": "20480",
            "postfix.nrcpt": "3",
        },
    )
    removed = mail_event("postfix/qmgr[900]", "3F2A81C0B1: removed")
    assert_fields(removed, {"event.action": "mail_removed", "postfix.queue_id": "3F2A81C0B1"})


def test_dovecot_login_names_user_and_both_ends() -> None:
    event = mail_event(
        "dovecot",
        "imap-login: Login: user=<ketoan@so.gov.vn>, method=PLAIN, rip=203.0.113.60,"
        " lip=10.20.0.25, mpid=4242, TLS, session=<k3Jw8S8Zr>",
    )
    assert_fields(
        event,
        {
            "event.action": "dovecot_login",
            "event.outcome": "success",
            "user.name": "ketoan@so.gov.vn",
            "source.ip": "203.0.113.60",
            "destination.ip": "10.20.0.25",
            "dovecot.service": "imap-login",
            "dovecot.method": "PLAIN",
            "dovecot.session_id": "k3Jw8S8Zr",
        },
    )


@pytest.mark.parametrize(
    "message",
    [
        "pop3-login: Disconnected (auth failed, 3 attempts in 14 secs): user=<admin>, method=PLAIN,"
        " rip=203.0.113.61, lip=10.20.0.25, session=<a1>",
        "imap-login: Info: Aborted login (auth failed, 1 attempts in 2 secs): user=<admin>,"
        " method=LOGIN, rip=203.0.113.61, lip=10.20.0.25, TLS, session=<a2>",
    ],
)
def test_dovecot_failed_logins(message: str) -> None:
    event = mail_event("dovecot[700]", message)
    assert_fields(
        event,
        {
            "event.action": "dovecot_login",
            "event.outcome": "failure",
            "user.name": "admin",
            "source.ip": "203.0.113.61",
            "dovecot.attempts": 3 if "3 attempts" in message else 1,
        },
    )


def test_dovecot_auth_process_failure_and_own_service_tag() -> None:
    event = mail_event("dovecot", "auth-worker(812): pam(bob,203.0.113.62,<Xy12>): unknown user")
    assert_fields(
        event,
        {
            "event.action": "dovecot_auth_failure",
            "user.name": "bob",
            "source.ip": "203.0.113.62",
            "dovecot.passdb": "pam",
        },
    )
    tagged = mail_event(
        "imap-login",
        "Login: user=<bob>, method=PLAIN, rip=203.0.113.63, lip=10.20.0.25, session=<s>",
    )
    assert_fields(tagged, {"event.action": "dovecot_login", "source.ip": "203.0.113.63"})
