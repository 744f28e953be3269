"""Suricata and Zeek records reach Sigma's dns and firewall rules through the project's network
pipeline (rules/pipelines/network.yml): the rule says `query` or `dst_port`, the event carries
the ECS field the pipeline maps it to."""

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from soc.detect.rules import RuleSet, load_rules
from soc.normalize import NormalizeOptions, normalize

PIPELINES = Path(__file__).resolve().parent.parent / "rules" / "pipelines"
DNS_RULE = """
title: DNS Query For A Dynamic DNS Domain
id: 0c3d8e2a-6b1f-4c55-9e77-1a2b3c4d5e01
status: test
logsource: {category: dns}
detection:
    selection:
        query|endswith: '.duckdns.org'
    condition: selection
level: medium
"""
FIREWALL_RULE = """
title: Connection To A Metasploit Default Port
id: 0c3d8e2a-6b1f-4c55-9e77-1a2b3c4d5e02
status: test
logsource: {category: firewall}
detection:
    selection:
        dst_port: 4444
        protocol: tcp
    condition: selection
level: medium
"""


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    directory = tmp_path_factory.mktemp("rules")
    shutil.copytree(PIPELINES, directory / "pipelines")
    (directory / "dns.yml").write_text(DNS_RULE)
    (directory / "firewall.yml").write_text(FIREWALL_RULE)
    rules = load_rules([directory])
    assert rules.problems == []
    assert rules.unrouted == []
    return rules


def titles(ruleset: RuleSet, kind: str, document: dict[str, Any]) -> set[str]:
    record = {
        "id": "n1",
        "received_at": "2026-11-28T03:00:00Z",
        "format": kind,
        "data": orjson.dumps(document).decode(),
    }
    return {rule.title for rule in ruleset.match(normalize(record, NormalizeOptions()))}


ZEEK_IDS = {"ts": 1764298800.0, "uid": "C1", "id.orig_h": "10.20.0.31", "id.orig_p": 50000}
EVE = {"timestamp": "2026-11-28T10:00:00+0700", "src_ip": "10.20.0.31", "src_port": 50000}


def test_zeek_and_suricata_dns_reach_dns_rules(ruleset: RuleSet) -> None:
    zeek = {**ZEEK_IDS, "id.resp_h": "10.20.0.1", "id.resp_p": 53, "query": "x.duckdns.org"}
    eve = {**EVE, "event_type": "dns", "dns": {"type": "query", "rrname": "x.duckdns.org"}}
    assert "DNS Query For A Dynamic DNS Domain" in titles(ruleset, "zeek", zeek)
    assert "DNS Query For A Dynamic DNS Domain" in titles(ruleset, "suricata", eve)
    benign = {**zeek, "query": "dichvucong.gov.vn"}
    assert titles(ruleset, "zeek", benign) == set()


def test_zeek_and_suricata_flows_reach_firewall_rules(ruleset: RuleSet) -> None:
    zeek = {**ZEEK_IDS, "id.resp_h": "198.51.100.9", "id.resp_p": 4444, "proto": "tcp",
            "conn_state": "SF"}  # fmt: skip
    eve = {**EVE, "event_type": "flow", "dest_ip": "198.51.100.9", "dest_port": 4444,
           "proto": "TCP", "flow": {"pkts_toserver": 5, "pkts_toclient": 4}}  # fmt: skip
    assert "Connection To A Metasploit Default Port" in titles(ruleset, "zeek", zeek)
    assert "Connection To A Metasploit Default Port" in titles(ruleset, "suricata", eve)
    other_port = {**zeek, "id.resp_p": 443}
    assert titles(ruleset, "zeek", other_port) == set()
