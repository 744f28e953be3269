"""su and cron over syslog -> ECS (module system, datasets system.auth and system.cron)."""

from typing import Any

import pytest

from soc.normalize import NormalizeOptions, normalize
from tests.ecs_fields import ABSENT, assert_fields


def syslog_event(program: str, message: str) -> dict[str, Any]:
    line = f"<86>Nov 28 04:14:15 web01 {program}: {message}"
    record = {"id": "c1", "received_at": "2026-11-28T21:13:55Z", "data": line}
    return normalize(record, NormalizeOptions())


@pytest.mark.parametrize(
    ("message", "outcome", "tty"),
    [
        ("Successful su for root by bob", "success", ABSENT),
        ("FAILED su for root by bob", "failure", ABSENT),
        ("(to root) bob on pts/0", "success", "pts/0"),
        ("FAILED SU (to root) bob on pts/0", "failure", "pts/0"),
        ("+ pts/0 bob:root", "success", "pts/0"),
        ("- pts/0 bob:root", "failure", "pts/0"),
    ],
)
def test_su_names_who_switched_to_whom(message: str, outcome: str, tty: object) -> None:
    event = syslog_event("su[2001]", message)
    assert_fields(
        event,
        {
            "event.module": "system",
            "event.dataset": "system.auth",
            "event.action": "su_switch_user",
            "event.outcome": outcome,
            "user.name": "bob",
            "user.effective.name": "root",
            "system.auth.su.tty": tty,
            "process.name": "su",
            "process.pid": 2001,
        },
    )


def test_su_pam_failure_puts_the_asker_in_user_name() -> None:
    event = syslog_event(
        "su",
        "pam_unix(su:auth): authentication failure; logname=bob uid=1000 euid=0 tty=pts/1"
        " ruser=bob rhost=  user=root",
    )
    assert_fields(
        event,
        {
            "event.action": "su_auth_failure",
            "event.outcome": "failure",
            "user.name": "bob",
            "user.effective.name": "root",
        },
    )


def test_su_session_opened_reads_pam_session() -> None:
    event = syslog_event(
        "su[2002]", "pam_unix(su:session): session opened for user root(uid=0) by bob(uid=1000)"
    )
    assert_fields(
        event,
        {"event.action": "su_session_opened", "user.name": "bob", "user.effective.name": "root"},
    )


@pytest.mark.parametrize("program", ["CRON[6101]", "cron[6101]", "crond[6101]"])
def test_cron_job_names_owner_and_command(program: str) -> None:
    event = syslog_event(program, "(www-data) CMD (php /var/www/html/cron.php >/dev/null 2>&1)")
    assert_fields(
        event,
        {
            "event.dataset": "system.cron",
            "event.action": "cron_job",
            "event.category": ["process"],
            "user.name": "www-data",
            "process.command_line": "php /var/www/html/cron.php >/dev/null 2>&1",
            "system.cron.command": "php /var/www/html/cron.php >/dev/null 2>&1",
            "process.name": program.partition("[")[0],
        },
    )


@pytest.mark.parametrize(
    ("message", "action", "user"),
    [
        ("(root) REPLACE (root)", "crontab_change", "root"),
        ("(bob) LIST (bob)", "crontab_view", "bob"),
        ("(bob) BEGIN EDIT (bob)", "crontab_view", "bob"),
        ("(*system*) RELOAD (/etc/crontab)", "cron_reload", ABSENT),
    ],
)
def test_crontab_changes_are_configuration_events(message: str, action: str, user: object) -> None:
    event = syslog_event("crontab[6100]", message)
    assert_fields(event, {"event.action": action, "user.name": user, "message": message})


def test_unknown_cron_message_keeps_only_the_generic_fields() -> None:
    event = syslog_event("CRON[1]", "(CRON) INFO (pidfile fd = 3)")
    assert_fields(event, {"event.action": ABSENT, "system": ABSENT, "event.dataset": "system.cron"})
