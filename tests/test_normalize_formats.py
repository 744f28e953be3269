"""The raw record's `format` picks the parser; every format gets the same envelope (id,
original, receipt, agency, vouched fields), and records that do not fit are kept and counted."""

from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from soc.detect.routing import RouteTable, load_routes
from soc.detect.rules import RuleSet, load_rules
from soc.normalize import NormalizeOptions, normalize
from tests.ecs_fields import ABSENT, assert_fields, field

RULES = Path(__file__).resolve().parent.parent / "rules"
OPTIONS = NormalizeOptions()
RECEIVED = "2026-11-28T03:00:00.000000Z"

ACCESS = (
    '198.51.100.20 - - [28/Nov/2026:10:00:01 +0700] "GET /dichvucong/tra-cuu?ma=1%27%20OR%201=1--'
    ' HTTP/1.1" 200 812 "-" "Mozilla/5.0"'
)
EVE_DNS = {
    "timestamp": "2026-11-28T10:00:00.000000+0700",
    "event_type": "dns",
    "src_ip": "10.0.0.7",
    "src_port": 53000,
    "dest_ip": "10.0.0.1",
    "dest_port": 53,
    "proto": "UDP",
    "dns": {"type": "query", "id": 7, "rrname": "c2.example", "rrtype": "A"},
}
ZEEK_CONN = {
    "ts": 1764298800.25,
    "uid": "C1a2b3",
    "id.orig_h": "203.0.113.99",
    "id.orig_p": 40000,
    "id.resp_h": "10.10.0.5",
    "id.resp_p": 22,
    "proto": "tcp",
    "conn_state": "REJ",
    "orig_pkts": 1,
    "orig_ip_bytes": 44,
    "resp_pkts": 1,
    "resp_ip_bytes": 40,
}
WINLOGBEAT = {
    "@timestamp": "2026-11-28T03:00:00.000Z",
    "winlog": {
        "channel": "Security",
        "event_id": "4625",
        "computer_name": "dc01.so.gov.vn",
        "record_id": 99,
        "event_data": {"TargetUserName": "admin", "IpAddress": "203.0.113.5", "LogonType": "3"},
    },
}


def record(data: str, kind: str | None, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "rec-1",
        "received_at": RECEIVED,
        "source": {"type": "agent", "id": "web01-agent", "peer": {"ip": "10.2.0.8", "port": 443}},
        "organization": {"id": "so-ttt"},
        "data": data,
    }
    if kind is not None:
        raw["format"] = kind
    raw.update(extra)
    return raw


def event_for(data: str, kind: str | None, **extra: Any) -> dict[str, Any]:
    return normalize(record(data, kind, **extra), OPTIONS)


def failures(kind: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "soc_normalize_failures_total", {"format": kind, "reason": reason}
    )
    return value or 0.0


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_rules([RULES])


EVERY_FORMAT = [
    ("<34>Nov 28 10:00:00 web01 sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", None),
    (
        "<34>Nov 28 10:00:00 web01 sshd[1]: Accepted password for bob from 1.2.3.4 port 2 ssh2",
        "syslog",
    ),
    ('{"@timestamp": "2026-11-28T03:00:00Z", "message": "x"}', "ecs"),
    ('{"level": "warn", "msg": "disk full"}', "json"),
    (ACCESS, "nginx"),
    (ACCESS, "apache"),
    (ACCESS, "web"),
    ("2026-11-28 03:00:00 10.0.0.5 GET / - 443 - 203.0.113.5 curl/8 - 200 0 0 1", "iis"),
    (
        "type=USER_AUTH msg=audit(1764298800.000:1): pid=1 uid=0 msg='acct=\"bob\" res=failed'",
        "auditd",
    ),
    (orjson.dumps(EVE_DNS).decode(), "suricata"),
    (orjson.dumps(ZEEK_CONN).decode(), "zeek"),
    (orjson.dumps(WINLOGBEAT).decode(), "windows"),
    ("free text from an appliance", "plain"),
]


@pytest.mark.parametrize(("data", "kind"), EVERY_FORMAT, ids=lambda v: str(v)[:12])
def test_every_format_keeps_original_id_agency_and_receipt(data: str, kind: str | None) -> None:
    event = event_for(data, kind)
    assert_fields(
        event,
        {
            "event.original": data,
            "event.id": "rec-1",
            "event.ingested": RECEIVED,
            "organization.id": "so-ttt",
            "ecs.version": "8.17.0",
            "error": ABSENT,
        },
    )
    assert isinstance(event["@timestamp"], str)
    assert event["@timestamp"].endswith("Z")


def test_each_format_reaches_its_own_parser() -> None:
    datasets = {kind: field(event_for(data, kind), "event.dataset") for data, kind in EVERY_FORMAT}
    assert datasets == {
        None: "system.auth",
        "syslog": "system.auth",
        "ecs": ABSENT,
        "json": "generic",
        "nginx": "web.access",
        "apache": "web.access",
        "web": "web.access",
        "iis": "web.access",
        "auditd": "auditd.log",
        "suricata": "suricata.eve",
        "zeek": "zeek.connection",
        "windows": "windows.security",
        "plain": "generic",
    }


def test_nginx_and_apache_name_the_server_module() -> None:
    assert field(event_for(ACCESS, "nginx"), "event.module") == "nginx"
    assert field(event_for(ACCESS, "apache"), "event.module") == "apache"
    assert field(event_for(ACCESS, "web"), "event.module") == "http"


def test_json_is_recognised_by_its_keys() -> None:
    assert field(event_for(orjson.dumps(EVE_DNS).decode(), "json"), "event.dataset") == (
        "suricata.eve"
    )
    assert field(event_for(orjson.dumps(ZEEK_CONN).decode(), "json"), "event.module") == "zeek"
    windows = event_for(orjson.dumps(WINLOGBEAT).decode(), "json")
    assert_fields(
        windows, {"event.code": "4625", "event.original": orjson.dumps(WINLOGBEAT).decode()}
    )
    evtx = {"Event": {"System": {"EventID": 4688, "Channel": "Security", "Computer": "pc1"}}}
    assert field(event_for(orjson.dumps(evtx).decode(), "json"), "winlog.channel") == "Security"


def test_generic_json_is_kept_under_a_namespace_with_its_message() -> None:
    event = event_for('{"level": "warn", "msg": "disk full", "n": 3}', "json")
    assert_fields(
        event,
        {"message": "disk full", "json": {"level": "warn", "msg": "disk full", "n": 3}},
    )


def test_ecs_document_passes_through_and_keeps_its_own_event_id() -> None:
    document = {
        "@timestamp": "2026-11-28T10:00:00+07:00",
        "event": {"id": "sensor-42", "dataset": "netmeta.flow"},
        "source": {"ip": "203.0.113.1"},
    }
    event = event_for(orjson.dumps(document).decode(), "ecs")
    assert_fields(
        event,
        {
            "event.id": "sensor-42",
            "event.dataset": "netmeta.flow",
            "source.ip": "203.0.113.1",
            "@timestamp": "2026-11-28T03:00:00.000000Z",
        },
    )


def test_ecs_document_cannot_claim_another_agency() -> None:
    document = {"message": "x", "organization": {"id": "other-agency"}, "soc": {"x": 1}}
    event = event_for(orjson.dumps(document).decode(), "ecs")
    assert event["organization"] == {"id": "so-ttt"}
    assert "soc" not in event
    anonymous = normalize(
        {**record(orjson.dumps(document).decode(), "ecs"), "organization": None}, OPTIONS
    )
    assert "organization" not in anonymous


def test_vouched_fields_are_applied_but_cannot_change_agency_or_id() -> None:
    vouched = {
        "host": {"name": "web01.so.gov.vn"},
        "log": {"file": {"path": "/var/log/nginx/access.log"}},
        "organization": {"id": "other-agency"},
        "event": {"id": "forged", "timezone": "+07:00"},
    }
    for data, kind in EVERY_FORMAT:
        event = event_for(data, kind, fields=vouched)
        assert_fields(
            event,
            {
                "host.name": "web01.so.gov.vn",
                "log.file.path": "/var/log/nginx/access.log",
                "organization.id": "so-ttt",
                "event.id": "rec-1",
                "event.timezone": "+07:00",
            },
        )


def test_vouched_dotted_names_are_nested_and_still_protected() -> None:
    flat = {"host.name": "web02", "service.name": "portal", "organization.id": "x", "event.id": "y"}
    event = event_for(ACCESS, "nginx", fields=flat)
    assert_fields(
        event,
        {
            "host.name": "web02",
            "service.name": "portal",
            "organization.id": "so-ttt",
            "event.id": "rec-1",
        },
    )


def test_vouched_value_never_replaces_an_object() -> None:
    event = event_for(ACCESS, "nginx", fields={"url": "http://x/", "source": {"ip": {"a": 1}}})
    assert field(event, "url.path") == "/dichvucong/tra-cuu"
    assert field(event, "source.ip") == "198.51.100.20"
    assert "fields_conflict" in event["tags"]


def test_unknown_format_is_kept_tagged_explained_and_counted() -> None:
    before = failures("unknown", "unknown_format")
    event = event_for("something", "cef")
    assert_fields(
        event,
        {"event.original": "something", "message": "something", "error.type": "unknown_format"},
    )
    assert "unknown_format" in event["tags"]
    assert "'cef'" in event["error"]["message"]
    assert failures("unknown", "unknown_format") == before + 1


def test_payload_that_is_not_json_is_kept_and_counted_per_format() -> None:
    for kind in ("ecs", "json", "suricata", "zeek", "windows"):
        before = failures(kind, "invalid_json")
        event = event_for("{not json", kind)
        assert_fields(event, {"event.original": "{not json", "error.type": "invalid_json"})
        assert kind in event["error"]["message"]
        assert failures(kind, "invalid_json") == before + 1
    array = event_for("[1, 2]", "json")
    assert "JSON list" in array["error"]["message"]


def test_unparsable_access_and_audit_lines_are_counted() -> None:
    before = failures("nginx", "access_log_unparsed")
    event_for("not an access log", "nginx")
    assert failures("nginx", "access_log_unparsed") == before + 1
    before = failures("auditd", "auditd_unparsed")
    event = event_for("not an audit record", "auditd")
    assert event["message"] == "not an audit record"
    assert failures("auditd", "auditd_unparsed") == before + 1


def test_a_documents_own_error_type_is_not_a_metric_label() -> None:
    document = {"message": "x", "error": {"type": "sensor-specific-1234", "message": "m"}}
    event = event_for(orjson.dumps(document).decode(), "ecs")
    assert event["error"]["type"] == "sensor-specific-1234"
    assert failures("ecs", "sensor-specific-1234") == 0.0


def test_iis_fields_header_can_come_with_the_record() -> None:
    line = "2026-11-28 03:00:00 203.0.113.5 POST /owa/auth.owa 302"
    header = {"w3c": {"fields": "#Fields: date time c-ip cs-method cs-uri-stem sc-status"}}
    event = event_for(line, "iis", fields=header)
    assert_fields(
        event,
        {
            "source.ip": "203.0.113.5",
            "http.request.method": "POST",
            "url.path": "/owa/auth.owa",
            "http.response.status_code": 302,
            "w3c": ABSENT,
        },
    )


def test_iis_fields_header_can_come_as_an_earlier_line_of_the_same_file() -> None:
    stream = {"fields": {"log": {"file": {"path": "C:/inetpub/logs/u_ex261128.log"}}}}
    directive = event_for(
        "#Fields: date time c-ip cs-method cs-uri-stem sc-status", "iis", **stream
    )
    assert "w3c_directive" in directive["tags"]
    assert directive["event"]["original"].startswith("#Fields:")
    event = event_for("2026-11-28 03:00:00 203.0.113.5 GET /x.aspx 404", "iis", **stream)
    assert_fields(event, {"url.path": "/x.aspx", "http.response.status_code": 404})
    blank = event_for("   ", "iis", **stream)
    assert blank["tags"] == ["empty_line"]
    other_file = event_for(
        "2026-11-28 03:00:00 203.0.113.5 GET /x.aspx 404",
        "iis",
        fields={"log": {"file": {"path": "C:/inetpub/logs/other.log"}}},
    )
    assert other_file["error"]["type"] == "access_log_unparsed"


def test_invalid_utf8_bytes_stay_recoverable() -> None:
    raw = b"type=USER_CMD msg=audit(1764298800.000:2): cmd=\xff\xfe"
    data = raw.decode("utf-8", "backslashreplace")
    event = event_for(data, "auditd", data_b64="dHlwZQ==", flags=["invalid_utf8"])
    assert event["soc"] == {"original_b64": "dHlwZQ=="}
    assert "invalid_utf8" in event["tags"]
    assert event["event"]["original"] == data


def test_web_records_feed_the_web_rules(ruleset: RuleSet) -> None:
    for kind in ("nginx", "apache", "web"):
        hits = {rule.title for rule in ruleset.match(event_for(ACCESS, kind))}
        assert "SQL Injection Attempt in a Web Request" in hits
    iis_line = (
        "2026-11-28 03:00:00 10.0.0.5 GET /item id=1%27%20or%201=1 443 - 203.0.113.5 x - 200 0 0 1"
    )
    hits = {rule.title for rule in ruleset.match(event_for(iis_line, "iis"))}
    assert "SQL Injection Attempt in a Web Request" in hits


def test_network_records_are_routed_to_the_network_rules() -> None:
    zeek_event = event_for(orjson.dumps(ZEEK_CONN).decode(), "zeek")
    flow = {**EVE_DNS, "event_type": "flow", "flow": {"pkts_toserver": 1, "pkts_toclient": 1}}
    suricata_flow = event_for(orjson.dumps(flow).decode(), "suricata")
    suricata_dns = event_for(orjson.dumps(EVE_DNS).decode(), "suricata")
    routes = load_routes()
    table = RouteTable(routes)
    admitted = {
        name: {routes[i].describe() for i in table.admitted(event)}
        for name, event in (
            ("zeek", zeek_event),
            ("suricata_flow", suricata_flow),
            ("suricata_dns", suricata_dns),
        )
    }
    assert "category=firewall" in admitted["zeek"]
    assert "category=firewall" in admitted["suricata_flow"]
    assert "category=dns" in admitted["suricata_dns"]
    assert_fields(
        zeek_event,
        {"network.transport": "tcp", "destination.packets": 1, "destination.port": 22},
    )
