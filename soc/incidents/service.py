"""What analysts do to incidents: change status, assign, tag, comment, reopen. Each change is a
replace under the version the analyst saw (a stale version is a Conflict, answered 409), is
written to the audit log with who, when, what and from where, and is announced on
`soc.incidents` for notifications."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from soc.bus.base import INCIDENTS, Bus, Message
from soc.incidents import model
from soc.incidents.audit import record
from soc.store.base import Conflict, NotFound, Scope, Store
from soc.timeutil import utcnow

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    scope: Scope
    source_ip: str | None = None


class IncidentService:
    def __init__(self, store: Store, bus: Bus | None = None) -> None:
        self._store = store
        self._bus = bus

    async def get(self, ident: str, scope: Scope) -> tuple[dict[str, Any], str]:
        found = await self._store.get_versioned("incidents", ident, scope)
        if found is None:
            raise NotFound(ident)
        return found

    async def update(
        self,
        ident: str,
        actor: Actor,
        version: str,
        *,
        status: str | None = None,
        assignee: Any = _UNSET,
        tags: Sequence[str] | None = None,
        reopen: bool = False,
    ) -> tuple[dict[str, Any], str]:
        doc, current = await self.get(ident, actor.scope)
        if version != current:
            raise Conflict(
                f"incident {ident} changed since you read it (version {version}, now {current})"
            )
        now = utcnow()
        before = doc["incident"]
        changed = doc
        changes: dict[str, Any] = {}
        kinds: list[str] = []
        if reopen:
            changed = model.reopen(changed, now)
            changes["status"] = [before.get("status"), "investigating"]
            kinds.append("reopened")
        if status is not None:
            changed = model.change_status(changed, status, now)
            changes["status"] = [before.get("status"), status]
            kinds.append("status")
        if assignee is not _UNSET and assignee != before.get("assignee"):
            changed = model.set_assignee(changed, assignee, now)
            changes["assignee"] = [before.get("assignee"), assignee or None]
            kinds.append("assigned")
        if tags is not None and list(tags) != before.get("tags"):
            changed = model.set_tags(changed, tags, now)
            changes["tags"] = [before.get("tags"), changed["incident"]["tags"]]
            kinds.append("tagged")
        if not changes:
            raise model.TransitionError("nothing to change")
        new_version = await self._store.replace("incidents", changed, current, actor.scope)
        await self._after(changed, actor, "incident." + kinds[0], changes, kinds[0])
        return changed, new_version

    async def comment(
        self, ident: str, actor: Actor, text: str, version: str | None = None
    ) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """Comments only add, so without a version a concurrent change is simply re-read and
        the comment added to the newer document; with one, a stale version is a conflict."""
        for _ in range(10):
            doc, current = await self.get(ident, actor.scope)
            if version is not None and version != current:
                raise Conflict(f"incident {ident} changed since you read it")
            changed, comment = model.add_comment(doc, actor.name, text, utcnow())
            try:
                new_version = await self._store.replace("incidents", changed, current, actor.scope)
            except Conflict:
                if version is not None:
                    raise
                continue
            await self._after(
                changed, actor, "incident.comment", {"comment": comment["text"]}, "commented"
            )
            return changed, new_version, comment
        raise Conflict(f"incident {ident} kept changing; try again")

    async def _after(
        self,
        doc: dict[str, Any],
        actor: Actor,
        action: str,
        changes: dict[str, Any],
        change: str,
    ) -> None:
        await record(
            self._store,
            actor=actor.name,
            action=action,
            object_type="incident",
            object_id=doc["incident"]["id"],
            agency=model.agency_of(doc),
            changes=changes,
            source_ip=actor.source_ip,
        )
        if self._bus is not None:
            await self._bus.publish(
                INCIDENTS,
                [
                    Message(
                        doc["incident"]["id"],
                        {
                            "change": change,
                            "incident": doc,
                            "alert": None,
                            "actor": actor.name,
                            "at": doc["incident"]["updated"],
                        },
                    )
                ],
            )
