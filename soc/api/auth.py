"""Authentication and authorization for `/api/`: who is calling, with which role, over which
agencies. Every API route depends on `require_principal` (or a role check built on it); the
`Principal` it returns carries the `Scope` that every store query and write takes, so a route
cannot forget the tenant boundary: the store enforces it.

Ways in, tried in this order:
- `Authorization: Bearer <token>`: the configured machine token (admin, every agency), an API key
  (`soc_<id>_<secret>`), or a bearer session from `POST /api/v1/auth/token`;
- the console's session cookie (`soc_session`, HttpOnly, SameSite=Strict). A request that changes
  anything with a cookie must also send `X-CSRF-Token`, the token the login answered with; a
  forged cross-site form cannot know it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from soc import metrics
from soc.accounts import ROLES, Accounts, Role, digest
from soc.store.base import Scope

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="API token, API key or bearer session")

SESSION_COOKIE = "soc_session"
CSRF_COOKIE = "soc_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scope: Scope
    role: Role = "admin"
    #: How the caller authenticated: api_token, apikey, bearer, cookie.
    method: str = "api_token"

    def can(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def agencies(self) -> list[str] | None:
        return None if self.scope.agencies is None else sorted(self.scope.agencies)


def ensure_api_token(configured: str, data_dir: Path) -> tuple[str, bool]:
    """The API token: configured, or kept in `<data>/secrets/api_token` (0600), created once.
    Returns the token and whether it was just generated."""
    if configured:
        return configured, False
    path = data_dir / "secrets" / "api_token"
    if path.exists():
        return path.read_text("utf-8").strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, True


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _scope(agencies: frozenset[str] | None) -> Scope:
    return Scope(agencies)


async def require_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    accounts: Accounts | None = getattr(request.app.state, "accounts", None)
    if credentials is not None:
        if credentials.scheme.lower() != "bearer":
            raise _unauthorized("authentication required: send 'Authorization: Bearer <token>'")
        return await _from_bearer(request, accounts, credentials.credentials)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and accounts is not None:
        found = await asyncio.to_thread(accounts.session_user, cookie, "cookie")
        if found is None:
            raise _unauthorized("session expired or unknown: log in again")
        user, csrf_hash = found
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not csrf_hash or not hmac.compare_digest(digest(sent), csrf_hash):
                metrics.AUTH_FAILURES.labels("csrf").inc()
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN,
                    f"CSRF check failed: send the {CSRF_HEADER} header the login answered with",
                )
        return Principal(user.username, _scope(user.agencies), user.role, "cookie")
    raise _unauthorized("authentication required: send 'Authorization: Bearer <token>'")


async def _from_bearer(request: Request, accounts: Accounts | None, token: str) -> Principal:
    expected: str = request.app.state.api_token
    if expected and hmac.compare_digest(token.encode(), expected.encode()):
        return Principal(name="api-token", scope=Scope.everything())
    if accounts is not None:
        if token.startswith("soc_"):
            key = await asyncio.to_thread(accounts.api_key, token)
            if key is not None:
                return Principal(f"apikey:{key.name}", _scope(key.agencies), key.role, "apikey")
        else:
            found = await asyncio.to_thread(accounts.session_user, token, "bearer")
            if found is not None:
                user = found[0]
                return Principal(user.username, _scope(user.agencies), user.role, "bearer")
    metrics.AUTH_FAILURES.labels("token").inc()
    raise _unauthorized("invalid or expired token")


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]


def require_role(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, if their role is at least `role`; 403 otherwise."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this needs the {role} role (you are {principal.role})"
            )
        return principal

    return check


Analyst = Annotated[Principal, Depends(require_role("analyst"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


def require_all_agencies(principal: Principal) -> None:
    """Some things exist for the whole province only (users, API keys, sources): an agency-
    scoped administrator manages none of them."""
    if principal.scope.agencies is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "this needs access to every agency (province-wide)"
        )


class LoginLimiter:
    """At most `per_minute` login attempts per client address in any minute: slows guessing
    across many accounts, which the per-account lockout alone would not."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._attempts: dict[str, deque[float]] = {}

    def allow(self, client: str, now: float | None = None) -> bool:
        moment = time.monotonic() if now is None else now
        window = self._attempts.setdefault(client, deque())
        while window and window[0] <= moment - 60:
            window.popleft()
        if len(window) >= self.per_minute:
            return False
        window.append(moment)
        if len(self._attempts) > 10_000:  # bounded: forget the quietest clients
            for key in [k for k, v in self._attempts.items() if not v][:5000]:
                del self._attempts[key]
        return True
