"""Administration: users, agencies, API keys and the audit log. Administrators of one agency
manage the users and keys of their agencies only; province-wide administrators manage all and
are the only ones who create agencies. Every change is audited."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from soc.accounts import AccountError, Accounts
from soc.api.auth import Admin, CurrentPrincipal, Principal, require_all_agencies
from soc.api.session import client_ip
from soc.incidents.audit import record
from soc.store.base import Query as StoreQuery
from soc.store.base import QueryError, Store

router = APIRouter(prefix="/api/v1", tags=["administration"])

RoleName = Literal["admin", "analyst", "viewer"]


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=12, max_length=1024)
    role: RoleName = "analyst"
    agencies: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, description="agency ids; null: every agency"
    )
    display_name: str = Field(default="", max_length=200)
    language: Literal["vi", "en"] = "vi"


class UserPatch(BaseModel):
    role: RoleName | None = None
    agencies: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = None
    display_name: str | None = Field(default=None, max_length=200)
    language: Literal["vi", "en"] | None = None
    timezone: str | None = Field(default=None, max_length=64)
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=12, max_length=1024)
    unlock: bool = False


class AgencyIn(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: RoleName = "viewer"
    agencies: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = None


def _accounts(request: Request) -> Accounts:
    accounts: Accounts | None = getattr(request.app.state, "accounts", None)
    if accounts is None:
        raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED, "user accounts are not configured")
    return accounts


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


AccountsDep = Annotated[Accounts, Depends(_accounts)]
StoreDep = Annotated[Store, Depends(_store)]


def _within(principal: Principal, agencies: list[str] | frozenset[str] | None) -> bool:
    """Whether an account with these agencies is inside the principal's reach."""
    if principal.scope.agencies is None:
        return True
    return agencies is not None and set(agencies) <= principal.scope.agencies


def _refuse_outside(principal: Principal, agencies: list[str] | frozenset[str] | None) -> None:
    if not _within(principal, agencies):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "you can manage accounts of your own agencies only (list them explicitly)",
        )


async def _audit(
    request: Request, store: Store, principal: Principal, action: str, kind: str, ident: str,
    changes: dict[str, Any], agency: str | None = None,
) -> None:  # fmt: skip
    await record(
        store,
        actor=principal.name,
        action=action,
        object_type=kind,
        object_id=ident,
        agency=agency,
        changes=changes,
        source_ip=client_ip(request),
    )


def _bad(exc: AccountError) -> HTTPException:
    message = str(exc)
    code = status.HTTP_409_CONFLICT if "already exists" in message else status.HTTP_400_BAD_REQUEST
    if message.startswith("no "):
        code = status.HTTP_404_NOT_FOUND
    return HTTPException(code, message)


@router.get("/users", summary="Users (an agency administrator sees their agencies' users)")
async def list_users(principal: Admin, accounts: AccountsDep) -> list[dict[str, Any]]:
    users = await asyncio.to_thread(accounts.users)
    return [u.public() for u in users if _within(principal, u.agencies)]


@router.post("/users", status_code=201, summary="Create a user")
async def create_user(
    body: UserIn, request: Request, principal: Admin, accounts: AccountsDep, store: StoreDep
) -> dict[str, Any]:
    _refuse_outside(principal, body.agencies)
    try:
        user = await asyncio.to_thread(
            accounts.add_user,
            body.username,
            body.password,
            body.role,
            body.agencies,
            body.display_name,
            body.language,
        )
    except AccountError as exc:
        raise _bad(exc) from None
    changes = {"role": body.role, "agencies": body.agencies}
    await _audit(request, store, principal, "user.create", "user", user.username, changes)
    return user.public()


@router.patch("/users/{username}", summary="Change a user (role, agencies, password, disable)")
async def update_user(
    username: str,
    body: UserPatch,
    request: Request,
    principal: Admin,
    accounts: AccountsDep,
    store: StoreDep,
) -> dict[str, Any]:
    current = await asyncio.to_thread(accounts.user, username)
    if current is None or not _within(principal, current.agencies):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username!r}")
    fields = body.model_fields_set
    if "agencies" in fields:
        _refuse_outside(principal, body.agencies)
    if username == principal.name and (body.disabled or body.role not in (None, "admin")):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "you cannot disable or demote yourself")
    try:
        if body.password is not None:
            await asyncio.to_thread(accounts.set_password, username, body.password)
        if body.unlock:
            await asyncio.to_thread(accounts.unlock, username)
        user = await asyncio.to_thread(
            lambda: accounts.update_user(
                username,
                role=body.role,
                agencies=body.agencies if "agencies" in fields else "keep",
                display_name=body.display_name,
                language=body.language,
                timezone=body.timezone,
                disabled=body.disabled,
            )
        )
    except AccountError as exc:
        raise _bad(exc) from None
    changes = body.model_dump(include=fields - {"password"})
    if body.password is not None:
        changes["password"] = "changed"  # noqa: S105 (the audit says it changed, not to what)
    await _audit(request, store, principal, "user.update", "user", username, changes)
    return user.public()


@router.get("/agencies", summary="Agencies the caller may see")
async def list_agencies(principal: CurrentPrincipal, accounts: AccountsDep) -> list[dict[str, Any]]:
    agencies = await asyncio.to_thread(accounts.agencies)
    return [a for a in agencies if principal.scope.allows(a["id"])]


@router.post("/agencies", status_code=201, summary="Create an agency (province-wide admins)")
async def create_agency(
    body: AgencyIn, request: Request, principal: Admin, accounts: AccountsDep, store: StoreDep
) -> dict[str, Any]:
    require_all_agencies(principal)
    try:
        agency = await asyncio.to_thread(accounts.add_agency, body.id, body.name)
    except AccountError as exc:
        raise _bad(exc) from None
    await _audit(
        request, store, principal, "agency.create", "agency", body.id, {"name": body.name}, body.id
    )
    return agency


@router.get("/apikeys", summary="API keys (never their secrets)")
async def list_api_keys(principal: Admin, accounts: AccountsDep) -> list[dict[str, Any]]:
    keys = await asyncio.to_thread(accounts.api_keys)
    return [k.public() for k in keys if _within(principal, k.agencies)]


@router.post("/apikeys", status_code=201, summary="Create an API key; its secret is shown once")
async def create_api_key(
    body: ApiKeyIn, request: Request, principal: Admin, accounts: AccountsDep, store: StoreDep
) -> dict[str, Any]:
    _refuse_outside(principal, body.agencies)
    try:
        key, secret = await asyncio.to_thread(
            accounts.create_api_key, body.name, body.role, body.agencies, principal.name
        )
    except AccountError as exc:
        raise _bad(exc) from None
    changes = {"name": body.name, "role": body.role, "agencies": body.agencies}
    await _audit(request, store, principal, "apikey.create", "apikey", key.id, changes)
    return {**key.public(), "secret": secret}


@router.delete("/apikeys/{ident}", status_code=204, summary="Revoke an API key")
async def revoke_api_key(
    ident: str, request: Request, principal: Admin, accounts: AccountsDep, store: StoreDep
) -> None:
    keys = {k.id: k for k in await asyncio.to_thread(accounts.api_keys)}
    key = keys.get(ident)
    if key is None or not _within(principal, key.agencies):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no API key {ident!r}")
    await asyncio.to_thread(accounts.revoke_api_key, ident)
    await _audit(request, store, principal, "apikey.revoke", "apikey", ident, {})


@router.get("/audit", summary="The audit log (administrators)")
async def audit_log(
    principal: Admin,
    store: StoreDep,
    actor: str | None = None,
    action: str | None = None,
    object_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=0, le=1000)] = 100,
) -> dict[str, Any]:
    filters: dict[str, list[str]] = {}
    for name, value in (
        ("user.name", actor),
        ("event.action", action),
        ("audit.object.id", object_id),
    ):
        if value:
            filters[name] = [value]
    try:
        page = await store.search(
            "audit",
            StoreQuery(
                scope=principal.scope,
                start=start,
                end=end,
                filters=filters,
                offset=offset,
                limit=limit,
            ),
        )
    except QueryError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return {"items": page.items, "total": page.total}
