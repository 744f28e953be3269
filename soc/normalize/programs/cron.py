"""cron/crond/CRON and crontab messages -> ECS (module ``system``).

"(user) CMD (command)" is a job run: ``process.command_line`` is the job, as with sudo, and
``user.name`` the crontab's owner. "(user) REPLACE (user)" and its kin are crontab edits, which
persistence rules look for. ``process.name`` stays the logging program's own (CRON, crontab).
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
    set_user,
)

__all__ = ["parse"]

_JOB: Final = Classification("cron_job", ("process",), ("start",), "success")
_EDIT: Final = Classification("crontab_change", ("configuration",), ("change",), "success")
_VIEW: Final = Classification("crontab_view", ("configuration",), ("access",), "success")
_RELOAD: Final = Classification("cron_reload", ("configuration",), ("change",), "success")
_PAM: Final = PamActions.for_program("cron")
_EDITS: Final = {
    "REPLACE": _EDIT,
    "DELETE": _EDIT,
    "BEGIN EDIT": _VIEW,
    "END EDIT": _EDIT,
    "LIST": _VIEW,
    "RELOAD": _RELOAD,
}
_LINE_RE: Final = re.compile(r"\(([^()\s]+)\) ([A-Z][A-Z ]*?) \((.*)\)\Z", re.DOTALL)


def parse(message: str, event: Event) -> None:
    """Add ECS and ``system.cron`` fields for a job run, a crontab edit or a PAM session."""
    if message.startswith("pam_unix("):
        parse_pam(message, event, _PAM)
        return
    match = _LINE_RE.match(message)
    if match is None:
        return
    user, verb, detail = match.groups()
    classification = _JOB if verb == "CMD" else _EDITS.get(verb)
    if classification is None:
        return
    classify(event, classification)
    cron = branch(event, "system", "cron")
    cron["action"] = verb
    if verb == "CMD":
        branch(event, "process")["command_line"] = detail
        cron["command"] = detail
    else:
        cron["target"] = detail
    if not user.startswith("*"):  # "(*system*)" is cron itself
        set_user(event, user)
