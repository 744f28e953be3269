"""The incident routes: the queue, an incident with its timeline, the analyst's actions, the
audit trail and the exports. Every store call takes the caller's scope: an incident of another
agency is simply not found (404), so its existence is not disclosed either."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from soc.api.auth import Analyst, CurrentPrincipal
from soc.api.session import client_ip
from soc.incidents.export import incident_csv, incident_stix
from soc.incidents.model import STATUSES, TransitionError
from soc.incidents.service import Actor, IncidentService
from soc.store.base import Conflict, NotFound, QueryError, Store
from soc.store.base import Query as StoreQuery
from soc.timeutil import utcnow

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

MAX_PAGE = 1000
#: Sort keys the queue offers (names of incident fields), mapped to stored fields.
SORTS = {
    "last_seen": "@timestamp",
    "@timestamp": "@timestamp",
    "first_seen": "incident.first_seen",
    "severity": "event.severity",
    "alert_count": "incident.alert_count",
    "status": "incident.status",
    "updated": "incident.updated",
}
TIMELINE_LIMIT = 500

StatusName = Literal["new", "acknowledged", "investigating", "resolved", "false_positive"]


class IncidentPage(BaseModel):
    items: list[dict[str, Any]]
    total: int


class IncidentPatch(BaseModel):
    """Changes to an incident, made against the version the analyst saw."""

    version: str = Field(min_length=1, max_length=64, description="incident.version as read")
    status: StatusName | None = None
    assignee: str | None = Field(default=None, max_length=64)
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=50
    )
    reopen: bool = False


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)
    version: str | None = Field(default=None, max_length=64)


def _service(request: Request) -> IncidentService:
    service: IncidentService = request.app.state.incidents
    return service


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


Service = Annotated[IncidentService, Depends(_service)]
StoreDep = Annotated[Store, Depends(_store)]


def _with_version(doc: dict[str, Any], version: str) -> dict[str, Any]:
    return {**doc, "incident": {**doc["incident"], "version": version}}


@router.get("", response_model=IncidentPage, summary="The incident queue")
async def list_incidents(
    principal: CurrentPrincipal,
    store: StoreDep,
    status_: Annotated[list[StatusName], Query(alias="status")] = [],  # noqa: B006
    severity: Annotated[
        list[Literal["informational", "low", "medium", "high", "critical"]], Query()
    ] = [],  # noqa: B006
    agency: Annotated[list[str], Query()] = [],  # noqa: B006
    rule: Annotated[list[str], Query(description="rule id")] = [],  # noqa: B006
    assignee: Annotated[list[str], Query()] = [],  # noqa: B006
    tag: Annotated[list[str], Query()] = [],  # noqa: B006
    start: Annotated[datetime | None, Query(description="last alert at or after")] = None,
    end: Annotated[datetime | None, Query(description="last alert before")] = None,
    q: Annotated[str | None, Query(max_length=500, description="free text")] = None,
    sort: Annotated[Literal[tuple(SORTS)], Query()] = "last_seen",  # type: ignore[valid-type]
    order: Literal["asc", "desc"] = "desc",
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=0, le=MAX_PAGE)] = 50,
) -> IncidentPage:
    filters: dict[str, list[str]] = {}
    for name, values in (
        ("incident.status", status_),
        ("incident.severity", severity),
        ("organization.id", agency),
        ("incident.rule.id", rule),
        ("incident.assignee", assignee),
        ("incident.tags", tag),
    ):
        if values:
            filters[name] = list(values)
    try:
        query = StoreQuery(
            scope=principal.scope,
            start=start,
            end=end,
            filters=filters,
            text=q or None,
            sort=SORTS[sort],
            descending=order == "desc",
            offset=offset,
            limit=limit,
        )
        page = await store.search("incidents", query)
    except QueryError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return IncidentPage(items=page.items, total=page.total)


async def _load(
    service: IncidentService, ident: str, principal: CurrentPrincipal
) -> tuple[dict[str, Any], str]:
    try:
        return await service.get(ident, principal.scope)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {ident!r}") from None


@router.get("/{ident}", summary="One incident, with its current version")
async def get_incident(ident: str, principal: CurrentPrincipal, service: Service) -> dict[str, Any]:
    doc, version = await _load(service, ident, principal)
    return _with_version(doc, version)


async def _timeline(
    store: Store, ident: str, principal: CurrentPrincipal
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    page = await store.search(
        "alerts",
        StoreQuery(
            scope=principal.scope,
            filters={"incident.id": [ident]},
            descending=False,
            limit=TIMELINE_LIMIT,
        ),
    )
    events: list[dict[str, Any]] = []
    seen: set[str] = set()
    for alert in page.items:
        for event in alert.get("events") or ():
            event_id = str((event.get("event") or {}).get("id", ""))
            if event_id not in seen:
                seen.add(event_id)
                events.append(event)
    events.sort(key=lambda e: str(e.get("@timestamp", "")))
    return page.items, events


@router.get("/{ident}/timeline", summary="The incident's alerts and the events behind them")
async def timeline(
    ident: str, principal: CurrentPrincipal, service: Service, store: StoreDep
) -> dict[str, Any]:
    await _load(service, ident, principal)
    alerts, events = await _timeline(store, ident, principal)
    return {"alerts": alerts, "events": events, "truncated": len(alerts) >= TIMELINE_LIMIT}


@router.patch("/{ident}", summary="Change status, assignee or tags (409 on a stale version)")
async def update_incident(
    ident: str, body: IncidentPatch, request: Request, principal: Analyst, service: Service
) -> dict[str, Any]:
    actor = Actor(principal.name, principal.scope, client_ip(request))
    changes: dict[str, Any] = {"status": body.status, "tags": body.tags, "reopen": body.reopen}
    if "assignee" in body.model_fields_set:
        changes["assignee"] = body.assignee
    try:
        doc, version = await service.update(ident, actor, body.version, **changes)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {ident!r}") from None
    except Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except TransitionError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return _with_version(doc, version)


@router.post("/{ident}/comments", status_code=201, summary="Comment on an incident")
async def comment(
    ident: str, body: CommentIn, request: Request, principal: Analyst, service: Service
) -> dict[str, Any]:
    actor = Actor(principal.name, principal.scope, client_ip(request))
    try:
        doc, version, added = await service.comment(ident, actor, body.text, body.version)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {ident!r}") from None
    except Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except TransitionError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return {"comment": added, "incident": _with_version(doc, version)}


@router.get("/{ident}/audit", summary="Every change made to the incident")
async def incident_audit(
    ident: str, principal: CurrentPrincipal, service: Service, store: StoreDep
) -> list[dict[str, Any]]:
    await _load(service, ident, principal)
    page = await store.search(
        "audit",
        StoreQuery(
            scope=principal.scope,
            filters={"audit.object.id": [ident]},
            descending=False,
            limit=MAX_PAGE,
        ),
    )
    return page.items


@router.get(
    "/{ident}/export",
    summary="The incident as CSV or as a STIX 2.1 bundle",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/stix+json": {}}}},
)
async def export(
    ident: str,
    request: Request,
    principal: CurrentPrincipal,
    service: Service,
    store: StoreDep,
    format: Literal["csv", "stix"] = "csv",
    language: Literal["vi", "en"] = "vi",
) -> Response:
    doc, _ = await _load(service, ident, principal)
    alerts, events = await _timeline(store, ident, principal)
    if format == "csv":
        text = incident_csv(doc, alerts, events, language=language)
        return Response(
            text.encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="incident-{ident}.csv"'},
        )
    producer = request.app.state.producer_name
    bundle = incident_stix(doc, alerts, events, producer=producer, now=utcnow())
    return JSONResponse(
        bundle,
        media_type="application/stix+json;version=2.1",
        headers={"Content-Disposition": f'attachment; filename="incident-{ident}.stix.json"'},
    )


assert set(STATUSES) == set(StatusName.__args__)  # type: ignore[attr-defined]
