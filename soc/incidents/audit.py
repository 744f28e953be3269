"""The audit log: who changed what, when and from where. Entries are documents of kind `audit`,
written once and never replaced (the store refuses to), scoped to the agency of what changed, so
an agency's administrator reads the trail of their own incidents and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from soc.store.base import Store
from soc.timeutil import format_ts, utcnow


def audit_entry(
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    agency: str | None = None,
    changes: Mapping[str, Any] | None = None,
    source_ip: str | None = None,
    outcome: str = "success",
    now: datetime | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "@timestamp": format_ts(now or utcnow()),
        "event": {
            "id": uuid.uuid4().hex,
            "kind": "event",
            "category": ["configuration"],
            "action": action,
            "outcome": outcome,
            "dataset": "soc.audit",
        },
        "user": {"name": actor},
        "audit": {"object": {"type": object_type, "id": object_id}, "changes": dict(changes or {})},
    }
    if agency:
        entry["organization"] = {"id": agency}
    if source_ip:
        entry["source"] = {"ip": source_ip}
    return entry


async def record(store: Store, **fields: Any) -> dict[str, Any]:
    entry = audit_entry(**fields)
    result = await store.write("audit", [entry])
    if result.errors:
        raise RuntimeError(f"audit entry refused: {result.errors[0][1]}")
    return entry
