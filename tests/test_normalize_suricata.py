"""Suricata EVE records -> ECS as Elastic's Suricata integration shapes them."""

from typing import Any

import orjson

from soc.normalize import NormalizeOptions, normalize
from tests.ecs_fields import ABSENT, assert_fields

COMMON = {
    "timestamp": "2026-11-28T10:15:02.436713+0700",
    "flow_id": 1843020482746612,
    "in_iface": "ens192",
    "src_ip": "203.0.113.45",
    "src_port": 51244,
    "dest_ip": "10.20.0.15",
    "dest_port": 443,
    "proto": "TCP",
}


def eve(**body: Any) -> dict[str, Any]:
    record = {
        "id": "s1",
        "received_at": "2026-11-28T03:15:03Z",
        "format": "suricata",
        "data": orjson.dumps({**COMMON, **body}).decode(),
    }
    return normalize(record, NormalizeOptions())


def test_alert_becomes_an_ecs_alert_with_rule_fields() -> None:
    event = eve(
        event_type="alert",
        app_proto="http",
        community_id="1:abc=",
        alert={
            "action": "blocked",
            "gid": 1,
            "signature_id": 2024897,
            "rev": 4,
            "signature": "ET WEB_SERVER Possible SQL Injection Attempt UNION SELECT",
            "category": "Web Application Attack",
            "severity": 1,
        },
        http={"hostname": "dichvucong.so.gov.vn", "url": "/tra-cuu?id=1 UNION SELECT 1"},
    )
    assert_fields(
        event,
        {
            "@timestamp": "2026-11-28T03:15:02.436713Z",
            "event.kind": "alert",
            "event.module": "suricata",
            "event.dataset": "suricata.eve",
            "event.category": ["network", "intrusion_detection"],
            "event.type": ["denied"],
            "event.severity": 1,
            "rule.id": "2024897",
            "rule.version": "4",
            "rule.name": "ET WEB_SERVER Possible SQL Injection Attempt UNION SELECT",
            "rule.category": "Web Application Attack",
            "message": "ET WEB_SERVER Possible SQL Injection Attempt UNION SELECT",
            "source.ip": "203.0.113.45",
            "source.port": 51244,
            "destination.ip": "10.20.0.15",
            "destination.port": 443,
            "network.transport": "tcp",
            "network.protocol": "http",
            "network.community_id": "1:abc=",
            "url.domain": "dichvucong.so.gov.vn",
            "url.path": "/tra-cuu",
            "suricata.eve.alert.signature_id": 2024897,
            "suricata.eve.flow_id": 1843020482746612,
            "observer.ingress.interface.name": "ens192",
        },
    )


def test_flow_counts_packets_and_bytes_each_way() -> None:
    event = eve(
        event_type="flow",
        flow={
            "pkts_toserver": 3,
            "pkts_toclient": 1,
            "bytes_toserver": 180,
            "bytes_toclient": 60,
            "start": "2026-11-28T10:15:00.000000+0700",
            "end": "2026-11-28T10:15:01.000000+0700",
            "state": "closed",
            "reason": "timeout",
        },
    )
    assert_fields(
        event,
        {
            "event.kind": "event",
            "event.category": ["network"],
            "event.type": ["connection", "end"],
            "event.start": "2026-11-28T03:15:00.000000Z",
            "event.end": "2026-11-28T03:15:01.000000Z",
            "event.reason": "timeout",
            "source.packets": 3,
            "source.bytes": 180,
            "destination.packets": 1,
            "destination.bytes": 60,
            "network.packets": 4,
            "network.bytes": 240,
        },
    )


def test_dns_answer_fills_question_answers_and_resolved_ips() -> None:
    event = eve(
        event_type="dns",
        dest_port=53,
        proto="UDP",
        dns={
            "version": 2,
            "type": "answer",
            "id": 40211,
            "rrname": "update.example-c2.top",
            "rrtype": "A",
            "rcode": "NOERROR",
            "answers": [
                {
                    "rrname": "update.example-c2.top",
                    "rrtype": "A",
                    "ttl": 300,
                    "rdata": "198.51.100.66",
                }
            ],
        },
    )
    assert_fields(
        event,
        {
            "dns.type": "answer",
            "dns.id": "40211",
            "dns.question.name": "update.example-c2.top",
            "dns.question.type": "A",
            "dns.response_code": "NOERROR",
            "dns.answers": [
                {"name": "update.example-c2.top", "type": "A", "data": "198.51.100.66", "ttl": 300}
            ],
            "dns.resolved_ip": ["198.51.100.66"],
            "network.transport": "udp",
        },
    )


def test_dns_grouped_answers_and_v3_queries_are_read() -> None:
    grouped = eve(
        event_type="dns",
        dns={
            "type": "answer",
            "id": 1,
            "rrname": "a.vn",
            "rrtype": "A",
            "grouped": {"A": ["10.0.0.1"]},
        },
    )
    assert_fields(grouped, {"dns.answers": [{"type": "A", "data": "10.0.0.1"}]})
    v3 = eve(
        event_type="dns", dns={"type": "request", "queries": [{"rrname": "b.vn", "rrtype": "TXT"}]}
    )
    assert_fields(v3, {"dns.type": "query", "dns.question": {"name": "b.vn", "type": "TXT"}})


def test_http_fills_the_fields_the_web_pipeline_maps() -> None:
    event = eve(
        event_type="http",
        http={
            "hostname": "congthongtin.so.gov.vn",
            "url": "/wp-login.php?redirect_to=%2F",
            "http_user_agent": "python-requests/2.31",
            "http_method": "POST",
            "protocol": "HTTP/1.1",
            "status": 403,
            "length": 512,
            "http_refer": "https://congthongtin.so.gov.vn/",
            "http_content_type": "text/html",
        },
    )
    assert_fields(
        event,
        {
            "event.category": ["network", "web"],
            "event.outcome": "failure",
            "http.request.method": "POST",
            "http.request.referrer": "https://congthongtin.so.gov.vn/",
            "http.response.status_code": 403,
            "http.response.body.bytes": 512,
            "http.response.mime_type": "text/html",
            "http.version": "1.1",
            "url.original": "/wp-login.php?redirect_to=%2F",
            "url.path": "/wp-login.php",
            "url.query": "redirect_to=%2F",
            "url.domain": "congthongtin.so.gov.vn",
            "user_agent.original": "python-requests/2.31",
        },
    )


def test_tls_fills_version_sni_certificate_and_fingerprints() -> None:
    event = eve(
        event_type="tls",
        tls={
            "subject": "CN=mail.so.gov.vn",
            "issuerdn": "C=US, O=Let's Encrypt, CN=R11",
            "serial": "04:AB",
            "fingerprint": "ab:cd:ef:01",
            "sni": "mail.so.gov.vn",
            "version": "TLS 1.3",
            "notbefore": "2026-10-01T00:00:00",
            "notafter": "2026-12-30T00:00:00",
            "ja3": {"hash": "e7d705a3286e19ea42f587b344ee6865", "string": "771,..."},
            "ja3s": {"hash": "f4febc55ea12b31ae17cfb7e614afda8"},
        },
    )
    assert_fields(
        event,
        {
            "tls.version": "1.3",
            "tls.version_protocol": "tls",
            "tls.client.server_name": "mail.so.gov.vn",
            "tls.client.ja3": "e7d705a3286e19ea42f587b344ee6865",
            "tls.server.ja3s": "f4febc55ea12b31ae17cfb7e614afda8",
            "tls.server.subject": "CN=mail.so.gov.vn",
            "tls.server.issuer": "C=US, O=Let's Encrypt, CN=R11",
            "tls.server.hash.sha1": "ABCDEF01",
            "tls.server.not_after": "2026-12-30T00:00:00.000000Z",
            "destination.domain": "mail.so.gov.vn",
        },
    )


def test_fileinfo_and_anomaly_records() -> None:
    info = eve(
        event_type="fileinfo",
        fileinfo={
            "filename": "/downloads/invoice.exe",
            "size": 73802,
            "sha256": "9f86d0",
            "magic": "PE32",
        },
    )
    assert_fields(
        info,
        {
            "event.category": ["file"],
            "file.name": "invoice.exe",
            "file.path": "/downloads/invoice.exe",
            "file.size": 73802,
            "file.hash": {"sha256": "9f86d0"},
            "file.type": "PE32",
        },
    )
    anomaly = eve(event_type="anomaly", anomaly={"type": "decode", "event": "ipv4.trunc_pkt"})
    assert_fields(anomaly, {"event.category": ["network"], "message": "anomaly: ipv4.trunc_pkt"})


def test_values_of_the_wrong_type_are_left_out_not_stored_wrongly() -> None:
    event = eve(event_type="flow", src_ip="not-an-ip", src_port="80", flow={"pkts_toserver": "3"})
    assert_fields(
        event,
        {
            "source.address": "not-an-ip",
            "source.ip": ABSENT,
            "source.port": ABSENT,
            "source.packets": ABSENT,
            "suricata.eve.src_port": "80",
        },
    )
