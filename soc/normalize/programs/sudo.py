"""sudo messages -> ECS process/authentication fields (Filebeat ``system.auth.sudo``).

sudo logs "user : [error ; ]KEY=value ; ... ; COMMAND=command" without escaping anything, so the
command (always last) is everything after the first " ; COMMAND=": a command line that itself
contains " ; " stays whole, and is never cut to hide part of what was run.
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
    set_effective_user,
    set_user,
)

__all__ = ["parse"]

_COMMAND: Final = Classification("sudo_command", ("process",), ("start",), "success")
_AUTH_FAILURE: Final = Classification(
    "sudo_auth_failure", ("authentication",), ("info",), "failure"
)
_NOT_IN_SUDOERS: Final = Classification(
    "sudo_not_in_sudoers", ("authentication",), ("info",), "failure"
)
_NOT_ALLOWED: Final = Classification(
    "sudo_command_not_allowed", ("authentication",), ("info",), "failure"
)
_ERROR: Final = Classification("sudo_error", ("authentication",), ("info",), "failure")
# Checked in order against the error text; the first fragment found decides.
_ERRORS: Final = (
    ("incorrect password attempt", _AUTH_FAILURE),
    ("password is required", _AUTH_FAILURE),
    ("NOT in sudoers", _NOT_IN_SUDOERS),
    ("not allowed", _NOT_ALLOWED),
)
_PAM: Final = PamActions.for_program("sudo")

_USER_RE: Final = re.compile(r"(\S[^:]*?) : (.*)\Z", re.DOTALL)
_ITEM_RE: Final = re.compile(r"([A-Z][A-Z_]*)=(.*)\Z", re.DOTALL)
_ITEM_SEPARATOR: Final = " ; "
_COMMAND_SEPARATOR: Final = " ; COMMAND="


def parse(message: str, event: Event) -> None:
    """Add ECS and ``system.auth.sudo`` fields for a command or PAM line; leave others alone."""
    stripped = message.lstrip()
    if stripped.startswith("pam_unix("):
        parse_pam(stripped, event, _PAM)
        return
    match = _USER_RE.match(stripped)
    if match is None:
        return
    user, rest = match.groups()
    fields, error = _split(rest)
    if not fields:
        return
    sudo = branch(event, "system", "auth", "sudo")
    sudo.update(fields)
    set_user(event, user)
    set_effective_user(event, fields.get("user"))
    if "group" in fields:
        branch(event, "user", "effective", "group")["name"] = fields["group"]
    _set_process(event, fields.get("pwd"), fields.get("command"))
    if error is not None:
        sudo["error"] = error
    classify(event, _COMMAND if error is None else _classify_error(error))


def _split(rest: str) -> tuple[dict[str, str], str | None]:
    """Split "[error ; ]KEY=value ; ... [; COMMAND=cmd]" into lowercased fields and the error."""
    # The added leading separator lets one partition find a COMMAND= that starts the text too.
    head, separator, command = f"{_ITEM_SEPARATOR}{rest}".partition(_COMMAND_SEPARATOR)
    fields: dict[str, str] = {}
    errors: list[str] = []
    for item in head[len(_ITEM_SEPARATOR) :].split(_ITEM_SEPARATOR) if head else ():
        pair = _ITEM_RE.match(item)
        if pair is None:
            errors.append(item)
        else:
            fields[pair.group(1).lower()] = pair.group(2)
    if separator:
        fields["command"] = command
    return fields, _ITEM_SEPARATOR.join(errors) or None


def _set_process(event: Event, directory: str | None, command: str | None) -> None:
    """process.command_line is the command sudo ran or refused to run, since that is what
    rules look at; process.name and process.pid stay sudo's own, from the syslog header."""
    process = branch(event, "process")
    if command is not None:
        process["command_line"] = command
    if directory is not None:
        process["working_directory"] = directory


def _classify_error(error: str) -> Classification:
    for fragment, classification in _ERRORS:
        if fragment in error:
            return classification
    return _ERROR
