"""The HTTP API in-process over a real SQLite store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from soc.api.app import create_app
from soc.api.auth import ensure_api_token
from soc.store.sqlite import SqliteStore
from tests.contracts.test_store_contract import event

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    store = SqliteStore(tmp_path / "api.db")
    await store.open()
    docs = [event(n) for n in range(12)]
    docs[2] = event(2, **{"user.name": "root", "message": "Failed password for root"})
    await store.write("events", docs)
    alert = event(2, **{"event.kind": "alert", "rule.id": "r-1", "rule.level": "low"})
    alert["event"]["id"] = "alert-1"
    await store.write("alerts", [alert])
    app = create_app(store, TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://soc") as http:
        yield http
    await store.close()


async def test_health_and_metrics_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "soc_events_stored_total" in metrics.text
    assert "soc_rules_loaded" in metrics.text


#: The only routes open without credentials: where credentials are exchanged for a token.
PUBLIC = {("POST", "/api/v1/auth/token"), ("POST", "/api/v1/auth/login")}


async def test_every_api_route_refuses_requests_without_a_valid_token(
    client: httpx.AsyncClient,
) -> None:
    """Enumerated from the OpenAPI document, so that a new route cannot slip through."""
    schema = (await client.get("/openapi.json")).json()
    routes = [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/")
        for method in operations
    ]
    assert len(routes) >= 30
    checked = 0
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        url = re.sub(r"\{[^}]+\}", "x", path)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "soc_session=forged"}):
            response = await client.request(method, url, headers=headers, json={})
            assert response.status_code == 401, (method, url, headers, response.text)
        checked += 1
    assert checked == len(routes) - len(PUBLIC & set(routes))


async def test_event_search_with_text_filters_range_and_paging(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/api/v1/events", headers=AUTH)).json()
    assert everything["total"] == 12
    found = await client.get("/api/v1/events", params={"q": "failed password"}, headers=AUTH)
    assert [d["event"]["id"] for d in found.json()["items"]] == ["ev-0002"]
    filtered = await client.get(
        "/api/v1/events", params={"filter": ["user.name:root", "host.name:web02"]}, headers=AUTH
    )
    assert filtered.json()["total"] == 1
    window = await client.get(
        "/api/v1/events",
        params={"start": "2026-11-28T08:03:00Z", "end": "2026-11-28T08:05:00Z"},
        headers=AUTH,
    )
    assert [d["event"]["id"] for d in window.json()["items"]] == ["ev-0004", "ev-0003"]
    page = await client.get(
        "/api/v1/events", params={"limit": 5, "offset": 10, "order": "asc"}, headers=AUTH
    )
    assert [d["event"]["id"] for d in page.json()["items"]] == ["ev-0010", "ev-0011"]
    assert page.json()["total"] == 12


async def test_alerts_get_counts_and_histogram(client: httpx.AsyncClient) -> None:
    alerts = (await client.get("/api/v1/alerts", headers=AUTH)).json()
    assert [a["rule"]["id"] for a in alerts["items"]] == ["r-1"]
    one = await client.get("/api/v1/alerts/alert-1", headers=AUTH)
    assert one.json()["rule"]["level"] == "low"
    missing = await client.get("/api/v1/alerts/nope", headers=AUTH)
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    counts = await client.get("/api/v1/events/counts", params={"field": "host.name"}, headers=AUTH)
    assert counts.json()[0] == {"value": "web00", "count": 4}
    histogram = await client.get(
        "/api/v1/events/histogram", params={"interval": 3600}, headers=AUTH
    )
    assert [b["count"] for b in histogram.json()] == [12]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"filter": "no-colon"}, "FIELD:VALUE"),
        ({"filter": "bad field:x"}, "invalid field name"),
        ({"sort": "x;drop"}, "invalid field name"),
        ({"limit": 100000}, "limit"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-11-29T00:00:00Z", "end": "2026-11-28T00:00:00Z"}, "start is after end"),
        ({"order": "sideways"}, "order"),
    ],
)
async def test_invalid_requests_get_a_4xx_that_names_the_problem(
    client: httpx.AsyncClient, params: dict[str, object], named: str
) -> None:
    response = await client.get("/api/v1/events", params=params, headers=AUTH)
    assert 400 <= response.status_code < 500
    assert named in response.text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/alerts", {"filter": "events.user.name:root"}),
        ("/api/v1/alerts", {"sort": "events.@timestamp"}),
        ("/api/v1/alerts/counts", {"field": "events.host.name"}),
    ],
)
async def test_alerts_by_the_fields_of_their_events_get_a_400_that_says_why(
    client: httpx.AsyncClient, path: str, params: dict[str, object]
) -> None:
    response = await client.get(path, params=params, headers=AUTH)
    assert response.status_code == 400
    assert "'events' is kept but not indexed" in response.json()["detail"]


def test_generated_token_is_kept_private_and_reused(tmp_path: Path) -> None:
    token, generated = ensure_api_token("", tmp_path)
    again, generated_again = ensure_api_token("", tmp_path)
    assert generated and not generated_again and token == again and len(token) >= 32
    assert (tmp_path / "secrets" / "api_token").stat().st_mode & 0o077 == 0
    assert ensure_api_token("configured", tmp_path) == ("configured", False)
