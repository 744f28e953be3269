"""Web server access logs -> ECS: NCSA common/combined (Apache, nginx) and IIS W3C extended.

Why these fields: Sigma's web rules (category ``webserver``: ``cs-method``, ``cs-uri-stem``,
``cs-uri-query``, ``cs-user-agent``, ``sc-status``, ``c-ip``, ``cs-referer``) are mapped by the
detection pipeline to ``http.request.method``, ``url.path``, ``url.query``,
``user_agent.original``, ``http.response.status_code``, ``source.ip`` and
``http.request.referrer``, so every format fills exactly those.

Values are kept as the server logged them: ``url.original`` stays percent-encoded and the
server's own escapes (``\\"``, ``\\x16``) stay in place, because attack payloads are matched on
that text and decoding it twice or not at all would both miss them. Only IIS's ``+`` for a
space in the user agent is undone, since rules spell user agents with spaces.

Normalizing never raises: a line that is not an access log still becomes an event, with its
original text, the tag ``access_log_unparsed`` and ``error.message``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

from soc.normalize.ecs import add_related, branch, format_utc, set_source, set_user

__all__ = [
    "W3CLog",
    "normalize_access_log",
    "parse_access_log",
    "parse_w3c",
]

_log = logging.getLogger(__name__)

_DATASET: Final = "web.access"
_GENERIC_MODULE: Final = "http"
_UNPARSED_TAG: Final = "access_log_unparsed"
_FAILURE_STATUS: Final = 400
_MAX_LONG: Final = 2**63 - 1
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_QUOTED: Final = r'[^"\\]*(?:\\.[^"\\]*)*'  # a quoted field, with backslash escapes inside
_FIELD: Final = r'[^\s"\[\]]+'  # an unquoted field: no space, quote or bracket
# NCSA common, combined, Apache's vhost_combined (a leading "host:port") and trailing extras
# (nginx $request_time, "$http_x_forwarded_for", ...).
_NCSA_RE: Final = re.compile(
    rf"(?:(?P<vhost>{_FIELD}) )?(?P<client>{_FIELD}) (?P<ident>{_FIELD}) (?P<user>{_FIELD}) "
    rf'\[(?P<time>[^\]]*)\] "(?P<request>{_QUOTED})" (?P<status>[0-9]{{3}}|-) '
    rf'(?P<bytes>[0-9]+|-)(?: "(?P<referrer>{_QUOTED})" "(?P<agent>{_QUOTED})")?'
    r"(?P<extra>(?:\s.*)?)\Z",
    re.DOTALL,
)
_NCSA_TIME_RE: Final = re.compile(
    r"([0-9]{1,2})/([A-Za-z]{3})/([0-9]{4}):([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r" ?([+-])([0-9]{2}):?([0-9]{2})\Z"
)
_REQUEST_RE: Final = re.compile(
    r"(?P<method>[A-Za-z][A-Za-z0-9_.-]{0,31}) (?P<target>\S.*?)"
    r"(?: HTTP/(?P<version>[0-9]+(?:\.[0-9]+)?))?\Z",
    re.DOTALL,
)
_EXTRA_RE: Final = re.compile(rf'"({_QUOTED})"|(\S+)')
_HTTP_VERSION_RE: Final = re.compile(r"HTTP/([0-9]+(?:\.[0-9]+)?)\Z", re.IGNORECASE)
# IIS's default columns, used until a #Fields directive says otherwise.
_IIS_DEFAULT_FIELDS: Final = (
    "date",
    "time",
    "s-ip",
    "cs-method",
    "cs-uri-stem",
    "cs-uri-query",
    "s-port",
    "cs-username",
    "c-ip",
    "cs(User-Agent)",
    "cs(Referer)",
    "sc-status",
    "sc-substatus",
    "sc-win32-status",
    "time-taken",
)
_MISSING: Final = "-"


# --- NCSA (Apache, nginx) -------------------------------------------------------------------


def parse_access_log(line: str) -> dict[str, Any] | None:
    """An NCSA common/combined line -> its ECS fields (nested, without event metadata), or
    None when the line is not an access log line."""
    match = _NCSA_RE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    fields: dict[str, Any] = {}
    groups = match.groupdict()
    _set_client(fields, groups["client"], groups["user"])
    _set_vhost(fields, groups["vhost"])
    moment = _ncsa_time(groups["time"])
    if moment is not None:
        fields["@timestamp"] = format_utc(moment)
    _set_request(fields, groups["request"])
    _set_response(fields, groups["status"], groups["bytes"])
    referrer, agent = groups["referrer"], groups["agent"]
    if referrer is not None and referrer != _MISSING:
        branch(fields, "http", "request")["referrer"] = referrer
    if agent is not None and agent != _MISSING:
        fields["user_agent"] = {"original": agent}
    _set_forwarded(fields, groups["extra"])
    return fields


def normalize_access_log(
    line: str,
    *,
    event_id: str,
    received_at: str | None = None,
    server: str | None = None,
    module: str | None = None,
) -> dict[str, Any]:
    """One access log line -> an ECS event. Never raises.

    ``module`` is the server software when the caller knows it (from the file's path, say):
    "nginx", "apache"; the line alone cannot tell them apart.
    """
    text = line.rstrip("\r\n")
    try:
        fields = parse_access_log(text)
    except Exception as exc:  # a parser bug must cost one line's fields, not the line
        _log.exception("access log parsing failed")
        return _unparsed(text, event_id, received_at, server, f"{type(exc).__name__}: {exc}")
    if fields is None:
        reason = "not an access log line (NCSA common or combined format expected)"
        return _unparsed(text, event_id, received_at, server, reason)
    return _event(text, fields, event_id, received_at, server, module or _GENERIC_MODULE)


def _set_client(fields: dict[str, Any], client: str, user: str) -> None:
    if client != _MISSING:
        set_source(fields, client)
    if user != _MISSING:
        set_user(fields, user)


def _set_vhost(fields: dict[str, Any], vhost: str | None) -> None:
    """Apache's vhost_combined prefix, "%v:%p": the site the request was for."""
    if vhost is None or vhost == _MISSING:
        return
    host, _, port = vhost.rpartition(":")
    url = branch(fields, "url")
    if host and port.isascii() and port.isdigit():
        url["domain"] = host
        url["port"] = int(port)
    else:
        url["domain"] = vhost


@lru_cache(maxsize=1024)
def _ncsa_time(text: str) -> datetime | None:
    """``10/Oct/2000:13:55:36 -0700`` -> aware datetime; cached, as lines share their second."""
    match = _NCSA_TIME_RE.match(text)
    if match is None:
        return None
    day, month_name, year, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None:
        return None
    offset = timedelta(hours=int(off_h), minutes=int(off_m))
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        zone = timezone(-offset if sign == "-" else offset)
        return datetime(
            int(year), month, int(day), int(hour), int(minute), int(second), micros, zone
        )
    except ValueError:
        return None


def _set_request(fields: dict[str, Any], request: str) -> None:
    """``METHOD target HTTP/x.y``; "-" (no request) and non-HTTP bytes (TLS hellos sent to a
    plain port) keep only the original line, tagged so that they can be found."""
    if request in {"", _MISSING}:
        return
    match = _REQUEST_RE.match(request)
    if match is None:
        fields.setdefault("tags", []).append("http_request_invalid")
        return
    http_request = branch(fields, "http", "request")
    http_request["method"] = match["method"]
    if match["version"] is not None:
        branch(fields, "http")["version"] = match["version"]
    _set_url(fields, match["target"])


def _set_url(fields: dict[str, Any], target: str) -> None:
    """url.original as logged; path and query split at the first "?" (query without it)."""
    url = branch(fields, "url")
    url["original"] = target
    if target.startswith("/"):
        path, mark, query = target.partition("?")
        url["path"] = path
        if mark:
            url["query"] = query
        return
    if "://" in target:
        _set_absolute_url(url, target)


def _set_absolute_url(url: dict[str, Any], target: str) -> None:
    """A proxy request's absolute form, ``http://host:port/path?query``."""
    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError:  # a malformed authority ("http://[::1") leaves only url.original
        return
    if parts.scheme:
        url["scheme"] = parts.scheme
    if parts.hostname:
        url["domain"] = parts.hostname
    if port is not None:
        url["port"] = port
    url["path"] = parts.path
    if "?" in target:
        url["query"] = parts.query


def _set_response(fields: dict[str, Any], status: str | None, size: str | None) -> None:
    response: dict[str, Any] = {}
    if status is not None and status.isdigit():
        response["status_code"] = int(status)
    byte_count = _number(size)
    if byte_count is not None:
        response["body"] = {"bytes": byte_count}
    if response:
        branch(fields, "http")["response"] = response


def _number(text: str | None) -> int | None:
    """A count that fits Elasticsearch's long; "-" and anything else is no value."""
    if text is None or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= _MAX_LONG else None


def _set_forwarded(fields: dict[str, Any], extra: str) -> None:
    """A trailing quoted list of addresses is X-Forwarded-For: its first entry is the client
    behind the proxy (ECS network.forwarded_ip)."""
    for quoted, _bare in _EXTRA_RE.findall(extra):
        first = quoted.split(",", 1)[0].strip()
        if not first or first == _MISSING:
            continue
        ip = _ip_of(first)
        if ip is not None:
            branch(fields, "network")["forwarded_ip"] = ip
            add_related(fields, "ip", ip)
            return


def _ip_of(text: str) -> str | None:
    """The canonical IP in ``text``, or None: set_source is the one place that decides what
    an IP is, so its verdict is reused rather than a second parser."""
    probe: dict[str, Any] = {}
    set_source(probe, text)
    ip: str | None = probe.get("source", {}).get("ip")
    return ip


# --- IIS W3C extended -----------------------------------------------------------------------


class W3CLog:
    """One W3C extended log being read: the ``#Fields`` directive in force decides what each
    column of the lines after it means (IIS writes a new one at every restart)."""

    def __init__(self) -> None:
        self.fields: list[str] = list(_IIS_DEFAULT_FIELDS)

    def parse(self, line: str) -> dict[str, Any] | None:
        """A data line -> its ECS fields; None for a directive or a line that does not fit the
        columns."""
        text = line.rstrip("\r\n")
        if self._directive(text):
            return None
        values = text.split()
        if not values or len(values) != len(self.fields):
            return None
        return _w3c_fields(dict(zip(self.fields, values, strict=True)))

    def normalize(
        self,
        line: str,
        *,
        event_id: str,
        received_at: str | None = None,
        server: str | None = None,
    ) -> dict[str, Any] | None:
        """A line -> an ECS event; None for a directive or blank line, which are not events.
        Never raises."""
        text = line.rstrip("\r\n")
        if not text.strip():
            return None
        try:
            if self._directive(text):
                return None
            fields = self.parse(text)
        except Exception as exc:  # a parser bug must cost one line's fields, not the line
            _log.exception("W3C log parsing failed")
            return _unparsed(text, event_id, received_at, server, f"{type(exc).__name__}: {exc}")
        if fields is None:
            reason = f"{len(text.split())} values for the {len(self.fields)} #Fields columns"
            return _unparsed(text, event_id, received_at, server, reason)
        return _event(text, fields, event_id, received_at, server, "iis")

    def _directive(self, text: str) -> bool:
        if not text.startswith("#"):
            return False
        name, _, value = text[1:].partition(":")
        if name.strip().lower() == "fields" and value.split():
            self.fields = value.split()
        return True


def parse_w3c(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """W3C extended log lines -> the ECS fields of each data line that fits the current
    ``#Fields``, like parse_access_log; use W3CLog.normalize to keep the lines that do not."""
    log = W3CLog()
    for line in lines:
        fields = log.parse(line)
        if fields is not None:
            yield fields


def _w3c_fields(row: dict[str, str]) -> dict[str, Any]:
    values = {name.lower(): value for name, value in row.items() if value != _MISSING}
    fields: dict[str, Any] = {}
    moment = _w3c_time(values.get("date"), values.get("time"))
    if moment is not None:
        fields["@timestamp"] = format_utc(moment)
    _set_client(fields, values.get("c-ip", _MISSING), values.get("cs-username", _MISSING))
    _set_w3c_server(fields, values)
    _set_w3c_request(fields, values)
    _set_response(fields, values.get("sc-status"), values.get("sc-bytes"))
    duration = _number(values.get("time-taken"))
    if duration is not None:
        fields["event"] = {"duration": duration * 1_000_000}  # milliseconds -> nanoseconds
    return fields


def _w3c_time(date: str | None, time: str | None) -> datetime | None:
    """IIS logs date and time in UTC, whatever the server's zone."""
    if date is None or time is None:
        return None
    try:
        return datetime.fromisoformat(f"{date}T{time}").replace(tzinfo=UTC)
    except ValueError:
        return None


def _set_w3c_server(fields: dict[str, Any], values: dict[str, str]) -> None:
    destination: dict[str, Any] = {}
    server_ip = _ip_of(values.get("s-ip", ""))
    if server_ip is not None:
        destination["ip"] = server_ip
    port = _number(values.get("s-port"))
    if port is not None and port <= 65535:
        destination["port"] = port
    if destination:
        fields["destination"] = destination
    host = values.get("s-computername")
    if host is not None:
        fields["host"] = {"name": host}


def _set_w3c_request(fields: dict[str, Any], values: dict[str, str]) -> None:
    method = values.get("cs-method")
    if method is not None:
        branch(fields, "http", "request")["method"] = method
    stem, query = values.get("cs-uri-stem"), values.get("cs-uri-query")
    if stem is not None:
        url = branch(fields, "url")
        url["path"] = stem
        url["original"] = stem if query is None else f"{stem}?{query}"
        if query is not None:
            url["query"] = query
    if "cs-host" in values:
        branch(fields, "url")["domain"] = values["cs-host"]
    version = _HTTP_VERSION_RE.match(values.get("cs-version", ""))
    if version is not None:
        branch(fields, "http")["version"] = version.group(1)
    if "cs(referer)" in values:
        branch(fields, "http", "request")["referrer"] = values["cs(referer)"]
    if "cs(user-agent)" in values:
        fields["user_agent"] = {"original": values["cs(user-agent)"].replace("+", " ")}
    request_bytes = _number(values.get("cs-bytes"))
    if request_bytes is not None:
        branch(fields, "http", "request")["body"] = {"bytes": request_bytes}


# --- events ---------------------------------------------------------------------------------


def _event(
    text: str,
    fields: dict[str, Any],
    event_id: str,
    received_at: str | None,
    server: str | None,
    module: str,
) -> dict[str, Any]:
    event = _base_event(text, event_id, received_at, server, module)
    tags = fields.pop("tags", [])
    event_fields = fields.pop("event", {})
    event["event"].update(event_fields)
    if "@timestamp" not in fields:
        tags.append("access_log_bad_timestamp")
    host = fields.pop("host", None)
    if server is None and host is not None:
        event["host"] = host
    event.update(fields)
    status = fields.get("http", {}).get("response", {}).get("status_code")
    if status is not None:
        event["event"]["outcome"] = "success" if status < _FAILURE_STATUS else "failure"
    if tags:
        event["tags"] = tags
    return event


def _base_event(
    text: str, event_id: str, received_at: str | None, server: str | None, module: str
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "@timestamp": _received(received_at),
        "event": {
            "kind": "event",
            "category": ["web"],
            "type": ["access"],
            "module": module,
            "dataset": _DATASET,
            "id": event_id,
            "original": text,
        },
    }
    if server:
        event["host"] = {"name": server}
    return event


def _unparsed(
    text: str, event_id: str, received_at: str | None, server: str | None, reason: str
) -> dict[str, Any]:
    event = _base_event(text, event_id, received_at, server, _GENERIC_MODULE)
    event["tags"] = [_UNPARSED_TAG]
    event["error"] = {"message": reason}
    return event


def _received(received_at: str | None) -> str:
    """The fallback @timestamp: when the line was received, or now if that is unknown."""
    if received_at is not None:
        try:
            moment = datetime.fromisoformat(received_at)
        except ValueError:
            moment = None
        if moment is not None:
            return format_utc(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return format_utc(datetime.now(UTC))
