"""Zeek JSON logs -> ECS as Elastic's Zeek integration shapes them."""

from typing import Any

import orjson

from soc.normalize import NormalizeOptions, normalize
from soc.normalize.zeek import log_from_path
from tests.ecs_fields import ABSENT, assert_fields

IDS = {
    "ts": 1764299702.431,
    "uid": "CHhAvVGS1DHFjwGM9",
    "id.orig_h": "10.20.0.31",
    "id.orig_p": 49812,
    "id.resp_h": "198.51.100.80",
    "id.resp_p": 443,
}


def zeek(path: str | None = None, **body: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "z1",
        "received_at": "2026-11-28T03:15:03Z",
        "format": "zeek",
        "data": orjson.dumps({**IDS, **body}).decode(),
    }
    if path is not None:
        record["fields"] = {"log": {"file": {"path": path}}}
    return normalize(record, NormalizeOptions())


def test_conn_log_fills_flow_fields_and_session_id() -> None:
    event = zeek(
        "/opt/zeek/logs/current/conn.log",
        proto="tcp",
        service="ssl",
        duration=12.5,
        orig_bytes=900,
        resp_bytes=4000,
        conn_state="SF",
        history="ShADadFf",
        orig_pkts=12,
        orig_ip_bytes=1500,
        resp_pkts=10,
        resp_ip_bytes=4600,
        community_id="1:xyz=",
    )
    assert_fields(
        event,
        {
            "@timestamp": "2025-11-28T03:15:02.431000Z",
            "event.module": "zeek",
            "event.dataset": "zeek.connection",
            "event.category": ["network"],
            "event.duration": 12_500_000_000,
            "zeek.session_id": "CHhAvVGS1DHFjwGM9",
            "zeek.connection.state": "SF",
            "zeek.connection.history": "ShADadFf",
            "source.ip": "10.20.0.31",
            "source.port": 49812,
            "source.packets": 12,
            "source.bytes": 900,
            "destination.ip": "198.51.100.80",
            "destination.port": 443,
            "destination.packets": 10,
            "destination.bytes": 4000,
            "network.transport": "tcp",
            "network.protocol": "ssl",
            "network.packets": 22,
            "network.bytes": 4900,
            "network.community_id": "1:xyz=",
            "zeek.connection.uid": ABSENT,
            "zeek.connection.orig_ip_bytes": 1500,
        },
    )


def test_dns_log_fills_question_answers_and_flags() -> None:
    event = zeek(
        "dns.log",
        proto="udp",
        trans_id=4321,
        query="login.microsoftonline.com.evil.top",
        qclass_name="C_INTERNET",
        qtype_name="A",
        rcode_name="NOERROR",
        AA=False,
        RD=True,
        RA=True,
        answers=["evil-cdn.top", "203.0.113.200"],
        TTLs=[60.0, 30.0],
    )
    assert_fields(
        event,
        {
            "event.dataset": "zeek.dns",
            "dns.id": "4321",
            "dns.type": "answer",
            "dns.question": {
                "name": "login.microsoftonline.com.evil.top",
                "type": "A",
                "class": "C_INTERNET",
            },
            "dns.response_code": "NOERROR",
            "dns.header_flags": ["RD", "RA"],
            "dns.answers": [
                {"data": "evil-cdn.top", "ttl": 60},
                {"data": "203.0.113.200", "ttl": 30},
            ],
            "dns.resolved_ip": ["203.0.113.200"],
        },
    )


def test_http_log_fills_url_method_status_and_agent() -> None:
    event = zeek(
        "http.log",
        method="GET",
        host="portal.so.gov.vn",
        uri="/uploads/shell.php?cmd=id",
        referrer="-",
        version="1.1",
        user_agent="Mozilla/5.0 zgrab/0.x",
        request_body_len=0,
        response_body_len=42,
        status_code=200,
    )
    assert_fields(
        event,
        {
            "event.dataset": "zeek.http",
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "http.response.body.bytes": 42,
            "http.version": "1.1",
            "url.domain": "portal.so.gov.vn",
            "url.original": "/uploads/shell.php?cmd=id",
            "url.path": "/uploads/shell.php",
            "url.query": "cmd=id",
            "user_agent.original": "Mozilla/5.0 zgrab/0.x",
            "event.outcome": "success",
        },
    )


def test_ssl_log_fills_tls_fields() -> None:
    event = zeek(
        "ssl.log",
        version="TLSv12",
        cipher="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        curve="x25519",
        server_name="update.vendor.example",
        resumed=False,
        established=True,
        ja3="769,47-53,0-10,23-24,0",
    )
    assert_fields(
        event,
        {
            "event.dataset": "zeek.ssl",
            "tls.version": "1.2",
            "tls.version_protocol": "tls",
            "tls.cipher": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "tls.curve": "x25519",
            "tls.established": True,
            "tls.resumed": False,
            "tls.client.server_name": "update.vendor.example",
            "tls.client.ja3": "769,47-53,0-10,23-24,0",
            "destination.domain": "update.vendor.example",
        },
    )


def test_notice_is_an_alert_and_ssh_carries_the_login_outcome() -> None:
    notice = zeek(
        "notice.log",
        note="Scan::Port_Scan",
        msg="10.20.0.31 scanned at least 15 unique ports of host 10.20.0.5 in 0m2s",
        src="10.20.0.31",
    )
    assert_fields(
        notice,
        {
            "event.kind": "alert",
            "event.dataset": "zeek.notice",
            "rule.name": "Scan::Port_Scan",
            "message": "10.20.0.31 scanned at least 15 unique ports of host 10.20.0.5 in 0m2s",
        },
    )
    ssh = zeek("ssh.log", version=2, auth_success=False, auth_attempts=6, client="SSH-2.0-libssh")
    assert_fields(
        ssh,
        {
            "event.dataset": "zeek.ssh",
            "event.outcome": "failure",
            "event.category": ["network", "authentication"],
            "network.protocol": "ssh",
            "zeek.ssh.auth_attempts": 6,
        },
    )


def test_log_is_recognised_by_its_fields_without_a_file_name() -> None:
    assert zeek(query="a.vn", qtype_name="A")["event"]["dataset"] == "zeek.dns"
    assert zeek(conn_state="S0", proto="tcp")["event"]["dataset"] == "zeek.connection"
    assert zeek(_path="ssl", server_name="x")["event"]["dataset"] == "zeek.ssl"
    assert zeek(_path="Bad Name!", method="GET")["event"]["dataset"] == "zeek.http"


def test_iso8601_timestamps_and_rotated_file_names() -> None:
    event = zeek(ts="2026-11-28T03:00:00.5Z", query="a.vn")
    assert event["@timestamp"] == "2026-11-28T03:00:00.500000Z"
    assert log_from_path("/logs/2026-11-28/conn.10:00:00-11:00:00.log.gz") == "conn"
    assert log_from_path("C:\\zeek\\dns.log") == "dns"
    assert log_from_path("README") is None
