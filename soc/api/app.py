"""The FastAPI application: public health and metrics, everything under `/api/v1` authenticated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.middleware.gzip import GZipMiddleware

from soc import __version__, console, metrics  # noqa: F401 (metrics: registers every series)
from soc.accounts import Accounts
from soc.api import admin, incidents, insights, session
from soc.api import rules as rules_api
from soc.api.auth import CurrentPrincipal, LoginLimiter, require_principal
from soc.api.rules import RuleCatalog
from soc.bus.base import Bus
from soc.config import Config
from soc.incidents.service import IncidentService
from soc.notify.api import router as notify_router
from soc.store.base import Kind, QueryError, Store, StoreUnavailable
from soc.store.base import Query as StoreQuery

MAX_PAGE = 1000
T = TypeVar("T")


class SearchResult(BaseModel):
    items: list[dict[str, Any]]
    total: int


class Count(BaseModel):
    value: str
    count: int


class BucketOut(BaseModel):
    start: datetime
    count: int


def _filters(raw: list[str]) -> dict[str, list[str]]:
    """`field:value` pairs (repeatable; a field given twice accepts either value)."""
    filters: dict[str, list[str]] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"filter {item!r}: expected FIELD:VALUE"
            )
        filters.setdefault(name, []).append(value)
    return filters


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(_store)]


class SearchParams:
    """The query parameters shared by searches and aggregations."""

    def __init__(
        self,
        start: Annotated[datetime | None, Query(description="inclusive, ISO 8601")] = None,
        end: Annotated[datetime | None, Query(description="exclusive, ISO 8601")] = None,
        q: Annotated[str | None, Query(description="free text, every word required")] = None,
        filter: Annotated[
            list[str], Query(description="FIELD:VALUE, repeatable (ECS field names)")
        ] = [],  # noqa: B006 (FastAPI reads the default, never mutates it)
    ) -> None:
        self.start = start
        self.end = end
        self.q = q
        self.filters = _filters(filter)

    def query(self, principal: CurrentPrincipal, **extra: Any) -> StoreQuery:
        try:
            return StoreQuery(
                scope=principal.scope,
                start=self.start,
                end=self.end,
                filters=self.filters,
                text=self.q,
                **extra,
            )
        except QueryError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def _kind_routes(router: APIRouter, kind: Kind) -> None:
    """Search, get, counts and histogram for one kind of document."""

    @router.get(f"/{kind}", response_model=SearchResult, summary=f"Search {kind}")
    async def search(
        principal: CurrentPrincipal,
        store: StoreDep,
        params: Annotated[SearchParams, Depends()],
        sort: str = "@timestamp",
        order: Literal["asc", "desc"] = "desc",
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=0, le=MAX_PAGE)] = 50,
    ) -> SearchResult:
        query = params.query(
            principal, sort=sort, descending=order == "desc", offset=offset, limit=limit
        )
        page = await _guard(lambda: store.search(kind, query))
        return SearchResult(items=page.items, total=page.total)

    @router.get(f"/{kind}/counts", response_model=list[Count], summary=f"Top values in {kind}")
    async def counts(
        principal: CurrentPrincipal,
        store: StoreDep,
        params: Annotated[SearchParams, Depends()],
        field: str,
        size: Annotated[int, Query(ge=1, le=1000)] = 10,
    ) -> list[Count]:
        query = params.query(principal)
        rows = await _guard(lambda: store.count_by(kind, field, query, size))
        return [Count(value=value, count=count) for value, count in rows]

    @router.get(f"/{kind}/histogram", response_model=list[BucketOut], summary=f"{kind} over time")
    async def histogram(
        principal: CurrentPrincipal,
        store: StoreDep,
        params: Annotated[SearchParams, Depends()],
        interval: Annotated[int, Query(ge=1, description="bucket width in seconds")] = 3600,
    ) -> list[BucketOut]:
        query = params.query(principal)
        buckets = await _guard(lambda: store.histogram(kind, interval, query))
        return [BucketOut(start=b.start, count=b.count) for b in buckets]

    @router.get(f"/{kind}/{{ident}}", summary=f"One of the {kind} by id")
    async def get_one(principal: CurrentPrincipal, store: StoreDep, ident: str) -> dict[str, Any]:
        doc = await store.get(kind, ident, principal.scope)
        if doc is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind[:-1]} with id {ident!r}")
        return doc


async def _guard(call: Callable[[], Awaitable[T]]) -> T:
    """Run a store call; a query the store refuses is the client's error (400), not ours."""
    try:
        return await call()
    except QueryError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def create_app(
    store: Store,
    api_token: str,
    *,
    config: Config | None = None,
    accounts: Accounts | None = None,
    bus: Bus | None = None,
    rules: RuleCatalog | None = None,
) -> FastAPI:
    """The API over `store`. `accounts` enables users, sessions and API keys (without it only
    the machine token `api_token` gets in); `bus` carries incident changes to notifications;
    `rules` shows the engine's rules (by default the catalog loads them from `config`)."""
    config = config or Config()
    app = FastAPI(
        title="SOC platform API",
        version=__version__,
        description=(
            "Events, alerts and incidents of the provincial SOC. Every /api route needs"
            " authentication (bearer token, API key or console session) except /auth/token and"
            " /auth/login; what a caller sees is limited to their agencies."
        ),
    )
    # Answers are pages of whole JSON documents: gzip cuts what the console downloads ~8x.
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    app.state.store = store
    app.state.api_token = api_token
    app.state.accounts = accounts
    app.state.bus = bus
    app.state.auth_config = config.auth
    app.state.login_limiter = LoginLimiter(config.auth.login_attempts_per_minute)
    app.state.incidents = IncidentService(store, bus)
    app.state.rules = rules or RuleCatalog(config, accounts)
    app.state.sources = config.sources
    app.state.timezone = config.syslog.timezone
    app.state.producer_name = config.incidents.producer

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        # The analyst's search failed because the store is down or starting: say so (503),
        # so that clients retry, rather than reporting a server bug (500).
        return JSONResponse(
            {"detail": f"store unavailable, retry shortly: {exc}"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    @app.get("/healthz", include_in_schema=True, tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", include_in_schema=True, tags=["operations"])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_principal)])
    for kind in ("events", "alerts"):
        _kind_routes(router, kind)
    app.include_router(router)
    for extra in (
        session.router,
        incidents.router,
        insights.router,
        admin.router,
        rules_api.router,
    ):
        app.include_router(extra)
    app.include_router(notify_router)
    console.mount(app)
    return app
