"""Logging in and out: bearer tokens (OAuth2 password flow) for scripts, a session cookie with a
CSRF token for the console. Both go through the same checks: the per-address rate limit, the
per-account lockout, and an audit entry for every attempt."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from soc import metrics
from soc.accounts import Accounts, LoginRefused, User
from soc.api.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentPrincipal,
    LoginLimiter,
)
from soc.incidents.audit import record
from soc.store.base import Store

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    user: dict[str, Any]
    csrf_token: str
    expires_in: int


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _accounts(request: Request) -> Accounts:
    accounts: Accounts | None = getattr(request.app.state, "accounts", None)
    if accounts is None:
        raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED, "user accounts are not configured")
    return accounts


async def _login(request: Request, username: str, password: str) -> User:
    accounts = _accounts(request)
    limiter: LoginLimiter = request.app.state.login_limiter
    store: Store = request.app.state.store
    address = client_ip(request)
    if not limiter.allow(address):
        metrics.AUTH_LOGINS.labels("rate_limited").inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many login attempts from this address; wait a minute",
            headers={"Retry-After": "60"},
        )
    try:
        # argon2 takes tens of milliseconds of CPU on purpose: off the event loop.
        user = await asyncio.to_thread(accounts.authenticate, username, password)
    except LoginRefused as refused:
        result = "locked" if refused.locked else "invalid"
        if refused.reason == "account disabled":
            result = "disabled"
        metrics.AUTH_LOGINS.labels(result).inc()
        await record(
            store,
            actor=username[:64],
            action="auth.login",
            object_type="user",
            object_id=username[:64],
            changes={"reason": refused.reason},
            source_ip=address,
            outcome="failure",
        )
        if refused.locked:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "account locked after repeated failures; try again later or ask an administrator",
            ) from None
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid user name or password") from None
    metrics.AUTH_LOGINS.labels("ok").inc()
    await record(
        store,
        actor=user.username,
        action="auth.login",
        object_type="user",
        object_id=user.username,
        source_ip=address,
    )
    return user


@router.post("/token", response_model=TokenOut, summary="Bearer token (OAuth2 password flow)")
async def token(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenOut:
    user = await _login(request, form.username, form.password)
    ttl = int(request.app.state.auth_config.token_ttl_seconds)
    session = await asyncio.to_thread(
        _accounts(request).create_session, user.username, "bearer", ttl
    )
    return TokenOut(access_token=session.token, expires_in=ttl)


@router.post("/login", response_model=LoginOut, summary="Console session (cookie + CSRF token)")
async def login(request: Request, body: LoginIn, response: Response) -> LoginOut:
    user = await _login(request, body.username, body.password)
    config = request.app.state.auth_config
    ttl = int(config.session_ttl_seconds)
    session = await asyncio.to_thread(
        _accounts(request).create_session, user.username, "cookie", ttl
    )
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=ttl,
        httponly=True,
        samesite="strict",
        secure=bool(config.cookie_secure),
        path="/",
    )
    # Readable by the console's script, which echoes it in X-CSRF-Token; useless to another
    # site, which can neither read it nor set the header.
    response.set_cookie(
        CSRF_COOKIE,
        session.csrf_token,
        max_age=ttl,
        httponly=False,
        samesite="strict",
        secure=bool(config.cookie_secure),
        path="/",
    )
    return LoginOut(user=user.public(), csrf_token=session.csrf_token, expires_in=ttl)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="End this session")
async def logout(request: Request, principal: CurrentPrincipal) -> Response:
    accounts = _accounts(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    header = request.headers.get("authorization", "")
    for secret in (cookie, header[7:] if header.lower().startswith("bearer ") else None):
        if secret:
            await asyncio.to_thread(accounts.end_session, secret)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/me", summary="Who am I")
async def me(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    accounts: Accounts | None = getattr(request.app.state, "accounts", None)
    user = accounts.user(principal.name) if accounts is not None else None
    if user is not None and principal.method in ("bearer", "cookie"):
        return user.public()
    return {
        "username": principal.name,
        "role": principal.role,
        "agencies": principal.agencies,
        "display_name": principal.name,
        "language": "vi",
        "timezone": "Asia/Ho_Chi_Minh",
        "disabled": False,
        "locked": False,
    }
