"""`soc scan` reads Suricata eve.json and Zeek JSON logs through the same normalizers as the
stream, so an incident responder's hunt sees the fields the rules expect."""

from pathlib import Path

import orjson

from soc.scan.readers import ScannedEvent, read_events
from tests.ecs_fields import assert_fields


def test_scan_normalizes_eve_and_zeek_json_lines(tmp_path: Path) -> None:
    eve = {
        "timestamp": "2026-11-28T10:00:00.000000+0700",
        "event_type": "dns",
        "src_ip": "10.20.0.31",
        "dest_ip": "10.20.0.1",
        "proto": "UDP",
        "dns": {"type": "query", "rrname": "c2.duckdns.org", "rrtype": "A"},
    }
    conn = {
        "ts": 1764298800.0,
        "uid": "C9",
        "id.orig_h": "203.0.113.99",
        "id.orig_p": 40000,
        "id.resp_h": "10.10.0.5",
        "id.resp_p": 22,
        "proto": "tcp",
        "conn_state": "REJ",
    }
    (tmp_path / "eve.json").write_bytes(orjson.dumps(eve) + b"\n")
    (tmp_path / "conn.log").write_bytes(orjson.dumps(conn) + b"\n")
    events = {
        Path(item.path).name: item.event
        for item in read_events([tmp_path])
        if isinstance(item, ScannedEvent)
    }
    assert_fields(
        events["eve.json"],
        {
            "event.dataset": "suricata.eve",
            "dns.question.name": "c2.duckdns.org",
            "source.ip": "10.20.0.31",
            "event.original": orjson.dumps(eve).decode(),
            "log.file.record": 1,
        },
    )
    assert_fields(
        events["conn.log"],
        {
            "event.dataset": "zeek.connection",
            "destination.port": 22,
            "network.transport": "tcp",
            "zeek.session_id": "C9",
        },
    )
    assert events["conn.log"]["event"]["id"]
