"""Postfix messages (postfix/smtpd, qmgr, smtp, cleanup...) -> ECS ``email.*``, ``source.*``
and ``postfix.*`` fields (module ``system``, dataset ``system.mail``).

What a SOC watches in mail logs: who connects (``source``), SASL login failures (password
guessing against mailboxes), rejections (relay attempts, spam sources), and where mail went
(``email.to``, relay, delivery status). The queue id ties one message's lines together.
"""

import re
from typing import Any, Final

from soc.normalize.ecs import Classification, Event, branch, classify, set_source, set_user

__all__ = ["parse"]

_CONNECT: Final = Classification("smtp_connect", ("network",), ("connection", "start"))
_DISCONNECT: Final = Classification("smtp_disconnect", ("network",), ("connection", "end"))
_LOST: Final = Classification("smtp_lost_connection", ("network",), ("connection", "end"))
_REJECT: Final = Classification("smtp_reject", ("email", "network"), ("denied",), "failure")
_AUTH_FAILED: Final = Classification(
    "smtp_auth_failure", ("authentication", "email"), ("start",), "failure"
)
_CLIENT: Final = Classification("smtp_client", ("email",), ("info",))
_CLIENT_AUTH: Final = Classification(
    "smtp_auth_success", ("authentication", "email"), ("start",), "success"
)
_QUEUED: Final = Classification("mail_queued", ("email",), ("info",))
_REMOVED: Final = Classification("mail_removed", ("email",), ("deletion",))
_MESSAGE_ID: Final = Classification("mail_received", ("email",), ("info",))
_STATUS: Final = {
    "sent": Classification("mail_delivery", ("email",), ("info",), "success"),
    "bounced": Classification("mail_delivery", ("email",), ("info",), "failure"),
    "expired": Classification("mail_delivery", ("email",), ("info",), "failure"),
    "deferred": Classification("mail_delivery", ("email",), ("info",), "unknown"),
}
_DEFAULT_STATUS: Final = Classification("mail_delivery", ("email",), ("info",), "unknown")

_QUEUE_RE: Final = re.compile(r"([0-9A-F]{6,20}|[0-9B-Zb-z]{10,20}|NOQUEUE): ")
# "name[address]" as smtpd logs a client: the name is "unknown" when reverse DNS failed.
_CLIENT_RE: Final = r"([^\s\[\]]+)\[([^\s\[\]]+)\](?::([0-9]{1,5}))?"
_CONNECT_RE: Final = re.compile(rf"(connect|disconnect) from {_CLIENT_RE}(.*)\Z", re.DOTALL)
_LOST_RE: Final = re.compile(rf"lost connection after (\S+) from {_CLIENT_RE}\Z")
_SASL_RE: Final = re.compile(
    rf"warning: {_CLIENT_RE}: SASL (\S+) authentication failed: ?(.*?)(?:, sasl_username=(\S+))?\Z",
    re.DOTALL,
)
_REJECT_RE: Final = re.compile(
    rf"reject: (\S+) from {_CLIENT_RE}: ([0-9]{{3}}) (?:([0-9]\.[0-9]{{1,3}}\.[0-9]{{1,3}}) )?"
    r"(.*?);(.*)\Z",
    re.DOTALL,
)
_ATTR_RE: Final = re.compile(r"(\w+)=(<[^>]*>|[^,\s]+)")
_RELAY_RE: Final = re.compile(_CLIENT_RE)
_CLIENT_LINE_RE: Final = re.compile(rf"client={_CLIENT_RE}(.*)\Z", re.DOTALL)


def parse(message: str, event: Event) -> None:
    """Add ECS and ``postfix.*`` fields for the lines above; leave others alone."""
    queue = _QUEUE_RE.match(message)
    rest = message
    if queue is not None:
        rest = message[queue.end() :]
        if queue.group(1) != "NOQUEUE":
            _postfix(event)["queue_id"] = queue.group(1)
    if rest.startswith(("connect from ", "disconnect from ")):
        _connection(rest, event)
    elif rest.startswith("lost connection after "):
        _lost(rest, event)
    elif rest.startswith("warning: ") and " SASL " in rest:
        _sasl_failure(rest, event)
    elif rest.startswith("reject: "):
        _reject(rest, event)
    elif rest.startswith("client="):
        _client(rest, event)
    elif rest.startswith("message-id="):
        classify(event, _MESSAGE_ID)
        branch(event, "email")["message_id"] = rest[len("message-id=") :].strip("<>")
    elif rest == "removed":
        classify(event, _REMOVED)
    elif queue is not None and "=" in rest:
        _attributes(rest, event)


def _postfix(event: Event) -> dict[str, Any]:
    return branch(event, "postfix")


def _set_client(event: Event, name: str, address: str, port: str | None) -> None:
    set_source(event, address, port)
    if name != "unknown":
        event["source"]["domain"] = name


def _connection(text: str, event: Event) -> None:
    match = _CONNECT_RE.match(text)
    if match is None:
        return
    kind, name, address, port, counters = match.groups()
    classify(event, _CONNECT if kind == "connect" else _DISCONNECT)
    _set_client(event, name, address, port)
    commands = dict(_ATTR_RE.findall(counters))
    if commands:
        _postfix(event)["commands"] = commands
        auth = commands.get("auth")
        if auth is not None and auth.partition("/")[0] != auth.partition("/")[2]:
            _postfix(event)["auth_failed"] = True


def _lost(text: str, event: Event) -> None:
    match = _LOST_RE.match(text)
    if match is None:
        return
    stage, name, address, port = match.groups()
    classify(event, _LOST)
    _postfix(event)["lost_after"] = stage
    _set_client(event, name, address, port)


def _sasl_failure(text: str, event: Event) -> None:
    match = _SASL_RE.match(text)
    if match is None:
        return
    name, address, port, method, reason, user = match.groups()
    classify(event, _AUTH_FAILED)
    _set_client(event, name, address, port)
    postfix = _postfix(event)
    postfix["sasl_method"] = method
    if reason:
        postfix["reason"] = reason
    set_user(event, user)


def _reject(text: str, event: Event) -> None:
    match = _REJECT_RE.match(text)
    if match is None:
        return
    stage, name, address, port, code, dsn, reason, attributes = match.groups()
    classify(event, _REJECT)
    _set_client(event, name, address, port)
    postfix = _postfix(event)
    postfix.update(stage=stage, response_code=int(code), reason=reason.strip())
    if dsn is not None:
        postfix["dsn"] = dsn
    _email_attributes(event, dict(_ATTR_RE.findall(attributes)))


def _client(text: str, event: Event) -> None:
    match = _CLIENT_LINE_RE.match(text)
    if match is None:
        return
    name, address, port, rest = match.groups()
    attributes = dict(_ATTR_RE.findall(rest))
    user = attributes.get("sasl_username")
    classify(event, _CLIENT_AUTH if user else _CLIENT)
    _set_client(event, name, address, port)
    if "sasl_method" in attributes:
        _postfix(event)["sasl_method"] = attributes["sasl_method"]
    set_user(event, user)


def _attributes(text: str, event: Event) -> None:
    """qmgr "from=<a>, size=N, nrcpt=N" and smtp/local "to=<b>, relay=..., status=sent (...)"."""
    head, _, detail = text.partition(" (")
    attributes = dict(_ATTR_RE.findall(head))
    status = attributes.get("status")
    if status is not None:
        classify(event, _STATUS.get(status, _DEFAULT_STATUS))
        postfix = _postfix(event)
        postfix["status"] = status
        if detail:
            postfix["response"] = detail.removesuffix(")")
    elif "from" in attributes:
        classify(event, _QUEUED)
    else:
        return
    _email_attributes(event, attributes)


def _email_attributes(event: Event, attributes: dict[str, str]) -> None:
    email: dict[str, Any] = {}
    sender = attributes.get("from", "").strip("<>")
    if sender:
        email["from"] = {"address": [sender]}
    recipient = attributes.get("to", "").strip("<>")
    if recipient:
        email["to"] = {"address": [recipient]}
    if email:
        event.setdefault("email", {}).update(email)
    postfix = _postfix(event)
    for key in ("relay", "dsn", "delay", "delays", "proto", "helo", "nrcpt", "size"):
        if key in attributes:
            postfix[key] = attributes[key].strip("<>")
    relay = _RELAY_RE.fullmatch(attributes.get("relay", ""))
    if relay is not None:
        name, address, port = relay.groups()
        probe: Event = {}
        set_source(probe, address, port)  # the one place that decides what an address is
        destination = dict(probe.get("source", {}))
        if name != "none":
            destination["domain"] = name
        event["destination"] = destination
