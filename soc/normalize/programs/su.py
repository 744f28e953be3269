"""su messages -> ECS authentication/session fields (module ``system``, dataset ``system.auth``).

Whoever ran su is ``user.name`` and the account they switched to ``user.effective.name``, the
same split as sudo, so that one rule on "who became root" reads both programs alike.
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

_SWITCHED: Final = Classification(
    "su_switch_user", ("authentication", "session"), ("start",), "success"
)
_FAILED: Final = Classification("su_switch_user", ("authentication",), ("start",), "failure")
_PAM: Final = PamActions.for_program("su")

# util-linux/shadow wordings: "Successful su for root by bob", "FAILED su for root by bob",
# "(to root) bob on pts/0", "FAILED SU (to root) bob on pts/0", "+ pts/0 bob:root" ("-": failed).
_FOR_BY_RE: Final = re.compile(r"(Successful|FAILED) su for (\S+) by (\S+)\Z")
_TO_RE: Final = re.compile(r"(FAILED SU )?\(to (\S+)\) (\S+) on (\S+)\Z")
_SIGN_RE: Final = re.compile(r"([+-]) (\S+) (\S+?):(\S+)\Z")
_PAM_ACTOR_RE: Final = re.compile(r"\bruser=(\S+)|\blogname=(\S+)")


def parse(message: str, event: Event) -> None:
    """Add ECS and ``system.auth.su`` fields for a known su line; leave others alone."""
    if message.startswith("pam_unix("):
        if parse_pam(message, event, _PAM):
            _pam_roles(message, event)
        return
    match = _FOR_BY_RE.match(message)
    if match is not None:
        result, target, actor = match.groups()
        _switch(event, result == "Successful", actor, target, None)
        return
    match = _TO_RE.match(message)
    if match is not None:
        failed, target, actor, tty = match.groups()
        _switch(event, failed is None, actor, target, tty)
        return
    match = _SIGN_RE.match(message)
    if match is not None:
        sign, tty, actor, target = match.groups()
        _switch(event, sign == "+", actor, target, tty)


def _switch(event: Event, success: bool, actor: str, target: str, tty: str | None) -> None:
    classify(event, _SWITCHED if success else _FAILED)
    set_user(event, actor)
    set_effective_user(event, target)
    su = branch(event, "system", "auth", "su")
    su["target"] = target
    if tty is not None:
        su["tty"] = tty


def _pam_roles(message: str, event: Event) -> None:
    """pam_unix's "user=" is the account asked for; with su the one asking is ruser/logname."""
    if event["event"].get("action") != _PAM.auth_failure.action:
        return
    actor = next((a or b for a, b in _PAM_ACTOR_RE.findall(message) if a or b), None)
    target = event.get("user", {}).get("name")
    if actor is not None and target is not None and actor != target:
        set_user(event, actor)
        set_effective_user(event, target)
