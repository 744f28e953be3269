"""Syslog header parsing (RFC 5424 and RFC 3164 as devices really send it).

Pure functions over one line of text, so the network collector's normalizer and a later file
reader share one implementation. Parsing never raises: a line that cannot be understood comes
back with ``error`` set and the whole line as the message, because dropping or crashing on a
malformed line would blind the SOC to exactly the devices that misbehave.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Final, NamedTuple

__all__ = [
    "FACILITY_NAMES",
    "SEVERITY_NAMES",
    "BsdTimestamp",
    "SyslogMessage",
    "parse_syslog",
    "resolve_timestamp",
]

_DEFAULT_PRIORITY: Final = 13  # user.notice, RFC 3164 section 4.3.3

# Indexed by PRI >> 3 and PRI & 7 (ECS log.syslog.facility.name, log.syslog.severity.name).
FACILITY_NAMES: Final = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    *(f"local{n}" for n in range(8)),
)
SEVERITY_NAMES: Final = (
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
)
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_MAX_PRIORITY: Final = 191
_PRIORITIES: Final = {str(priority): priority for priority in range(_MAX_PRIORITY + 1)}
# A BSD time is "trusted" up to 2 days in the future (clock skew); beyond that it is last year's.
_MAX_FUTURE: Final = timedelta(days=2)

_PRI_RE: Final = re.compile(r"<([^<>]{0,5})>")
_VERSION_RE: Final = re.compile(r"([1-9][0-9]{0,2}) ")
_BSD_TIME: Final = (
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +([0-9]{1,2}) (?:([0-9]{4}) )?"
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?"
)
_ISO_TIME: Final = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)
_BSD_HEADER_RE: Final = re.compile(_BSD_TIME + r"(?: |\Z)")
# The form nearly every Linux host sends, "<PRI>Mmm dd hh:mm:ss host tag[pid]: msg", in one
# match. The host excludes ":" so that a host-less "sshd[1]: msg" never matches here.
_COMMON_3164_RE: Final = re.compile(
    r"<([0-9]{1,3})>((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +[0-9]{1,2} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2}) ([^\s:]+) ([^\s\[\]:]+)(?:\[([^\s\[\]]*)\]: ?|:(?: |\Z))"
)
_ISO_HEADER_RE: Final = re.compile(f"({_ISO_TIME})(?: |\\Z)")
_ISO_RE: Final = re.compile(_ISO_TIME)
# Cisco IOS: "<189>123: *Oct 11 22:14:15.123 UTC: %SYS-5-CONFIG_I: ...": a sequence number,
# an optional clock-state mark and zone, and a colon instead of a hostname.
_CISCO_HEADER_RE: Final = re.compile(
    r"(?:[0-9]+: )?[*.]?" + _BSD_TIME + r"(?: ([A-Za-z]{2,5}))?: ?"
)
_UTC_NAMES: Final = frozenset(("UTC", "GMT", "utc", "gmt"))
_RFC5424_HEADER_RE: Final = re.compile(r"(\S+) (\S+) (\S+) (\S+) (\S+)(?: |\Z)")
# A 3164 TAG: "name[pid]:" (the space after is optional) or "name:" followed by a space or the end.
_TAG_RE: Final = re.compile(r"([^\s\[\]:]+)(?:\[([^\s\[\]]*)\]: ?|:(?: |\Z))")
_HOST_TAG_RE: Final = re.compile(r"(\S+) ([^\s\[\]:]+)(?:\[([^\s\[\]]*)\]: ?|:(?: |\Z))")
_SD_ELEMENT_RE: Final = re.compile(
    r'\[([^\s=\]"]+)((?: +[^\s=\]"]+="[^"\\]*(?:\\.[^"\\]*)*")*) *\]', re.DOTALL
)
_SD_PARAM_RE: Final = re.compile(r'([^\s=\]"]+)="([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL)
_SD_ESCAPE_RE: Final = re.compile(r'\\(["\\\]])')


class BsdTimestamp(NamedTuple):
    """An RFC 3164 time: no year and no zone, so it is resolved only against a receipt time.

    A NamedTuple because it is a cache key on the hot path and tuples hash fast.
    """

    month: int
    day: int
    hour: int
    minute: int
    second: int
    microsecond: int = 0
    zone: tzinfo | None = None  # only when the header named one (Cisco "UTC")


Timestamp = datetime | BsdTimestamp
StructuredData = dict[str, dict[str, str | list[str]]]


@dataclass(slots=True)
class SyslogMessage:
    """One parsed syslog line; ``None`` means absent or the RFC 5424 nil value "-".

    Not frozen: a frozen dataclass costs three times as much to build, once per line.

    ``timestamp`` is an aware datetime when the header carried an offset, a naive one when it
    carried a full date but no zone, and a ``BsdTimestamp`` for classic "Mmm dd hh:mm:ss".
    ``tags`` name tolerated deviations; ``error`` is set only when no header was found at all.
    """

    message: str
    priority: int | None = None
    timestamp: Timestamp | None = None
    hostname: str | None = None
    appname: str | None = None
    procid: str | None = None
    msgid: str | None = None
    version: int | None = None
    structured_data: StructuredData | None = None
    tags: tuple[str, ...] = ()
    error: str | None = None


def parse_syslog(line: str) -> SyslogMessage:
    """Parse one syslog line; never raises.

    Trailing CR, LF and NUL are framing left by transports, not content, so they are dropped.
    """
    line = line.rstrip("\r\n\x00")
    common = _COMMON_3164_RE.match(line)
    if common is not None and common.group(1) in _PRIORITIES:
        return _parse_common_3164(line, common)
    if not line:
        return SyslogMessage(
            message="", tags=("syslog_unparsed",), error="no syslog header: empty line"
        )
    if line[0] != "<":
        return _parse_without_pri(line)
    match = _PRI_RE.match(line)
    if match is None:
        return _unparsed(line, "expected '<PRI>' or a timestamp at the start of the line")
    priority, tags = _parse_pri(match.group(1))
    rest = line[match.end() :]
    version = _VERSION_RE.match(rest)
    if version is not None:
        return _parse_rfc5424(rest[version.end() :], priority, int(version.group(1)), tags)
    return _parse_rfc3164(rest, priority, tags)


def resolve_timestamp(timestamp: Timestamp, zone: tzinfo, received: datetime) -> datetime | None:
    """Return the header time as an aware UTC datetime, or None if it is not a real instant.

    Zone-less times are taken in ``zone``. A BSD time gets the year the aware ``received`` has
    in ``zone`` (a January line received in December is next year's: the sender's clock ran a
    little ahead), stepping back a year when that would put it more than two days in the
    future: December logs read in January.
    """
    if isinstance(timestamp, BsdTimestamp):
        return _resolve_bsd(timestamp, zone, received)
    try:
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=zone)
        return timestamp.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _resolve_bsd(timestamp: BsdTimestamp, zone: tzinfo, received: datetime) -> datetime | None:
    zone = timestamp.zone or zone
    local = received.astimezone(zone)
    year = local.year + 1 if timestamp.month == 1 and local.month == 12 else local.year
    candidate = _bsd_utc(timestamp, year, zone)
    if candidate is not None and candidate - received > _MAX_FUTURE:
        return _bsd_utc(timestamp, year - 1, zone)
    return candidate


@lru_cache(maxsize=4096)
def _bsd_utc(timestamp: BsdTimestamp, year: int, zone: tzinfo) -> datetime | None:
    """Cached because a burst of lines shares its header second; None for "Feb 29" in a
    common year."""
    t = timestamp
    try:
        local = datetime(year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, zone)
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _unparsed(line: str, why: str) -> SyslogMessage:
    return SyslogMessage(
        message=line, tags=("syslog_unparsed",), error=f"no syslog header: {why}, got {line[:24]!r}"
    )


def _parse_pri(text: str) -> tuple[int, tuple[str, ...]]:
    """A PRI out of range still frames a header, so keep parsing with the RFC 3164 default."""
    priority = _PRIORITIES.get(text)
    if priority is not None:
        return priority, ()
    if text.isascii() and text.isdigit() and int(text) <= _MAX_PRIORITY:
        return int(text), ()  # zero-padded, which RFC 5424 forbids but devices send
    return _DEFAULT_PRIORITY, ("syslog_bad_pri",)


def _parse_without_pri(line: str) -> SyslogMessage:
    """Relays that strip the PRI leave "Mmm dd hh:mm:ss host tag: msg"; demand a timestamp so
    that arbitrary text is not mistaken for a header."""
    if _BSD_HEADER_RE.match(line) is None and _ISO_HEADER_RE.match(line) is None:
        return _unparsed(line, "expected '<PRI>' or a timestamp at the start of the line")
    return _parse_rfc3164(line, _DEFAULT_PRIORITY, ("syslog_no_pri",))


# --- RFC 5424 -------------------------------------------------------------------------------


def _parse_rfc5424(rest: str, priority: int, version: int, tags: tuple[str, ...]) -> SyslogMessage:
    match = _RFC5424_HEADER_RE.match(rest)
    if match is None:
        return SyslogMessage(
            message=rest, priority=priority, version=version, tags=(*tags, "syslog_no_header")
        )
    stamp, host, app, procid, msgid = match.groups()
    timestamp = None if stamp == "-" else _parse_iso(stamp)
    if timestamp is None and stamp != "-":
        tags = (*tags, "syslog_bad_timestamp")
    structured_data, message, sd_tags = _parse_structured_data(rest[match.end() :])
    if message.startswith("\ufeff"):
        message = message[1:]
    return SyslogMessage(
        message=message,
        priority=priority,
        timestamp=timestamp,
        hostname=_nil(host),
        appname=_nil(app),
        procid=_nil(procid),
        msgid=_nil(msgid),
        version=version,
        structured_data=structured_data,
        tags=tags + sd_tags,
    )


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _parse_iso(text: str) -> datetime | None:
    if _ISO_RE.fullmatch(text) is None:
        return None
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError:
        return None


def _parse_structured_data(rest: str) -> tuple[StructuredData | None, str, tuple[str, ...]]:
    """Split "SD [SP MSG]"; malformed SD keeps everything as the message rather than guess."""
    if rest == "-" or rest.startswith("- "):
        return None, rest[2:], ()
    elements: StructuredData = {}
    position = 0
    while (match := _SD_ELEMENT_RE.match(rest, position)) is not None:
        params = elements.setdefault(match.group(1), {})
        for name, value in _SD_PARAM_RE.findall(match.group(2)):
            _add_param(params, name, _SD_ESCAPE_RE.sub(r"\1", value) if "\\" in value else value)
        position = match.end()
    if position == 0 or (position < len(rest) and rest[position] != " "):
        return None, rest, ("syslog_bad_structured_data",)
    return elements, rest[position + 1 :], ()


def _add_param(params: dict[str, str | list[str]], name: str, value: str) -> None:
    """RFC 5424 allows a PARAM-NAME to repeat within an element; keep every value."""
    previous = params.get(name)
    if previous is None:
        params[name] = value
    elif isinstance(previous, list):
        previous.append(value)
    else:
        params[name] = [previous, value]


# --- RFC 3164 -------------------------------------------------------------------------------


def _parse_rfc3164(rest: str, priority: int, tags: tuple[str, ...]) -> SyslogMessage:
    timestamp: Timestamp | None
    match = _BSD_HEADER_RE.match(rest)
    if match is not None:
        timestamp = _cached_bsd_timestamp(match.group(0))
    else:
        match = _ISO_HEADER_RE.match(rest)
        if match is None:
            return _parse_cisco(rest, priority, tags)
        timestamp = _parse_iso(match.group(1))
    if timestamp is None:
        tags = (*tags, "syslog_bad_timestamp")
    return _parse_3164_host_tag(rest[match.end() :], priority, timestamp, tags)


@lru_cache(maxsize=4096)
def _cached_bsd_timestamp(text: str) -> Timestamp | None:
    """Parse a "Mmm dd hh:mm:ss" header time matched by ``_BSD_HEADER_RE``; cached because
    consecutive lines mostly share their second."""
    match = _BSD_HEADER_RE.match(text)
    return None if match is None else _bsd_from_match(match, None)


def _bsd_from_match(match: re.Match[str], zone: tzinfo | None) -> Timestamp | None:
    """Build the time from the first seven groups of ``_BSD_TIME``; None if not a real date.

    Validation uses leap year 2000 so that "Feb 29" survives until the real year is known.
    """
    month, day, year, hour, minute, second, fraction = match.group(1, 2, 3, 4, 5, 6, 7)
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    parts = (_MONTHS[month], int(day), int(hour), int(minute), int(second), micro)
    try:
        full = datetime(int(year) if year else 2000, *parts, tzinfo=zone)
    except ValueError:
        return None
    return full if year else BsdTimestamp(*parts, zone=zone)


def _parse_common_3164(line: str, match: re.Match[str]) -> SyslogMessage:
    """The fast path: same result as the general 3164 parser, in one regex match."""
    priority, stamp, host, app, procid = match.groups()
    timestamp = _cached_bsd_timestamp(stamp)
    return SyslogMessage(
        message=line[match.end() :],
        priority=_PRIORITIES[priority],
        timestamp=timestamp,
        hostname=host,
        appname=app,
        procid=procid or None,
        tags=() if timestamp is not None else ("syslog_bad_timestamp",),
    )


def _parse_3164_host_tag(
    rest: str, priority: int, timestamp: Timestamp | None, tags: tuple[str, ...]
) -> SyslogMessage:
    """HOST and TAG are both optional in practice; a first word that is itself a TAG ("sshd[1]:")
    means the device left the hostname out, since hostnames never end in a colon."""
    host: str | None = None
    match = _TAG_RE.match(rest)
    if match is not None:
        app, procid = match.groups()
    else:
        match = _HOST_TAG_RE.match(rest)
        if match is None:
            host, _, message = rest.partition(" ")
            return SyslogMessage(
                message=message,
                priority=priority,
                timestamp=timestamp,
                hostname=host or None,
                tags=tags,
            )
        host, app, procid = match.groups()
    return SyslogMessage(
        message=rest[match.end() :],
        priority=priority,
        timestamp=timestamp,
        hostname=host,
        appname=app,
        procid=procid or None,
        tags=tags,
    )


def _parse_cisco(rest: str, priority: int, tags: tuple[str, ...]) -> SyslogMessage:
    """Cisco IOS puts a sequence number before the time and no hostname or tag after it; any
    other header-less text after a valid PRI is kept whole as the message (RFC 3164 4.3.2)."""
    match = _CISCO_HEADER_RE.match(rest)
    if match is None:
        return SyslogMessage(message=rest, priority=priority, tags=(*tags, "syslog_no_header"))
    zone_name = match.group(8)
    timestamp = _bsd_from_match(match, UTC if zone_name in _UTC_NAMES else None)
    if timestamp is None:
        tags = (*tags, "syslog_bad_timestamp")
    return SyslogMessage(
        message=rest[match.end() :], priority=priority, timestamp=timestamp, tags=tags
    )
