"""Retention: delete what is older than its configured period, never less than the legal minimum.

Periods are checked when the configuration loads (`soc.config`, `retention.*`), so a platform
that would delete too early never starts. The task here runs beside the stages: one pass at start,
then one every `retention.interval_seconds`. A failed pass is logged and counted and the next one
tries again; retention never stops the pipeline.

The cut-off is a whole day: a period of N days keeps at least the last N full days (UTC). The
SQLite store deletes rows in batches; Elasticsearch drops dated indices whose whole period is
older, which keeps a little more (up to a month for alerts) and costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from soc import metrics
from soc.config import RetentionConfig
from soc.store.base import KINDS, Kind, Store
from soc.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Purge:
    kind: Kind
    before: date
    #: Documents deleted (row stores) or dated indices deleted (index stores).
    deleted: int
    indices: tuple[str, ...] = ()


def periods(config: RetentionConfig) -> dict[Kind, int]:
    """Days to keep per kind the store holds; 0 (keep for ever) leaves the kind out. The audit
    trail of incidents lives as long as the incidents."""
    wanted: dict[str, int] = {
        "events": config.events_days,
        "alerts": config.alerts_days,
        "incidents": config.incidents_days,
        "audit": config.incidents_days,
    }
    return {kind: wanted[kind] for kind in KINDS if wanted.get(kind, 0) > 0}


def cutoff(days: int, now: datetime) -> date:
    """The first day kept: everything filed before it may go."""
    return now.date() - timedelta(days=days)


async def purge_once(
    store: Store, config: RetentionConfig, now: datetime | None = None
) -> list[Purge]:
    """One pass over every kind. A kind that fails is counted and the others still run; the
    first failure is raised at the end so the caller knows the pass was incomplete."""
    moment = now or utcnow()
    done: list[Purge] = []
    failure: Exception | None = None
    for kind, days in periods(config).items():
        before = cutoff(days, moment)
        try:
            result = await store.delete_before(kind, before)
        except Exception as exc:
            metrics.RETENTION_ERRORS.labels(kind).inc()
            log.error("retention failed kind=%s before=%s error=%r", kind, before, exc)
            failure = failure or exc
            continue
        if isinstance(result, int):
            purge = Purge(kind, before, result)
            metrics.RETENTION_DELETED.labels(kind, "documents").inc(result)
        else:
            purge = Purge(kind, before, len(result), tuple(result))
            metrics.RETENTION_DELETED.labels(kind, "indices").inc(len(result))
        if purge.deleted:
            log.info(
                "retention deleted kind=%s before=%s count=%d indices=%s",
                kind, before, purge.deleted, ",".join(purge.indices) or "-",
            )  # fmt: skip
        done.append(purge)
    if failure is not None:
        raise failure
    metrics.RETENTION_LAST_SUCCESS.set(time.time())
    return done


async def run_retention(store: Store, config: RetentionConfig, stop: asyncio.Event) -> None:
    """Purge now, then every interval, until `stop` is set."""
    while not stop.is_set():
        try:
            await purge_once(store, config)
        except Exception:
            log.warning("retention pass incomplete; next try in %ds", config.interval_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), config.interval_seconds)
