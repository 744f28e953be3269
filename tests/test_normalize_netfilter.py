"""Host and small-site firewalls -> ECS firewall events: the kernel's netfilter LOG lines (UFW,
firewalld, iptables; what the rule did, from its log prefix) and pfSense/OPNsense filterlog CSV;
the addresses, ports and protocol; and their refusals counted by the port-scan correlation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.ecs_fields import ABSENT, assert_fields, port_scans, syslog_event

ROOT = Path(__file__).resolve().parents[1]
UFW_BLOCK = (
    "<4>Nov 28 10:20:01 web01 kernel: [123456.789012] [UFW BLOCK] IN=eth0 OUT= "
    "MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.9 DST=10.0.0.5 LEN=44 "
    "TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=TCP SPT=45678 DPT={port} WINDOW=1024 RES=0x00 "
    "SYN URGP=0"
)


def syslog(line: str) -> dict[str, Any]:
    return syslog_event(line, peer="10.0.0.5")


def test_a_ufw_block_is_a_denied_connection_with_its_endpoints() -> None:
    event = syslog(UFW_BLOCK.format(port=3389))
    assert_fields(
        event,
        {
            "event.dataset": "iptables.log",
            "event.category": ["network"],
            "event.type": ["connection", "denied"],
            "event.outcome": "failure",
            "event.action": "ufw_block",
            "host.name": "web01",
            "process.name": "kernel",
            "source.ip": "203.0.113.9",
            "source.port": 45678,
            "destination.ip": "10.0.0.5",
            "destination.port": 3389,
            "network.transport": "tcp",
            "observer.ingress.interface.name": "eth0",
            "observer.egress": ABSENT,
            "iptables.ttl": "241",
            "iptables.tcp.flags": ["SYN"],
            "iptables.prefix": "[UFW BLOCK]",
        },
    )


def test_firewalld_rejects_and_accepting_rules_are_told_apart() -> None:
    rejected = syslog(
        "<4>Nov 28 10:20:01 db01 kernel: filter_IN_public_REJECT: IN=ens3 OUT= "
        "MAC=00:16:3e:aa:bb:cc:00:16:3e:dd:ee:ff:86:dd SRC=2001:db8::7 DST=2001:db8::5 LEN=72 "
        "TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=1"
    )
    assert_fields(
        rejected,
        {
            "event.type": ["connection", "denied"],
            "event.action": "filter_in_public_reject",
            "source.ip": "2001:db8::7",
            "network.transport": "ipv6-icmp",
            "destination.port": ABSENT,
        },
    )
    accepted = syslog(
        "<4>Nov 28 10:20:01 db01 kernel: IPTABLES-ACCEPT: IN=ens3 OUT=ens4 SRC=10.0.0.9 "
        "DST=10.1.0.2 LEN=60 PROTO=UDP SPT=5353 DPT=53 LEN=40"
    )
    assert_fields(
        accepted,
        {
            "event.type": ["connection", "allowed"],
            "event.outcome": ABSENT,
            "observer.egress.interface.name": "ens4",
            "destination.port": 53,
            "network.transport": "udp",
        },
    )
    logged = syslog(
        "<4>Nov 28 10:20:01 db01 kernel: IN=ens3 OUT= SRC=10.0.0.9 DST=10.1.0.2 PROTO=TCP "
        "SPT=1 DPT=2"
    )
    assert_fields(logged, {"event.type": ["connection"], "event.action": ABSENT})


def test_other_kernel_lines_stay_as_they_are() -> None:
    event = syslog("<3>Nov 28 10:20:01 web01 kernel: Out of memory: Killed process 4242 (java)")
    assert_fields(
        event,
        {"event.dataset": "syslog", "iptables": ABSENT, "event.category": ABSENT},
    )
    assert event["message"] == "Out of memory: Killed process 4242 (java)"


def test_a_port_scan_refused_by_a_servers_own_firewall_is_found(tmp_path: Path) -> None:
    lines = [
        UFW_BLOCK.format(port=1000 + n).replace("10:20:01", f"10:20:{n:02d}") for n in range(25)
    ]
    (found,) = port_scans(tmp_path, "kern.log", lines)
    assert found["correlation"]["group"] == {"source.ip": "203.0.113.9"}


# --- pfSense and OPNsense (filterlog) -----------------------------------------------------------

PF_BLOCK = (
    "<134>Nov 28 10:20:{s:02d} fw01 filterlog[12345]: 5,,,1000000103,em0,match,block,in,4,0x0,,64,"
    "0,0,DF,6,tcp,60,203.0.113.9,10.0.0.5,45678,{port},0,S,12345,,64240,,mss;sackOK"
)


def test_a_pfsense_block_is_a_denied_connection_with_its_endpoints() -> None:
    assert_fields(
        syslog(PF_BLOCK.format(s=1, port=22)),
        {
            "event.module": "pfsense",
            "event.dataset": "pfsense.log",
            "event.type": ["connection", "denied"],
            "event.action": "block",
            "source.ip": "203.0.113.9",
            "source.port": 45678,
            "destination.ip": "10.0.0.5",
            "destination.port": 22,
            "network.transport": "tcp",
            "observer.ingress.interface.name": "em0",
            "pfsense.tcp_flags": "S",
            "pfsense.tracker": "1000000103",
        },
    )


def test_pfsense_ipv6_and_passed_packets_and_other_lines() -> None:
    passed = syslog(
        "<134>Nov 28 10:20:01 fw01 filterlog[1]: 77,,,1770001234,igb1,match,pass,out,6,0x00,"
        "0x00000,64,udp,17,72,2001:db8::5,2001:db8::53,5353,53,72"
    )
    assert_fields(
        passed,
        {
            "event.type": ["connection", "allowed"],
            "source.ip": "2001:db8::5",
            "destination.port": 53,
            "network.transport": "udp",
            "observer.egress.interface.name": "igb1",
        },
    )
    icmp = syslog(
        "<134>Nov 28 10:20:01 fw01 filterlog[1]: 5,,,1000000103,em0,match,block,in,4,0x0,,64,"
        "0,0,none,1,icmp,84,203.0.113.9,10.0.0.5,request,4242,1"
    )
    assert_fields(icmp, {"network.transport": "icmp", "destination.port": ABSENT})
    other = syslog("<134>Nov 28 10:20:01 fw01 filterlog[1]: not,a,packet")
    assert_fields(other, {"event.dataset": "pfsense.log", "event.category": ABSENT})


def test_a_port_scan_blocked_by_pfsense_is_found(tmp_path: Path) -> None:
    lines = [PF_BLOCK.format(s=n, port=1000 + n) for n in range(25)]
    (found,) = port_scans(tmp_path, "filter.log", lines)
    assert found["correlation"]["group"] == {"source.ip": "203.0.113.9"}
