"""ArcSight CEF (WAFs, endpoint suites, firewalls set to it) -> ECS: the header and extension
with their escapes, the syslog headers it comes after (and the one that eats its start), its
times, the ECS fields analysts and rules read, and the detections it feeds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from soc.detect.rules import load_rules
from soc.normalize.cef import cef_start
from tests.ecs_fields import ABSENT, ZONE, assert_fields, port_scans, syslog_event

ROOT = Path(__file__).resolve().parents[1]

DEEP_SECURITY = (
    "<134>Nov 28 10:20:00 dsa01 CEF:0|Trend Micro|Deep Security Agent|20.0|4000010|"
    "Web Reputation|6|src=10.1.2.3 spt=51234 dst=203.0.113.9 dpt=80 act=Block "
    "request=http://bad.example/x.php?a=1&b=2 suser=SO-TTTT\\\\bob msg=Blocked by WRS "
    "rt=Nov 28 2026 10:20:01 +0700 cs1Label=Policy cs1=Base Policy"
)
IMPERVA = (
    "<134>Nov 28 10:20:00 CEF:0|Imperva Inc.|SecureSphere|14.1|Signature|SQL Injection|High|"
    "act=Block src=203.0.113.5 spt=40000 dst=10.0.0.8 dpt=443 dvchost=waf01 "
    "requestMethod=get request=/dichvucong/login.php?id=1%27 "
    "requestClientApplication=sqlmap/1.8 (https://sqlmap.org)"
)


def test_a_cef_line_fills_the_fields_analysts_and_rules_read() -> None:
    event = syslog_event(DEEP_SECURITY)
    assert_fields(
        event,
        {
            "@timestamp": "2026-11-28T03:20:01.000000Z",  # rt, with its own zone
            "event.module": "cef",
            "event.dataset": "cef.log",
            "event.code": "4000010",
            "event.action": "Block",
            "event.severity": 6,
            "event.outcome": "failure",
            "event.category": ["network"],
            "event.type": ["connection", "denied"],
            "message": "Blocked by WRS",
            "host.name": "dsa01",
            "observer.vendor": "Trend Micro",
            "observer.product": "Deep Security Agent",
            "observer.version": "20.0",
            "cef.name": "Web Reputation",
            "cef.severity": "6",
            "cef.device.event_class_id": "4000010",
            "source.ip": "10.1.2.3",
            "source.port": 51234,
            "destination.ip": "203.0.113.9",
            "destination.port": 80,
            "user.name": "SO-TTTT\\bob",  # "\\" unescaped
            "source.user.name": "SO-TTTT\\bob",
            "url.original": "http://bad.example/x.php?a=1&b=2",  # "=" inside a value
            "url.query": "a=1&b=2",
            # Every pair verbatim; a value runs to the next key, spaces and all.
            "cef.extensions.cs1": "Base Policy",
            "cef.extensions.cs1Label": "Policy",
            "cef.extensions.rt": "Nov 28 2026 10:20:01 +0700",
            "tags": ["cef"],
        },
    )


def test_a_waf_line_whose_syslog_header_names_no_host() -> None:
    """`Nov 28 10:20:00 CEF:0|Imperva Inc.|...`: the header parser takes `CEF:0|Imperva` for
    the host; the CEF is read from the whole line, and the host is the device CEF names."""
    event = syslog_event(IMPERVA, peer="10.0.0.250")
    assert_fields(
        event,
        {
            "host.name": "waf01",
            "log.syslog.hostname": ABSENT,
            "observer.hostname": "waf01",
            "observer.vendor": "Imperva Inc.",
            "cef.name": "SQL Injection",
            "event.severity": 8,  # "High"
            "event.code": "Signature",
            "http.request.method": "GET",
            "url.path": "/dichvucong/login.php",
            "url.query": "id=1%27",
            "user_agent.original": "sqlmap/1.8 (https://sqlmap.org)",
            "source.ip": "203.0.113.5",
            "@timestamp": "2026-11-28T03:20:00.000000Z",  # no rt: the syslog header's time
        },
    )


def test_header_and_extension_escapes() -> None:
    line = (
        "CEF:0|Security|threat\\|manager|1.0|100|a \\\\ and a \\| in the name|10|"
        "src=10.0.0.1 act=blocked a \\= sign msg=two\\nlines cs2=C:\\\\Temp\\\\x.exe "
        "src=10.9.9.9 dst=2.1.2.2"
    )
    event = syslog_event(line)
    assert_fields(
        event,
        {
            "cef.device.product": "threat|manager",
            "cef.name": "a \\ and a | in the name",
            "event.action": "blocked a = sign",
            "message": "two\nlines",
            "cef.extensions.cs2": "C:\\Temp\\x.exe",
            "source.ip": "10.0.0.1",  # the first of a repeated key
            "event.severity": 10,
            # CEF alone on a line: no syslog header is expected, none is flagged.
            "tags": ["cef"],
            "error": ABSENT,
        },
    )


def test_full_key_names_and_unsafe_keys() -> None:
    line = (
        "<134>Nov 28 10:20:00 fw CEF:0|Check Point|VPN-1 & FireWall-1|R81|drop|Drop|5|"
        "sourceAddress=198.51.100.7 sourcePort=5555 destinationAddress=10.0.0.5 "
        "destinationPort=3389 deviceAction=Drop transportProtocol=TCP ad.rule=12 ad=x "
        "deviceDirection=0"
    )
    event = syslog_event(line)
    assert_fields(
        event,
        {
            "source.ip": "198.51.100.7",
            "source.port": 5555,
            "destination.port": 3389,
            "event.action": "Drop",
            "event.type": ["connection", "denied"],
            "network.transport": "tcp",
            "network.direction": "inbound",
            # "ad.rule" next to "ad" would be an object and a keyword in Elasticsearch.
            "cef.extensions.ad_rule": "12",
            "cef.extensions.ad": "x",
        },
    )


def test_values_that_do_not_fit_their_ecs_type_stay_in_the_extension() -> None:
    line = (
        "<134>Nov 28 10:20:00 fw CEF:0|V|P|1|1|n|Unknown|src=gateway.local spt=70000 "
        "dst=- dpt=x in=12a out=300 proto=999 rt=yesterday"
    )
    event = syslog_event(line)
    assert_fields(
        event,
        {
            "source.address": "gateway.local",
            "source.ip": ABSENT,
            "source.port": ABSENT,
            "destination.ip": ABSENT,
            "destination.port": ABSENT,
            "source.bytes": 300,
            "destination.bytes": ABSENT,
            "network.iana_number": ABSENT,
            "event.severity": ABSENT,
            "cef.severity": "Unknown",
            "cef.extensions.spt": "70000",
            "cef.extensions.rt": "yesterday",
            "@timestamp": "2026-11-28T03:20:00.000000Z",  # the header's time, rt unreadable
        },
    )


def test_every_time_form() -> None:
    def at(rt: str) -> str:
        line = f"<134>Nov 28 10:20:00 fw CEF:0|V|P|1|1|n|3|rt={rt} src=10.0.0.1"
        return str(syslog_event(line)["@timestamp"])

    assert at("1795836225123") == "2026-11-28T03:23:45.123000Z"  # milliseconds
    assert at("1795836225") == "2026-11-28T03:23:45.000000Z"  # seconds
    assert at("Nov 28 2026 10:23:45") == "2026-11-28T03:23:45.000000Z"  # the site's zone
    assert at("Nov 28 2026 10:23:45.250 UTC") == "2026-11-28T10:23:45.250000Z"
    assert at("Nov 28 2026 10:23:45 GMT+07:00") == "2026-11-28T03:23:45.000000Z"
    assert at("Nov 28 2026 10:23:45 Europe/Paris") == "2026-11-28T09:23:45.000000Z"  # named
    assert at("Nov 28 2026 10:23:45 ICT") == "2026-11-28T03:23:45.000000Z"  # unknown: the site's
    assert at("2026-11-28T10:23:45+07:00") == "2026-11-28T03:23:45.000000Z"
    year = datetime.now(ZONE).year
    assert at("Nov  2 10:23:45").startswith(f"{year}-11-02T03:23:45")  # no year: this year
    assert at("Feb 30 2026 10:23:45") == "2026-11-28T03:20:00.000000Z"  # no such day: header


def test_lines_that_are_not_cef_are_left_to_the_other_parsers() -> None:
    # An incomplete header is not CEF.
    broken = syslog_event("<134>Nov 28 10:20:00 fw CEF:0|V|P|1|only five")
    assert_fields(broken, {"event.module": "syslog", "cef": ABSENT})
    # A program's own line that mentions CEF is the program's.
    sshd = syslog_event(
        "<38>Nov 28 10:20:00 web1 sshd[42]: Failed password for root from 203.0.113.4 "
        "port 50000 ssh2 CEF:0|a|b|c|d|e|5|src=1.1.1.1"
    )
    assert_fields(sshd, {"event.dataset": "system.auth", "cef": ABSENT})
    assert cef_start("no cef here", "no cef here") is None
    assert cef_start("xCEF:0|a", "xCEF:0|a") is None  # not at a word's start


def test_rfc5424_header() -> None:
    line = (
        "<134>1 2026-11-28T10:20:00+07:00 apex01 CEF - - - CEF:0|Trend Micro|Apex One|14|AV|"
        "Virus found|8|fname=eicar.com filePath=C:\\\\Users\\\\bob\\\\eicar.com fsize=68 "
        "duser=bob dvc=10.0.0.30"
    )
    event = syslog_event(line)
    assert_fields(
        event,
        {
            "host.name": "apex01",
            "file.name": "eicar.com",
            "file.path": "C:\\Users\\bob\\eicar.com",
            "file.size": 68,
            "user.name": "bob",  # the account acted on, when no acting user is named
            "observer.ip": "10.0.0.30",
            "event.category": ABSENT,  # no connection
            "cef.name": "Virus found",
        },
    )


def test_denied_cef_connections_feed_the_firewall_rules_and_the_port_scan(
    tmp_path: Path,
) -> None:
    rules = load_rules([ROOT / "rules" / "network" / "net_firewall_denied.yml"])

    def titles(event: dict[str, Any]) -> list[str]:
        return [rule.title for rule in rules.match(event)]

    denied = (
        "<134>Nov 28 10:20:00 fw CEF:0|Check Point|FW|R81|drop|Drop|5|act=Drop "
        "src=198.51.100.7 spt=5555 dst=10.0.0.5 dpt=3389"
    )
    allowed = denied.replace("act=Drop", "act=Accept")
    assert titles(syslog_event(denied)) == [rules.rules[0].title]
    assert titles(syslog_event(allowed)) == []
    lines = [
        f"<134>Nov 28 10:20:{second:02d} fw CEF:0|Check Point|FW|R81|drop|Drop|5|"
        f"act=Drop src=198.51.100.7 spt=5555 dst=10.0.0.5 dpt={port}"
        for second, port in enumerate(range(20, 45))
    ]
    scans = port_scans(tmp_path, "cef.log", lines)
    assert len(scans) == 1
    assert scans[0]["source"]["ip"] == "198.51.100.7"
    assert port_scans(tmp_path, "few.log", lines[:3]) == []
