"""What the dashboard and the reports read: statistics over alerts and incidents, the ATT&CK
coverage of the loaded rules, the sources and whether they went silent, the monthly report."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse, Response

from soc.api.auth import CurrentPrincipal
from soc.incidents.report import (
    MonthlyInputs,
    month_bounds,
    monthly_report,
    monthly_report_csv,
    monthly_report_markdown,
)
from soc.store.base import Query as StoreQuery
from soc.store.base import QueryError, Scope, Store
from soc.timeutil import utcnow

router = APIRouter(prefix="/api/v1", tags=["statistics"])

#: The event field that names the configured source a record came from.
SOURCE_FIELD = "labels.source_id"
#: A source with no event for this long is silent.
SILENT_AFTER = timedelta(minutes=15)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(_store)]


def _query(principal: CurrentPrincipal, start: datetime | None, end: datetime | None) -> StoreQuery:
    try:
        return StoreQuery(scope=principal.scope, start=start, end=end)
    except QueryError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def _pairs(rows: list[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"value": value, "count": count} for value, count in rows]


@router.get("/stats/summary", summary="Alerts and incidents at a glance, for the dashboard")
async def summary(
    principal: CurrentPrincipal,
    store: StoreDep,
    start: datetime | None = None,
    end: datetime | None = None,
    interval: Annotated[int, Query(ge=60, le=31 * 86400)] = 3600,
    size: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    if start is None and end is None:
        end = utcnow()
        start = end - timedelta(days=1)
    query = _query(principal, start, end)
    counted = await asyncio.gather(
        store.count_by("alerts", "rule.level", query, size),
        store.count_by("alerts", "rule.name", query, size),
        store.count_by("alerts", "organization.id", query, size),
        store.count_by("alerts", "host.name", query, size),
        store.count_by("alerts", "threat.technique.id", query, 200),
        store.count_by("incidents", "incident.status", query, 10),
    )
    by_severity, by_rule, by_agency, by_host, by_technique, incidents_by_status = counted
    over_time, alerts_page = await asyncio.gather(
        store.histogram("alerts", interval, query),
        store.search("alerts", StoreQuery(scope=principal.scope, start=start, end=end, limit=0)),
    )
    return {
        "start": start,
        "end": end,
        "interval": interval,
        "alerts_total": alerts_page.total,
        "alerts_over_time": [{"start": b.start, "count": b.count} for b in over_time],
        "by_severity": _pairs(by_severity),
        "by_rule": _pairs(by_rule),
        "by_agency": _pairs(by_agency),
        "by_host": _pairs(by_host),
        "by_technique": _pairs(by_technique),
        "incidents_by_status": _pairs(incidents_by_status),
    }


@router.get("/stats/coverage", summary="ATT&CK techniques covered by the enabled rules")
async def coverage(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    catalog = request.app.state.rules
    rules = await catalog.summaries()
    techniques: Counter[str] = Counter()
    tactics: Counter[str] = Counter()
    for rule in rules:
        if rule["enabled"]:
            techniques.update(rule["techniques"])
            tactics.update(rule["tactics"])
    return {
        "rules": sum(1 for rule in rules if rule["enabled"]),
        "techniques": dict(sorted(techniques.items())),
        "tactics": dict(sorted(tactics.items())),
    }


@router.get("/sources", summary="Sources and hosts: last seen, rate, gone silent")
async def sources(
    request: Request,
    principal: CurrentPrincipal,
    store: StoreDep,
    by: Literal["source", "host"] = "source",
    size: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    now = utcnow()
    field = SOURCE_FIELD if by == "source" else "host.name"
    day = StoreQuery(scope=principal.scope, start=now - timedelta(days=1))
    hour = StoreQuery(scope=principal.scope, start=now - timedelta(hours=1))
    seen, recent = await asyncio.gather(
        store.latest_by("events", field, day, size), store.count_by("events", field, hour, size)
    )
    hourly = dict(recent)
    configured = {source.id: source for source in request.app.state.sources}
    rows: dict[str, dict[str, Any]] = {}
    for value, _count, latest in seen:
        rows[value] = {
            "id": value,
            "agency": configured[value].agency if value in configured else None,
            "last_seen": latest,
            "events_last_hour": hourly.get(value, 0),
            "rate_per_second": round(hourly.get(value, 0) / 3600, 3),
            "silent": now - latest > SILENT_AFTER,
        }
    if by == "source":
        for ident, source in configured.items():
            if ident not in rows and principal.scope.allows(source.agency):
                rows[ident] = {
                    "id": ident,
                    "agency": source.agency,
                    "last_seen": None,
                    "events_last_hour": 0,
                    "rate_per_second": 0.0,
                    "silent": True,
                }
    return list(rows.values())


@router.get(
    "/reports/monthly",
    summary="The monthly report, for one agency or the whole province",
    responses={200: {"content": {"application/json": {}, "text/markdown": {}, "text/csv": {}}}},
)
async def monthly(
    request: Request,
    principal: CurrentPrincipal,
    store: StoreDep,
    month: Annotated[
        str, Query(pattern=r"^(19[7-9]\d|[2-9]\d{3})-(0[1-9]|1[0-2])$", description="YYYY-MM")
    ],
    agency: str | None = None,
    format: Literal["json", "markdown", "csv"] = "json",
    language: Literal["vi", "en"] = "vi",
) -> Any:
    scope = principal.scope
    if agency is not None:
        if not scope.allows(agency):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agency {agency!r}")
        scope = Scope(frozenset({agency}))
    elif scope.agencies is not None and len(scope.agencies) == 1:
        agency = next(iter(scope.agencies))
    timezone = request.app.state.timezone
    try:
        start, end = month_bounds(month, timezone)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    query = StoreQuery(scope=scope, start=start, end=end)
    incidents_query = StoreQuery(scope=scope, start=start, limit=10_000)
    events_page, alerts_page, incidents = await asyncio.gather(
        store.search("events", StoreQuery(scope=scope, start=start, end=end, limit=0)),
        store.search("alerts", StoreQuery(scope=scope, start=start, end=end, limit=0)),
        store.search("incidents", incidents_query),
    )
    counted = await asyncio.gather(
        store.count_by("alerts", "rule.level", query, 10),
        store.count_by("alerts", "rule.name", query, 50),
        store.count_by("alerts", "host.name", query, 50),
        store.count_by("alerts", "organization.id", query, 500),
        store.count_by("alerts", "threat.technique.id", query, 200),
        store.count_by("events", "organization.id", query, 500),
        store.count_by("events", SOURCE_FIELD, query, 1000),
    )
    (
        by_level,
        by_rule,
        by_host,
        by_agency,
        by_technique,
        events_by_agency,
        events_by_source,
    ) = counted
    accounts = getattr(request.app.state, "accounts", None)
    names = {a["id"]: a["name"] for a in accounts.agencies()} if accounts is not None else {}
    report = monthly_report(
        MonthlyInputs(
            month=month,
            events_total=events_page.total,
            alerts_total=alerts_page.total,
            incidents=incidents.items,
            alerts_by_level=by_level,
            alerts_by_rule=by_rule,
            alerts_by_host=by_host,
            alerts_by_agency=by_agency,
            alerts_by_technique=by_technique,
            events_by_agency=events_by_agency,
            events_by_source=events_by_source,
            sources={s.id: s.agency for s in request.app.state.sources if scope.allows(s.agency)},
            agency=agency,
            agency_names=names,
            province=request.app.state.producer_name,
            timezone=timezone,
        ),
        generated_at=utcnow(),
    )
    if format == "markdown":
        return PlainTextResponse(
            monthly_report_markdown(report, language), media_type="text/markdown; charset=utf-8"
        )
    if format == "csv":
        return Response(
            monthly_report_csv(report, language).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="report-{month}.csv"'},
        )
    return report
