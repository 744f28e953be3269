"""The incident stage: reads `soc.alerts`, groups each alert into an incident, stores both.

An alert joins the open incident with the same key (agency + configured fields, by default rule
and host; a correlation adds its group) if that incident's last alert is within the window;
otherwise it opens a new one. The stage then:

1. writes the alerts, each carrying `incident.id` and where it was read from (by id: a replay
   is a duplicate);
2. folds the alerts into their incidents (count, severity, times, entities): every alert new
   in step 1, and of those already stored, the ones their incident has not counted yet. An
   incident notes the last offset of `soc.alerts` it counted on each partition, and one key's
   alerts come in order on one partition: a stored alert read from further on is one whose
   batch stopped between steps 1 and 2 (counted now, once); one from before it, or published
   again upstream, was counted (not counted twice);
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
from datetime import datetime, timedelta
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
#: Open incidents of a batch's unseen keys read by one search, at most, before the keys it
#: leaves out are searched one by one.
_SEARCH_PAGE = 1000


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
        joined, read = await self._open_incidents(dict(reversed(keyed)))
        assigned: dict[str, str] = {}
        new_docs: dict[str, dict[str, Any]] = {}
        for (key, alert), record in zip(keyed, batch, strict=True):
            ident = assigned.get(key) or joined.get(key)
            if ident is None:
                doc = new_incident(key, alert, now)
                ident = doc["event"]["id"]
                new_docs[ident] = doc
            assigned[key] = ident
            self._remember(key, ident, str(alert.get("@timestamp") or ""))
            # Where the alert was read from: what tells, when it comes again, whether its
            # incident has counted it (see `_countable`).
            alert["incident"] = {
                "id": ident,
                "partition": record.partition,
                "offset": record.offset,
            }
        started = time.perf_counter()
        result = await self._store.write("alerts", alerts)
        metrics.STORE_WRITE_SECONDS.labels("alerts").observe(time.perf_counter() - started)
        metrics.ALERTS_STORED.inc(result.written)
        metrics.STORE_DUPLICATES.labels("alerts").inc(result.duplicates)
        for ident_refused, reason in result.errors:
            metrics.STORE_ERRORS.labels("alerts").inc()
            metrics.DROPPED.labels(self.name, "store_refused").inc()
            log.error("store refused alert id=%s reason=%s", ident_refused, reason)
        refused = {ident for ident, _ in result.errors}
        duplicates = set(result.duplicate_ids)
        fresh: dict[str, list[dict[str, Any]]] = {}
        for alert in alerts:
            ident = alert["event"]["id"]
            if ident not in duplicates and ident not in refused:
                fresh.setdefault(alert["incident"]["id"], []).append(alert)
        # An alert already stored was either counted by its incident (a batch replayed after
        # it was folded; the same alert published again upstream) or not (its batch stopped
        # between storing it and folding it). Its stored copy says which incident it joined
        # and from where it was read; that incident says up to where it has counted.
        repeated = [alert for alert in alerts if alert["event"]["id"] in duplicates]
        stored = await self._store.get_written("alerts", repeated) if repeated else {}
        again: dict[str, list[dict[str, Any]]] = {}
        for copy in stored.values():
            inside = copy.get("incident")
            if isinstance(inside, Mapping) and isinstance(inside.get("id"), str):
                again.setdefault(inside["id"], []).append(copy)
        started = time.perf_counter()
        folded = await self._fold(fresh, again, new_docs, read)
        metrics.STORE_WRITE_SECONDS.labels("incidents").observe(time.perf_counter() - started)
        changes: list[Message] = []
        for ident, (change, doc, grown) in folded.items():
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

    async def _open_incidents(
        self, firsts: Mapping[str, Mapping[str, Any]]
    ) -> tuple[dict[str, str], dict[str, tuple[dict[str, Any], str]]]:
        """Per grouping key (with the batch's first alert of that key): the open incident it
        joins; keys that open a new incident are left out. Incidents this process remembers are
        checked in one real-time multi-get, which also gives their versions for the fold; the
        others are searched for, all in one search (one by one those it leaves out)."""
        joined: dict[str, str] = {}
        remembered: dict[str, str] = {}
        current: dict[str, tuple[dict[str, Any], str]] = {}
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
        if not unknown:
            return joined, current

        def join(key: str, doc: Mapping[str, Any]) -> None:
            # The newest open incident of the key (searches sort by time, newest first).
            at = str(firsts[key].get("@timestamp") or "")
            if self._within(doc["incident"]["last_seen"], at):
                joined[key] = str(doc["event"]["id"])

        def query(keys: list[str], limit: int) -> Query:
            filters = {"incident.key": keys, "incident.status": sorted(OPEN)}
            return Query(scope=_EVERYTHING, filters=filters, limit=limit)

        # One search for every unseen key rather than one each: 750 searches for 100,000
        # events became one a batch.
        page = await self._store.search("incidents", query(unknown, _SEARCH_PAGE))
        seen: set[str] = set()
        for item in page.items:
            key = item.get("incident", {}).get("key")
            if isinstance(key, str) and key in firsts and key not in seen:
                seen.add(key)
                join(key, item)
        # A full page may have left keys out (many open incidents of a few keys).
        left = [key for key in unknown if key not in seen] if page.total > len(page.items) else []
        gate = asyncio.Semaphore(_SEARCHES_AT_ONCE)

        async def search(key: str) -> None:
            async with gate:
                one = await self._store.search("incidents", query([key], 1))
            if one.items:
                join(key, one.items[0])

        await asyncio.gather(*(search(key) for key in left))
        return joined, current

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
        self,
        fresh: Mapping[str, list[dict[str, Any]]],
        again: Mapping[str, list[dict[str, Any]]],
        created: Mapping[str, dict[str, Any]],
        read: Mapping[str, tuple[dict[str, Any], str]],
    ) -> dict[str, tuple[str, dict[str, Any], list[dict[str, Any]]]]:
        """Add each incident's new alerts to it (`fresh`: stored by this batch; `again`: stored
        before, counted only if the incident has not counted them): per incident that grew,
        "created" or "grown", the document and the alerts added. New incidents are written in
        one request, existing ones replaced in one (re-read and re-folded, only those that
        conflicted, until none does). `read`: incidents with their versions as read for this
        batch already; the first attempt replaces them under those versions without reading
        them again (a conflict reads them again, as for any other)."""
        now = utcnow()
        done: dict[str, tuple[str, dict[str, Any], list[dict[str, Any]]]] = {}
        # An incident opened now has counted nothing yet: every alert that names it counts.
        opened = {
            ident: [*fresh.get(ident, ()), *again.get(ident, ())]
            for ident in created
            if ident in fresh or ident in again
        }
        if opened:
            docs = {ident: _counted(created[ident], grown, now) for ident, grown in opened.items()}
            result = await self._store.write("incidents", list(docs.values()))
            if result.errors:
                ident, reason = result.errors[0]
                raise RuntimeError(f"incident {ident} refused: {reason}")
            metrics.INCIDENTS_OPENED.inc(result.written)
            replayed = set(result.duplicate_ids)
            done.update(
                (i, ("created", doc, opened[i])) for i, doc in docs.items() if i not in replayed
            )
        # Existing incidents, and new ones a replay had opened before: add to the stored one.
        pending = [ident for ident in {**fresh, **again} if ident not in done]
        current = {ident: read[ident] for ident in pending if ident in read}
        for _ in range(_MAX_RETRIES):
            if not pending:
                return done
            if unread := [ident for ident in pending if ident not in current]:
                current.update(
                    await self._store.get_many_versioned("incidents", unread, _EVERYTHING)
                )
            if vanished := [ident for ident in pending if ident not in current and ident in fresh]:
                raise RuntimeError(f"incident {vanished[0]} vanished while alerts were added")
            # Alerts stored before whose incident is gone (deleted since) have nothing to join.
            pending = [ident for ident in pending if ident in current]
            grown: dict[str, list[dict[str, Any]]] = {}
            for ident in pending:
                incident = current[ident][0]
                grown[ident] = [
                    *fresh.get(ident, ()),
                    *(a for a in again.get(ident, ()) if _countable(incident, a)),
                ]
            pending = [ident for ident in pending if grown[ident]]
            items = [(_counted(current[i][0], grown[i], now), current[i][1]) for i in pending]
            outcomes = await self._store.replace_many("incidents", items, _EVERYTHING, wait=False)
            retry: list[str] = []
            for ident, (doc, _), outcome in zip(pending, items, outcomes, strict=True):
                if isinstance(outcome, Conflict):
                    metrics.INCIDENT_CONFLICTS.labels("grouping").inc()
                    retry.append(ident)
                elif isinstance(outcome, NotFound):
                    raise RuntimeError(f"incident {ident} vanished while alerts were added")
                else:
                    done[ident] = ("grown", doc, grown[ident])
            pending = retry
            current = {}  # after a conflict, everything is read again
        if pending:
            raise Conflict(f"incident {pending[0]}: still changing after {_MAX_RETRIES} attempts")
        return done


def _position(alert: Mapping[str, Any]) -> tuple[str, int] | None:
    """Where an alert was read from (the partition of `soc.alerts` and its offset there), as the
    incident stage noted it in the alert."""
    inside = alert.get("incident")
    if not isinstance(inside, Mapping):
        return None
    partition, offset = inside.get("partition"), inside.get("offset")
    if isinstance(partition, int) and isinstance(offset, int):
        return str(partition), offset
    return None


def _countable(incident: Mapping[str, Any], alert: Mapping[str, Any]) -> bool:
    """Whether an alert stored before has yet to be counted by its incident. One grouping key's
    alerts come in order on one partition, and an incident notes the last offset it counted on
    each: an alert read from further on was stored, then its batch stopped before its incident
    counted it. A copy stored without a position (by an earlier version) counts as counted."""
    position = _position(alert)
    if position is None:
        return False
    partition, offset = position
    upto = incident["incident"].get("counted_upto") or {}
    last = upto.get(partition) if isinstance(upto, Mapping) else None
    return not isinstance(last, int) or offset > last


def _counted(
    incident: Mapping[str, Any], alerts: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """`add_alerts`, and the last offset counted per partition noted in the incident."""
    doc = add_alerts(incident, alerts, now)
    body = doc["incident"]
    upto = body.get("counted_upto")
    marks: dict[str, int] = dict(upto) if isinstance(upto, Mapping) else {}
    for alert in alerts:
        position = _position(alert)
        if position is not None:
            partition, offset = position
            marks[partition] = max(offset, marks.get(partition, -1))
    body["counted_upto"] = marks
    return doc
