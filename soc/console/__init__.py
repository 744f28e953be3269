"""The analyst web console: static files built from `console/` (`make console`) into
`soc/console/static`, served by the API at `/`.

The console is a single page that talks to `/api/v1` on the same origin with the session
cookie, so it needs no configuration of its own. Responses carry a strict Content-Security-Policy
(nothing but this origin: the console loads nothing from a CDN and runs no inline script) and are
gzipped; the bundle names carry a content hash, so they are cached for good while `index.html` is
revalidated on every load.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from soc import __version__

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def is_built(directory: Path = STATIC_DIR) -> bool:
    return (directory / "index.html").is_file()


class _Headers:
    """Adds the security and caching headers to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hashed = str(scope.get("path", "")).startswith("/assets/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                for name, value in SECURITY_HEADERS.items():
                    headers.append((name.encode(), value.encode()))
                cache = IMMUTABLE if hashed and message["status"] == 200 else REVALIDATE
                headers.append((b"cache-control", cache.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def console_app(directory: Path = STATIC_DIR) -> ASGIApp:
    """The console as an ASGI app: the built files, gzipped, with security headers."""
    return GZipMiddleware(_Headers(StaticFiles(directory=directory, html=True)), minimum_size=500)


def mount(app: FastAPI, directory: Path = STATIC_DIR) -> None:
    """Serve the console at `/` as the router's fallback: it answers only what no route does, so
    routers included later are never shadowed, and unknown `/api/` paths keep their JSON 404.
    Without a built console (a checkout where `make console` has not run), `/` says where the
    API is."""
    if not is_built(directory):
        log.warning("console not built (run `make console`); API only dir=%s", directory)

        @app.get("/", include_in_schema=False)
        async def root() -> JSONResponse:
            return JSONResponse(
                {"name": "soc", "version": __version__, "api": "/api/v1", "docs": "/docs"}
            )

        return
    files = console_app(directory)
    not_found = app.router.default

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.startswith("/api/"):
            await not_found(scope, receive, send)
        else:
            await files(scope, receive, send)

    app.router.default = fallback
