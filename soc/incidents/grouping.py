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
from soc.store.base import Conflict, Query, Scope, Store
from soc.timeutil import parse_ts, utcnow

log = logging.getLogger(__name__)

_EVERYTHING = Scope.everything()
_MAX_RETRIES = 10


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
        assigned: dict[str, tuple[str, dict[str, Any] | None]] = {}
        new_docs: dict[str, dict[str, Any]] = {}
        for alert in alerts:
            key = grouping_key(alert, self._group_by)
            found = assigned.get(key)
            ident = found[0] if found else await self._open_incident(key, alert)
            if ident is None:
                doc = new_incident(key, alert, now)
                ident = doc["event"]["id"]
                new_docs[ident] = doc
            assigned[key] = (ident, None)
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
        for ident, doc in new_docs.items():
            if ident not in fresh:
                # Every alert of a new incident was already stored: a replay of a batch that
                # stopped between storing its alerts and opening their incident. Open it now
                # (a duplicate if it was opened after all), so no alert points at nothing.
                mine = [a for a in alerts if a["incident"]["id"] == ident]
                await self._store.write("incidents", [add_alerts(doc, mine, now)])
        changes: list[Message] = []
        for ident, grown in fresh.items():
            change, doc = await self._fold(ident, new_docs.get(ident), grown)
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

    async def _open_incident(self, key: str, alert: Mapping[str, Any]) -> str | None:
        """The open incident this alert joins, or None for a new one."""
        at = str(alert.get("@timestamp") or "")
        cached = self._open.get(key)
        if cached is not None:
            ident, last_seen = cached
            if self._within(last_seen, at):
                current = await self._store.get_versioned("incidents", ident, _EVERYTHING)
                if current is not None and current[0]["incident"]["status"] in OPEN:
                    return ident
            self._open.pop(key, None)
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
            if self._within(doc["incident"]["last_seen"], at):
                return str(doc["event"]["id"])
        return None

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
        self, ident: str, created: dict[str, Any] | None, alerts: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        """Add the alerts to their incident; "created" or "grown"."""
        now = utcnow()
        if created is not None:
            doc = add_alerts(created, alerts, now)
            result = await self._store.write("incidents", [doc])
            if result.written == 1:
                metrics.INCIDENTS_OPENED.inc()
                return "created", doc
            if result.errors:
                raise RuntimeError(f"incident {ident} refused: {result.errors[0][1]}")
            # A replay opened it before: fall through and add to the stored one.
        for _ in range(_MAX_RETRIES):
            current = await self._store.get_versioned("incidents", ident, _EVERYTHING)
            if current is None:
                raise RuntimeError(f"incident {ident} vanished while alerts were added")
            doc = add_alerts(current[0], alerts, now)
            try:
                await self._store.replace("incidents", doc, current[1], _EVERYTHING, wait=False)
            except Conflict:
                metrics.INCIDENT_CONFLICTS.labels("grouping").inc()
                continue
            return "grown", doc
        raise Conflict(f"incident {ident}: still changing after {_MAX_RETRIES} attempts")
