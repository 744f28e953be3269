"""sudo lines -> ECS process/authentication events (Filebeat system.auth.sudo conventions)."""

from typing import Any

import pytest

from soc.normalize import NormalizeOptions, normalize
from tests.ecs_fields import ABSENT, assert_fields

COMMAND_RUN = {
    "event.action": "sudo_command",
    "event.category": ["process"],
    "event.type": ["start"],
    "event.outcome": "success",
}
DENIED = {"event.category": ["authentication"], "event.type": ["info"], "event.outcome": "failure"}


def make_record(data: str) -> dict[str, Any]:
    return {
        "id": "5d1e",
        "received_at": "2026-11-28T21:13:55.123456Z",
        "source": {"type": "syslog", "transport": "tcp", "peer": {"ip": "10.1.2.3", "port": 514}},
        "data": data,
    }


def sudo_event(message: str) -> dict[str, Any]:
    line = f"<85>Nov 28 04:14:15 web01 sudo: {message}"
    return normalize(make_record(line), NormalizeOptions())


def test_command_run_names_invoker_target_user_and_command() -> None:
    event = sudo_event("bob : TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/bash -c id")
    assert_fields(
        event,
        {
            **COMMAND_RUN,
            "event.module": "system",
            "event.dataset": "system.auth",
            "user.name": "bob",
            "user.effective.name": "root",
            "process.name": "sudo",
            "process.command_line": "/bin/bash -c id",
            "process.working_directory": "/home/bob",
            "system.auth.sudo": {
                "tty": "pts/0",
                "pwd": "/home/bob",
                "user": "root",
                "command": "/bin/bash -c id",
            },
            "related.user": ["bob", "root"],
        },
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "bob : COMMAND=/usr/bin/id",
            {"system.auth.sudo": {"command": "/usr/bin/id"}, "user.effective": ABSENT},
        ),
        (
            "bob : PWD=/home/bob ; USER=root ; COMMAND=/usr/bin/id",
            {"system.auth.sudo.tty": ABSENT, "process.command_line": "/usr/bin/id"},
        ),
        (
            "bob : TTY=pts/0 ; PWD=/home/bob ; USER=root ; ENV=LD_PRELOAD=/tmp/x.so ; "
            "COMMAND=/usr/bin/env",
            {
                "system.auth.sudo.env": "LD_PRELOAD=/tmp/x.so",
                "process.command_line": "/usr/bin/env",
            },
        ),
        (
            "bob : TTY=pts/1 ; PWD=/ ; USER=postgres ; GROUP=wheel ; COMMAND=/bin/id",
            {
                "system.auth.sudo.group": "wheel",
                "user.effective.name": "postgres",
                "user.effective.group.name": "wheel",
            },
        ),
        (
            "    bob : TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/ls",
            {"user.name": "bob", "process.command_line": "/bin/ls"},
        ),
        (
            "bob : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh -c echo a ; echo b",
            {
                "process.command_line": "/bin/sh -c echo a ; echo b",
                "system.auth.sudo.command": "/bin/sh -c echo a ; echo b",
            },
        ),
    ],
)
def test_command_line_variants_are_parsed(message: str, expected: dict[str, Any]) -> None:
    assert_fields(sudo_event(message), {**COMMAND_RUN, **expected})


@pytest.mark.parametrize(
    ("message", "action", "error"),
    [
        (
            "bob : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/bob ; USER=root ; "
            "COMMAND=/bin/ls",
            "sudo_auth_failure",
            "3 incorrect password attempts",
        ),
        (
            "bob : a password is required ; TTY=pts/0 ; PWD=/home/bob ; USER=root ; "
            "COMMAND=/bin/ls",
            "sudo_auth_failure",
            "a password is required",
        ),
        (
            "bob : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/ls",
            "sudo_not_in_sudoers",
            "user NOT in sudoers",
        ),
        (
            "bob : command not allowed ; TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/ls",
            "sudo_command_not_allowed",
            "command not allowed",
        ),
        (
            "bob : unknown user: nobody2 ; TTY=pts/0 ; PWD=/home/bob ; USER=nobody2 ; "
            "COMMAND=/bin/ls",
            "sudo_error",
            "unknown user: nobody2",
        ),
    ],
)
def test_refusals_are_failed_authentications_keeping_the_command(
    message: str, action: str, error: str
) -> None:
    assert_fields(
        sudo_event(message),
        {
            **DENIED,
            "event.action": action,
            "system.auth.sudo.error": error,
            "user.name": "bob",
            "process.command_line": "/bin/ls",
        },
    )


def test_pam_authentication_failure_names_the_user() -> None:
    event = sudo_event(
        "pam_unix(sudo:auth): authentication failure; logname=bob uid=1000 euid=0 tty=/dev/pts/0"
        " ruser=bob rhost=  user=bob"
    )
    assert_fields(
        event,
        {
            **DENIED,
            "event.action": "sudo_auth_failure",
            "user.name": "bob",
            "source": ABSENT,
            "related.user": ["bob"],
        },
    )


def test_pam_session_opened_names_invoker_and_target_with_ids() -> None:
    event = sudo_event(
        "pam_unix(sudo:session): session opened for user root(uid=0) by bob(uid=1000)"
    )
    assert_fields(
        event,
        {
            "event.action": "sudo_session_opened",
            "event.category": ["session"],
            "event.type": ["start"],
            "event.outcome": "success",
            "user.name": "bob",
            "user.id": "1000",
            "user.effective.name": "root",
            "user.effective.id": "0",
            "related.user": ["bob", "root"],
        },
    )


def test_pam_session_closed_names_the_session_user() -> None:
    event = sudo_event("pam_unix(sudo:session): session closed for user root")
    assert_fields(
        event,
        {
            "event.action": "sudo_session_closed",
            "event.type": ["end"],
            "user.name": "root",
            "user.effective": ABSENT,
        },
    )


@pytest.mark.parametrize(
    "message",
    [
        "unable to resolve host web01: Name or service not known",
        "bob : something sudo says without fields",
        "pam_unix(sudo:auth): conversation failed",
    ],
)
def test_unknown_sudo_messages_stay_plain_system_auth_events(message: str) -> None:
    assert_fields(
        sudo_event(message),
        {
            "event.dataset": "system.auth",
            "event.action": ABSENT,
            "user": ABSENT,
            "system": ABSENT,
            "message": message,
            "tags": [],
        },
    )
