"""Windows events as NXLog ships them (im_msvistalog's JSON: System values under NXLog's names,
the event data beside them, the local time without an offset), and JSON that shippers send over
syslog (NXLog, Suricata's syslog output): the same ECS events, and the same detections, as the
evtx and Winlogbeat forms."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson

from soc.detect.rules import load_rules
from soc.normalize import NormalizeOptions, normalize
from soc.normalize.windows import is_windows_event, normalize_windows
from soc.scan.run import scan
from tests.ecs_fields import ABSENT, ZONE, assert_fields, syslog_event

RULES = Path(__file__).resolve().parents[1] / "rules"

#: 4732 (a member added to a security-enabled local group), as NXLog's to_json() writes it.
NXLOG_4732: dict[str, Any] = {
    "EventTime": "2026-11-28 10:00:00",
    "Hostname": "DC01.so-tttt.local",
    "Keywords": -9214364837600034816,  # 0x8020000000000000 as a signed 64-bit number
    "EventType": "AUDIT_SUCCESS",
    "SeverityValue": 2,
    "Severity": "INFO",
    "EventID": 4732,
    "SourceName": "Microsoft-Windows-Security-Auditing",
    "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
    "Version": 0,
    "Task": 13826,
    "OpcodeValue": 0,
    "RecordNumber": 98765,
    "ProcessID": 636,
    "ThreadID": 4400,
    "Channel": "Security",
    "Message": "A member was added to a security-enabled local group.",
    "Category": "Security Group Management",
    "Opcode": "Info",
    "MemberName": "-",
    "MemberSid": "S-1-5-21-1-2-3-1105",
    "TargetUserName": "Administrators",
    "TargetDomainName": "Builtin",
    "TargetSid": "S-1-5-32-544",
    "SubjectUserSid": "S-1-5-21-1-2-3-500",
    "SubjectUserName": "it-admin",
    "SubjectDomainName": "SO-TTTT",
    "SubjectLogonId": "0x3e7",
    "EventReceivedTime": "2026-11-28 10:00:01",
    "SourceModuleName": "eventlog",
    "SourceModuleType": "im_msvistalog",
}


def test_an_nxlog_document_is_a_windows_event_like_the_evtx_form() -> None:
    assert is_windows_event(NXLOG_4732)
    event = normalize_windows(NXLOG_4732, record_id="n1", zone=ZONE)
    assert_fields(
        event,
        {
            "@timestamp": "2026-11-28T03:00:00.000000Z",  # the site's local time
            "event.code": "4732",
            "event.dataset": "windows.security",
            "event.provider": "Microsoft-Windows-Security-Auditing",
            "event.outcome": "success",
            "event.id": "n1",
            "host.name": "DC01.so-tttt.local",
            "winlog.channel": "Security",
            "winlog.record_id": "98765",
            "winlog.keywords": ["Audit Success"],
            "winlog.level": "4",
            "log.level": "information",
            "winlog.process.pid": 636,
            "message": "A member was added to a security-enabled local group.",
            "winlog.event_data.TargetSid": "S-1-5-32-544",
            "winlog.event_data.SubjectUserName": "it-admin",
            # NXLog's own fields are not the event's data.
            "winlog.event_data.EventReceivedTime": ABSENT,
            "winlog.event_data.SourceModuleType": ABSENT,
            "winlog.event_data.Hostname": ABSENT,
            "user.name": "it-admin",
        },
    )
    # A failure's keywords, an error's severity, and a time that says its offset.
    failed = {
        **NXLOG_4732,
        "EventID": 4625,
        "Keywords": -9218868437227405312,  # 0x8010000000000000: Audit Failure
        "SeverityValue": 4,
        "EventTime": "2026-11-28T10:00:00.250+09:00",
    }
    assert_fields(
        normalize_windows(failed, zone=ZONE),
        {
            "event.outcome": "failure",
            "log.level": "error",
            "@timestamp": "2026-11-28T01:00:00.250000Z",
        },
    )
    # Without a zone (a caller that has none), the local time is read as UTC.
    assert normalize_windows(NXLOG_4732)["@timestamp"] == "2026-11-28T10:00:00.000000Z"


def test_nxlog_json_through_the_json_format_and_the_scan() -> None:
    record = {
        "id": "r1",
        "format": "json",
        "received_at": "2026-11-28T03:00:02Z",
        "source": {"type": "agent", "peer": {"ip": "10.0.0.3"}},
        "data": json.dumps(NXLOG_4732),
    }
    event = normalize(record, NormalizeOptions(timezone=ZONE))
    assert_fields(
        event,
        {
            "event.code": "4732",
            "@timestamp": "2026-11-28T03:00:00.000000Z",
            "event.original": json.dumps(NXLOG_4732),
        },
    )


def test_scan_finds_a_new_administrator_in_nxlog_lines(tmp_path: Path) -> None:
    log = tmp_path / "dc01-security.json"
    log.write_bytes(orjson.dumps(NXLOG_4732) + b"\n")
    output = io.BytesIO()
    summary = scan([log], load_rules([RULES]), output, timezone=ZONE)
    assert summary.events == 1
    alerts = [orjson.loads(line) for line in output.getvalue().splitlines()]
    assert [alert["rule"]["name"] for alert in alerts] == [
        "Account Added to an Administrators Group"
    ]
    assert alerts[0]["@timestamp"] == "2026-11-28T03:00:00.000000Z"


def test_json_over_syslog_with_any_header() -> None:
    document = json.dumps(NXLOG_4732)
    for line in (
        f"<14>Nov 28 10:00:01 DC01 {document}",  # BSD header: the parser takes `{"EventTime"`
        f"<14>1 2026-11-28T10:00:01+07:00 DC01 nxlog - - - {document}  ",  # RFC 5424
        document,  # NXLog's om_tcp with to_json() alone: no header at all
    ):
        event = syslog_event(line)
        assert_fields(
            event,
            {
                "event.code": "4732",
                "event.dataset": "windows.security",
                "host.name": "DC01.so-tttt.local",
                "@timestamp": "2026-11-28T03:00:00.000000Z",
                "event.original": line,
                "log.syslog.appname": "nxlog" if " nxlog " in line else ABSENT,
                "tags": ABSENT,  # not flagged: the line is read in full
                "winlog.event_data.TargetSid": "S-1-5-32-544",
            },
        )
    assert_fields(
        syslog_event(f"<14>Nov 28 10:00:01 DC01 {document}"), {"log.syslog.hostname": "DC01"}
    )


def test_suricata_eve_over_syslog() -> None:
    eve = {
        "timestamp": "2026-11-28T10:00:00.123456+0700",
        "event_type": "alert",
        "src_ip": "203.0.113.5",
        "src_port": 40000,
        "dest_ip": "10.0.0.8",
        "dest_port": 80,
        "proto": "TCP",
        "alert": {"signature": "ET SCAN Nmap", "signature_id": 1, "severity": 1},
    }
    event = syslog_event(f"<14>Nov 28 10:00:01 ids01 suricata[812]: {json.dumps(eve)}")
    assert_fields(
        event,
        {
            "event.kind": "alert",
            "event.dataset": "suricata.eve",
            "rule.name": "ET SCAN Nmap",
            "host.name": "ids01",  # the header's host: EVE names none
            "log.syslog.appname": "suricata",
            "source.ip": "203.0.113.5",
        },
    )


def test_other_json_and_braces_stay_syslog_lines() -> None:
    app = syslog_event('<14>Nov 28 10:00:01 web1 myapp[7]: {"level":"info","msg":"started"}')
    assert_fields(
        app,
        {
            "event.dataset": "syslog",
            "process.name": "myapp",
            "message": '{"level":"info","msg":"started"}',
        },
    )
    broken = syslog_event('<14>Nov 28 10:00:01 web1 myapp[7]: {"EventID": 4732, "Channel": }')
    assert_fields(broken, {"event.dataset": "syslog", "winlog": ABSENT})
    assert_fields(syslog_event("<14>Nov 28 10:00:01 web1 kernel: x }"), {"winlog": ABSENT})
