"""sshd lines -> ECS authentication/session events (Filebeat system.auth.ssh conventions)."""

from typing import Any

import pytest

from soc.normalize import NormalizeOptions, normalize
from tests.ecs_fields import ABSENT, assert_fields

FAILED_LOGIN = {
    "event.action": "ssh_login",
    "event.outcome": "failure",
    "event.category": ["authentication"],
    "event.type": ["start"],
    "system.auth.ssh.event": "Failed",
}
ACCEPTED_LOGIN = {
    "event.action": "ssh_login",
    "event.outcome": "success",
    "event.category": ["authentication", "session"],
    "event.type": ["start"],
    "system.auth.ssh.event": "Accepted",
}
INVALID_USER = {
    "event.action": "ssh_invalid_user",
    "event.outcome": "failure",
    "event.category": ["authentication"],
    "event.type": ["info"],
    "system.auth.ssh.event": "Invalid",
    "system.auth.ssh.invalid_user": True,
}
SESSION_END = {
    "event.category": ["authentication", "session"],
    "event.type": ["end"],
    "event.outcome": ABSENT,
}


def make_record(data: str) -> dict[str, Any]:
    return {
        "id": "3f9a0c",
        "received_at": "2026-11-28T21:13:55.123456Z",
        "source": {"type": "syslog", "transport": "udp", "peer": {"ip": "10.1.2.3", "port": 514}},
        "data": data,
    }


def sshd_event(message: str, program: str = "sshd") -> dict[str, Any]:
    line = f"<38>Nov 28 04:14:15 web01 {program}[4242]: {message}"
    return normalize(make_record(line), NormalizeOptions())


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Failed password for root from 10.0.0.5 port 22 ssh2",
            {
                **FAILED_LOGIN,
                "system.auth.ssh.method": "password",
                "system.auth.ssh.invalid_user": False,
                "user.name": "root",
                "source.ip": "10.0.0.5",
                "source.port": 22,
                "related.ip": ["10.0.0.5"],
                "related.user": ["root"],
            },
        ),
        (
            "Failed password for invalid user admin from 10.0.0.5 port 55 ssh2",
            {
                **FAILED_LOGIN,
                "system.auth.ssh.method": "password",
                "system.auth.ssh.invalid_user": True,
                "user.name": "admin",
                "source.ip": "10.0.0.5",
                "source.port": 55,
            },
        ),
        (
            "Failed publickey for bob from 10.0.0.5 port 2222 ssh2: ED25519 SHA256:Zx9+/abc",
            {
                **FAILED_LOGIN,
                "system.auth.ssh.method": "publickey",
                "system.auth.ssh.signature": "ED25519 SHA256:Zx9+/abc",
                "user.name": "bob",
            },
        ),
        (
            "Failed none for invalid user x from 10.0.0.5 port 3 ssh2",
            {**FAILED_LOGIN, "system.auth.ssh.method": "none", "user.name": "x"},
        ),
        (
            "Failed keyboard-interactive/pam for root from 10.0.0.5 port 4 ssh2",
            {**FAILED_LOGIN, "system.auth.ssh.method": "keyboard-interactive/pam"},
        ),
        (
            "Accepted password for bob from 10.0.0.5 port 51234 ssh2",
            {
                **ACCEPTED_LOGIN,
                "system.auth.ssh.method": "password",
                "system.auth.ssh.invalid_user": False,
                "system.auth.ssh.signature": ABSENT,
                "user.name": "bob",
                "source.ip": "10.0.0.5",
                "source.port": 51234,
            },
        ),
        (
            "Accepted publickey for bob from 2001:db8::1 port 51234 ssh2: RSA SHA256:abcDEF123",
            {
                **ACCEPTED_LOGIN,
                "system.auth.ssh.method": "publickey",
                "system.auth.ssh.signature": "RSA SHA256:abcDEF123",
                "source.ip": "2001:db8::1",
                "related.ip": ["2001:db8::1"],
            },
        ),
        (
            "Accepted keyboard-interactive/pam for bob from 10.0.0.5 port 6 ssh2",
            {**ACCEPTED_LOGIN, "system.auth.ssh.method": "keyboard-interactive/pam"},
        ),
    ],
)
def test_login_attempts_are_ssh_login_with_user_source_and_method(
    message: str, expected: dict[str, Any]
) -> None:
    assert_fields(sshd_event(message), expected)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Invalid user admin from 10.0.0.5 port 41234",
            {**INVALID_USER, "user.name": "admin", "source.ip": "10.0.0.5", "source.port": 41234},
        ),
        (
            "Invalid user admin from 10.0.0.5",
            {**INVALID_USER, "user.name": "admin", "source.ip": "10.0.0.5", "source.port": ABSENT},
        ),
        (
            "Invalid user  from 10.0.0.5 port 41234",
            {**INVALID_USER, "user.name": ABSENT, "related.user": ABSENT, "source.ip": "10.0.0.5"},
        ),
    ],
)
def test_invalid_user_is_a_failed_authentication(message: str, expected: dict[str, Any]) -> None:
    assert_fields(sshd_event(message), expected)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Disconnected from invalid user admin 10.0.0.5 port 41234 [preauth]",
            {
                "event.action": "ssh_disconnect",
                "system.auth.ssh.event": "Disconnected",
                "system.auth.ssh.invalid_user": True,
                "user.name": "admin",
                "source.ip": "10.0.0.5",
                "source.port": 41234,
            },
        ),
        (
            "Disconnected from authenticating user root 10.0.0.5 port 22 [preauth]",
            {
                "event.action": "ssh_disconnect",
                "system.auth.ssh.invalid_user": False,
                "user.name": "root",
                "source.port": 22,
            },
        ),
        (
            "Disconnected from user bob 10.0.0.5 port 51234",
            {"event.action": "ssh_disconnect", "user.name": "bob", "source.ip": "10.0.0.5"},
        ),
        (
            "Disconnected from 10.0.0.5 port 41234",
            {
                "event.action": "ssh_disconnect",
                "system.auth.ssh.invalid_user": ABSENT,
                "user.name": ABSENT,
                "source.ip": "10.0.0.5",
                "source.port": 41234,
            },
        ),
        (
            "Received disconnect from 10.0.0.5 port 41234:11: Bye Bye [preauth]",
            {
                "event.action": "ssh_disconnect",
                "system.auth.ssh.event": "Disconnected",
                "system.auth.ssh.disconnect": {"code": 11, "reason": "Bye Bye"},
                "source.ip": "10.0.0.5",
                "source.port": 41234,
            },
        ),
        (
            "Received disconnect from 10.0.0.5: 11: disconnected by user",
            {
                "system.auth.ssh.disconnect": {"code": 11, "reason": "disconnected by user"},
                "source.ip": "10.0.0.5",
                "source.port": ABSENT,
            },
        ),
        (
            "Connection closed by authenticating user root 10.0.0.5 port 22 [preauth]",
            {
                "event.action": "ssh_connection_closed",
                "system.auth.ssh.event": "Closed",
                "system.auth.ssh.invalid_user": False,
                "user.name": "root",
                "source.ip": "10.0.0.5",
            },
        ),
        (
            "Connection closed by invalid user x 10.0.0.5 port 2 [preauth]",
            {
                "event.action": "ssh_connection_closed",
                "system.auth.ssh.invalid_user": True,
                "user.name": "x",
                "source.port": 2,
            },
        ),
        (
            "Connection closed by 10.0.0.5 port 41234 [preauth]",
            {"event.action": "ssh_connection_closed", "user.name": ABSENT, "source.ip": "10.0.0.5"},
        ),
        (
            "Connection reset by 10.0.0.5 port 22",
            {
                "event.action": "ssh_connection_reset",
                "system.auth.ssh.event": "Reset",
                "source.ip": "10.0.0.5",
                "source.port": 22,
            },
        ),
    ],
)
def test_disconnects_end_a_session_without_an_outcome(
    message: str, expected: dict[str, Any]
) -> None:
    assert_fields(sshd_event(message), {**SESSION_END, **expected})


def test_max_auth_attempts_is_a_failure_with_user_and_source() -> None:
    event = sshd_event(
        "error: maximum authentication attempts exceeded for root from 10.0.0.5 port 22 ssh2"
        " [preauth]"
    )
    assert_fields(
        event,
        {
            "event.action": "ssh_max_auth_attempts",
            "event.outcome": "failure",
            "event.category": ["authentication"],
            "system.auth.ssh.event": "MaxAuthTries",
            "system.auth.ssh.invalid_user": False,
            "user.name": "root",
            "source.ip": "10.0.0.5",
            "source.port": 22,
        },
    )


def test_missing_identification_string_is_a_network_connection() -> None:
    event = sshd_event("Did not receive identification string from 10.0.0.5 port 22")
    assert_fields(
        event,
        {
            "event.action": "ssh_no_identification",
            "event.category": ["network"],
            "event.type": ["connection"],
            "event.outcome": ABSENT,
            "system.auth.ssh.event": "NoIdentification",
            "source.ip": "10.0.0.5",
            "source.port": 22,
            "related.ip": ["10.0.0.5"],
        },
    )


def test_pam_authentication_failure_names_user_and_remote_host() -> None:
    event = sshd_event(
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser="
        " rhost=10.0.0.5  user=root"
    )
    assert_fields(
        event,
        {
            "event.action": "ssh_auth_failure",
            "event.outcome": "failure",
            "event.category": ["authentication"],
            "event.type": ["info"],
            "user.name": "root",
            "source.ip": "10.0.0.5",
            "source.port": ABSENT,
        },
    )


def test_pam_session_opened_names_the_logged_in_user() -> None:
    event = sshd_event("pam_unix(sshd:session): session opened for user bob(uid=1000) by (uid=0)")
    assert_fields(
        event,
        {
            "event.action": "ssh_session_opened",
            "event.category": ["session"],
            "event.type": ["start"],
            "user.name": "bob",
            "user.id": "1000",
            "user.effective": ABSENT,
        },
    )


def test_rsyslog_repeated_message_is_parsed_and_counted() -> None:
    event = sshd_event(
        "message repeated 3 times: [ Failed password for root from 10.0.0.5 port 22 ssh2]"
    )
    assert_fields(
        event,
        {
            **FAILED_LOGIN,
            "system.auth.ssh.repeated": 3,
            "user.name": "root",
            "source.ip": "10.0.0.5",
            "source.port": 22,
        },
    )


@pytest.mark.parametrize(
    ("message", "user"),
    [
        ("Failed password for invalid user a b c from 1.2.3.4 port 5 ssh2", "a b c"),
        ("Failed password for invalid user ${jndi:ldap://x}; from 1.2.3.4 port 5 ssh2", None),
        ('Invalid user o\'brien "x" from 1.2.3.4 port 5', 'o\'brien "x"'),
        ("Connection closed by invalid user a  b 1.2.3.4 port 5 [preauth]", "a  b"),
    ],
)
def test_odd_user_names_do_not_break_parsing(message: str, user: str | None) -> None:
    event = sshd_event(message)
    expected_user = user if user is not None else "${jndi:ldap://x};"
    assert_fields(event, {"user.name": expected_user, "source.ip": "1.2.3.4", "source.port": 5})


@pytest.mark.parametrize(
    ("message", "user"),
    [
        (
            "Failed password for invalid user x from 6.6.6.6 port 1 from 10.0.0.5 port 22 ssh2",
            "x from 6.6.6.6 port 1",
        ),
        ("Invalid user x from 6.6.6.6 port 1 from 10.0.0.5 port 22", "x from 6.6.6.6 port 1"),
        (
            "Connection closed by invalid user x 6.6.6.6 port 1 10.0.0.5 port 22 [preauth]",
            "x 6.6.6.6 port 1",
        ),
        ("Disconnected from invalid user x 6.6.6.6 port 1 10.0.0.5 port 22", "x 6.6.6.6 port 1"),
    ],
)
def test_user_name_cannot_spoof_the_source_address(message: str, user: str) -> None:
    assert_fields(
        sshd_event(message),
        {"user.name": user, "source.ip": "10.0.0.5", "source.port": 22, "related.ip": ["10.0.0.5"]},
    )


def test_host_name_peer_goes_to_source_domain_not_source_ip() -> None:
    event = sshd_event("Failed password for root from gw.example.vn port 22 ssh2")
    assert_fields(
        event,
        {
            "source.address": "gw.example.vn",
            "source.domain": "gw.example.vn",
            "source.ip": ABSENT,
            "related.ip": ABSENT,
        },
    )


def test_ipv4_mapped_ipv6_peer_is_stored_as_ipv4() -> None:
    event = sshd_event("Accepted password for bob from ::ffff:10.0.0.5 port 1 ssh2")
    assert_fields(event, {"source.address": "::ffff:10.0.0.5", "source.ip": "10.0.0.5"})


def test_out_of_range_port_is_left_out() -> None:
    event = sshd_event("Failed password for root from 10.0.0.5 port 99999 ssh2")
    assert_fields(event, {"source.ip": "10.0.0.5", "source.port": ABSENT})


def test_sshd_session_program_name_is_parsed_like_sshd() -> None:
    event = sshd_event("Failed password for root from 10.0.0.5 port 22 ssh2", "sshd-session")
    assert_fields(
        event,
        {
            **FAILED_LOGIN,
            "process.name": "sshd-session",
            "event.module": "system",
            "event.dataset": "system.auth",
        },
    )


def test_unknown_sshd_message_stays_a_plain_system_auth_event() -> None:
    event = sshd_event("Server listening on 0.0.0.0 port 22.")
    assert_fields(
        event,
        {
            "event.module": "system",
            "event.dataset": "system.auth",
            "event.action": ABSENT,
            "process.name": "sshd",
            "process.pid": 4242,
            "message": "Server listening on 0.0.0.0 port 22.",
            "tags": [],
            "error": ABSENT,
            "system": ABSENT,
        },
    )
