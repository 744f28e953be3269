"""FortiGate logs (FortiOS's key=value syslog, as FortiGate and FortiAnalyzer send them) -> ECS.

FortiGate is the firewall most agencies of a province run. Its syslog lines carry no program
name, only pairs: ``date=2026-11-28 time=10:23:45 devname="FGT60F" devid="FGT60F..."
eventtime=1764300225123456789 tz="+0700" logid="0000000013" type="traffic" subtype="forward"
srcip=192.168.1.10 srcport=54321 dstip=8.8.8.8 dstport=53 proto=17 action="accept" ...``.

What the event gets:

- every pair, verbatim (texts, quotes removed), under ``fortinet.firewall.<key>``: what Sigma's
  FortiGate rules name (``action``, ``cfgpath``; rules/pipelines/network.yml prefixes them);
- ``@timestamp`` from ``eventtime`` (seconds to nanoseconds since the epoch, by its length),
  else ``date`` and ``time`` in ``tz`` (else the site's zone);
- ``observer`` (the FortiGate: vendor, product, ``devname``, ``devid``) and ``host.name`` when
  the syslog header names no host;
- ``event.module`` fortinet, ``event.dataset`` fortinet.firewall, ``event.code`` the logid,
  ``event.action`` FortiGate's action, category and type by log type (traffic: network
  connection, allowed or denied; event: configuration change, authentication; utm: intrusion
  detection, malware, web);
- ``source``/``destination`` address and port, ``source.nat``, bytes and packets,
  ``network.transport`` and ``network.iana_number``, ``user.name``, ``url`` for web filtering,
  ``message`` from ``msg`` or ``logdesc``.

Traffic logs are routed to Sigma's ``firewall`` category (soc/detect/logsources.yml): the
port-scan correlation counts their denied connections as it counts the sensor's unanswered
probes.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Final

from soc.normalize.ecs import Event, add_related, branch, canonical_ip, format_utc
from soc.normalize.network import (
    DENIED_ACTIONS,
    IANA_TRANSPORTS,
    digits,
    epoch_digits,
    port_number,
    set_endpoint,
    set_url,
)

__all__ = ["is_fortigate", "normalize_fortigate"]

#: key=value or key="value" (FortiOS escapes a quote inside a value with a backslash): the
#: key, the quoted value's inside, the bare value.
_PAIR: Final = re.compile(r'([A-Za-z_][\w-]*)=(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^\s"]*))')
#: Every FortiOS log has a ten-digit logid; with a type and the device, it is FortiGate's.
_LOGID: Final = re.compile(r'(?:^|\s)logid="?\d{10}"?(?:\s|$)')
_ESCAPE: Final = re.compile(r"\\(.)")
_TZ: Final = re.compile(r"^([+-])(\d{2}):?(\d{2})$")

#: utm subtypes -> ECS event.category.
_UTM: Final = {
    "ips": "intrusion_detection",
    "anomaly": "intrusion_detection",
    "virus": "malware",
    "webfilter": "web",
    "dns": "network",
    "app-ctrl": "network",
    "dlp": "file",
    "waf": "web",
}
#: FortiOS's status values -> event.outcome.
_OUTCOMES: Final = {"success": "success", "failed": "failure", "failure": "failure"}
_MAX_LONG: Final = 2**63 - 1


def is_fortigate(message: str) -> bool:
    """Whether a syslog message is FortiOS's key=value log: a logid, a type, the device."""
    return (
        "logid=" in message
        and "type=" in message
        and ("devid=" in message or "devname=" in message)
        and _LOGID.search(message) is not None
    )


def pairs(message: str) -> dict[str, str]:
    """The message's pairs, quotes and escapes removed; the first of a repeated key wins."""
    found = _PAIR.findall(message)
    # Built from the last pair to the first, so that the first of a repeated key stays, then
    # put back in the log's order.
    values = dict(reversed({key: quoted or bare for key, quoted, bare in reversed(found)}.items()))
    if "\\" in message:
        for key, value in values.items():
            if "\\" in value:
                values[key] = _ESCAPE.sub(r"\1", value)
    return values


def normalize_fortigate(event: Event, message: str, zone: tzinfo, *, header_host: bool) -> None:
    """Fill the event (already built from the syslog line) from the FortiGate log in it."""
    fields = pairs(message)
    event["fortinet"] = {"firewall": fields}
    meta = event["event"]
    meta["module"] = "fortinet"
    meta["dataset"] = "fortinet.firewall"
    if fields.get("logid"):
        meta["code"] = fields["logid"]
    action = fields.get("action")
    if action:
        meta["action"] = action
    moment = _moment(fields, zone)
    if moment is not None:
        event["@timestamp"] = format_utc(moment)
    _observer(event, fields, header_host)
    _endpoints(event, fields)
    _network(event, fields)
    _categorize(event, fields)
    user = fields.get("user") or fields.get("srcuser") or fields.get("unauthuser")
    if user and user != "N/A":
        branch(event, "user")["name"] = user
        add_related(event, "user", user)
    if fields.get("hostname") or fields.get("url"):
        set_url(event, fields.get("url") or None, fields.get("hostname") or None)
    text = fields.get("msg") or fields.get("logdesc")
    if text:
        event["message"] = text
    tags = event.setdefault("tags", [])
    if isinstance(tags, list) and "fortigate" not in tags:
        tags.append("fortigate")


def _moment(fields: dict[str, str], zone: tzinfo) -> datetime | None:
    """``eventtime`` (its length tells the unit), else ``date`` ``time`` in ``tz``."""
    moment = epoch_digits(fields.get("eventtime", ""))
    if moment is not None:
        return moment
    date, time = fields.get("date"), fields.get("time")
    if not date or not time:
        return None
    try:
        local = datetime.strptime(f"{date} {time}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    offset = _TZ.match(fields.get("tz", ""))
    if offset is not None:
        sign = -1 if offset[1] == "-" else 1
        delta = timedelta(hours=int(offset[2]), minutes=int(offset[3]))
        return local.replace(tzinfo=timezone(sign * delta))
    return local.replace(tzinfo=zone)


def _observer(event: Event, fields: dict[str, str], header_host: bool) -> None:
    observer: dict[str, Any] = {"vendor": "Fortinet", "product": "FortiGate", "type": "firewall"}
    name = fields.get("devname")
    if name:
        observer["name"] = name
        if not header_host:
            event["host"] = {"name": name}
    if fields.get("devid"):
        observer["serial_number"] = fields["devid"]
    ingress, egress = fields.get("srcintf"), fields.get("dstintf")
    if ingress:
        observer["ingress"] = {"interface": {"name": ingress}}
    if egress:
        observer["egress"] = {"interface": {"name": egress}}
    event["observer"] = observer


def _endpoints(event: Event, fields: dict[str, str]) -> None:
    for side, address, port in (
        ("source", "srcip", "srcport"),
        ("destination", "dstip", "dstport"),
    ):
        if fields.get(address):
            set_endpoint(event, side, fields[address], port_number(fields.get(port)))
    nat = canonical_ip(fields.get("transip") or "")
    if nat is not None and "source" in event:
        node: dict[str, Any] = {"ip": nat}
        nat_port = port_number(fields.get("transport"))
        if nat_port is not None:
            node["port"] = nat_port
        event["source"]["nat"] = node
    for side, octets, packets in (
        ("source", "sentbyte", "sentpkt"),
        ("destination", "rcvdbyte", "rcvdpkt"),
    ):
        for key, target in ((octets, "bytes"), (packets, "packets")):
            number = digits(fields.get(key))
            if number is not None:
                branch(event, side)[target] = number


def _network(event: Event, fields: dict[str, str]) -> None:
    proto = fields.get("proto", "")
    network: dict[str, Any] = {}
    if proto.isascii() and proto.isdigit() and int(proto) <= 255:
        network["iana_number"] = proto
        transport = IANA_TRANSPORTS.get(proto)
        if transport is not None:
            network["transport"] = transport
    total = sum(
        number
        for number in (digits(fields.get("sentbyte")), digits(fields.get("rcvdbyte")))
        if number is not None
    )
    if total:
        network["bytes"] = total
    if network:
        event["network"] = network
    duration = digits(fields.get("duration"))
    if duration is not None and duration * 10**9 <= _MAX_LONG:
        event["event"]["duration"] = duration * 10**9


def _categorize(event: Event, fields: dict[str, str]) -> None:
    meta = event["event"]
    kind = fields.get("type", "")
    subtype = fields.get("subtype", "")
    action = fields.get("action", "").lower()
    denied = action in DENIED_ACTIONS or fields.get("utmaction", "").lower() in DENIED_ACTIONS
    if kind == "traffic":
        meta["category"] = ["network"]
        meta["type"] = ["connection", "denied" if denied else "allowed"]
    elif kind == "event":
        if fields.get("cfgpath") or (subtype == "system" and action in {"add", "edit", "delete"}):
            meta["category"] = ["configuration"]
            meta["type"] = ["change"]
        elif "login" in action or "logon" in action or action in {"auth", "tunnel-up"}:
            meta["category"] = ["authentication"]
            meta["type"] = ["start"] if action != "logout" else ["end"]
        else:
            meta["category"] = ["host"] if subtype == "system" else ["network"]
            meta["type"] = ["info"]
    elif kind in {"utm", "anomaly"}:
        fallback = "intrusion_detection" if kind == "anomaly" else "network"
        meta["category"] = [_UTM.get(subtype, fallback)]
        meta["type"] = ["denied"] if denied else ["info"]
        if subtype in {"ips", "anomaly", "virus"} or kind == "anomaly":
            meta["kind"] = "alert"
    outcome = _OUTCOMES.get(fields.get("status", "").lower())
    if outcome is not None:
        meta["outcome"] = outcome
    elif denied:
        meta["outcome"] = "failure"
