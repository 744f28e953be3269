"""Syslog headers (RFC 3164/5424 and what devices really send) -> the generic ECS event."""

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from soc.normalize import NormalizeOptions, normalize
from soc.normalize.programs import PROGRAMS, ProgramParser
from soc.normalize.syslog import BsdTimestamp, SyslogMessage, parse_syslog
from tests.ecs_fields import ABSENT, assert_fields

RECEIVED = "2026-11-28T21:13:55.123456Z"
OPTIONS = NormalizeOptions()


def make_record(data: str, received_at: str = RECEIVED, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "3f9a0c",
        "received_at": received_at,
        "source": {
            "type": "syslog",
            "transport": "udp",
            "peer": {"ip": "10.1.2.3", "port": 51514},
            "listener": "127.0.0.1:5514",
        },
        "data": data,
    }
    record.update(extra)
    return record


def event_for(data: str, received_at: str = RECEIVED, **extra: Any) -> dict[str, Any]:
    return normalize(make_record(data, received_at, **extra), OPTIONS)


# --- parse_syslog: RFC 5424 -------------------------------------------------------------------


def test_rfc5424_header_fields_structured_data_and_bom_are_parsed() -> None:
    parsed = parse_syslog(
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 8710 ID47"
        ' [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        '[examplePriority@32473 class="high"]'
        " \ufeffAn application event log entry..."
    )
    assert parsed == SyslogMessage(
        message="An application event log entry...",
        priority=165,
        timestamp=datetime(2003, 10, 11, 22, 14, 15, 3000, UTC),
        hostname="mymachine.example.com",
        appname="evntslog",
        procid="8710",
        msgid="ID47",
        version=1,
        structured_data={
            "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
            "examplePriority@32473": {"class": "high"},
        },
    )


def test_rfc5424_structured_data_escapes_are_undone_and_others_kept() -> None:
    parsed = parse_syslog(r'<13>1 - h a - - [x@1 q="say \"hi\"" b="a\\b" c="[1\]" d="\n"] m')
    assert parsed.structured_data == {"x@1": {"q": 'say "hi"', "b": "a\\b", "c": "[1]", "d": "\\n"}}
    assert parsed.message == "m"


def test_rfc5424_repeated_param_keeps_every_value() -> None:
    parsed = parse_syslog('<13>1 - h a - - [x@1 ip="1.1.1.1" ip="2.2.2.2"]')
    assert parsed.structured_data == {"x@1": {"ip": ["1.1.1.1", "2.2.2.2"]}}
    assert parsed.message == ""


def test_rfc5424_nil_values_are_none() -> None:
    parsed = parse_syslog("<14>1 - - - - - -")
    assert parsed == SyslogMessage(message="", priority=14, version=1)


def test_rfc5424_offset_and_fraction_are_kept_in_the_timestamp() -> None:
    parsed = parse_syslog("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %%")
    assert parsed.timestamp == datetime(2003, 8, 24, 12, 14, 15, 3, UTC)
    assert parsed.message == "%%"


def test_rfc5424_malformed_structured_data_keeps_the_rest_as_message() -> None:
    parsed = parse_syslog('<13>1 - h a - - [x@1 a="unterminated] msg')
    assert parsed.structured_data is None
    assert parsed.message == '[x@1 a="unterminated] msg'
    assert parsed.tags == ("syslog_bad_structured_data",)


def test_rfc5424_unparseable_timestamp_is_tagged() -> None:
    parsed = parse_syslog("<13>1 yesterday h a - - - msg")
    assert (parsed.timestamp, parsed.hostname, parsed.tags) == (
        None,
        "h",
        ("syslog_bad_timestamp",),
    )


# --- parse_syslog: RFC 3164 and relatives -----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            SyslogMessage(
                message="'su root' failed for lonvick on /dev/pts/8",
                priority=34,
                timestamp=BsdTimestamp(10, 11, 22, 14, 15),
                hostname="mymachine",
                appname="su",
            ),
        ),
        (
            "<38>Oct  1 02:03:04 web01 sshd[123]: Accepted password",
            SyslogMessage(
                message="Accepted password",
                priority=38,
                timestamp=BsdTimestamp(10, 1, 2, 3, 4),
                hostname="web01",
                appname="sshd",
                procid="123",
            ),
        ),
        (
            "<38>Oct 01 02:03:04 web01 sshd[123]:no space after colon",
            SyslogMessage(
                message="no space after colon",
                priority=38,
                timestamp=BsdTimestamp(10, 1, 2, 3, 4),
                hostname="web01",
                appname="sshd",
                procid="123",
            ),
        ),
        (
            "<13>Oct 11 22:14:15 host message without tag",
            SyslogMessage(
                message="message without tag",
                priority=13,
                timestamp=BsdTimestamp(10, 11, 22, 14, 15),
                hostname="host",
            ),
        ),
        (
            "<13>Oct 11 22:14:15 sshd[1]: error: no host here",
            SyslogMessage(
                message="error: no host here",
                priority=13,
                timestamp=BsdTimestamp(10, 11, 22, 14, 15),
                appname="sshd",
                procid="1",
            ),
        ),
        (
            "<13>Oct 11 22:14:15.250 fw postfix/smtpd[99]: connect",
            SyslogMessage(
                message="connect",
                priority=13,
                timestamp=BsdTimestamp(10, 11, 22, 14, 15, 250000),
                hostname="fw",
                appname="postfix/smtpd",
                procid="99",
            ),
        ),
        (
            "<13>2026-11-28T10:00:00.123+07:00 host app: msg",
            SyslogMessage(
                message="msg",
                priority=13,
                timestamp=datetime(2026, 11, 28, 3, 0, 0, 123000, UTC),
                hostname="host",
                appname="app",
            ),
        ),
        (
            "<189>123: Oct 11 22:14:15.123: %SYS-5-CONFIG_I: Configured from console",
            SyslogMessage(
                message="%SYS-5-CONFIG_I: Configured from console",
                priority=189,
                timestamp=BsdTimestamp(10, 11, 22, 14, 15, 123000),
            ),
        ),
        (
            "<189>45: *Oct 11 2026 22:14:15 UTC: %LINK-3-UPDOWN: Interface Gi0/1, changed state",
            SyslogMessage(
                message="%LINK-3-UPDOWN: Interface Gi0/1, changed state",
                priority=189,
                timestamp=datetime(2026, 10, 11, 22, 14, 15, tzinfo=UTC),
            ),
        ),
        (
            "<13>hello without header",
            SyslogMessage(message="hello without header", priority=13, tags=("syslog_no_header",)),
        ),
    ],
)
def test_rfc3164_variants_are_parsed(line: str, expected: SyslogMessage) -> None:
    assert parse_syslog(line) == expected


def test_line_without_pri_gets_user_notice_and_a_tag() -> None:
    parsed = parse_syslog("Oct 11 22:14:15 host sshd[1]: hello")
    assert (parsed.priority, parsed.hostname, parsed.appname, parsed.message, parsed.tags) == (
        13,
        "host",
        "sshd",
        "hello",
        ("syslog_no_pri",),
    )


@pytest.mark.parametrize("pri", ["<192>", "<999>", "<abc>", "<>", "<-1>"])
def test_bad_pri_is_tagged_and_the_rest_still_parsed(pri: str) -> None:
    parsed = parse_syslog(f"{pri}Oct 11 22:14:15 host app: hello")
    assert (parsed.priority, parsed.hostname, parsed.appname, parsed.message, parsed.tags) == (
        13,
        "host",
        "app",
        "hello",
        ("syslog_bad_pri",),
    )


def test_zero_padded_pri_is_accepted() -> None:
    assert parse_syslog("<013>Oct 11 22:14:15 host app: x").priority == 13


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\x00", "\n\x00"])
def test_trailing_framing_is_stripped(suffix: str) -> None:
    assert parse_syslog(f"<13>Oct 11 22:14:15 host app: hello{suffix}").message == "hello"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            "<<<garbage>>>",
            "no syslog header: expected '<PRI>' or a timestamp at the start of the line, "
            "got '<<<garbage>>>'",
        ),
        (
            "just some text",
            "no syslog header: expected '<PRI>' or a timestamp at the start of the line, "
            "got 'just some text'",
        ),
        ("", "no syslog header: empty line"),
        ("\r\n", "no syslog header: empty line"),
    ],
)
def test_lines_without_header_are_unparsed_with_a_reason(line: str, error: str) -> None:
    parsed = parse_syslog(line)
    assert (parsed.error, parsed.tags, parsed.priority) == (error, ("syslog_unparsed",), None)


# --- normalize: timestamps --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "received_at", "timestamp"),
    [
        # Asia/Ho_Chi_Minh is UTC+7 all year.
        ("<13>Oct 11 22:14:15 h a: x", RECEIVED, "2026-10-11T15:14:15.000000Z"),
        ("<13>Oct 11 03:00:00 h a: x", RECEIVED, "2026-10-10T20:00:00.000000Z"),
        ("<13>Oct 11 22:14:15.5 h a: x", RECEIVED, "2026-10-11T15:14:15.500000Z"),
        # Up to two days ahead of receipt is clock skew; beyond that it is last year's line.
        ("<13>Nov 30 10:00:00 h a: x", RECEIVED, "2026-11-30T03:00:00.000000Z"),
        ("<13>Dec  1 10:00:00 h a: x", RECEIVED, "2025-12-01T03:00:00.000000Z"),
        # December logs received in January.
        ("<13>Dec 31 23:59:59 h a: x", "2027-01-01T00:00:10Z", "2026-12-31T16:59:59.000000Z"),
        # A sender slightly ahead across New Year (received Dec 31 23:59:58 local time).
        ("<13>Jan  1 00:00:03 h a: x", "2026-12-31T16:59:58Z", "2026-12-31T17:00:03.000000Z"),
        # The year is the one received_at has in local time, not in UTC.
        ("<13>Jan  1 06:00:00 h a: x", "2026-12-31T23:30:00Z", "2026-12-31T23:00:00.000000Z"),
        ("<13>Feb 29 12:00:00 h a: x", "2028-03-01T00:00:00Z", "2028-02-29T05:00:00.000000Z"),
        ("<13>2026-11-28T10:00:00.123+07:00 h a: x", RECEIVED, "2026-11-28T03:00:00.123000Z"),
        ("<13>2026-11-28T10:00:00Z h a: x", RECEIVED, "2026-11-28T10:00:00.000000Z"),
        ("<13>2026-11-28T10:00:00 h a: x", RECEIVED, "2026-11-28T03:00:00.000000Z"),
        (
            "<13>1 2026-11-28T10:00:00.123456789-02:30 h a - - - x",
            RECEIVED,
            "2026-11-28T12:30:00.123456Z",
        ),
        # A Cisco clock that says it is in UTC is not taken as local time.
        ("<189>45: *Oct 11 22:14:15 UTC: %SYS-5-X: y", RECEIVED, "2026-10-11T22:14:15.000000Z"),
        ("<13>1 - h a - - - x", RECEIVED, RECEIVED),
        ("<13>no header at all", RECEIVED, RECEIVED),
    ],
)
def test_header_time_becomes_utc_timestamp(line: str, received_at: str, timestamp: str) -> None:
    event = event_for(line, received_at)
    assert (event["@timestamp"], event["event"]["ingested"]) == (timestamp, received_at)


def test_timezone_option_applies_to_zoneless_times() -> None:
    options = NormalizeOptions(timezone=ZoneInfo("Europe/Paris"))
    event = normalize(make_record("<13>Jul 14 12:00:00 h a: x"), options)
    assert event["@timestamp"] == "2026-07-14T10:00:00.000000Z"


def test_impossible_date_falls_back_to_received_at_with_a_tag() -> None:
    event = event_for("<13>Feb 29 12:00:00 h a: x")  # 2026 is not a leap year
    assert (event["@timestamp"], event["tags"]) == (RECEIVED, ["syslog_bad_timestamp"])


def test_invalid_received_at_is_replaced_by_now_and_tagged() -> None:
    before = datetime.now(UTC)
    event = event_for("<13>1 - h a - - - x", received_at="not a time")
    ingested = datetime.fromisoformat(event["event"]["ingested"])
    assert before - timedelta(seconds=1) <= ingested <= datetime.now(UTC)
    assert event["@timestamp"] == event["event"]["ingested"]
    assert event["tags"] == ["received_at_invalid"]


# --- normalize: event fields ------------------------------------------------------------------


def test_generic_line_becomes_a_complete_syslog_event() -> None:
    line = "<30>Nov 28 04:14:15 web01 systemd[1]: Started Session 12 of user bob.\n"
    assert normalize(make_record(line), OPTIONS) == {
        "@timestamp": "2026-11-27T21:14:15.000000Z",
        "ecs": {"version": "8.17.0"},
        "event": {
            "id": "3f9a0c",
            "kind": "event",
            "original": line,
            "ingested": RECEIVED,
            "created": RECEIVED,
            "module": "syslog",
            "dataset": "syslog",
        },
        "host": {"name": "web01"},
        "log": {
            "syslog": {
                "priority": 30,
                "facility": {"code": 3, "name": "daemon"},
                "severity": {"code": 6, "name": "informational"},
                "hostname": "web01",
                "appname": "systemd",
                "procid": "1",
            },
            "source": {"address": "10.1.2.3:51514"},
        },
        "process": {"name": "systemd", "pid": 1},
        "message": "Started Session 12 of user bob.",
        "tags": [],
    }


def test_rfc5424_event_carries_msgid_version_and_structured_data() -> None:
    event = event_for('<165>1 2026-11-28T10:00:00+07:00 fw01 app abc ID47 [x@1 k="v"] hello')
    assert_fields(
        event,
        {
            "log.syslog.version": "1",
            "log.syslog.msgid": "ID47",
            "log.syslog.procid": "abc",
            "log.syslog.structured_data": {"x@1": {"k": "v"}},
            "log.syslog.facility.name": "local4",
            "log.syslog.severity.name": "notice",
            "process.name": "app",
            "process.pid": ABSENT,
            "host.name": "fw01",
            "message": "hello",
        },
    )


@pytest.mark.parametrize(
    ("priority", "facility", "severity"),
    [
        (0, "kern", "emergency"),
        (9, "user", "alert"),
        (18, "mail", "critical"),
        (35, "auth", "error"),
        (44, "syslog", "warning"),
        (85, "authpriv", "notice"),
        (104, "security", "emergency"),
        (120, "solaris-cron", "emergency"),
        (191, "local7", "debug"),
    ],
)
def test_priority_is_split_into_named_facility_and_severity(
    priority: int, facility: str, severity: str
) -> None:
    event = event_for(f"<{priority}>Oct 11 22:14:15 h a: x")
    assert event["log"]["syslog"]["facility"] == {"code": priority >> 3, "name": facility}
    assert event["log"]["syslog"]["severity"] == {"code": priority & 7, "name": severity}


@pytest.mark.parametrize(
    "line", ["<13>1 2026-11-28T10:00:00Z - app - - - x", "<13>Oct 11 22:14:15 - app: x"]
)
def test_missing_hostname_falls_back_to_the_peer_ip(line: str) -> None:
    assert event_for(line)["host"] == {"name": "10.1.2.3"}


def test_ipv6_peer_address_is_bracketed() -> None:
    record = make_record("<13>Oct 11 22:14:15 h a: x")
    record["source"]["peer"] = {"ip": "2001:db8::2", "port": 514}
    assert normalize(record, OPTIONS)["log"]["source"] == {"address": "[2001:db8::2]:514"}


def test_non_numeric_procid_gives_no_pid() -> None:
    event = event_for("<13>Oct 11 22:14:15 h app[worker-1]: x")
    assert event["process"] == {"name": "app"}
    assert event["log"]["syslog"]["procid"] == "worker-1"


def test_collector_extras_become_organization_tags_and_original_bytes() -> None:
    event = event_for(
        "<13>Oct 11 22:14:15 h a: caf\\xe9",
        organization={"id": "so-tttt", "name": "Sở TT&TT"},
        flags=["invalid_utf8", "truncated", "invalid_utf8"],
        data_b64="PDEzPk9jdCAxMSAyMjoxNDoxNSBoIGE6IGNhZuk=",
    )
    assert_fields(
        event,
        {
            "organization": {"id": "so-tttt", "name": "Sở TT&TT"},
            "tags": ["invalid_utf8", "truncated"],
            "soc.original_b64": "PDEzPk9jdCAxMSAyMjoxNDoxNSBoIGE6IGNhZuk=",
            "message": "caf\\xe9",
        },
    )


@pytest.mark.parametrize("data", ["<<<garbage>>>", "", "\\x00\\xff\\xfe binary", "   "])
def test_unparseable_line_keeps_original_and_explains_why(data: str) -> None:
    event = event_for(data)
    assert_fields(
        event,
        {
            "event.original": data,
            "event.id": "3f9a0c",
            "event.dataset": "syslog",
            "message": data,
            "@timestamp": RECEIVED,
            "host.name": "10.1.2.3",
            "tags": ["syslog_unparsed"],
            "log.syslog": ABSENT,
            "process": ABSENT,
        },
    )
    assert event["error"]["message"].startswith("no syslog header: ")


def test_non_string_id_and_bytes_data_are_coerced_to_text() -> None:
    record = make_record("", id=42)
    record["data"] = b"<13>Oct 11 22:14:15 h a: caf\xe9"
    event = normalize(record, OPTIONS)
    assert_fields(
        event,
        {
            "event.id": "42",
            "event.original": "<13>Oct 11 22:14:15 h a: caf\\xe9",
            "message": "caf\\xe9",
        },
    )


def test_missing_data_yields_an_unparsed_empty_event() -> None:
    record = make_record("")
    del record["data"]
    assert_fields(
        normalize(record, OPTIONS),
        {"event.original": "", "message": "", "tags": ["syslog_unparsed"]},
    )


def test_record_that_is_not_a_mapping_still_yields_a_tagged_event() -> None:
    event = normalize(None, OPTIONS)  # type: ignore[arg-type]
    assert_fields(
        event,
        {"event.kind": "event", "tags": ["normalize_failed"], "event.original": ABSENT},
    )
    assert event["error"]["message"] == "normalize failed: AttributeError"


def test_hostile_mapping_is_survived() -> None:
    class Hostile(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            raise RuntimeError(key)

    event = normalize(Hostile(make_record("<13>Oct 11 22:14:15 h a: x")), OPTIONS)
    assert event["tags"] == ["normalize_failed"]
    assert event["@timestamp"].endswith("Z")


def test_failure_event_keeps_what_it_can_read() -> None:
    class BrokenSource(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            if key == "source":
                raise RuntimeError(key)
            return super().get(key, default)

    event = normalize(BrokenSource(make_record("<13>Oct 11 22:14:15 h a: x")), OPTIONS)
    assert_fields(
        event,
        {
            "event.id": "3f9a0c",
            "event.original": "<13>Oct 11 22:14:15 h a: x",
            "@timestamp": RECEIVED,
            "tags": ["normalize_failed"],
            "error.message": "normalize failed: RuntimeError",
        },
    )


def test_failing_program_parser_keeps_the_syslog_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(message: str, event: dict[str, Any]) -> None:
        raise ValueError("bug")

    monkeypatch.setitem(PROGRAMS, "crashy", ProgramParser("system", "system.auth", explode))
    event = event_for("<13>Oct 11 22:14:15 h crashy[7]: x")
    assert_fields(
        event,
        {
            "process.pid": 7,
            "host.name": "h",
            "event.dataset": "system.auth",
            "tags": ["program_parse_failed"],
            "error.message": "program parser failed: ValueError: bug",
        },
    )


# --- property: anything in, an event out ------------------------------------------------------

VALID_LINES = (
    b"<34>Oct 11 22:14:15 mymachine sshd[123]: Failed password for root from 10.0.0.5 port 22 ssh2",
    b"<86>Oct  1 02:03:04 web01 sudo:  bob : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id",
    b'<165>1 2003-10-11T22:14:15.003Z h app 1 ID47 [x@1 a="\\"b\\]"] \xef\xbb\xbfmsg',
    b"<189>123: *Oct 11 2026 22:14:15.123 UTC: %SYS-5-CONFIG_I: Configured",
    b"<13>2026-11-28T10:00:00.123+07:00 host sshd-session[9]: Accepted publickey for a from"
    b" 2001:db8::1 port 5 ssh2: RSA SHA256:x",
)


def random_line(rng: random.Random) -> bytes:
    """Random bytes, or a valid line cut short and/or with random bytes spliced in."""
    if rng.random() < 0.4:
        return rng.randbytes(rng.randint(0, 300))
    line = bytearray(rng.choice(VALID_LINES))
    if rng.random() < 0.5:
        del line[rng.randint(0, len(line)) :]
    for _ in range(rng.randint(0, 4)):
        at = rng.randint(0, len(line))
        line[at:at] = rng.randbytes(rng.randint(1, 8))
    return bytes(line[:300])


def test_random_input_never_raises_and_keeps_original_and_id() -> None:
    rng = random.Random(1)
    for number in range(2000):
        data = random_line(rng).decode("utf-8", "backslashreplace")
        record = make_record(data, id=f"id-{number}")
        event = normalize(record, OPTIONS)
        assert event["event"]["original"] == data
        assert event["event"]["id"] == f"id-{number}"
        assert isinstance(event["tags"], list)
        assert event["@timestamp"].endswith("Z")
        orjson.dumps(event)  # every event must serialize for the bus and the store


def test_naive_and_offset_received_at_are_accepted() -> None:
    offset = timezone(timedelta(hours=7))
    received = datetime(2026, 11, 29, 4, 13, 55, tzinfo=offset).isoformat()
    assert event_for("<13>Oct 11 22:14:15 h a: x", received)["@timestamp"] == (
        "2026-10-11T15:14:15.000000Z"
    )
    assert event_for("<13>Oct 11 22:14:15 h a: x", "2026-11-28T21:13:55")["tags"] == []
