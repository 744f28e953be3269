"""pfSense and OPNsense firewall logs (program ``filterlog``: one CSV line a packet the rules
logged) -> ECS firewall events, dataset ``pfsense.log``.

``filterlog[123]: 5,,,1000000103,em0,match,block,in,4,0x0,,64,0,0,DF,6,tcp,60,203.0.113.9,
10.0.0.5,45678,22,0,S,12345,,64240,,mss``: rule number, sub-rule, anchor, tracker (the rule's
id), interface, reason, action (pass, block, reject), direction, IP version, then the IP header
(IPv4: tos, ecn, ttl, id, offset, flags, protocol id, protocol, length, source, destination;
IPv6: class, flow label, hop limit, protocol, protocol id, length, source, destination), then
the protocol's (TCP and UDP: source port, destination port, data length; TCP: flags...).

Block and reject are denied connections (the port-scan correlation counts them), pass allowed.
The leading fields are kept under ``pfsense.*``; a line that is not this CSV is left alone.
"""

from __future__ import annotations

from typing import Final

from soc.normalize.ecs import Event, branch
from soc.normalize.network import port_number, set_endpoint

__all__ = ["parse"]

#: IP version -> (index of the protocol's name, of the source address; the destination and the
#: ports follow the source).
_LAYOUT: Final = {"4": (16, 18), "6": (12, 15)}
_ACTIONS: Final = {"block": "denied", "reject": "denied", "pass": "allowed"}
_TRANSPORTS: Final = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "ipv6-icmp": "ipv6-icmp"}


def parse(message: str, event: Event) -> None:
    fields = message.strip().split(",")
    if len(fields) < 9 or fields[8] not in _LAYOUT:
        return
    proto_at, source_at = _LAYOUT[fields[8]]
    if len(fields) <= source_at + 1:
        return
    action = fields[6].lower()
    meta = event["event"]
    meta["category"] = ["network"]
    verdict = _ACTIONS.get(action)
    meta["type"] = ["connection"] if verdict is None else ["connection", verdict]
    if action:
        meta["action"] = action
    if verdict == "denied":
        meta["outcome"] = "failure"
    protocol = fields[proto_at].lower()
    ports = protocol in {"tcp", "udp"} and len(fields) > source_at + 3
    for side, offset in (("source", 0), ("destination", 1)):
        port = port_number(fields[source_at + 2 + offset]) if ports else None
        set_endpoint(event, side, fields[source_at + offset] or None, port)
    if protocol:
        branch(event, "network")["transport"] = _TRANSPORTS.get(protocol, protocol)
    interface = fields[4]
    observer: dict[str, object] = {"type": "firewall", "product": "pfSense"}
    if interface:
        direction = "egress" if fields[7] == "out" else "ingress"
        observer[direction] = {"interface": {"name": interface}}
    event["observer"] = observer
    event["pfsense"] = {
        "rule_number": fields[0],
        "tracker": fields[3],
        "interface": interface,
        "reason": fields[5],
        "direction": fields[7],
        "ip_version": fields[8],
    }
    if protocol == "tcp" and len(fields) > source_at + 5 and fields[source_at + 5]:
        event["pfsense"]["tcp_flags"] = fields[source_at + 5]
