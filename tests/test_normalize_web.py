"""Web access logs (NCSA common/combined, IIS W3C) -> the ECS fields Sigma's web rules map to."""

import random
from typing import Any

import pytest

from soc.normalize.web import W3CLog, normalize_access_log, parse_access_log, parse_w3c
from tests.ecs_fields import ABSENT, assert_fields, field

RECEIVED = "2026-11-28T21:13:55.123456Z"


def access_event(line: str, **options: Any) -> dict[str, Any]:
    return normalize_access_log(line, event_id="ev-1", received_at=RECEIVED, **options)


# --- NCSA: a table of real-looking lines -----------------------------------------------------

LINES = [
    pytest.param(
        '203.0.113.7 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326',
        {
            "@timestamp": "2000-10-10T20:55:36.000000Z",
            "source.ip": "203.0.113.7",
            "user.name": "frank",
            "http.request.method": "GET",
            "url.original": "/apache_pb.gif",
            "url.path": "/apache_pb.gif",
            "url.query": ABSENT,
            "http.version": "1.0",
            "http.response.status_code": 200,
            "http.response.body.bytes": 2326,
            "http.request.referrer": ABSENT,
            "user_agent.original": ABSENT,
            "event.outcome": "success",
        },
        id="common",
    ),
    pytest.param(
        '113.161.10.20 - - [28/Nov/2026:10:00:00 +0700] "GET /index.php?id=1%27%20OR%201=1--'
        ' HTTP/1.1" 404 153 "-" "sqlmap/1.7.2#stable (https://sqlmap.org)"',
        {
            "@timestamp": "2026-11-28T03:00:00.000000Z",
            "source.ip": "113.161.10.20",
            "user.name": ABSENT,
            "http.request.method": "GET",
            "url.original": "/index.php?id=1%27%20OR%201=1--",
            "url.path": "/index.php",
            "url.query": "id=1%27%20OR%201=1--",
            "http.version": "1.1",
            "http.response.status_code": 404,
            "http.response.body.bytes": 153,
            "http.request.referrer": ABSENT,
            "user_agent.original": "sqlmap/1.7.2#stable (https://sqlmap.org)",
            "event.outcome": "failure",
        },
        id="combined-nginx-sqli",
    ),
    pytest.param(
        '2001:db8:85a3::8a2e:370:7334 - - [28/Nov/2026:10:00:00 +0000] "POST /wp-login.php'
        ' HTTP/2.0" 302 0 "https://sotttt.tinh.gov.vn/wp-login.php" "Mozilla/5.0 (X11; Linux'
        ' x86_64)" 0.012 "-"',
        {
            "source.ip": "2001:db8:85a3::8a2e:370:7334",
            "http.request.method": "POST",
            "url.path": "/wp-login.php",
            "http.version": "2.0",
            "http.response.status_code": 302,
            "http.response.body.bytes": 0,
            "http.request.referrer": "https://sotttt.tinh.gov.vn/wp-login.php",
            "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)",
            "network.forwarded_ip": ABSENT,
            "event.outcome": "success",
        },
        id="ipv6-request-time-empty-xff",
    ),
    pytest.param(
        '10.0.0.2 - - [28/Nov/2026:10:00:00 +0700] "GET /api/v1/users?page=2&q=a%20b HTTP/1.1"'
        ' 200 512 "-" "python-requests/2.31.0" 0.004 "198.51.100.23, 10.0.0.1"',
        {
            "source.ip": "10.0.0.2",
            "url.query": "page=2&q=a%20b",
            "network.forwarded_ip": "198.51.100.23",
            "related.ip": ["10.0.0.2", "198.51.100.23"],
            "user_agent.original": "python-requests/2.31.0",
        },
        id="nginx-extra-fields-xff",
    ),
    pytest.param(
        '198.51.100.9 - - [28/Nov/2026:10:00:01 +0700] "GET /search?q=\\"><script>alert(1)'
        '</script> HTTP/1.1" 400 0 "-" "Mozilla/5.0 \\"evil\\" agent"',
        {
            "url.original": '/search?q=\\"><script>alert(1)</script>',
            "url.query": 'q=\\"><script>alert(1)</script>',
            "user_agent.original": 'Mozilla/5.0 \\"evil\\" agent',
            "http.response.status_code": 400,
            "http.response.body.bytes": 0,
        },
        id="escaped-quotes-apache",
    ),
    pytest.param(
        '45.95.147.236 - - [28/Nov/2026:10:00:02 +0700] "\\x16\\x03\\x01\\x02\\x00\\x01\\x00'
        '\\x01\\xFC\\x03\\x03" 400 157 "-" "-"',
        {
            "source.ip": "45.95.147.236",
            "http.request.method": ABSENT,
            "url.original": ABSENT,
            "http.response.status_code": 400,
            "user_agent.original": ABSENT,
            "tags": ["http_request_invalid"],
            "event.outcome": "failure",
        },
        id="tls-hello-on-plain-port",
    ),
    pytest.param(
        '45.95.147.236 - - [28/Nov/2026:10:00:03 +0700] "-" 408 0 "-" "-"',
        {
            "http.request.method": ABSENT,
            "url.original": ABSENT,
            "http.response.status_code": 408,
            "tags": ABSENT,
        },
        id="empty-request",
    ),
    pytest.param(
        'cong.tinh.gov.vn:443 14.160.3.4 - - [28/Nov/2026:10:00:04 +0700] "GET'
        ' /.env HTTP/1.1" 404 196 "-" "curl/8.5.0"',
        {
            "url.domain": "cong.tinh.gov.vn",
            "url.port": 443,
            "source.ip": "14.160.3.4",
            "url.path": "/.env",
            "http.response.body.bytes": 196,
        },
        id="apache-vhost-combined",
    ),
    pytest.param(
        '14.160.3.4 - - [28/Nov/2026:10:00:05 +0700] "GET http://example.com:8080/x?y=1'
        ' HTTP/1.1" 200 - "-" "-"',
        {
            "url.original": "http://example.com:8080/x?y=1",
            "url.scheme": "http",
            "url.domain": "example.com",
            "url.port": 8080,
            "url.path": "/x",
            "url.query": "y=1",
            "http.response.body.bytes": ABSENT,
        },
        id="proxy-absolute-form-bytes-dash",
    ),
    pytest.param(
        'crawler.example.net - - [28/Nov/2026:10:00:06 +0700] "GET /a?  HTTP/1.1" 200 1 "-" "-"',
        {
            "source.ip": ABSENT,
            "source.domain": "crawler.example.net",
            "url.path": "/a",
            "url.query": " ",
        },
        id="hostname-client-odd-query",
    ),
    pytest.param(
        '10.1.1.1 - - [28/Nov/2026:10:00:07 +0700] "GET /legacy" 200 10',
        {"http.request.method": "GET", "url.path": "/legacy", "http.version": ABSENT},
        id="http-0.9-request",
    ),
    pytest.param(
        '10.1.1.1 - - [28/Nov/2026:10:00:07.250 +0530] "OPTIONS * HTTP/1.1" 200 0 "-" "-"',
        {
            "@timestamp": "2026-11-28T04:30:07.250000Z",
            "url.original": "*",
            "url.path": ABSENT,
        },
        id="fractional-time-and-asterisk",
    ),
]


@pytest.mark.parametrize(("line", "expected"), LINES)
def test_access_log_line_gives_exact_ecs_fields(line: str, expected: dict[str, Any]) -> None:
    event = access_event(line)
    assert_fields(event, expected)
    assert_fields(
        event,
        {
            "event.kind": "event",
            "event.category": ["web"],
            "event.type": ["access"],
            "event.module": "http",
            "event.dataset": "web.access",
            "event.id": "ev-1",
            "event.original": line,
            "error": ABSENT,
        },
    )


def test_common_line_has_everything_the_table_does_not_repeat() -> None:
    parsed = parse_access_log(
        '127.0.0.1 - - [28/Nov/2026:10:00:00 +0700] "GET / HTTP/1.1" 200 5 "-" "-"'
    )
    assert parsed == {
        "@timestamp": "2026-11-28T03:00:00.000000Z",
        "source": {"address": "127.0.0.1", "ip": "127.0.0.1"},
        "related": {"ip": ["127.0.0.1"]},
        "http": {
            "request": {"method": "GET"},
            "version": "1.1",
            "response": {"status_code": 200, "body": {"bytes": 5}},
        },
        "url": {"original": "/", "path": "/"},
    }


def test_server_and_module_come_from_the_caller() -> None:
    line = '10.0.0.1 - - [28/Nov/2026:10:00:00 +0700] "GET / HTTP/1.1" 200 5 "-" "-"'
    event = access_event(line, server="web01.tinh.gov.vn", module="nginx")
    assert_fields(event, {"host.name": "web01.tinh.gov.vn", "event.module": "nginx"})
    assert "host" not in access_event(line)


def test_trailing_newline_is_not_part_of_the_original() -> None:
    line = '10.0.0.1 - - [28/Nov/2026:10:00:00 +0700] "GET / HTTP/1.1" 200 5\r\n'
    assert access_event(line)["event"]["original"] == line.rstrip("\r\n")


def test_bad_time_falls_back_to_receipt_and_is_tagged() -> None:
    event = access_event('10.0.0.1 - - [31/Foo/2026:10:00:00 +0700] "GET / HTTP/1.1" 200 5')
    assert event["@timestamp"] == RECEIVED
    assert event["tags"] == ["access_log_bad_timestamp"]


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Nov 28 10:00:00 web01 sshd[1]: Accepted password for root",
        '10.0.0.1 - - [28/Nov/2026:10:00:00 +0700] "GET / HTTP/1.1" OK 5',
        "\x00\x01binary",
    ],
)
def test_line_that_is_not_an_access_log_is_kept_and_flagged(line: str) -> None:
    assert parse_access_log(line) is None
    event = access_event(line, server="web01")
    assert_fields(
        event,
        {
            "event.original": line,
            "event.id": "ev-1",
            "tags": ["access_log_unparsed"],
            "@timestamp": RECEIVED,
            "host.name": "web01",
        },
    )
    assert "access log" in event["error"]["message"]


def test_missing_receipt_time_means_now() -> None:
    event = normalize_access_log("junk", event_id="x")
    assert event["@timestamp"].endswith("Z")
    assert normalize_access_log("junk", event_id="x", received_at="bad")["@timestamp"] != "bad"


# --- the property: nothing it is given makes it raise ----------------------------------------

SEEDS = [line.values[0] for line in LINES]


def mutate(rng: random.Random, line: str) -> str:
    """Cut, duplicate, swap and splice characters that matter to the format."""
    chars = list(line)
    for _ in range(rng.randint(1, 6)):
        position = rng.randrange(len(chars) + 1)
        operation = rng.randrange(5)
        if operation == 0 and chars:
            del chars[min(position, len(chars) - 1)]
        elif operation == 1:
            chars.insert(position, rng.choice('"[]\\ -:/?%\x00\n\t\u00e9\ud800'))
        elif operation == 2 and chars:
            chars[min(position, len(chars) - 1)] = chr(rng.randrange(0x110000))
        elif operation == 3:
            chars[position:position] = list(rng.choice(SEEDS)[: rng.randrange(40)])
        else:
            chars = chars[:position]
    return "".join(chars)


def random_text(rng: random.Random) -> str:
    return rng.randbytes(rng.randrange(200)).decode("utf-8", "backslashreplace")


def test_two_thousand_mutated_and_random_lines_never_raise() -> None:
    rng = random.Random(20261128)
    for index in range(2000):
        line = mutate(rng, rng.choice(SEEDS)) if index % 4 else random_text(rng)
        event = normalize_access_log(line, event_id=f"m{index}", received_at=RECEIVED)
        assert event["event"]["original"] == line.rstrip("\r\n")
        assert event["event"]["id"] == f"m{index}"
        assert isinstance(event["@timestamp"], str)
        status = field(event, "http.response.status_code")
        assert status is ABSENT or isinstance(status, int)


# --- IIS W3C extended ---------------------------------------------------------------------

W3C = [
    "#Software: Microsoft Internet Information Services 10.0",
    "#Version: 1.0",
    "#Date: 2026-11-28 03:00:00",
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip"
    " cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken",
    "2026-11-28 03:00:01 10.0.0.5 GET /owa/auth/x.js cmd=whoami 443 - 203.0.113.7"
    " Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64) - 200 0 0 15",
    "2026-11-28 03:00:02 10.0.0.5 POST /ecp/DDI/DDIService.svc - 443 TINH\\nva 203.0.113.8"
    " python-requests/2.31.0 https://mail.tinh.gov.vn/ecp/ 500 0 0 1203",
    "#Fields: date time c-ip cs-method cs-uri-stem sc-status sc-bytes cs-bytes cs-host"
    " cs-version s-computername",
    "2026-11-28 03:05:00 2001:db8::9 GET /aspnet_client/shell.aspx 404 1245 310"
    " mail.tinh.gov.vn HTTP/1.1 EXCH01",
]


def test_w3c_fields_directive_decides_the_columns() -> None:
    events = list(parse_w3c(W3C))
    assert len(events) == 3
    first, second, third = events
    assert_fields(
        first,
        {
            "@timestamp": "2026-11-28T03:00:01.000000Z",
            "source.ip": "203.0.113.7",
            "destination.ip": "10.0.0.5",
            "destination.port": 443,
            "http.request.method": "GET",
            "url.path": "/owa/auth/x.js",
            "url.query": "cmd=whoami",
            "url.original": "/owa/auth/x.js?cmd=whoami",
            "user_agent.original": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            "http.request.referrer": ABSENT,
            "http.response.status_code": 200,
            "user.name": ABSENT,
            "event.duration": 15_000_000,
        },
    )
    assert_fields(
        second,
        {
            "url.query": ABSENT,
            "url.original": "/ecp/DDI/DDIService.svc",
            "user.name": "TINH\\nva",
            "http.request.referrer": "https://mail.tinh.gov.vn/ecp/",
            "http.response.status_code": 500,
        },
    )
    assert_fields(
        third,
        {
            "source.ip": "2001:db8::9",
            "url.path": "/aspnet_client/shell.aspx",
            "http.response.body.bytes": 1245,
            "http.request.body.bytes": 310,
            "url.domain": "mail.tinh.gov.vn",
            "http.version": "1.1",
            "host.name": "EXCH01",
        },
    )


def test_w3c_log_normalizes_data_lines_and_skips_directives() -> None:
    log = W3CLog()
    events = [
        log.normalize(line, event_id=f"w{n}", received_at=RECEIVED, server="iis01")
        for n, line in enumerate(W3C)
    ]
    assert [event is None for event in events] == [
        True,
        True,
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    event = events[4]
    assert event is not None
    assert_fields(
        event,
        {
            "event.module": "iis",
            "event.dataset": "web.access",
            "event.category": ["web"],
            "event.outcome": "success",
            "event.id": "w4",
            "event.original": W3C[4],
            "event.duration": 15_000_000,
            "host.name": "iis01",
        },
    )
    last = events[7]
    assert last is not None
    assert last["host"]["name"] == "iis01"  # the caller's server name wins over s-computername


def test_w3c_line_that_does_not_fit_the_columns_is_kept_and_flagged() -> None:
    log = W3CLog()
    log.normalize(W3C[3], event_id="d")
    event = log.normalize("2026-11-28 03:00:01 too few", event_id="x", received_at=RECEIVED)
    assert event is not None
    assert event["tags"] == ["access_log_unparsed"]
    assert event["error"]["message"] == "4 values for the 15 #Fields columns"
    assert event["@timestamp"] == RECEIVED
    assert log.normalize("   ", event_id="blank") is None


def test_w3c_data_before_any_fields_directive_uses_the_iis_default_columns() -> None:
    (event,) = parse_w3c([W3C[4]])
    assert event["url"]["path"] == "/owa/auth/x.js"
