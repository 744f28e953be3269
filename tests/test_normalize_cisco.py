"""Cisco ASA and IOS syslog -> ECS: the message id wherever the header parser left the tag,
denied and built connections with their endpoints (an outbound connection's initiator is its
second address), logins, commands run on the device, and the detections they feed (SigmaHQ's
Cisco AAA rules, the port-scan correlation)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from soc.detect.rules import load_rules
from tests.ecs_fields import ABSENT, assert_fields, port_scans, syslog_event

ROOT = Path(__file__).resolve().parents[1]
SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", ROOT.parent / "shared" / "sigma"))
CISCO_AAA = SIGMA / "rules" / "network" / "cisco" / "aaa"
DENY = (
    "<164>Nov 28 2026 10:20:{s:02d} asa01 : %ASA-4-106023: Deny tcp src "
    'outside:203.0.113.9/45678 dst inside:10.0.0.5/{port} by access-group "outside_access_in" '
    "[0x0, 0x0]"
)


syslog = syslog_event


CASES = [
    (
        DENY.format(s=1, port=3389),
        {
            "event.dataset": "cisco.asa",
            "event.code": "106023",
            "event.type": ["connection", "denied"],
            "event.outcome": "failure",
            "log.level": "warning",
            "observer.vendor": "Cisco",
            "observer.product": "ASA",
            "observer.ingress.interface.name": "outside",
            "source.ip": "203.0.113.9",
            "source.port": 45678,
            "destination.ip": "10.0.0.5",
            "destination.port": 3389,
            "network.transport": "tcp",
            "process": ABSENT,  # the tag is not a program
        },
    ),
    (  # no header at all, ICMP without ports
        "<164>%ASA-4-106023: Deny icmp src outside:203.0.113.9 dst inside:10.0.0.5 "
        '(type 8, code 0) by access-group "outside_access_in" [0x0, 0x0]',
        {"event.code": "106023", "source.ip": "203.0.113.9", "destination.port": ABSENT},
    ),
    (  # the tag taken for the program by the header parser; outbound: the inside host began it
        "<166>Nov 28 10:20:01 asa01 %ASA-6-302013: Built outbound TCP connection 123 for "
        "outside:93.184.216.34/443 (93.184.216.34/443) to inside:10.0.0.5/51234 "
        "(198.51.100.5/51234)",
        {
            "event.code": "302013",
            "event.type": ["connection", "allowed"],
            "source.ip": "10.0.0.5",
            "source.port": 51234,
            "destination.ip": "93.184.216.34",
            "destination.port": 443,
        },
    ),
    (
        "<166>Nov 28 2026 10:20:01: %ASA-6-106100: access-list outside_in denied tcp "
        "outside/203.0.113.9(4444) -> inside/10.0.0.5(22) hit-cnt 1 first hit [0x1, 0x0]",
        {"event.type": ["connection", "denied"], "destination.port": 22, "source.port": 4444},
    ),
    (
        "<166>Nov 28 2026 10:20:01 asa01 : %ASA-6-605004: Login denied from 203.0.113.9/51000 "
        'to outside:198.51.100.1/ssh for user "admin"',
        {
            "event.category": ["authentication"],
            "event.outcome": "failure",
            "user.name": "admin",
            "source.ip": "203.0.113.9",
        },
    ),
    (
        "<165>Nov 28 2026 10:20:01 asa01 : %ASA-5-111008: User 'enable_15' executed the "
        "'clear logging' command.",
        {
            "event.action": "command_executed",
            "process.command_line": "clear logging",
            "user.name": "enable_15",
            "message": "User 'enable_15' executed the 'clear logging' command.",
        },
    ),
    (  # IOS: a sequence number and the device's own time before the tag
        "<189>45: rtr01: Nov 28 10:20:01.123 ICT: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  "
        "logged command:show running-config",
        {
            "event.dataset": "cisco.ios",
            "event.code": "CFGLOG_LOGGEDCMD",
            "observer.product": "IOS",
            "process.command_line": "show running-config",
            "user.name": "admin",
        },
    ),
    (
        "<190>46: *Nov 28 10:20:01.123: %SEC-6-IPACCESSLOGP: list 101 denied tcp "
        "203.0.113.9(4444) -> 10.0.0.5(23), 1 packet",
        {
            "event.type": ["connection", "denied"],
            "destination.port": 23,
            "source.ip": "203.0.113.9",
        },
    ),
    (
        "<188>47: Nov 28 10:20:01: %SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: admin] "
        "[Source: 203.0.113.9] [localport: 22] [Reason: Login Authentication Failed]",
        {"event.outcome": "failure", "user.name": "admin", "source.ip": "203.0.113.9"},
    ),
    (  # a message id this normalizer does not parse: Cisco's, with its code, nothing more
        "<166>Nov 28 2026 10:20:01 asa01 : %ASA-6-199999: something new",
        {"event.code": "199999", "event.dataset": "cisco.asa", "event.category": ABSENT},
    ),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=lambda case: str(case)[:40])
def test_cisco_messages_fill_the_fields_rules_pivot_on(line: str, expected: dict[str, Any]) -> None:
    assert_fields(syslog(line), expected)


def test_other_lines_with_a_percent_sign_are_not_cisco() -> None:
    event = syslog("<38>Nov 28 10:00:00 web01 app[1]: disk 95% full (%ROOT-1-FULL is a name)")
    assert event["event"]["module"] != "cisco"
    event = syslog("<38>Nov 28 10:00:00 web01 sshd[42]: Failed password for root from ::1")
    assert event["event"]["module"] != "cisco"


@pytest.mark.skipif(not CISCO_AAA.is_dir(), reason=f"no SigmaHQ Cisco rules at {CISCO_AAA}")
def test_sigmahq_cisco_aaa_rules_fire_on_commands_only() -> None:
    ruleset = load_rules([CISCO_AAA])
    assert not ruleset.unrouted

    def titles(line: str) -> list[str]:
        return [rule.title for rule in ruleset.match(syslog(line))]

    clear = (
        "<165>Nov 28 2026 10:20:01 asa01 : %ASA-5-111008: User 'x' executed the "
        "'clear logging' command."
    )
    assert "Cisco Clear Logs" in titles(clear)
    ios = (
        "<189>45: rtr01: Nov 28 10:20:01 ICT: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  "
        "logged command:show version"
    )
    assert "Cisco Discovery" in titles(ios)
    # 'dir' is one of the discovery rule's keywords: a connection to a directory server is not
    # a command, and the AAA rules do not read it.
    assert titles(DENY.format(s=1, port=389).replace("outside_access_in", "dir_acl")) == []


def test_a_port_scan_denied_by_an_asa_is_found(tmp_path: Path) -> None:
    lines = [DENY.format(s=n, port=1000 + n) for n in range(25)]
    (found,) = port_scans(tmp_path, "asa.log", lines)
    assert found["correlation"]["group"] == {"source.ip": "203.0.113.9"}
