"""A small province for API tests: two agencies with events, alerts and incidents in a real
SQLite store, users of every role, and the app in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from argon2 import PasswordHasher

from soc.accounts import Accounts
from soc.api.app import create_app
from soc.bus.base import ALERTS, Delivered
from soc.config import Config, IncidentsConfig, RulesConfig
from soc.incidents.grouping import IncidentStage
from soc.notify.api import attach
from soc.notify.outbox import Outbox
from soc.store.base import Query, Scope
from soc.store.sqlite import SqliteStore
from tests.test_incidents import alert

MACHINE_TOKEN = "machine-token-0123456789abcdef"
#: "Now" for the API's views that look back from the present (sources seen in the last day,
#: the default summary range): a few hours after the world's events of 2026-11-28 08:0x, so
#: that what those views show does not depend on the day the tests run.
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PASSWORD = "đúng-mật-khẩu-2026"
A, B = "so-a", "so-b"


@dataclass
class World:
    store: SqliteStore
    accounts: Accounts
    app: Any
    incidents: dict[str, str] = field(default_factory=dict)  # agency -> incident id
    alerts: dict[str, str] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)

    def client(self, **headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("198.51.100.7", 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://soc", headers=headers)

    async def token(self, username: str, password: str = PASSWORD) -> str:
        async with self.client() as http:
            response = await http.post(
                "/api/v1/auth/token", data={"username": username, "password": password}
            )
            assert response.status_code == 200, response.text
            return str(response.json()["access_token"])

    async def as_user(self, username: str) -> httpx.AsyncClient:
        token = await self.token(username)
        return self.client(Authorization=f"Bearer {token}")


def event_doc(n: int, agency: str) -> dict[str, Any]:
    return {
        "@timestamp": f"2026-11-28T08:{n:02d}:00.000000Z",
        "event": {"id": f"ev-{agency}-{n}", "kind": "event", "dataset": "system.auth"},
        "host": {"name": f"web-{agency}"},
        "organization": {"id": agency},
        "labels": {"source_id": f"src-{agency}"},
        "message": f"Failed password for root from 203.0.113.{n} port 22 ssh2 {agency}",
        "user": {"name": "root"},
    }


@asynccontextmanager
async def world(tmp: Path, **auth: Any) -> AsyncIterator[World]:
    store = SqliteStore(tmp / "soc.db")
    await store.open()
    # Cheap argon2id parameters: the tests make many users; the hashing itself is the library's.
    auth.setdefault("hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    accounts = Accounts(tmp / "accounts.db", **auth)
    accounts.add_agency(A, "Sở A")
    accounts.add_agency(B, "Sở B")
    for name, role, agencies in (
        ("root-admin", "admin", None),
        ("a-admin", "admin", [A]),
        ("a-analyst", "analyst", [A]),
        ("a-viewer", "viewer", [A]),
        ("b-admin", "admin", [B]),
        ("b-analyst", "analyst", [B]),
    ):
        accounts.add_user(name, PASSWORD, role, agencies)
    config = Config(rules=RulesConfig(paths=("rules",)))
    app = create_app(store, MACHINE_TOKEN, config=config, accounts=accounts)
    outbox = Outbox(tmp / "outbox.db")
    attach(app, outbox, config.notify)
    found = World(store, accounts, app)
    stage = IncidentStage(store, IncidentsConfig())
    for agency in (A, B):
        await store.write("events", [event_doc(n, agency) for n in range(3)])
        alerts = [alert(n, agency=agency, host=f"web-{agency}") for n in range(3)]
        await stage.handle([Delivered(ALERTS, 0, i, "k", a) for i, a in enumerate(alerts)])
        page = await store.search("incidents", Query(scope=Scope(frozenset({agency})), limit=1))
        found.incidents[agency] = page.items[0]["incident"]["id"]
        found.alerts[agency] = alerts[0]["event"]["id"]
        found.events[agency] = f"ev-{agency}-0"
    try:
        with mock.patch("soc.api.insights.utcnow", return_value=NOW):
            yield found
    finally:
        accounts.close()
        await store.close()
