"""OpenSSH server messages -> ECS authentication/session fields (Filebeat ``system.auth.ssh``).

User names are attacker-chosen text (an invalid user may be called "x from 6.6.6.6 port 1"), so
every pattern anchors the peer at the end of the line: the address sshd itself appended is
always the last one, and whatever comes before it belongs to the user name.
"""

import re
from collections.abc import Callable
from typing import Any, Final

from soc.normalize.ecs import (
    Classification,
    Event,
    PamActions,
    branch,
    classify,
    parse_pam,
    set_source,
    set_user,
)

__all__ = ["parse"]

_ACCEPTED: Final = Classification("ssh_login", ("authentication", "session"), ("start",), "success")
_FAILED: Final = Classification("ssh_login", ("authentication",), ("start",), "failure")
_INVALID: Final = Classification("ssh_invalid_user", ("authentication",), ("info",), "failure")
_DISCONNECT: Final = Classification("ssh_disconnect", ("authentication", "session"), ("end",))
_CLOSED: Final = Classification("ssh_connection_closed", ("authentication", "session"), ("end",))
_RESET: Final = Classification("ssh_connection_reset", ("authentication", "session"), ("end",))
_MAX_AUTH: Final = Classification(
    "ssh_max_auth_attempts", ("authentication",), ("info",), "failure"
)
_NO_IDENT: Final = Classification("ssh_no_identification", ("network",), ("connection",))
_PAM: Final = PamActions.for_program("ssh")

_PREAUTH: Final = " [preauth]"
_REPEATED: Final = "message repeated "
_PEER: Final = r"(\S+) port ([0-9]{1,5})"
# "invalid user", "authenticating user" and "user" qualify the user in OpenSSH 7.5+ messages.
# Lazy: the shortest user that leaves exactly "<peer> port <n>" at the end of the line.
_USER_KIND: Final = r"(?:(invalid user|authenticating user|user) (.*?) )?"

_REPEATED_RE: Final = re.compile(r"message repeated ([0-9]{1,9}) times: \[ ?(.*)\]\Z", re.DOTALL)
_LOGIN_RE: Final = re.compile(
    rf"(Failed|Accepted) (\S+) for (invalid user )?(.*) from {_PEER}(?: ssh[12])?(?:: (.*))?\Z"
)
_INVALID_RE: Final = re.compile(r"Invalid user (.*) from (\S+)(?: port ([0-9]{1,5}))?\Z")
_DISCONNECTED_RE: Final = re.compile(rf"Disconnected from {_USER_KIND}{_PEER}\Z")
_RECEIVED_RE: Final = re.compile(
    r"Received disconnect from (\S+?)(?: port ([0-9]{1,5}))?: ?([0-9]{1,5}): ?(.*)\Z", re.DOTALL
)
_CONNECTION_RE: Final = re.compile(
    rf"Connection (closed|reset) by {_USER_KIND}(\S+)(?: port ([0-9]{{1,5}}))?\Z"
)
_MAX_AUTH_RE: Final = re.compile(
    rf"error: maximum authentication attempts exceeded for (invalid user )?(.*) from {_PEER}"
    r"(?: ssh[12])?\Z"
)
_NO_IDENT_RE: Final = re.compile(
    r"Did not receive identification string from (\S+)(?: port ([0-9]{1,5}))?\Z"
)


def parse(message: str, event: Event) -> None:
    """Add ECS and ``system.auth.ssh`` fields for a known sshd message; leave others alone,
    since an sshd message this parser does not know is not a malformed one."""
    if message.startswith(_REPEATED):
        message = _unwrap_repeated(message, event)
    if message.endswith(_PREAUTH):
        message = message[: -len(_PREAUTH)]
    handler = _HANDLERS.get(message.partition(" ")[0])
    if handler is not None:
        handler(message, event)
    elif message.startswith("pam_unix("):
        parse_pam(message, event, _PAM)


def _unwrap_repeated(message: str, event: Event) -> str:
    """rsyslog folds identical lines into "message repeated N times: [ msg]": every one of the
    N was an attempt, so the count is kept for brute-force thresholds."""
    match = _REPEATED_RE.match(message)
    if match is None:
        return message
    _ssh(event)["repeated"] = int(match.group(1))
    return match.group(2)


def _ssh(event: Event) -> dict[str, Any]:
    return branch(event, "system", "auth", "ssh")


def _login(message: str, event: Event) -> None:
    match = _LOGIN_RE.match(message)
    if match is None:
        return
    result, method, invalid, user, address, port, signature = match.groups()
    ssh = _ssh(event)
    ssh["event"] = result
    ssh["method"] = method
    ssh["invalid_user"] = invalid is not None
    if signature:
        ssh["signature"] = signature
    classify(event, _ACCEPTED if result == "Accepted" else _FAILED)
    set_user(event, user)
    set_source(event, address, port)


def _invalid_user(message: str, event: Event) -> None:
    match = _INVALID_RE.match(message)
    if match is None:
        return
    user, address, port = match.groups()
    ssh = _ssh(event)
    ssh["event"] = "Invalid"
    ssh["invalid_user"] = True
    classify(event, _INVALID)
    set_user(event, user)
    set_source(event, address, port)


def _disconnected(message: str, event: Event) -> None:
    match = _DISCONNECTED_RE.match(message)
    if match is not None:
        kind, user, address, port = match.groups()
        _end_of_connection(event, "Disconnected", _DISCONNECT, kind, user)
        set_source(event, address, port)


def _received_disconnect(message: str, event: Event) -> None:
    """The client said goodbye: keep its SSH disconnect reason code and text."""
    match = _RECEIVED_RE.match(message)
    if match is None:
        return
    address, port, code, reason = match.groups()
    _end_of_connection(event, "Disconnected", _DISCONNECT, None, None)
    _ssh(event)["disconnect"] = {"code": int(code), "reason": reason}
    set_source(event, address, port)


def _connection(message: str, event: Event) -> None:
    match = _CONNECTION_RE.match(message)
    if match is None:
        return
    how, kind, user, address, port = match.groups()
    if how == "closed":
        _end_of_connection(event, "Closed", _CLOSED, kind, user)
    else:
        _end_of_connection(event, "Reset", _RESET, kind, user)
    set_source(event, address, port)


def _end_of_connection(
    event: Event, name: str, classification: Classification, kind: str | None, user: str | None
) -> None:
    """A connection ended; the outcome stays unknown, but the user kind tells if it existed."""
    ssh = _ssh(event)
    ssh["event"] = name
    if kind is not None:
        ssh["invalid_user"] = kind == "invalid user"
    classify(event, classification)
    set_user(event, user)


def _error(message: str, event: Event) -> None:
    match = _MAX_AUTH_RE.match(message)
    if match is None:
        return
    invalid, user, address, port = match.groups()
    ssh = _ssh(event)
    ssh["event"] = "MaxAuthTries"
    ssh["invalid_user"] = invalid is not None
    classify(event, _MAX_AUTH)
    set_user(event, user)
    set_source(event, address, port)


def _no_identification(message: str, event: Event) -> None:
    """A TCP connection that never spoke SSH: scanners and banner grabbers."""
    match = _NO_IDENT_RE.match(message)
    if match is None:
        return
    address, port = match.groups()
    _ssh(event)["event"] = "NoIdentification"
    classify(event, _NO_IDENT)
    set_source(event, address, port)


# Keyed by the first word of the message, so a line costs one dict lookup and one regex.
_HANDLERS: Final[dict[str, Callable[[str, Event], None]]] = {
    "Failed": _login,
    "Accepted": _login,
    "Invalid": _invalid_user,
    "Disconnected": _disconnected,
    "Received": _received_disconnect,
    "Connection": _connection,
    "error:": _error,
    "Did": _no_identification,
}
