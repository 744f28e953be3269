"""Properties of every parser: given arbitrary text, bytes or JSON, `normalize` returns one
event without reaching its last-resort handler, keeps the original line exactly (and the exact
bytes of invalid UTF-8 via data_b64), and the event serializes for the bus and the store."""

import base64
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soc.normalize import NormalizeOptions, normalize
from soc.normalize.programs import PROGRAMS

OPTIONS = NormalizeOptions()
PROPERTY = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Tags set only when a parser itself failed: a property holds only if none ever appears.
CRASH_TAGS = {"normalize_failed", "windows_normalize_failed", "program_parse_failed"}
LINE_FORMATS = [None, "syslog", "nginx", "apache", "web", "iis", "auditd", "plain", "bogus"]
JSON_FORMATS = ["ecs", "json", "suricata", "zeek", "windows"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
# Keys the parsers look for, so that generated objects reach deep into each parser.
KNOWN_KEYS = st.sampled_from(
    [
        "event_type", "timestamp", "src_ip", "dest_port", "proto", "alert", "flow", "dns", "http",
        "tls", "fileinfo", "ts", "uid", "id.orig_h", "id.resp_p", "_path", "query", "answers",
        "TTLs", "conn_state", "status_code", "version", "note", "auth_success", "Event", "System",
        "EventData", "winlog", "@timestamp", "event", "message", "organization", "soc", "tags",
    ]
)  # fmt: skip
json_objects = st.dictionaries(KNOWN_KEYS | st.text(max_size=8), json_values, max_size=8)


def record(data: str, kind: str | None, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "prop-1",
        "received_at": "2026-11-28T03:00:00Z",
        "source": {"type": "agent", "peer": {"ip": "10.0.0.1", "port": 1}},
        "organization": {"id": "so-x"},
        "data": data,
    }
    if kind is not None:
        raw["format"] = kind
    raw.update(extra)
    return raw


def check(data: str, kind: str | None, **extra: Any) -> dict[str, Any]:
    event = normalize(record(data, kind, **extra), OPTIONS)
    assert event["event"]["original"] == data
    assert event["event"]["id"] == "prop-1"
    assert event["organization"] == {"id": "so-x"}
    assert not CRASH_TAGS & set(event.get("tags", ()))
    orjson.dumps(event)  # what the bus and the stores do with it
    return event


@PROPERTY
@given(st.text(max_size=300), st.sampled_from(LINE_FORMATS + JSON_FORMATS))
def test_any_text_in_any_format_is_kept(data: str, kind: str | None) -> None:
    check(data, kind)


@PROPERTY
@given(st.binary(max_size=300), st.sampled_from(LINE_FORMATS + JSON_FORMATS))
def test_any_bytes_keep_their_exact_value(raw: bytes, kind: str | None) -> None:
    data = raw.decode("utf-8", "backslashreplace")
    b64 = base64.b64encode(raw).decode()
    event = check(data, kind, data_b64=b64, flags=["invalid_utf8"])
    assert base64.b64decode(event["soc"]["original_b64"]) == raw


@PROPERTY
@given(json_objects, st.sampled_from(JSON_FORMATS))
def test_any_json_object_in_a_json_format_is_kept(document: dict[str, Any], kind: str) -> None:
    check(orjson.dumps(document).decode(), kind)


@PROPERTY
@given(json_values, st.sampled_from(JSON_FORMATS))
def test_any_json_value_in_a_json_format_is_kept(value: Any, kind: str) -> None:
    check(orjson.dumps(value).decode(), kind)


@PROPERTY
@given(
    st.sampled_from(sorted({*PROGRAMS, "postfix/smtpd", "postfix/qmgr", "postfix-out/smtp"})),
    st.text(max_size=200),
)
def test_any_message_from_every_syslog_program_is_kept(program: str, message: str) -> None:
    line = f"<86>Nov 28 10:00:00 host01 {program}[123]: {message}"
    event = check(line, None)
    assert event["process"]["name"] == program


PROGRAM_WORDS = st.sampled_from(
    [
        "Failed", "Accepted", "password", "for", "invalid", "user", "from", "port", "ssh2",
        "pam_unix(su:auth):", "pam_unix(cron:session):", "session", "opened", "by", "(uid=0)",
        "authentication", "failure;", "ruser=", "rhost=", "user=", "COMMAND=", " ; ", "TTY=",
        "(root)", "CMD", "REPLACE", "(", ")", "FAILED", "SU", "(to", "root)", "on", "+", "-",
        "connect", "disconnect", "unknown[1.2.3.4]", "[", "]", ":", "warning:", "SASL", "reject:",
        "RCPT", "NOQUEUE:", "3F2A81C0B1:", "to=<a@b>,", "relay=x[1.1.1.1]:25,", "status=sent",
        "client=", "sasl_username=", "imap-login:", "Login:", "user=<", ">", "rip=", "lip=",
        "Disconnected", "(auth failed,", "pam(bob,1.2.3.4):", "unknown", "Info:", "=", ",",
    ]
)  # fmt: skip


@PROPERTY
@given(
    st.sampled_from(["sshd", "sudo", "su", "CRON", "crontab", "postfix/smtpd", "dovecot"]),
    st.lists(PROGRAM_WORDS | st.text(max_size=6), max_size=25),
)
def test_near_miss_program_messages_are_kept(program: str, words: list[str]) -> None:
    line = f"<86>Nov 28 10:00:00 host01 {program}[9]: {' '.join(words)}"
    check(line, None)


AUDIT_PARTS = st.sampled_from(
    [
        "type=SYSCALL", "type=EXECVE", "type=PROCTITLE", "type=USER_LOGIN", "msg=audit(",
        "1764298800.123", ":", "42", "):", "a0=", "41424344", "proctitle=", "00", "msg='",
        "'", '"', "acct=", "res=failed", "success=yes", "pid=", "uid=4294967295", "arch=c000003e",
        "syscall=59", "\x1d", "SYSCALL=execve", "addr=", "::1", "node=", "=",
    ]
)  # fmt: skip


@PROPERTY
@given(st.lists(AUDIT_PARTS | st.text(max_size=6), max_size=25))
def test_near_miss_audit_records_are_kept(parts: list[str]) -> None:
    check(" ".join(parts), "auditd")


@PROPERTY
@given(json_objects, json_objects)
def test_arbitrary_vouched_fields_never_break_the_event(
    document: dict[str, Any], fields: dict[str, Any]
) -> None:
    event = check(orjson.dumps(document).decode(), "json", fields=fields)
    assert event["event"]["id"] == "prop-1"


ENVELOPE_KEYS = ("id", "received_at", "data", "source", "organization", "flags", "fields")


@PROPERTY
@given(
    st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(ENVELOPE_KEYS, json_values),
    ),
    st.sampled_from(LINE_FORMATS + JSON_FORMATS),
)
def test_any_envelope_values_give_an_event(envelope: dict[str, Any], kind: str | None) -> None:
    raw = dict(envelope)
    if kind is not None:
        raw["format"] = kind
    event = normalize(raw, OPTIONS)
    data = raw.get("data")
    expected = data if isinstance(data, str) else None
    if expected is not None:
        assert event["event"]["original"] == expected
    assert not CRASH_TAGS & set(event.get("tags", ()))
    assert all(isinstance(tag, str) for tag in event.get("tags", ()))
    orjson.dumps(event)
