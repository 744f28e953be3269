"""Sysmon for Linux through syslog: the XML in the message becomes ECS, SigmaHQ's Linux
process_creation / network_connection / file_event rules fire on it, and a process that Sysmon
saw start is never taken for the service of that name logging."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from soc.detect.rules import RuleSet, load_rules
from soc.normalize import NormalizeOptions, normalize

ROOT = Path(__file__).resolve().parents[1]
SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", ROOT.parent / "shared" / "sigma"))
LINUX_RULES = SIGMA / "rules" / "linux"
LINES = (ROOT / "tests" / "data" / "sysmon_linux" / "events.log").read_text().splitlines()


def event_of(line: str, number: int = 0) -> dict[str, Any]:
    return normalize(
        {
            "id": f"sysmon-{number}",
            "received_at": "2026-11-28T03:15:30.000000Z",
            "source": {"type": "syslog", "transport": "tcp", "peer": {"ip": "10.20.1.15"}},
            "data": line,
        },
        NormalizeOptions(),
    )


def test_process_creation_becomes_ecs_process_fields() -> None:
    event = event_of(LINES[0])
    assert event["event"]["module"] == "sysmon"
    assert event["event"]["code"] == "1"
    assert event["event"]["category"] == ["process"] and event["event"]["type"] == ["start"]
    process = event["process"]
    assert process["executable"] == "/usr/bin/base64" and process["name"] == "base64"
    assert process["command_line"] == "base64 -d /tmp/.x"
    assert process["pid"] == 24211
    assert process["working_directory"] == "/var/www/html"
    assert process["user"]["id"] == "33"
    assert process["parent"]["executable"] == "/usr/bin/dash"
    assert process["parent"]["name"] == "dash"
    assert process["parent"]["command_line"] == "sh -c base64 -d /tmp/.x | sh"
    assert event["user"]["name"] == "www-data"
    assert event["host"] == {"name": "cong-dv-01", "os": {"type": "linux"}}
    # The kernel's time of the act, to the microsecond, not the syslog header's second.
    assert event["@timestamp"] == "2026-11-28T03:15:21.123456Z"
    assert event["sysmon"]["event_data"]["ParentUser"] == "www-data"
    assert event["sysmon"]["record_id"] == "35705"


def test_network_connection_and_file_creation() -> None:
    network = event_of(LINES[1], 1)
    assert network["event"]["category"] == ["network"]
    assert network["destination"]["ip"] == "203.0.113.66"
    assert network["destination"]["port"] == 4444
    assert network["source"] == {"ip": "10.20.1.15", "domain": "-", "port": 51234}
    assert network["network"]["transport"] == "tcp"
    assert network["network"]["direction"] == ["egress", "true"]
    assert network["process"]["name"] == "nc.openbsd"
    assert sorted(network["related"]["ip"]) == ["10.20.1.15", "203.0.113.66"]
    created = event_of(LINES[2], 2)
    assert created["event"]["category"] == ["file"] and created["event"]["type"] == ["creation"]
    assert created["file"]["path"] == "/etc/cron.d/updater"
    assert created["process"]["executable"] == "/usr/bin/cp"


@pytest.mark.parametrize(
    "message",
    [
        '<!DOCTYPE x [<!ENTITY a "aaaa">]><Event><System><EventID>1</EventID></System></Event>',
        "<Event><System><EventID>1</EventID></System>",  # cut short
        "<Other><System><EventID>1</EventID></System></Other>",
        "<Event><EventData><Data Name='Image'>/bin/sh</Data></EventData></Event>",  # no EventID
    ],
)
def test_malformed_xml_keeps_the_line_and_flags_it(message: str) -> None:
    event = event_of(f"<14>Nov 28 10:15:21 cong-dv-01 sysmon: {message}")
    assert "sysmon_parse_failed" in event["tags"]
    assert event["message"] == message
    assert event["event"]["module"] == "sysmon"
    assert "category" not in event["event"]
    assert event["process"]["name"] == "sysmon"


def test_a_plain_sysmon_status_line_is_kept_as_it_is() -> None:
    event = event_of("<14>Nov 28 10:15:21 cong-dv-01 sysmon: Sysmon v1.3.2 started")
    assert event["message"] == "Sysmon v1.3.2 started"
    assert "sysmon_parse_failed" not in event["tags"]


@pytest.fixture(scope="module")
def linux_rules() -> RuleSet:
    if not LINUX_RULES.is_dir():
        pytest.skip(f"SigmaHQ corpus not found at {SIGMA} (set SOC_SIGMA_PATH)")
    return load_rules([LINUX_RULES, ROOT / "rules"])  # with the platform's Linux pipeline


@pytest.mark.parametrize(
    ("line", "rule_id"),
    [
        (0, "e2072cab-8c9a-459b-b63c-40ae79e27031"),  # Decode Base64 Encoded Text
        (1, "dbfc7c98-04ab-4ab7-aa94-c74d22aa7376"),  # Malware callback port - Linux
        (2, "6c4e2f43-d94d-4ead-b64d-97e53fa2bd05"),  # New Cron File Created
    ],
)
def test_sigmahq_linux_rules_fire_on_sysmon_events(
    linux_rules: RuleSet, line: int, rule_id: str
) -> None:
    assert rule_id in {rule.id for rule in linux_rules.match(event_of(LINES[line], line))}


def test_omigod_rule_reads_logon_id_and_working_directory(linux_rules: RuleSet) -> None:
    line = (
        LINES[3]
        .replace("/usr/sbin/sshd</Data><Data Name=\"CommandLine\">sshd: root [priv]",
                 "/bin/sh</Data><Data Name=\"CommandLine\">/bin/sh -c id")
        .replace('<Data Name="CurrentDirectory">/</Data>',
                 '<Data Name="CurrentDirectory">/var/opt/microsoft/scx/tmp</Data>')
    )  # fmt: skip
    matched = {rule.title for rule in linux_rules.match(event_of(line))}
    assert any("OMIGOD" in title for title in matched), matched


def test_a_process_named_sshd_is_not_the_sshd_service(linux_rules: RuleSet) -> None:
    event = event_of(LINES[3], 3)
    assert event["process"]["name"] == "sshd"
    admitted = {linux_rules.routes[n].route.describe() for n in linux_rules.table.admitted(event)}
    assert "category=process_creation,product=linux" in admitted
    assert "product=linux,service=sshd" not in admitted
    # The sshd daemon's own syslog line still is.
    own = event_of("<38>Nov 28 10:15:21 cong-dv-01 sshd[800]: Failed password for root from "
                   "203.0.113.9 port 4711 ssh2")  # fmt: skip
    admitted = {linux_rules.routes[n].route.describe() for n in linux_rules.table.admitted(own)}
    assert "product=linux,service=sshd" in admitted
