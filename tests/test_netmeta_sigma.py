"""The sensor's DNS records reach SigmaHQ's own dns rules through the project's network pipeline
(`query` -> dns.question.name, `record_type` -> dns.question.type, `answer` ->
dns.answers.data), as the issue asks of network records."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from collectors.netmeta.offline import pcap_documents
from soc.detect.rules import RuleSet, load_rules
from soc.normalize import NormalizeOptions, normalize
from tests.netmeta_pcaps import at, handshake

ROOT = Path(__file__).resolve().parent.parent
SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", ROOT.parent / "shared/sigma"))
DNS_RULES = SIGMA / "rules" / "network" / "dns"
WANNACRY = "Wannacry Killswitch Domain"
TXT_EXEC = "DNS TXT Answer with Possible Execution Strings"

needs_sigmahq = pytest.mark.skipif(
    not DNS_RULES.is_dir(), reason=f"SigmaHQ corpus not found at {SIGMA} (set SOC_SIGMA_PATH)"
)


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    directory = tmp_path_factory.mktemp("rules")
    shutil.copytree(ROOT / "rules" / "pipelines", directory / "pipelines")
    for rule in DNS_RULES.glob("*.yml"):
        shutil.copy(rule, directory)
    rules = load_rules([directory])
    assert rules.problems == []
    assert rules.unrouted == []
    return rules


def _exchange(query: DNS, answer: DNS, start: float) -> list[object]:
    there = Ether() / IP(src="10.0.0.2", dst="10.0.0.53") / UDP(sport=40000, dport=53)
    back = Ether() / IP(src="10.0.0.53", dst="10.0.0.2") / UDP(sport=53, dport=40000)
    return [at(there / query, start), at(back / answer, start + 0.01)]


@needs_sigmahq
def test_dns_records_from_a_pcap_fire_sigmahq_dns_rules(ruleset: RuleSet, tmp_path: Path) -> None:
    killswitch = "iuqssfsodp9ifjaposdfjhgosurijfaewrwergwea.com"  # WannaCry's, as the rule lists
    txt = DNSQR(qname="stage.example.org", qtype="TXT")
    packets = [
        *_exchange(
            DNS(id=1, rd=1, qd=DNSQR(qname=killswitch)),
            DNS(id=1, qr=1, qd=DNSQR(qname=killswitch), an=DNSRR(rrname=killswitch)),
            0.0,
        ),
        *_exchange(
            DNS(id=2, rd=1, qd=txt),
            DNS(id=2, qr=1, qd=txt, an=DNSRR(rrname="stage.example.org", type="TXT",
                                              rdata="powershell IEX (New-Object Net.WebClient)")),
            1.0,
        ),
        *_exchange(
            DNS(id=3, rd=1, qd=DNSQR(qname="dichvucong.gov.vn")),
            DNS(id=3, qr=1, qd=DNSQR(qname="dichvucong.gov.vn"),
                an=DNSRR(rrname="dichvucong.gov.vn", rdata="10.1.0.10")),
            2.0,
        ),
    ]  # fmt: skip
    pcap = tmp_path / "dns.pcap"
    wrpcap(str(pcap), packets)
    hits: list[tuple[str, str, set[str]]] = []
    for document in pcap_documents(pcap):
        if document["event"]["dataset"] != "netmeta.dns":
            continue
        record = {
            "id": document["event"]["id"],
            "received_at": "2026-11-28T03:00:00Z",
            "format": "ecs",
            "data": orjson.dumps(document).decode(),
        }
        event = normalize(record, NormalizeOptions())
        titles = {rule.title for rule in ruleset.match(event)}
        hits.append((event["dns"]["question"]["name"], event["dns"]["type"], titles))
    assert hits == [
        (killswitch, "query", {WANNACRY}),
        (killswitch, "answer", {WANNACRY}),
        ("stage.example.org", "query", set()),
        ("stage.example.org", "answer", {TXT_EXEC}),
        ("dichvucong.gov.vn", "query", set()),
        ("dichvucong.gov.vn", "answer", set()),
    ]


def test_http_seen_on_the_wire_fires_the_web_rules(tmp_path: Path) -> None:
    """The project's webserver rules (scanner user agent, SQL injection) on the sensor's HTTP
    records: a portal without access logs shipped is still covered from the mirror port."""
    ruleset = load_rules([ROOT / "rules"])
    request = (
        b"GET /portal/search.php?q=1%27%20or%201=1-- HTTP/1.1\r\nHost: portal.example.gov.vn\r\n"
        b"User-Agent: sqlmap/1.8#stable\r\n\r\n"
    )
    pcap = tmp_path / "web.pcap"
    wrpcap(str(pcap), handshake("203.0.113.7", "10.0.0.80", 40000, 80, 0.0, [(True, request)]))
    (http,) = [d for d in pcap_documents(pcap) if d["event"]["dataset"] == "netmeta.http"]
    record = {
        "id": http["event"]["id"],
        "received_at": "2026-11-28T03:00:00Z",
        "format": "ecs",
        "data": orjson.dumps(http).decode(),
    }
    titles = {rule.title for rule in ruleset.match(normalize(record, NormalizeOptions()))}
    assert {
        "Web Vulnerability Scanner User Agent",
        "SQL Injection Attempt in a Web Request",
    } <= titles
