"""Security products' own detections become the platform's alerts (rules/external/), each
saying what the product found through the rule's `details` (%field% placeholders, as
Hayabusa's rules write them)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson

from soc.detect.alerts import build_alert, render_details
from soc.detect.rules import load_rules
from soc.scan.run import scan
from tests.ecs_fields import ZONE

RULES = Path(__file__).resolve().parents[1] / "rules"

EVENT: dict[str, Any] = {
    "@timestamp": "2026-11-28T03:00:00.000000Z",
    "event": {"id": "e1", "action": "allowed"},
    "rule": {"name": "ET SCAN Possible Nmap User-Agent Observed", "category": "Web Attack"},
    "source": {"ip": "203.0.113.5", "port": 40000},
    "destination": {"ip": "10.0.0.8"},
    "related": {"ip": ["203.0.113.5", "10.0.0.8"]},
    "winlog": {"event_data": {"TargetUserName": "admin", "CommandLine": "a\n  b\tc"}},
    "flat.key": "flat value",
    "user": {"name": ""},
}


def test_details_fill_each_placeholder_from_the_event() -> None:
    assert (
        render_details(
            "%rule.name% (%rule.category%) %source.ip%:%source.port% -> "
            "%destination.ip%:%destination.port%",
            EVENT,
        )
        == "ET SCAN Possible Nmap User-Agent Observed (Web Attack) 203.0.113.5:40000 -> 10.0.0.8:-"
    )
    # Windows event data by its own name (Hayabusa's rules); lists joined; one line.
    assert render_details("User: %TargetUserName% ¦ Cmd: %CommandLine%", EVENT) == (
        "User: admin ¦ Cmd: a b c"
    )
    assert render_details("%related.ip% %flat.key%", EVENT) == "203.0.113.5, 10.0.0.8 flat value"
    # Absent, empty and object values read as "-"; text that is no placeholder stays.
    assert render_details("%user.name% %nothing% %source% 100%% %%14593 %rule.name%", EVENT) == (
        "- - - 100%% %%14593 ET SCAN Possible Nmap User-Agent Observed"
    )
    # A segment (between "¦") none of whose placeholders has a value is left out; one without
    # placeholders stays.
    assert render_details("Src: %source.ip% ¦ File: %file.path% ¦ fixed ¦ %nothing%", EVENT) == (
        "Src: 203.0.113.5 ¦ fixed"
    )


def test_details_are_cut_to_what_an_alert_list_shows() -> None:
    event = {"message": "x" * 5000}
    one = render_details("%message%", event)
    assert len(one) == 300 and one.endswith("…")
    whole = render_details(" ".join(["%message%"] * 10), event)
    assert len(whole) == 1000 and whole.endswith("…")


def test_an_alert_says_what_happened_with_the_rules_details(tmp_path: Path) -> None:
    rule_text = """
title: Said
id: 1d2c3b4a-0000-4000-8000-000000000001
logsource: {product: suricata}
detection: {selection: {event.kind: alert}, condition: selection}
details: 'Signature %rule.name% from %source.ip%'
level: high
"""
    (tmp_path / "said.yml").write_text(rule_text)
    (tmp_path / "plain.yml").write_text(
        rule_text.replace("Said", "Plain").replace("0001", "0002").replace("details:", "#")
    )
    rules = load_rules([tmp_path])
    assert rules.problems == []
    event = {**EVENT, "event": {"id": "e1", "kind": "alert", "dataset": "suricata.eve"}}
    alerts = {rule.title: build_alert(rule, event) for rule in rules.match(event)}
    assert alerts["Said"]["message"] == (
        "Signature ET SCAN Possible Nmap User-Agent Observed from 203.0.113.5"
    )
    assert alerts["Said"]["rule"]["name"] == "Said"
    assert alerts["Plain"]["message"] == "Plain"  # no details: the title, as before


def eve(severity: int, signature: str, event_type: str = "alert") -> bytes:
    document: dict[str, Any] = {
        "timestamp": "2026-11-28T10:00:00.123456+0700",
        "event_type": event_type,
        "src_ip": "203.0.113.5",
        "src_port": 40000,
        "dest_ip": "10.0.0.8",
        "dest_port": 80,
        "proto": "TCP",
    }
    if event_type == "alert":
        document["alert"] = {
            "action": "allowed",
            "signature_id": 2024364,
            "signature": signature,
            "category": "Web Application Attack",
            "severity": severity,
        }
    return orjson.dumps(document)


def test_scan_makes_a_sensors_serious_alerts_the_platforms(tmp_path: Path) -> None:
    """`soc scan` over Suricata's eve.json with the project's rules: severity 1 and 2 alerts
    become alerts that name the signature, severity 3 and flows stay events."""
    log = tmp_path / "eve.json"
    log.write_bytes(
        b"\n".join(
            [
                eve(1, "ET EXPLOIT Apache log4j RCE Attempt"),
                eve(2, "ET POLICY curl User-Agent Outbound"),
                eve(3, "ET INFO Observed DNS Query to .cloud TLD"),
                eve(0, "", event_type="flow"),
            ]
        )
        + b"\n"
    )
    rules = load_rules([RULES])
    for output_format in ("jsonl", "csv"):
        output = io.BytesIO()
        summary = scan([log], rules, output, timezone=ZONE, output_format=output_format)
        assert summary.events == 4
        if output_format == "jsonl":
            alerts = [orjson.loads(line) for line in output.getvalue().splitlines()]
            assert [(a["rule"]["name"], a["rule"]["level"], a["message"]) for a in alerts] == [
                (
                    "Suricata Alert - High Severity",
                    "high",
                    "ET EXPLOIT Apache log4j RCE Attempt ¦ Web Application Attack ¦ "
                    "203.0.113.5:40000 -> 10.0.0.8:80 ¦ allowed",
                ),
                (
                    "Suricata Alert - Medium Severity",
                    "medium",
                    "ET POLICY curl User-Agent Outbound ¦ Web Application Attack ¦ "
                    "203.0.113.5:40000 -> 10.0.0.8:80 ¦ allowed",
                ),
            ]
        else:
            rows = list(csv.DictReader(io.StringIO(output.getvalue().decode("utf-8-sig"))))
            assert [row["Details"] for row in rows] == [
                "ET EXPLOIT Apache log4j RCE Attempt ¦ Web Application Attack ¦ "
                "203.0.113.5:40000 -> 10.0.0.8:80 ¦ allowed",
                "ET POLICY curl User-Agent Outbound ¦ Web Application Attack ¦ "
                "203.0.113.5:40000 -> 10.0.0.8:80 ¦ allowed",
            ]


def test_firewall_and_cef_detections_name_what_the_product_found() -> None:
    from tests.ecs_fields import syslog_event

    rules = load_rules([RULES / "external"])
    ips = (
        '<185>date=2026-11-28 time=10:23:45 devname="FGT-SO" devid="FG100F" logid="0419016384" '
        'type="utm" subtype="ips" level="alert" severity="high" srcip=203.0.113.5 '
        "srcport=40000 dstip=10.0.0.8 dstport=443 proto=6 "
        'attack="Apache.Log4j.Error.Log.Remote.Code.Execution" action="dropped"'
    )
    virus = (
        '<188>date=2026-11-28 time=10:24:00 devname="FGT-SO" devid="FG100F" logid="0211008192" '
        'type="utm" subtype="virus" level="warning" srcip=93.184.216.34 dstip=10.1.2.3 '
        'action="blocked" virus="EICAR_TEST_FILE" filename="eicar.com"'
    )
    cef = (
        "<134>Nov 28 10:20:00 apex01 CEF:0|Trend Micro|Apex One|14|AV|Virus found|9|"
        "act=Quarantine fname=eicar.com filePath=C:\\\\Users\\\\bob\\\\eicar.com duser=bob"
    )
    said = {}
    for line in (ips, virus, cef):
        event = syslog_event(line)
        for rule in rules.match(event):
            said[rule.title] = build_alert(rule, event)["message"]
    assert said == {
        "FortiGate Intrusion Prevention - High Severity": (
            "Apache.Log4j.Error.Log.Remote.Code.Execution ¦ 203.0.113.5 -> 10.0.0.8:443 ¦ dropped"
        ),
        "FortiGate Antivirus Detection": (
            "EICAR_TEST_FILE ¦ File: eicar.com ¦ 93.184.216.34 -> 10.1.2.3 ¦ blocked"  # no URL
        ),
        "Security Product Detection Over CEF - High Severity": (
            "Trend Micro Apex One: Virus found ¦ Quarantine ¦ File: C:\\Users\\bob\\eicar.com ¦ "
            "User: bob"  # no endpoints: that segment is left out
        ),
    }


def test_a_correlation_alert_says_what_its_details_say(tmp_path: Path) -> None:
    """A correlation's details read its alert (the group, `correlation.value`) and the first
    event's entities; a count is a whole number."""
    log = tmp_path / "auth.log"
    log.write_text(
        "".join(
            f"Nov 28 10:00:{n:02d} web01 sshd[42]: Failed password for root from 203.0.113.7 "
            f"port {5000 + n} ssh2\n"
            for n in range(10)
        )
    )
    output = io.BytesIO()
    scan([log], load_rules([RULES]), output, timezone=ZONE)
    alerts = [orjson.loads(line) for line in output.getvalue().splitlines()]
    (brute,) = [a for a in alerts if a["rule"]["name"] == "SSH Brute Force From One Address"]
    assert brute["message"] == "From: 203.0.113.7 ¦ Failed passwords: 10 ¦ Host: web01"
    failed = [a for a in alerts if a["rule"]["name"] == "SSH Failed Password"]
    assert failed[0]["message"] == "User: root ¦ From: 203.0.113.7 ¦ Host: web01"
