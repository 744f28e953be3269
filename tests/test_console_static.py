"""The console as the API serves it: built files at `/`, gzipped, under a strict CSP, without
shadowing any API route; and message catalogues that cover every string the code asks for."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from soc import console

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "console" / "src"
LOCALES = ROOT / "console" / "locales"


def _catalogue(language: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((LOCALES / f"{language}.json").read_text("utf-8"))
    return data


def _app(tmp_path: Path) -> FastAPI:
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text(
        '<!doctype html><script type="module" src="assets/main-ABC.js"></script>' + " " * 600
    )
    (static / "assets" / "main-ABC.js").write_text("console.log('x');" * 100)
    app = FastAPI()

    @app.get("/api/v1/thing")
    async def thing() -> dict[str, str]:
        return {"ok": "yes"}

    console.mount(app, static)

    @app.get("/api/v1/later")
    async def later() -> dict[str, str]:
        return {"ok": "included after the console"}

    return app


@pytest.fixture
def client(tmp_path: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(_app(tmp_path)), base_url="http://t")


async def test_index_is_served_at_root_with_a_strict_csp_and_revalidated(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "main-ABC.js" in response.text
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_hashed_assets_are_gzipped_and_cached_for_good(client: httpx.AsyncClient) -> None:
    response = await client.get("/assets/main-ABC.js", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert "immutable" in response.headers["cache-control"]
    assert response.text.startswith("console.log")


async def test_api_routes_win_even_when_included_after_the_console(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/v1/thing")).json() == {"ok": "yes"}
    assert (await client.get("/api/v1/later")).json() == {"ok": "included after the console"}
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    assert (await client.get("/no-such-file.js")).status_code == 404


def test_unbuilt_console_leaves_a_pointer_to_the_api(tmp_path: Path) -> None:
    app = FastAPI()
    console.mount(app, tmp_path / "absent")
    paths = [getattr(route, "path", "") for route in app.routes]
    assert "/" in paths


def test_catalogues_have_the_same_keys_and_no_empty_string() -> None:
    vi, en = _catalogue("vi"), _catalogue("en")
    assert set(vi) == set(en), set(vi) ^ set(en)
    assert all(text.strip() for text in (*vi.values(), *en.values()))
    assert vi["language.name"] == "Tiếng Việt"


def test_every_message_key_in_the_code_is_in_the_catalogues() -> None:
    keys = set(_catalogue("vi"))
    prefixes = {key.split(".", 1)[0] for key in keys}
    used: set[str] = set()
    dynamic: set[str] = set()
    for source in SOURCES.rglob("*.js"):
        text = source.read_text("utf-8")
        used |= set(re.findall(r"\bt\('([a-zA-Z0-9_.]+)'", text))
        # Keys held in tables (['severity', 'incident.severity']) or chosen by a condition.
        quoted = re.findall(r"'([a-z]+\.[a-zA-Z0-9_.]+)'", text)
        used |= {k for k in quoted if k.split(".", 1)[0] in prefixes}
        dynamic |= set(re.findall(r"\bt\(`([a-zA-Z0-9_.]+)\.\$\{", text))
    missing = sorted(used - keys)
    assert missing == [], f"keys used in console/src but absent from vi.json: {missing}"
    for prefix in dynamic:
        assert any(k.startswith(prefix + ".") for k in keys), prefix
    for prefix, names in {
        "status": ("new", "acknowledged", "investigating", "resolved", "false_positive"),
        "severity": ("informational", "low", "medium", "high", "critical"),
        "role": ("admin", "analyst", "viewer"),
        "notify.status": ("pending", "sent", "parked"),
    }.items():
        for name in names:
            assert f"{prefix}.{name}" in keys
