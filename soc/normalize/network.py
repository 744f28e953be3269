"""ECS network fields from a sensor's JSON (Suricata EVE, Zeek), shared so that both fill
``source``/``destination``, ``network``, ``dns``, ``url`` and ``tls`` the same way: the Sigma
network and web rules and the correlation rules pivot on exactly these fields.

The documents come from the network, so every value is checked for its ECS type before it is
set: a string in a ``long`` field or a non-address in an ``ip`` field makes Elasticsearch
refuse the whole event.
"""

from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

from soc.normalize.ecs import Event, add_related, branch, canonical_ip, format_utc

__all__ = [
    "DENIED_ACTIONS",
    "IANA_TRANSPORTS",
    "as_int",
    "as_str",
    "digits",
    "port_number",
    "epoch_digits",
    "epoch_time",
    "iso_time",
    "set_endpoint",
    "set_url",
]

_MAX_PORT: Final = 65535
#: IANA protocol numbers, as logs write them, -> the transport names of ECS and Sigma's rules.
IANA_TRANSPORTS: Final = {
    "1": "icmp",
    "2": "igmp",
    "6": "tcp",
    "17": "udp",
    "47": "gre",
    "50": "esp",
    "58": "ipv6-icmp",
    "132": "sctp",
}
#: What firewalls call refusing a connection (lower case).
DENIED_ACTIONS: Final = frozenset(
    {"deny", "denied", "block", "blocked", "drop", "dropped", "reject", "rejected"}
)
_MAX_LONG: Final = 2**63 - 1


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def as_int(value: object) -> int | None:
    """A JSON integer that fits Elasticsearch's long (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -_MAX_LONG - 1 <= value <= _MAX_LONG else None


def digits(text: str | None) -> int | None:
    """A count written in ASCII digits (a port, bytes, a duration in a text log), when it fits
    Elasticsearch's long; None for anything else."""
    if text is None or not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if number <= _MAX_LONG else None


def port_number(text: str | None) -> int | None:
    """A port written in a text log: digits up to 65535; None for anything else."""
    number = digits(text)
    return number if number is not None and number <= _MAX_PORT else None


def set_endpoint(event: Event, side: str, address: object, port: object = None) -> None:
    """source.* or destination.*: ip when it is one (else address only), port when valid."""
    text = as_str(address)
    if text is not None:
        node = branch(event, side)
        node["address"] = text
        ip = canonical_ip(text)
        if ip is not None:
            node["ip"] = ip
            add_related(event, "ip", ip)
    number = as_int(port)
    if number is not None and 0 <= number <= _MAX_PORT:
        branch(event, side)["port"] = number


def set_url(event: Event, original: object, domain: object = None) -> None:
    """url.original as logged, with path and query split off for the web rules."""
    target = as_str(original)
    host = as_str(domain)
    if target is None and host is None:
        return
    url = branch(event, "url")
    if host is not None:
        url["domain"] = host
    if target is None:
        return
    url["original"] = target
    if target.startswith("/"):
        path, mark, query = target.partition("?")
        url["path"] = path
        if mark:
            url["query"] = query
        return
    try:
        parts = urlsplit(target)
    except ValueError:
        return
    if parts.scheme and parts.netloc:
        url["scheme"] = parts.scheme
        url["path"] = parts.path
        if parts.query:
            url["query"] = parts.query


def iso_time(value: object) -> str | None:
    """An ISO 8601 time (Suricata writes ``+0700`` offsets) in the stored UTC form."""
    text = as_str(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return format_utc(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


#: Digits of a time since the epoch, by how many there are -> their unit's parts of a second.
_EPOCH_SCALES: Final = {10: 1, 13: 10**3, 16: 10**6, 19: 10**9}


def epoch_digits(text: str) -> datetime | None:
    """A time since the epoch written in digits, its unit told by their number (10 seconds, 13
    milliseconds, 16 microseconds, 19 nanoseconds, as appliances log it); None for any other
    text or a time out of range."""
    scale = _EPOCH_SCALES.get(len(text)) if text.isascii() and text.isdigit() else None
    if scale is None:
        return None
    whole, part = divmod(int(text), scale)
    try:
        return datetime.fromtimestamp(whole, UTC) + timedelta(microseconds=part * 10**6 // scale)
    except (OverflowError, OSError, ValueError):
        return None


def epoch_time(value: object) -> str | None:
    """Seconds since the epoch (Zeek's ``ts``), or an ISO time when Zeek writes ISO 8601."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return format_utc(datetime.fromtimestamp(value, UTC))
        except (ValueError, OverflowError, OSError):
            return None
    return iso_time(value)
