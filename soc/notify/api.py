"""The delivery log over HTTP: what was sent, what waits, what was parked, and a retry for the
parked ones. Scoped like every other route: a user sees deliveries of their agencies only."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, status
from pydantic import BaseModel

from soc.api.auth import Admin, CurrentPrincipal
from soc.config import NotifyConfig
from soc.notify.channels import DEFAULT_BASE_URLS
from soc.notify.outbox import PARKED, Outbox

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


class Deliveries(BaseModel):
    items: list[dict[str, Any]]
    total: int


def attach(app: FastAPI, outbox: Outbox, config: NotifyConfig) -> None:
    """Give the routes the notifier's outbox (the API and the notifier share a process in
    `soc run`; a separate `soc api` answers 503 here)."""
    app.state.notify_outbox = outbox
    app.state.notify_config = config


def _outbox(request: Request) -> Outbox:
    outbox: Outbox | None = getattr(request.app.state, "notify_outbox", None)
    if outbox is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the notifier does not run in this process"
        )
    return outbox


def _public(url: str) -> str:
    """A base URL without credentials in it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@router.get("/deliveries", response_model=Deliveries, summary="The delivery log, newest first")
async def deliveries(
    request: Request,
    principal: CurrentPrincipal,
    status_: Annotated[Literal["pending", "sent", "parked"] | None, Query(alias="status")] = None,
    channel: str | None = None,
    incident: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=0, le=1000)] = 50,
) -> Deliveries:
    outbox = _outbox(request)
    items, total = await asyncio.to_thread(
        outbox.search,
        agencies=principal.scope.agencies,
        status=status_,
        channel=channel,
        incident_id=incident,
        offset=offset,
        limit=limit,
    )
    return Deliveries(items=[m.as_dict() for m in items], total=total)


@router.get("/channels", summary="Configured channels and their messages by status")
async def channels(request: Request, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    outbox = _outbox(request)
    config: NotifyConfig = request.app.state.notify_config
    counts = await asyncio.to_thread(outbox.counts)
    return [
        {
            "name": channel.name,
            "type": channel.type,
            "base_url": _public(channel.base_url or DEFAULT_BASE_URLS.get(channel.type, "")),
            "messages": counts.get(channel.name, {}),
        }
        for channel in config.channels
    ]


@router.post("/deliveries/{ident}/retry", summary="Send a parked message again (admins)")
async def retry(request: Request, principal: Admin, ident: str) -> dict[str, Any]:
    outbox = _outbox(request)
    message = await asyncio.to_thread(outbox.get, ident)
    if message is None or not principal.scope.allows(message.agency):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no delivery with id {ident!r}")
    if message.status != PARKED:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"delivery {ident!r} is {message.status}, not parked"
        )
    retried = await asyncio.to_thread(outbox.retry, ident, time.time())
    assert retried is not None
    return retried.as_dict()
