"""ArcSight Common Event Format (CEF) -> ECS.

CEF is what security products without a syslog format of their own send to a SIEM: web
application firewalls (Imperva, F5), endpoint suites (Trend Micro Apex One and Deep Security,
Kaspersky Security Center, Sophos), firewalls set to it (FortiGate, Check Point), ArcSight
connectors. One line, after any syslog header:

    CEF:0|Trend Micro|Deep Security Agent|20.0|4000010|Web Reputation|6|src=10.1.2.3 spt=51234
    dst=203.0.113.9 dpt=80 act=Block request=http://bad.example/x.php suser=bob

Seven header fields separated by ``|`` (``\\|`` and ``\\\\`` escaped), then the extension: pairs
``key=value`` separated by spaces, a value running to the next `` key=`` (``\\=``, ``\\\\``,
``\\n`` and ``\\r`` escaped). Keys come short (``src``) or full (``sourceAddress``).

What the event gets:

- ``cef``: the header (``version``, ``device.vendor``, ``device.product``, ``device.version``,
  ``device.event_class_id``, ``name``, ``severity``) and every extension pair verbatim under
  ``cef.extensions`` (keys as sent; characters other than letters, digits and ``_`` become
  ``_``, so that ``ad.x`` next to ``ad`` cannot make Elasticsearch refuse the event);
- ``observer`` (vendor, product, version; ``dvchost``/``dvc``), ``host.name`` from the device
  when the syslog header names no host;
- ``event.module`` cef, ``event.dataset`` cef.log, ``event.code`` the event class id,
  ``event.action`` the ``act``, ``event.severity`` the severity as 0-10 (``Low``...``Very-High``
  as 3, 6, 8, 10), ``event.outcome``, categorization (a connection between two endpoints:
  network, allowed or denied by its action);
- ``source``/``destination`` (address, port, MAC, host name, user), ``user.name``, bytes,
  ``network.transport``/``iana_number``, ``network.direction``, ``url`` and ``http`` from a web
  request, ``user_agent``, ``file``, ``process``, ``message`` from ``msg`` (else the name);
- ``@timestamp`` from ``rt`` (else ``end``, ``start``): milliseconds since the epoch or
  ``MMM dd [yyyy] HH:mm:ss[.SSS] [zone]``, in the site's zone when the text names none.

A value that does not fit its ECS type (a port of 70000, an address that is not one) stays
under ``cef.extensions`` only. Connections are routed to Sigma's ``firewall`` category.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

__all__ = ["cef_start", "normalize_cef"]

#: Where CEF starts: after a syslog header, or the whole line.
_START: Final = re.compile(r"(?:^|[\s:>])(CEF:\d{1,2}\|)")
#: An extension key: letters, digits, "_", "." and brackets, after a space (or at the start),
#: followed by an unescaped "=".
_KEY: Final = re.compile(r"(?:^|(?<=\s))([A-Za-z0-9_.\[\]]+)=")
_EXTENSION_ESCAPE: Final = re.compile(r"\\([\\=nr])")
_HEADER_ESCAPE: Final = re.compile(r"\\([\\|])")
_UNSAFE_KEY: Final = re.compile(r"[^A-Za-z0-9_]")
_TIME: Final = re.compile(
    r"^([A-Z][a-z]{2}) +(\d{1,2})(?: (\d{4}))? (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
    r"(?: +(?:(Z|UTC|GMT)|(?:GMT|UTC)?([+-])(\d{2}):?(\d{2})|([A-Za-z][\w/+-]*)))?$"
)
#: CEF's times since the epoch: seconds or milliseconds.
_EPOCH_LENGTHS: Final = (10, 13)
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
#: CEF's full key names -> the short ones this module reads.
_FULL_NAMES: Final = {
    "sourceAddress": "src",
    "sourcePort": "spt",
    "sourceMacAddress": "smac",
    "sourceHostName": "shost",
    "sourceUserName": "suser",
    "sourceUserId": "suid",
    "sourceProcessName": "sproc",
    "sourceProcessId": "spid",
    "sourceTranslatedAddress": "sourceTranslatedAddress",
    "destinationAddress": "dst",
    "destinationPort": "dpt",
    "destinationMacAddress": "dmac",
    "destinationHostName": "dhost",
    "destinationUserName": "duser",
    "destinationUserId": "duid",
    "destinationProcessName": "dproc",
    "destinationProcessId": "dpid",
    "deviceAction": "act",
    "applicationProtocol": "app",
    "transportProtocol": "proto",
    "bytesIn": "in",
    "bytesOut": "out",
    "deviceAddress": "dvc",
    "deviceHostName": "dvchost",
    "deviceEventCategory": "cat",
    "deviceDirection": "deviceDirection",
    "requestUrl": "request",
    "fileName": "fname",
    "fileSize": "fsize",
    "message": "msg",
    "receiptTime": "rt",
    "startTime": "start",
    "endTime": "end",
    "eventOutcome": "outcome",
}
_SEVERITY_WORDS: Final = {"low": 3, "medium": 6, "high": 8, "very-high": 10, "very high": 10}
_DENIED: Final = DENIED_ACTIONS | {"quarantine"}  # an endpoint suite's refusal
_ALLOWED: Final = frozenset(
    {"allow", "allowed", "accept", "accepted", "permit", "permitted", "pass"}
)
_OUTCOMES: Final = {
    "success": "success",
    "succeeded": "success",
    "failure": "failure",
    "failed": "failure",
    "fail": "failure",
}


def cef_start(message: str, line: str) -> str | None:
    """The CEF text of a syslog line, or None when it has none: found in the message, or in the
    whole line when the header parser took part of it for a host name (a header without one)."""
    if "CEF:" not in line:
        return None
    for text in (message, line):
        found = _START.search(text)
        if found is not None:
            return text[found.start(1) :]
    return None


def normalize_cef(event: Event, text: str, zone: tzinfo, *, header_host: bool) -> bool:
    """Fill the event (built from the syslog line) from the CEF text; False when the header is
    not complete (fewer than seven fields): the event then stays as the syslog parser made it."""
    header = _header(text)
    if header is None:
        return False
    version, vendor, product, device_version, class_id, name, severity, extension = header
    fields = _extension(extension)
    values = {_FULL_NAMES.get(key, key): value for key, value in fields.items()}
    cef: dict[str, Any] = {
        "version": version,
        "device": {
            "vendor": vendor,
            "product": product,
            "version": device_version,
            "event_class_id": class_id,
        },
        "name": name,
        "severity": severity,
    }
    if fields:
        cef["extensions"] = {_UNSAFE_KEY.sub("_", key): value for key, value in fields.items()}
    event["cef"] = cef
    meta = event["event"]
    meta["module"] = "cef"
    meta["dataset"] = "cef.log"
    if class_id:
        meta["code"] = class_id
    level = _severity(severity)
    if level is not None:
        meta["severity"] = level
    action = values.get("act")
    if action:
        meta["action"] = action
    moment = _moment(values, zone)
    if moment is not None:
        event["@timestamp"] = format_utc(moment)
    _observer(event, vendor, product, device_version, values, header_host)
    _endpoints(event, values)
    _network(event, values)
    _web(event, values)
    _file_and_process(event, values)
    _categorize(event, values)
    event["message"] = values.get("msg") or name or event.get("message", "")
    tags = event.setdefault("tags", [])
    if isinstance(tags, list) and "cef" not in tags:
        tags.append("cef")
    return True


def _header(text: str) -> tuple[str, ...] | None:
    """The seven header fields (escapes removed, "CEF:" dropped) and the extension."""
    parts: list[str] = []
    start = position = len("CEF:")
    while len(parts) < 7:
        bar = text.find("|", position)
        if bar < 0:
            return None
        escapes = 0
        while bar - escapes - 1 >= start and text[bar - escapes - 1] == "\\":
            escapes += 1
        if escapes % 2:  # an escaped bar belongs to the field
            position = bar + 1
            continue
        field = text[start:bar]
        parts.append(_HEADER_ESCAPE.sub(r"\1", field) if "\\" in field else field)
        start = position = bar + 1
    parts.append(text[start:])
    return tuple(part.strip() for part in parts)


def _extension(text: str) -> dict[str, str]:
    """The pairs, each value running to the next key (trailing spaces dropped), escapes
    removed; the first of a repeated key wins."""
    keys = list(_KEY.finditer(text))
    values: dict[str, str] = {}
    for number, found in enumerate(keys):
        end = keys[number + 1].start() if number + 1 < len(keys) else len(text)
        value = text[found.end() : end].rstrip()
        if "\\" in value:
            value = _EXTENSION_ESCAPE.sub(_unescape, value)
        values.setdefault(found[1], value)
    return values


def _unescape(found: re.Match[str]) -> str:
    return {"n": "\n", "r": "\r"}.get(found[1], found[1])


def _severity(text: str) -> int | None:
    if text.isascii() and text.isdigit():
        number = int(text)
        return number if number <= 10 else None
    return _SEVERITY_WORDS.get(text.lower())


def _moment(values: dict[str, str], zone: tzinfo) -> datetime | None:
    for key in ("rt", "end", "start"):
        text = values.get(key)
        if text:
            moment = _parse_time(text, zone)
            if moment is not None:
                return moment
    return None


def _parse_time(text: str, zone: tzinfo) -> datetime | None:
    """Milliseconds (or seconds) since the epoch, ``MMM dd [yyyy] HH:mm:ss[.SSS] [zone]`` or
    ISO 8601; the site's zone when the text names none, this year when it names no year."""
    if text.isascii() and text.isdigit():
        return epoch_digits(text) if len(text) in _EPOCH_LENGTHS else None
    found = _TIME.match(text)
    if found is None:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=zone)
    month = _MONTHS.get(found[1])
    if month is None:
        return None
    year = int(found[3]) if found[3] else datetime.now(zone).year
    fraction = int((found[7] or "0").ljust(6, "0"))
    where: tzinfo = zone
    if found[8]:
        where = UTC
    elif found[9]:
        delta = timedelta(hours=int(found[10]), minutes=int(found[11]))
        if delta >= timedelta(hours=24):
            return None
        where = timezone(-delta if found[9] == "-" else delta)
    elif found[12]:
        where = _named_zone(found[12]) or zone
    try:
        return datetime(
            year, month, int(found[2]), int(found[4]), int(found[5]), int(found[6]), fraction, where
        )
    except ValueError:
        return None


@lru_cache(maxsize=64)
def _named_zone(name: str) -> tzinfo | None:
    """A zone named as the tz database names it (``Asia/Ho_Chi_Minh``); None for any other."""
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return None


def _observer(
    event: Event,
    vendor: str,
    product: str,
    version: str,
    values: dict[str, str],
    header_host: bool,
) -> None:
    observer: dict[str, Any] = {}
    for key, value in (("vendor", vendor), ("product", product), ("version", version)):
        if value:
            observer[key] = value
    name = values.get("dvchost")
    if name:
        observer["hostname"] = name
    address = canonical_ip(values.get("dvc", ""))
    if address is not None:
        observer["ip"] = address
    if observer:
        event["observer"] = observer
    if not header_host and (name or address):
        event["host"] = {"name": name or address}


def _endpoints(event: Event, values: dict[str, str]) -> None:
    for side, address, port, mac, host, user, uid in (
        ("source", "src", "spt", "smac", "shost", "suser", "suid"),
        ("destination", "dst", "dpt", "dmac", "dhost", "duser", "duid"),
    ):
        number = port_number(values.get(port))
        if values.get(address):
            set_endpoint(event, side, values[address], number)
        elif number is not None:
            branch(event, side)["port"] = number
        if values.get(mac):
            branch(event, side)["mac"] = values[mac].replace(":", "-").upper()
        if values.get(host):
            branch(event, side)["domain"] = values[host]
        if values.get(user):
            branch(event, side, "user")["name"] = values[user]
            add_related(event, "user", values[user])
        if values.get(uid):
            branch(event, side, "user")["id"] = values[uid]
    # The acting user where the product names one, else the one acted on (a log-in's account).
    name = values.get("suser") or values.get("duser")
    if name:
        branch(event, "user")["name"] = name
    nat = canonical_ip(values.get("sourceTranslatedAddress", ""))
    if nat is not None and "source" in event:
        event["source"]["nat"] = {"ip": nat}
    for side, key in (("source", "out"), ("destination", "in")):
        number = digits(values.get(key))
        if number is not None:
            branch(event, side)["bytes"] = number


def _network(event: Event, values: dict[str, str]) -> None:
    network: dict[str, Any] = {}
    proto = values.get("proto", "").lower()
    if proto.isascii() and proto.isdigit() and int(proto) <= 255:
        network["iana_number"] = proto
        if proto in IANA_TRANSPORTS:
            network["transport"] = IANA_TRANSPORTS[proto]
    elif proto in IANA_TRANSPORTS.values():
        network["transport"] = proto
    app = values.get("app")
    if app:
        network["protocol"] = app.lower()
    direction = {"0": "inbound", "1": "outbound"}.get(values.get("deviceDirection", ""))
    if direction is not None:
        network["direction"] = direction
    if network:
        event["network"] = network


def _web(event: Event, values: dict[str, str]) -> None:
    request = values.get("request")
    if request:
        set_url(event, request)
    method = values.get("requestMethod")
    if method:
        branch(event, "http", "request")["method"] = method.upper()
    referrer = values.get("requestContext")
    if referrer:
        branch(event, "http", "request")["referrer"] = referrer
    agent = values.get("requestClientApplication")
    if agent:
        event["user_agent"] = {"original": agent}


def _file_and_process(event: Event, values: dict[str, str]) -> None:
    name, path = values.get("fname"), values.get("filePath")
    if name:
        branch(event, "file")["name"] = name
    if path:
        branch(event, "file")["path"] = path
    size = digits(values.get("fsize"))
    if size is not None:
        branch(event, "file")["size"] = size
    for process, pid in (("sproc", "spid"), ("dproc", "dpid")):
        if values.get(process) and "process" not in event:
            event["process"] = {"name": values[process]}
            number = digits(values.get(pid))
            if number is not None:
                event["process"]["pid"] = number


def _categorize(event: Event, values: dict[str, str]) -> None:
    meta = event["event"]
    action = values.get("act", "").lower()
    outcome = _OUTCOMES.get(values.get("outcome", "").lower().lstrip("/"))
    if outcome is not None:
        meta["outcome"] = outcome
    denied = action in _DENIED
    if denied and outcome is None:
        meta["outcome"] = "failure"
    if "source" in event and "destination" in event:
        meta["category"] = ["network"]
        kinds = ["connection"]
        if denied:
            kinds.append("denied")
        elif action in _ALLOWED:
            kinds.append("allowed")
        meta["type"] = kinds
