"""Dovecot messages (imap-login, pop3-login, auth) -> ECS authentication fields (module
``system``, dataset ``system.mail``).

Logins and failed logins on mailboxes are what password-guessing against an agency's mail looks
like; ``user.name``, ``source.ip`` (rip) and ``event.outcome`` carry it, as for sshd. Dovecot
logs as "dovecot" with the service in the message ("imap-login: Login: ..."), or with the
service as the syslog tag; both arrive here.
"""

import re
from typing import Final

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

_LOGIN: Final = Classification("dovecot_login", ("authentication",), ("start",), "success")
_FAILED: Final = Classification("dovecot_login", ("authentication",), ("start",), "failure")
_ABORTED: Final = Classification("dovecot_aborted_login", ("authentication",), ("info",))
_AUTH_FAILED: Final = Classification(
    "dovecot_auth_failure", ("authentication",), ("info",), "failure"
)
_PAM: Final = PamActions.for_program("dovecot")

_PREFIX_RE: Final = re.compile(
    r"(?:(?P<service>[a-z0-9-]+(?:\([^()]*\))?)(?:<[0-9]+>)*(?:<[^<>\s]*>)?: )?"
    r"(?:(?:Info|Warning|Error|Fatal|Debug): )?"
)
_LOGIN_RE: Final = re.compile(
    r"(Login|Disconnected|Aborted login|Connection closed)(?: \((.*?)\))?: (.*)\Z", re.DOTALL
)
_ATTEMPTS_RE: Final = re.compile(r"\b([0-9]{1,6}) attempts? in ")
_ATTR_RE: Final = re.compile(r"(\w+)=(<[^>]*>|[^,\s]*)")
# auth process lines: "pam(bob,203.0.113.5,<sess>): unknown user" / "... Password mismatch"
_AUTH_RE: Final = re.compile(r"(\w[\w-]*)\(([^,()]*),([^,()]*)(?:,<[^>]*>)?\): (.*)\Z", re.DOTALL)
_AUTH_FAILURES: Final = ("unknown user", "Password mismatch", "authentication failure", "failed")


def parse(message: str, event: Event) -> None:
    """Add ECS and ``dovecot.*`` fields for login, failed login and auth lines."""
    prefix = _PREFIX_RE.match(message)
    service = prefix.group("service") if prefix is not None else None
    rest = message[prefix.end() :] if prefix is not None else message
    if service is not None:
        branch(event, "dovecot")["service"] = service.partition("(")[0]
    if rest.startswith("pam_unix("):
        parse_pam(rest, event, _PAM)
        return
    match = _LOGIN_RE.match(rest)
    if match is not None:
        _login(event, *match.groups())
        return
    match = _AUTH_RE.match(rest)
    if match is not None:
        _auth(event, *match.groups())


def _login(event: Event, what: str, detail: str | None, attributes_text: str) -> None:
    attributes = {k: v.strip("<>") for k, v in _ATTR_RE.findall(attributes_text)}
    user = attributes.get("user")
    if what == "Login":
        classify(event, _LOGIN)
    elif detail is not None and "auth failed" in detail:
        classify(event, _FAILED)
    elif what in {"Disconnected", "Aborted login"} and user is not None:
        classify(event, _ABORTED)
    else:
        return
    dovecot = branch(event, "dovecot")
    if detail is not None:
        dovecot["reason"] = detail
        attempts = _ATTEMPTS_RE.search(detail)
        if attempts is not None:  # one line can stand for many guesses: thresholds count them
            dovecot["attempts"] = int(attempts.group(1))
    if "method" in attributes:
        dovecot["method"] = attributes["method"]
    if "session" in attributes:
        dovecot["session_id"] = attributes["session"]
    set_user(event, user)
    set_source(event, attributes.get("rip") or None, _port(attributes.get("rport")))
    local = attributes.get("lip")
    if local:
        probe: Event = {}
        set_source(probe, local, _port(attributes.get("lport")))
        event["destination"] = probe.get("source", {})


def _port(text: str | None) -> str | None:
    return (
        text if text is not None and text.isascii() and text.isdigit() and len(text) <= 5 else None
    )


def _auth(event: Event, mechanism: str, user: str, address: str, reason: str) -> None:
    if not any(failure in reason for failure in _AUTH_FAILURES):
        return
    classify(event, _AUTH_FAILED)
    dovecot = branch(event, "dovecot")
    dovecot["passdb"] = mechanism
    dovecot["reason"] = reason
    set_user(event, user or None)
    set_source(event, address or None)
