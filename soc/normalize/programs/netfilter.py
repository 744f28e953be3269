"""Linux firewall logs (the kernel's netfilter LOG lines: UFW, firewalld, iptables and
nftables rules with a log prefix) -> ECS firewall events, dataset ``iptables.log``.

``kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:...:08:00 SRC=203.0.113.9 DST=10.0.0.5 LEN=44
TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=TCP SPT=45678 DPT=3389 WINDOW=1024 RES=0x00 SYN
URGP=0``

The prefix is whatever the rule's ``--log-prefix`` says; a word in it tells what the rule did
(BLOCK, DROP, REJECT, DENY: denied; ALLOW, ACCEPT: allowed), which ``event.type`` carries, so
that the port-scan correlation counts a server's own refusals as it counts a FortiGate's. Every
pair is kept under ``iptables.<key in lower case>``, the TCP flags as ``iptables.tcp.flags``.
Other kernel lines are left as they are.
"""

from __future__ import annotations

import re
from typing import Any, Final

from soc.normalize.ecs import Event, branch
from soc.normalize.network import port_number, set_endpoint

__all__ = ["parse"]

#: dmesg's uptime stamp some forwarders keep in front of the message.
_UPTIME: Final = re.compile(r"^\[\s*\d+\.\d+\]\s*")
_PAIR: Final = re.compile(r"([A-Z][A-Z0-9_]*)=(\S*)")
_FLAG: Final = re.compile(r"(?:^|\s)(CWR|ECE|URG|ACK|PSH|RST|SYN|FIN)(?=\s|$)")
_DENIED_WORDS: Final = ("BLOCK", "DROP", "REJECT", "DENY", "DENIED")
_ALLOWED_WORDS: Final = ("ALLOW", "ACCEPT")


def parse(message: str, event: Event) -> None:
    """Fill the firewall fields when the kernel line is a netfilter log; else do nothing."""
    start = message.find("IN=")
    if start < 0 or " SRC=" not in message or " PROTO=" not in message:
        return  # most kernel lines: not a packet log
    if start and not message[start - 1].isspace():
        return
    text = message[start:]
    prefix = message[:start]
    if prefix.startswith("["):
        prefix = _UPTIME.sub("", prefix, count=1)
    prefix = prefix.strip()
    pairs = dict(_PAIR.findall(text))
    fields: dict[str, Any] = {key.lower(): value for key, value in pairs.items()}
    if pairs.get("PROTO") == "TCP":
        flags = _FLAG.findall(text)
        if flags:
            fields["tcp"] = {"flags": flags}
    if prefix:
        fields["prefix"] = prefix
    event["iptables"] = fields
    meta = event["event"]
    meta["dataset"] = "iptables.log"
    meta["category"] = ["network"]
    verdict = _verdict(prefix)
    meta["type"] = ["connection"] if verdict is None else ["connection", verdict]
    if verdict == "denied":
        meta["outcome"] = "failure"
    if prefix:
        meta["action"] = prefix.strip("[]: ").lower().replace(" ", "_") or "logged"
    set_endpoint(event, "source", pairs.get("SRC"), port_number(pairs.get("SPT")))
    set_endpoint(event, "destination", pairs.get("DST"), port_number(pairs.get("DPT")))
    proto = pairs.get("PROTO", "")
    if proto:
        network = branch(event, "network")
        network["transport"] = proto.lower() if not proto.isdigit() else proto
        if proto.upper() == "ICMPV6":
            network["transport"] = "ipv6-icmp"
    observer: dict[str, Any] = {"type": "firewall", "product": "netfilter"}
    if pairs.get("IN"):
        observer["ingress"] = {"interface": {"name": pairs["IN"]}}
    if pairs.get("OUT"):
        observer["egress"] = {"interface": {"name": pairs["OUT"]}}
    event["observer"] = observer


def _verdict(prefix: str) -> str | None:
    upper = prefix.upper()
    if any(word in upper for word in _DENIED_WORDS):
        return "denied"
    if any(word in upper for word in _ALLOWED_WORDS):
        return "allowed"
    return None
