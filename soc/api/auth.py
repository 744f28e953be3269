"""Authentication for `/api/`: one dependency that every API route goes through.

Until users and roles exist, a single bearer token (from configuration, or generated at first start
and kept under the data dir) guards the API and grants every agency. The dependency returns a
`Principal` whose scope every store query takes, so per-user scopes slot in here without touching
any route.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from soc.store.base import Scope

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="API token")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scope: Scope


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


async def require_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    expected: str = request.app.state.api_token
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "authentication required: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid token", headers={"WWW-Authenticate": "Bearer"}
        )
    return Principal(name="api-token", scope=Scope.everything())


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
