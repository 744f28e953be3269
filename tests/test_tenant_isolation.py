"""Tenant isolation, route by route: an administrator of agency A, the most any agency user can
be, neither sees nor changes agency B's data through any route of the API.

The routes come from the OpenAPI document, and each needs an entry in CALLS saying how to aim it
at B's data: a new route without one fails this test, so it cannot escape the check."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.api_world import PASSWORD, A, B, World, world

HUNT_RULE = """
title: Failed password (hunt)
id: 6f1c4a4e-0d6e-4b7c-9a59-2b7e1d3c0a11
status: test
logsource: {product: linux, service: auth}
detection:
  keywords: ['Failed password']
  condition: keywords
level: low
"""

Call = Callable[[World, dict[str, Any]], tuple[str, dict[str, Any]]]


def get(url: str, **params: Any) -> Call:
    return lambda w, ids: (url.format(**ids), {"params": params})


def send(url: str, body: Callable[[dict[str, Any]], Any]) -> Call:
    return lambda w, ids: (url.format(**ids), {"json": body(ids)})


#: (method, path) -> how to aim it at B. `ids` holds B's identifiers.
CALLS: dict[tuple[str, str], Call] = {
    ("GET", "/api/v1/events"): get("/api/v1/events", filter=f"organization.id:{B}"),
    ("GET", "/api/v1/events/counts"): get("/api/v1/events/counts", field="organization.id"),
    ("GET", "/api/v1/events/histogram"): get("/api/v1/events/histogram", q=B),
    ("GET", "/api/v1/events/{ident}"): get("/api/v1/events/{event}"),
    ("GET", "/api/v1/alerts"): get("/api/v1/alerts", filter=f"organization.id:{B}"),
    ("GET", "/api/v1/alerts/counts"): get("/api/v1/alerts/counts", field="organization.id"),
    ("GET", "/api/v1/alerts/histogram"): get("/api/v1/alerts/histogram"),
    ("GET", "/api/v1/alerts/{ident}"): get("/api/v1/alerts/{alert}"),
    ("GET", "/api/v1/auth/me"): get("/api/v1/auth/me"),
    ("GET", "/api/v1/incidents"): get("/api/v1/incidents", agency=B),
    ("GET", "/api/v1/incidents/{ident}"): get("/api/v1/incidents/{incident}"),
    ("PATCH", "/api/v1/incidents/{ident}"): send(
        "/api/v1/incidents/{incident}",
        lambda ids: {"version": ids["version"], "status": "false_positive", "assignee": "x"},
    ),
    ("GET", "/api/v1/incidents/{ident}/timeline"): get("/api/v1/incidents/{incident}/timeline"),
    ("POST", "/api/v1/incidents/{ident}/comments"): send(
        "/api/v1/incidents/{incident}/comments", lambda ids: {"text": "tampered"}
    ),
    ("GET", "/api/v1/incidents/{ident}/audit"): get("/api/v1/incidents/{incident}/audit"),
    ("GET", "/api/v1/incidents/{ident}/export"): get(
        "/api/v1/incidents/{incident}/export", format="stix"
    ),
    ("GET", "/api/v1/stats/summary"): get(
        "/api/v1/stats/summary", start="2026-11-01T00:00:00Z", end="2026-12-01T00:00:00Z"
    ),
    ("GET", "/api/v1/stats/coverage"): get("/api/v1/stats/coverage"),
    ("GET", "/api/v1/sources"): get("/api/v1/sources", by="host"),
    ("GET", "/api/v1/reports/monthly"): get("/api/v1/reports/monthly", month="2026-11", agency=B),
    ("GET", "/api/v1/users"): get("/api/v1/users"),
    ("POST", "/api/v1/users"): send(
        "/api/v1/users",
        lambda ids: {"username": "mole", "password": PASSWORD, "role": "admin", "agencies": [B]},
    ),
    ("PATCH", "/api/v1/users/{username}"): send(
        "/api/v1/users/b-analyst", lambda ids: {"disabled": True, "password": PASSWORD + "x"}
    ),
    ("GET", "/api/v1/agencies"): get("/api/v1/agencies"),
    ("POST", "/api/v1/agencies"): send("/api/v1/agencies", lambda ids: {"id": "so-c", "name": "C"}),
    ("GET", "/api/v1/apikeys"): get("/api/v1/apikeys"),
    ("POST", "/api/v1/apikeys"): send(
        "/api/v1/apikeys", lambda ids: {"name": "k", "role": "admin", "agencies": None}
    ),
    ("DELETE", "/api/v1/apikeys/{ident}"): lambda w, ids: (f"/api/v1/apikeys/{ids['key']}", {}),
    ("GET", "/api/v1/audit"): get("/api/v1/audit", limit=1000),
    ("GET", "/api/v1/rules"): get("/api/v1/rules"),
    ("POST", "/api/v1/rules/{rule_id}/enable"): send("/api/v1/rules/{rule}/enable", lambda ids: {}),
    ("POST", "/api/v1/rules/{rule_id}/disable"): send(
        "/api/v1/rules/{rule}/disable", lambda ids: {}
    ),
    ("POST", "/api/v1/rules/test"): send(
        "/api/v1/rules/test",
        lambda ids: {
            "rule": HUNT_RULE,
            "event": "<38>Nov 28 08:00:00 web sshd[1]: Failed password",
        },
    ),
    ("POST", "/api/v1/hunt"): send("/api/v1/hunt", lambda ids: {"rule": HUNT_RULE, "limit": 100}),
    ("GET", "/api/v1/notifications/deliveries"): get("/api/v1/notifications/deliveries"),
    ("GET", "/api/v1/notifications/channels"): get("/api/v1/notifications/channels"),
    ("POST", "/api/v1/notifications/deliveries/{ident}/retry"): send(
        "/api/v1/notifications/deliveries/{incident}/retry", lambda ids: {}
    ),
}
#: Not about anyone's data: exchanging credentials, ending one's own session.
EXEMPT = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/logout"),
}


def markers(w: World, ids: dict[str, Any]) -> list[str]:
    """Strings only B's data contains."""
    return [B, w.incidents[B], w.alerts[B], w.events[B], "b-admin", "b-analyst", f"web-{B}",
            f"src-{B}", ids["key"]]  # fmt: skip


async def b_state(w: World) -> dict[str, Any]:
    incident = await w.store.get("incidents", w.incidents[B], __import__("soc").store.base.Scope())
    users = {u.username: u.public() for u in w.accounts.users() if u.agencies == {B}}
    keys = [k.public() for k in w.accounts.api_keys()]
    return {
        "incident": incident,
        "users": users,
        "keys": keys,
        "rules": w.accounts.rule_overrides(),
        "agencies": w.accounts.agencies(),
    }


async def test_an_agency_administrator_cannot_reach_another_agency(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        # B's data includes an API key and a history in the audit log.
        key, _ = w.accounts.create_api_key("b-feed", "viewer", [B], "root-admin")
        b_analyst = await w.as_user("b-analyst")
        async with b_analyst:
            current = (await b_analyst.get(f"/api/v1/incidents/{w.incidents[B]}")).json()
            ack = await b_analyst.patch(
                f"/api/v1/incidents/{w.incidents[B]}",
                json={"version": current["incident"]["version"], "status": "acknowledged"},
            )
            assert ack.status_code == 200
            version = ack.json()["incident"]["version"]
        ids = {
            "incident": w.incidents[B],
            "alert": w.alerts[B],
            "event": w.events[B],
            "version": version,
            "key": key.id,
            "rule": "a7f0f1a4-0f1c-4c36-9c2f-7d3a7b2f5c01",
        }
        before = await b_state(w)
        schema = w.app.openapi()
        routes = [
            (method.upper(), path)
            for path, operations in schema["paths"].items()
            if path.startswith("/api/")
            for method in operations
        ]
        missing = [r for r in routes if r not in CALLS and r not in EXEMPT]
        assert not missing, f"routes without a tenant-isolation call in CALLS: {missing}"
        admin_a = await w.as_user("a-admin")
        leaks: list[str] = []
        async with admin_a:
            for method, path in routes:
                if (method, path) in EXEMPT:
                    continue
                url, kwargs = CALLS[(method, path)](w, ids)
                response = await admin_a.request(method, url, **kwargs)
                assert response.status_code < 500, (method, url, response.text)
                if response.status_code < 300:
                    body = response.text
                    leaks += [f"{method} {url}: {m}" for m in markers(w, ids) if m in body]
                elif method != "GET":
                    assert response.status_code in (400, 403, 404, 409, 422), (method, url)
            # The hunt ran and found A's events: the check above is not vacuous.
            hunt = await admin_a.post("/api/v1/hunt", json={"rule": HUNT_RULE})
            assert hunt.status_code == 200, hunt.text
            assert {e["organization"]["id"] for e in hunt.json()["items"]} == {A}
            summary = (await admin_a.get(CALLS[("GET", "/api/v1/stats/summary")](w, ids)[0],
                       params={"start": "2026-11-01T00:00:00Z"})).json()  # fmt: skip
            assert [row["value"] for row in summary["by_agency"]] == [A]
        assert not leaks, "\n".join(leaks)
        after = await b_state(w)
        assert json.dumps(after, sort_keys=True, default=str) == json.dumps(
            before, sort_keys=True, default=str
        )
