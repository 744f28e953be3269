"""The incident stage: reads `soc.alerts`, groups each alert into an incident, stores both.

An alert joins the open incident with the same key (agency + configured fields, by default rule
and host; a correlation adds its group) if that incident's last alert is within the window;
otherwise it opens a new one. The stage then:

1. writes the alerts, each carrying `incident.id` (by id: a replay is a duplicate);
2. folds the alerts that were new into their incidents (count, severity, times, entities): a
   replayed alert is a duplicate in step 1 and is not counted twice;
3. publishes each change on `soc.incidents`, for notifications.

Incidents change under analysts' hands too, so every update is a replace under the version read
just before; on a conflict the stage reads again and re-applies its fold (never the analyst's
fields, which it does not touch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from soc import metrics
from soc.bus.base import ALERTS, INCIDENTS, Bus, Delivered, Message
from soc.config import IncidentsConfig
from soc.incidents.model import OPEN, add_alerts, grouping_key, new_incident
from soc.store.base import Conflict, NotFound, Query, Scope, Store
from soc.timeutil import parse_ts, utcnow

log = logging.getLogger(__name__)

_EVERYTHING = Scope.everything()
_MAX_RETRIES = 10
#: Searches for the open incident of keys this process has not seen, at once.
_SEARCHES_AT_ONCE = 16


class IncidentStage:
    name = "incidents"

    def __init__(
        self,
        store: Store,
        config: IncidentsConfig,
        bus: Bus | None = None,
        *,
        cache_size: int = 100_000,
    ) -> None:
        self.topic = ALERTS
        self._store = store
        self._bus = bus
        self._group_by = tuple(config.group_by)
        self._window = timedelta(seconds=config.window_seconds)
        #: key -> (incident id, last seen) for incidents this process opened or found open:
        #: spares a search per alert, and covers a search index that has not refreshed yet.
        self._open: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._cache_size = cache_size

    async def handle(self, batch: list[Delivered]) -> None:
        now = utcnow()
        alerts = [dict(record.value) for record in batch]
        keyed = [(grouping_key(alert, self._group_by), alert) for alert in alerts]
        joined = await self._open_incidents(dict(reversed(keyed)))
        assigned: dict[str, str] = {}
        new_docs: dict[str, dict[str, Any]] = {}
        for key, alert in keyed:
            ident = assigned.get(key) or joined.get(key)
            if ident is None:
                doc = new_incident(key, alert, now)
                ident = doc["event"]["id"]
                new_docs[ident] = doc
            assigned[key] = ident
            self._remember(key, ident, str(alert.get("@timestamp") or ""))
            alert["incident"] = {"id": ident}
        started = time.perf_counter()
        result = await self._store.write("alerts", alerts)
        metrics.STORE_WRITE_SECONDS.labels("alerts").observe(time.perf_counter() - started)
        metrics.ALERTS_STORED.inc(result.written)
        metrics.STORE_DUPLICATES.labels("alerts").inc(result.duplicates)
        for ident_refused, reason in result.errors:
            metrics.STORE_ERRORS.labels("alerts").inc()
            metrics.DROPPED.labels(self.name, "store_refused").inc()
            log.error("store refused alert id=%s reason=%s", ident_refused, reason)
        skip = set(result.duplicate_ids) | {ident for ident, _ in result.errors}
        fresh: dict[str, list[dict[str, Any]]] = {}
        for alert in alerts:
            if alert["event"]["id"] not in skip:
                fresh.setdefault(alert["incident"]["id"], []).append(alert)
        orphans = [
            # Every alert of a new incident was already stored: a replay of a batch that
            # stopped between storing its alerts and opening their incident. Open it now (a
            # duplicate if it was opened after all), so no alert points at nothing.
            add_alerts(doc, [a for a in alerts if a["incident"]["id"] == ident], now)
            for ident, doc in new_docs.items()
            if ident not in fresh
        ]
        if orphans:
            await self._store.write("incidents", orphans)
        started = time.perf_counter()
        folded = await self._fold(fresh, new_docs)
        metrics.STORE_WRITE_SECONDS.labels("incidents").observe(time.perf_counter() - started)
        changes: list[Message] = []
        for ident, grown in fresh.items():
            change, doc = folded[ident]
            metrics.INCIDENT_ALERTS.inc(len(grown))
            changes.append(
                Message(
                    ident,
                    {
                        "change": change,
                        "incident": doc,
                        "alert": grown[-1],
                        "alerts": len(grown),
                        "actor": "system",
                        "at": doc["incident"]["updated"],
                    },
                )
            )
        if changes and self._bus is not None:
            await self._bus.publish(INCIDENTS, changes)

    async def _open_incidents(self, firsts: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """Per grouping key (with the batch's first alert of that key): the open incident it
        joins; keys that open a new incident are left out. Incidents this process remembers are
        checked in one real-time multi-get; the others are searched for, concurrently."""
        joined: dict[str, str] = {}
        remembered: dict[str, str] = {}
        for key, alert in firsts.items():
            cached = self._open.get(key)
            if cached is None:
                continue
            ident, last_seen = cached
            if self._within(last_seen, str(alert.get("@timestamp") or "")):
                remembered[key] = ident
            else:
                self._open.pop(key, None)
        if remembered:
            current = await self._store.get_many_versioned(
                "incidents", list(remembered.values()), _EVERYTHING
            )
            for key, ident in remembered.items():
                found = current.get(ident)
                if found is not None and found[0]["incident"]["status"] in OPEN:
                    joined[key] = ident
                else:
                    self._open.pop(key, None)
        unknown = [key for key in firsts if key not in joined]
        gate = asyncio.Semaphore(_SEARCHES_AT_ONCE)

        async def search(key: str) -> None:
            async with gate:
                page = await self._store.search(
                    "incidents",
                    Query(
                        scope=_EVERYTHING,
                        filters={"incident.key": [key], "incident.status": sorted(OPEN)},
                        limit=1,
                    ),
                )
            if page.items:
                doc = page.items[0]
                at = str(firsts[key].get("@timestamp") or "")
                if self._within(doc["incident"]["last_seen"], at):
                    joined[key] = str(doc["event"]["id"])

        await asyncio.gather(*(search(key) for key in unknown))
        return joined

    def _within(self, last_seen: str, at: str) -> bool:
        try:
            return parse_ts(at) - parse_ts(last_seen) <= self._window
        except ValueError:
            return True

    def _remember(self, key: str, ident: str, at: str) -> None:
        previous = self._open.pop(key, None)
        last = max(at, previous[1]) if previous and previous[0] == ident else at
        self._open[key] = (ident, last)
        while len(self._open) > self._cache_size:
            self._open.popitem(last=False)

    async def _fold(
        self, fresh: Mapping[str, list[dict[str, Any]]], created: Mapping[str, dict[str, Any]]
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        """Add each incident's new alerts to it: per incident, "created" or "grown" and the
        document. New incidents are written in one request, existing ones replaced in one
        (re-read and re-folded, only those that conflicted, until none does)."""
        now = utcnow()
        done: dict[str, tuple[str, dict[str, Any]]] = {}
        opened = {
            ident: add_alerts(created[ident], fresh[ident], now)
            for ident in fresh
            if ident in created
        }
        if opened:
            result = await self._store.write("incidents", list(opened.values()))
            if result.errors:
                ident, reason = result.errors[0]
                raise RuntimeError(f"incident {ident} refused: {reason}")
            metrics.INCIDENTS_OPENED.inc(result.written)
            replayed = set(result.duplicate_ids)
            done.update((i, ("created", doc)) for i, doc in opened.items() if i not in replayed)
        # Existing incidents, and new ones a replay had opened before: add to the stored one.
        pending = [ident for ident in fresh if ident not in done]
        for _ in range(_MAX_RETRIES):
            if not pending:
                return done
            current = await self._store.get_many_versioned("incidents", pending, _EVERYTHING)
            vanished = [ident for ident in pending if ident not in current]
            if vanished:
                raise RuntimeError(f"incident {vanished[0]} vanished while alerts were added")
            grown = [(add_alerts(current[i][0], fresh[i], now), current[i][1]) for i in pending]
            outcomes = await self._store.replace_many("incidents", grown, _EVERYTHING, wait=False)
            retry: list[str] = []
            for ident, (doc, _), outcome in zip(pending, grown, outcomes, strict=True):
                if isinstance(outcome, Conflict):
                    metrics.INCIDENT_CONFLICTS.labels("grouping").inc()
                    retry.append(ident)
                elif isinstance(outcome, NotFound):
                    raise RuntimeError(f"incident {ident} vanished while alerts were added")
                else:
                    done[ident] = ("grown", doc)
            pending = retry
        if pending:
            raise Conflict(f"incident {pending[0]}: still changing after {_MAX_RETRIES} attempts")
        return done
