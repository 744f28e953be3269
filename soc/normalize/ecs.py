"""Helpers that write ECS fields into an event, shared by the program parsers.

They exist so that every parser fills ``source.*``, ``user.*`` and ``related.*`` the same way:
detection rules and correlation pivot on these fields, and one parser spelling them differently
would silently hide its events from them.
"""

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "Classification",
    "Event",
    "PamActions",
    "add_related",
    "branch",
    "canonical_ip",
    "classify",
    "format_utc",
    "parse_pam",
    "set_effective_user",
    "set_source",
    "set_user",
]

Event = dict[str, Any]

_MAX_PORT: Final = 65535
_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Dotted quad without leading zeros: exactly the text ipaddress accepts, already canonical.
_IPV4_RE: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


@dataclass(frozen=True, slots=True)
class Classification:
    """The ECS categorization of one kind of message, built once at import time."""

    action: str
    category: tuple[str, ...]
    type: tuple[str, ...]
    outcome: str | None = None


def branch(event: Event, *path: str) -> dict[str, Any]:
    """Return the nested object at ``path``, creating it: ECS events are nested dicts."""
    node = event
    for key in path:
        node = node.setdefault(key, {})
    return node


def classify(event: Event, classification: Classification) -> None:
    """Set event.action/category/type/outcome; lists are copied so events never share them."""
    fields = event["event"]
    fields["action"] = classification.action
    fields["category"] = list(classification.category)
    fields["type"] = list(classification.type)
    if classification.outcome is not None:
        fields["outcome"] = classification.outcome


@lru_cache(maxsize=1024)
def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and "Z", the one form every stored timestamp takes.

    Cached: lines arrive in bursts that share their header second.
    """
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def add_related(event: Event, kind: str, value: str) -> None:
    """Append to related.<kind> once: it is the pivot list searched across all event types."""
    values = event.setdefault("related", {}).setdefault(kind, [])
    if value not in values:
        values.append(value)


def set_user(event: Event, name: str | None, uid: str | None = None) -> None:
    """Set user.name (and user.id); an empty name is no name, so it is left out."""
    if name:
        user = event.setdefault("user", {})
        user["name"] = name
        if uid is not None:
            user["id"] = uid
        add_related(event, "user", name)


def set_effective_user(event: Event, name: str | None, uid: str | None = None) -> None:
    """Set user.effective.* for the identity a command or session runs as."""
    if name:
        effective = branch(event, "user", "effective")
        effective["name"] = name
        if uid is not None:
            effective["id"] = uid
        add_related(event, "user", name)


def set_source(event: Event, address: str | None, port: str | None = None) -> None:
    """Fill source.* from a logged peer that may be an IP or, with UseDNS, a host name.

    Only a valid IP goes to source.ip: Elasticsearch rejects the whole document when an ``ip``
    field holds anything else, so a host name goes to source.domain instead.
    """
    if not address:
        return
    source = event.setdefault("source", {})
    source["address"] = address
    ip = address if _IPV4_RE.fullmatch(address) else _as_ipv6(address)
    if ip is None:
        source["domain"] = address
    else:
        source["ip"] = ip
        add_related(event, "ip", ip)
    if port is not None and (number := int(port)) <= _MAX_PORT:
        source["port"] = number


def canonical_ip(text: str) -> str | None:
    """The IP in ``text`` in the form Elasticsearch's ``ip`` type stores, or None: the one
    place that decides what an IP is, since a non-IP in an ip field loses the whole document."""
    return text if _IPV4_RE.fullmatch(text) else _as_ipv6(text)


@lru_cache(maxsize=4096)
def _as_ipv6(text: str) -> str | None:
    """Canonical (compressed, lowercase, no zone index) IPv6 text, or None. IPv4 is checked
    with a regex instead, ten times cheaper than ipaddress; a zone index is dropped because
    Elasticsearch's ip type rejects it."""
    if ":" not in text:
        return None
    try:
        address = ipaddress.IPv6Address(text.partition("%")[0])
    except ValueError:
        return None
    mapped = address.ipv4_mapped  # "::ffff:10.0.0.5" from dual-stack listeners is 10.0.0.5
    return str(address if mapped is None else mapped)


# --- PAM (pam_unix lines appear under sshd, sudo, su, login... with the same wording) -------


@dataclass(frozen=True, slots=True)
class PamActions:
    """How one program's pam_unix messages are classified."""

    auth_failure: Classification
    session_opened: Classification
    session_closed: Classification

    @classmethod
    def for_program(cls, prefix: str) -> "PamActions":
        """Actions named "<prefix>_auth_failure", "<prefix>_session_opened"/"_closed"."""
        return cls(
            auth_failure=Classification(
                f"{prefix}_auth_failure", ("authentication",), ("info",), "failure"
            ),
            session_opened=Classification(
                f"{prefix}_session_opened", ("session",), ("start",), "success"
            ),
            session_closed=Classification(
                f"{prefix}_session_closed", ("session",), ("end",), "success"
            ),
        )


_PAM_RE: Final = re.compile(r"pam_unix\([^():\s]+:(\w+)\): (.*)", re.DOTALL)
_PAM_RHOST_RE: Final = re.compile(r"\brhost=(\S+)")
_PAM_USER_RE: Final = re.compile(r"\buser=(.+)\Z", re.DOTALL)
_PAM_SESSION_RE: Final = re.compile(
    r"session (opened|closed) for user (\S+?)(?:\(uid=([0-9]+)\))?"
    r"(?: by (\S*?)(?:\(uid=([0-9]+)\))?)?\Z"
)
_AUTH_FAILURE_PREFIX: Final = "authentication failure;"


def parse_pam(message: str, event: Event, actions: PamActions) -> bool:
    """Parse a pam_unix authentication failure or session line; False if not one of those."""
    match = _PAM_RE.match(message)
    if match is None:
        return False
    kind, text = match.groups()
    if kind == "auth" and text.startswith(_AUTH_FAILURE_PREFIX):
        _pam_auth_failure(text, event, actions)
        return True
    session = _PAM_SESSION_RE.match(text) if kind == "session" else None
    if session is None:
        return False
    _pam_session(session, event, actions)
    return True


def _pam_auth_failure(text: str, event: Event, actions: PamActions) -> None:
    """ "user=" comes last and is the account being authenticated; "rhost=" the remote peer."""
    classify(event, actions.auth_failure)
    user = _PAM_USER_RE.search(text)
    if user is not None:
        set_user(event, user.group(1).strip())
    rhost = _PAM_RHOST_RE.search(text)
    if rhost is not None:
        set_source(event, rhost.group(1))


def _pam_session(match: re.Match[str], event: Event, actions: PamActions) -> None:
    """ "for user X by Y": Y acted (user.*), X is who the session runs as (user.effective.*);
    with no Y (sshd logs "by (uid=0)") X is the user."""
    state, for_user, for_uid, by_user, by_uid = match.groups()
    classify(event, actions.session_opened if state == "opened" else actions.session_closed)
    if by_user:
        set_user(event, by_user, by_uid)
        set_effective_user(event, for_user, for_uid)
    else:
        set_user(event, for_user, for_uid)
