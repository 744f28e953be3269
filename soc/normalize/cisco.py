"""Cisco ASA (and Firepower Threat Defense) and IOS syslog -> ECS.

Cisco messages carry a tag, ``%ASA-4-106023:`` or ``%SEC-6-IPACCESSLOGP:``, that the syslog
header parser may take for the program or leave in the message; both are looked at. What the
event gets, for every Cisco message: ``observer`` (vendor Cisco, product ASA or IOS),
``event.module`` cisco, ``event.dataset`` cisco.asa or cisco.ios, ``event.code`` (the message
id: 106023, IPACCESSLOGP), ``log.level`` from the tag's severity, ``cisco.<product>.*``, and, for
the messages below, the ECS fields rules pivot on:

- denied traffic (ASA 106001, 106006, 106007, 106014, 106015, 106021, 106023, 106100, 710003;
  IOS IPACCESSLOGP/IPACCESSLOGDP): a network connection, ``event.type`` denied, source and
  destination address and port, transport; permitted ones (106100, IPACCESSLOGP) allowed;
- connections built (ASA 302013, 302015): allowed connections, the initiator as the source
  (an outbound connection's is the second address);
- logins to the device and AAA (ASA 605004/605005, 113004/113005/113015; IOS SEC_LOGIN):
  authentication, ``user.name``, the outcome;
- commands run on the device (ASA 111008/111009/111010, IOS PARSER CFGLOG_LOGGEDCMD and
  SYS CONFIG_I): ``event.action`` command_executed with ``process.command_line`` and
  ``user.name``, which Sigma's Cisco AAA rules (``product: cisco, service: aaa``) read;
- threat detection's scan drops (ASA 733100): intrusion detection.

Denied connections are routed to Sigma's ``firewall`` category and counted by the port-scan
correlation, as a FortiGate's are.
"""

from __future__ import annotations

import re
from typing import Any, Final

from soc.normalize.ecs import Event, add_related, branch
from soc.normalize.network import port_number, set_endpoint

__all__ = ["cisco_tag", "normalize_cisco"]

#: %FACILITY-SEVERITY-MNEMONIC (IOS) or %ASA-SEVERITY-ID (ASA, FTD, PIX, FWSM), where the
#: message's own text starts after it.
_TAG: Final = re.compile(r"%([A-Z][A-Z0-9_]*)-([0-7])-([A-Z0-9_]+):?\s*")
#: In the message: at its start or after a colon (a sequence number, the device, its time), and
#: followed by one, as every Cisco message is; "disk 95% full (%X-1-Y)" is not one.
_TAG_IN_MESSAGE: Final = re.compile(r"(?:^|:\s+)%([A-Z][A-Z0-9_]*)-([0-7])-([A-Z0-9_]+):\s*")
_FIREWALLS: Final = frozenset({"ASA", "FTD", "PIX", "FWSM"})
#: How far into the message a tag may start (IOS puts a sequence number and a time before it).
_TAG_WITHIN: Final = 96
_LEVELS: Final = (
    "emergency", "alert", "critical", "error", "warning", "notification", "informational",
    "debugging",
)  # fmt: skip

_ENDPOINT = r"(?:(?P<{side}_if>[^\s:/]+):)?(?P<{side}_ip>[0-9A-Fa-f:.]+?)(?:/(?P<{side}_port>\d+))?"


def _endpoint(side: str) -> str:
    return _ENDPOINT.format(side=side)


_SRC, _DST = _endpoint("src"), _endpoint("dst")
#: A login to the device: its service ("ssh", "https") where a port would be.
_LOGIN = (
    r"Login {verdict} from (?P<src_ip>[0-9A-Fa-f:.]+)/(?P<src_port>\d+) to "
    r'(?P<dst_if>[^\s:]+):(?P<dst_ip>[0-9A-Fa-f:.]+)/(?P<service>\S+) for user "(?P<user>[^"]*)"'
)
_PROTO = r"(?P<proto>\w+)"

#: ASA message ids -> (pattern, what the message is).
_ASA: Final[dict[str, tuple[re.Pattern[str], str]]] = {
    "106001": (
        re.compile(rf"Inbound (?P<proto>TCP) connection denied from {_SRC} to {_DST} "),
        "denied",
    ),
    "106006": (re.compile(rf"Deny inbound (?P<proto>UDP) from {_SRC} to {_DST} "), "denied"),
    "106007": (re.compile(rf"Deny inbound (?P<proto>UDP) from {_SRC} to {_DST} "), "denied"),
    "106014": (re.compile(rf"Deny inbound (?P<proto>icmp) src {_SRC} dst {_DST}"), "denied"),
    "106015": (
        re.compile(rf"Deny (?P<proto>TCP) \(no connection\) from {_SRC} to {_DST} "),
        "denied",
    ),
    "106021": (re.compile(rf"Deny {_PROTO} reverse path check from {_SRC} to {_DST} "), "denied"),
    "106023": (re.compile(rf"Deny {_PROTO} src {_SRC} dst {_DST}(?:\s|$)"), "denied"),
    "106100": (
        re.compile(
            rf"access-list \S+ (?P<verdict>denied|permitted|est-allowed) {_PROTO} "
            r"(?P<src_if>[^\s/]+)/(?P<src_ip>[0-9A-Fa-f:.]+)\((?P<src_port>\d+)\)\S* -> "
            r"(?P<dst_if>[^\s/]+)/(?P<dst_ip>[0-9A-Fa-f:.]+)\((?P<dst_port>\d+)\)"
        ),
        "acl",
    ),
    "710003": (
        re.compile(rf"{_PROTO} access denied by ACL from {_SRC} to {_DST}(?:\s|$)"),
        "denied",
    ),
    "302013": (
        re.compile(
            rf"Built (?P<direction>inbound|outbound) {_PROTO} connection \d+ for {_SRC} "
            rf"\(\S+\)(?:\([^)]*\))? to {_DST} "
        ),
        "built",
    ),
    "605004": (re.compile(_LOGIN.format(verdict="denied")), "login_failed"),
    "605005": (re.compile(_LOGIN.format(verdict="permitted")), "login"),
    "113004": (
        re.compile(r"AAA user authentication Successful : .*?user = (?P<user>[^:]+?)\s*(?::|$)"),
        "login",
    ),
    "113005": (
        re.compile(
            r"AAA user authentication Rejected : .*?user = (?P<user>[^:]+?)\s*"
            r"(?:: user IP = (?P<src_ip>[0-9A-Fa-f:.]+))?\s*$"
        ),
        "login_failed",
    ),
    "111008": (
        re.compile(r"User '(?P<user>[^']*)' executed the '(?P<command>.*)' command"),
        "command",
    ),
    "111009": (re.compile(r"User '(?P<user>[^']*)' executed cmd: (?P<command>.*)$"), "command"),
    "111010": (
        re.compile(
            r"User '(?P<user>[^']*)', running '[^']*' from IP (?P<src_ip>[0-9A-Fa-f:.]+), "
            r"executed '(?P<command>.*)'"
        ),
        "command",
    ),
    "733100": (re.compile(r"\[\s*(?P<object>[^\]]+?)\s*\] drop rate-\d+ exceeded"), "threat"),
}
_ASA["302015"] = _ASA["302013"]
_ASA["113015"] = _ASA["113005"]

_IOS_ACL: Final = re.compile(
    r"list \S+ (?P<verdict>denied|permitted) (?P<proto>\w+) (?P<src_ip>[0-9A-Fa-f:.]+)"
    r"(?:\((?P<src_port>\d+)\))?.*? -> (?P<dst_ip>[0-9A-Fa-f:.]+)(?:\((?P<dst_port>\d+)\))?"
)
_IOS_LOGIN: Final = re.compile(r"\[user: (?P<user>[^\]]*)\] \[Source: (?P<src_ip>[0-9A-Fa-f:.]+)\]")
#: IOS mnemonics -> (pattern, what the message is).
_IOS: Final[dict[str, tuple[re.Pattern[str], str]]] = {
    "IPACCESSLOGP": (_IOS_ACL, "acl"),
    "IPACCESSLOGDP": (_IOS_ACL, "acl"),
    "IPACCESSLOGNP": (_IOS_ACL, "acl"),
    "IPACCESSLOGS": (_IOS_ACL, "acl"),
    "LOGIN_FAILED": (_IOS_LOGIN, "login_failed"),
    "LOGIN_SUCCESS": (_IOS_LOGIN, "login"),
    "CFGLOG_LOGGEDCMD": (
        re.compile(r"User:(?P<user>\S+)\s+logged command:(?P<command>.*)$"),
        "command",
    ),
    "CONFIG_I": (
        re.compile(r"Configured from (?P<command>\S+) by (?P<user>\S+)"),
        "configured",
    ),
}

_TRANSPORTS: Final = {
    "tcp": "tcp",
    "udp": "udp",
    "icmp": "icmp",
    "icmp6": "ipv6-icmp",
    "gre": "gre",
}


def cisco_tag(appname: str | None, message: str) -> tuple[str, str, str, str] | None:
    """(facility, severity, message id, the message's text) when the line is Cisco's."""
    if appname and appname.startswith("%"):
        found = _TAG.fullmatch(appname + ":")
        if found is not None:
            return found[1], found[2], found[3], message
    if "%" not in message[:_TAG_WITHIN]:
        return None
    found = _TAG_IN_MESSAGE.search(message, 0, _TAG_WITHIN + 64)
    if found is None or found.start() > _TAG_WITHIN:
        return None
    return found[1], found[2], found[3], message[found.end() :]


def normalize_cisco(event: Event, tag: tuple[str, str, str, str], *, header_host: bool) -> None:
    """Fill the event (built from the syslog line) from the Cisco message in it."""
    facility, severity, code, text = tag
    firewall = facility in _FIREWALLS
    product = "asa" if firewall else "ios"
    meta = event["event"]
    meta["module"] = "cisco"
    meta["dataset"] = f"cisco.{product}"
    meta["code"] = code
    event["message"] = text
    branch(event, "log")["level"] = _LEVELS[int(severity)]
    observer: dict[str, Any] = {
        "vendor": "Cisco",
        "product": facility if firewall else "IOS",
        "type": "firewall" if firewall else "router",
    }
    host = event.get("host")
    if isinstance(host, dict) and header_host and host.get("name"):
        observer["hostname"] = host["name"]
    event["observer"] = observer
    details: dict[str, Any] = {"facility": facility, "severity": int(severity), "message_id": code}
    event["cisco"] = {product: details}
    known = (_ASA if firewall else _IOS).get(code)
    if known is None:
        return
    pattern, kind = known
    found = pattern.search(text)
    if found is None:
        return
    groups = {name: value for name, value in found.groupdict().items() if value}
    _apply(event, kind, groups, details)


def _apply(event: Event, kind: str, groups: dict[str, str], details: dict[str, Any]) -> None:
    meta = event["event"]
    if kind == "acl":
        kind = "denied" if groups.get("verdict") == "denied" else "allowed"
    if kind == "built" and groups.get("direction") == "outbound":
        # The first address of an outbound connection is the outside one it goes to.
        groups = _swapped(groups)
    if kind in {"denied", "allowed", "built"}:
        meta["category"] = ["network"]
        meta["type"] = ["connection", "denied" if kind == "denied" else "allowed"]
        meta["action"] = "connection_denied" if kind == "denied" else "connection_allowed"
        if kind == "denied":
            meta["outcome"] = "failure"
        proto = groups.get("proto", "").lower()
        if proto:
            branch(event, "network")["transport"] = _TRANSPORTS.get(proto, proto)
    elif kind in {"login", "login_failed"}:
        meta["category"] = ["authentication"]
        meta["type"] = ["start"]
        meta["action"] = "logged-in" if kind == "login" else "logon-failed"
        meta["outcome"] = "success" if kind == "login" else "failure"
    elif kind in {"command", "configured"}:
        meta["category"] = ["configuration"]
        meta["type"] = ["change"] if kind == "configured" else ["info"]
        meta["action"] = "command_executed" if kind == "command" else "configured"
        if kind == "command" and groups.get("command"):
            branch(event, "process")["command_line"] = groups["command"]
    elif kind == "threat":
        meta["kind"] = "alert"
        meta["category"] = ["intrusion_detection"]
        meta["type"] = ["info"]
        meta["action"] = "threat_detected"
        details["threat_object"] = groups.get("object")
    for side, prefix in (("source", "src"), ("destination", "dst")):
        address = groups.get(f"{prefix}_ip")
        if address:
            set_endpoint(event, side, address, port_number(groups.get(f"{prefix}_port")))
        interface = groups.get(f"{prefix}_if")
        if interface:
            direction = "ingress" if side == "source" else "egress"
            branch(event, "observer", direction, "interface")["name"] = interface
    user = groups.get("user", "").strip()
    if user:
        branch(event, "user")["name"] = user
        add_related(event, "user", user)


def _swapped(groups: dict[str, str]) -> dict[str, str]:
    swapped = dict(groups)
    for part in ("if", "ip", "port"):
        source, destination = groups.get(f"src_{part}"), groups.get(f"dst_{part}")
        swapped.pop(f"src_{part}", None)
        swapped.pop(f"dst_{part}", None)
        if destination is not None:
            swapped[f"src_{part}"] = destination
        if source is not None:
            swapped[f"dst_{part}"] = source
    return swapped
