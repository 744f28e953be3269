"""Latency of the analyst's two busiest reads: the incident queue and the dashboard statistics,
with 1M events and 10k alerts stored (issue 6).

For each store (SQLite; Elasticsearch when `make services` runs it) the data is written through
the store contract, alerts are grouped into incidents by the real incident stage, and then the
API is asked through HTTP (in-process ASGI, so the figures are the API's and the store's, not
the network's): p50 and p99 over repeated requests. The baseline, in the same run, is the same
store's bare `search` for the queue's page, without the API around it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soc.api.app import create_app  # noqa: E402
from soc.bus.base import ALERTS, Delivered  # noqa: E402
from soc.config import Config, IncidentsConfig  # noqa: E402
from soc.incidents.grouping import IncidentStage  # noqa: E402
from soc.store.base import Query, Scope, Store  # noqa: E402
from soc.store.sqlite import SqliteStore  # noqa: E402

TOKEN = "bench-incidents-0123456789abcdef"
AGENCIES = [f"so-{n:02d}" for n in range(20)]
RULES = [
    (f"rule-{n:03d}", random.Random(n).choice(["low", "medium", "high", "critical"]))
    for n in range(60)
]
T0 = 1_764_316_800.0  # 2025-11-28T08:00:00Z; the data spans the 24 hours after


def ts(seconds: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0 + seconds))
        + f".{int(seconds * 1e6) % 1_000_000:06d}Z"
    )


def event(n: int, rng: random.Random) -> dict[str, Any]:
    agency = AGENCIES[n % len(AGENCIES)]
    host = f"srv-{n % 500:03d}"
    return {
        "@timestamp": ts(n * 86_400 / 1_000_000),
        "event": {"id": f"ev-{n}", "kind": "event", "dataset": "system.auth"},
        "host": {"name": host},
        "organization": {"id": agency},
        "labels": {"source_id": f"src-{agency}"},
        "process": {"name": "sshd"},
        "source": {"ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"},
        "message": f"Failed password for user{rng.randrange(1000)} from 10.0.0.1 port 22 ssh2",
        "event.original": None,
    }


def alert(n: int, rng: random.Random) -> dict[str, Any]:
    rule, level = RULES[rng.randrange(len(RULES))]
    agency = AGENCIES[rng.randrange(len(AGENCIES))]
    return {
        "@timestamp": ts(n * 86_400 / 10_000),
        "event": {"id": f"alert-{n}", "kind": "alert", "severity": 47},
        "rule": {"id": rule, "name": f"Rule {rule}", "level": level},
        "host": {"name": f"srv-{rng.randrange(40):03d}"},
        "organization": {"id": agency},
        "user": {"name": f"user{rng.randrange(50)}"},
        "threat": {"technique": {"id": [f"T{1000 + rng.randrange(80)}"]}},
        "message": f"Rule {rule}",
        "events": [{"event": {"id": f"ev-{n * 100}"}, "message": "Failed password"}],
    }


async def fill(store: Store, events: int, alerts: int) -> tuple[float, int]:
    rng = random.Random(7)
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for n in range(events):
        doc = event(n, rng)
        doc.pop("event.original")
        batch.append(doc)
        if len(batch) == 5000:
            await store.write("events", batch)
            batch = []
    if batch:
        await store.write("events", batch)
    stage = IncidentStage(store, IncidentsConfig())
    docs = [alert(n, rng) for n in range(alerts)]
    for start in range(0, alerts, 500):
        part = docs[start : start + 500]
        await stage.handle([Delivered(ALERTS, 0, i, "k", a) for i, a in enumerate(part)])
    if hasattr(store, "_client"):  # count what was written, not what a refresh has shown yet
        await store._client.indices.refresh(index=f"{store.prefix}-*")  # type: ignore[attr-defined]
    page = await store.search("incidents", Query(scope=Scope.everything(), limit=0))
    return time.perf_counter() - started, page.total


async def timed(call: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        began = time.perf_counter()
        await call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(name: str, store: Store, events: int, alerts: int, repeat: int) -> None:
    await store.open()
    took, incidents = await fill(store, events, alerts)
    print(
        f"{name}: stored {events:,} events and {alerts:,} alerts -> {incidents:,} incidents in {took:.0f} s"
    )
    if hasattr(store, "_client"):
        await store._client.indices.refresh(index=f"{store.prefix}-*")  # type: ignore[attr-defined]
    app = create_app(store, TOKEN, config=Config())
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    scoped = Scope(frozenset(AGENCIES[:3]))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://soc", headers=headers
    ) as http:

        async def queue() -> None:
            response = await http.get(
                "/api/v1/incidents", params={"status": ["new", "acknowledged"], "limit": 50}
            )
            assert response.status_code == 200, response.text

        async def summary() -> None:
            response = await http.get(
                "/api/v1/stats/summary", params={"start": ts(0), "end": ts(86_400)}
            )
            assert response.status_code == 200, response.text

        async def bare() -> None:
            await store.search(
                "incidents",
                Query(
                    scope=Scope.everything(),
                    filters={"incident.status": ["new", "acknowledged"]},
                    limit=50,
                ),
            )

        async def scoped_queue() -> None:
            await store.search("incidents", Query(scope=scoped, limit=50))

        await queue(), await summary()  # warm caches
        figures = {
            "incident queue (API)": await timed(queue, repeat),
            "incident page (store alone, baseline)": await timed(bare, repeat),
            "statistics summary (API)": await timed(summary, max(5, repeat // 4)),
            "incident page, 3 agencies' scope (store)": await timed(scoped_queue, repeat),
        }
    base = statistics.median(figures["incident page (store alone, baseline)"])
    for label, values in figures.items():
        p50, p99 = pct(values, 0.5), pct(values, 0.99)
        print(
            f"  {label:<42} p50 {p50:8.1f} ms  p99 {p99:8.1f} ms  (x{p50 / base:.1f} the baseline p50)"
        )
    await store.close()


def es_reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=2):
            return True
    except OSError:
        return False


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--es", default="http://127.0.0.1:9200")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await measure(
            "SQLite", SqliteStore(Path(tmp) / "bench.db"), args.events, args.alerts, args.repeat
        )
    if es_reachable(args.es):
        from soc.store.elasticsearch import ElasticsearchStore

        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        store = ElasticsearchStore(args.es, prefix=prefix, refresh="false")
        try:
            await measure("Elasticsearch", store, args.events, args.alerts, args.repeat)
        finally:
            from elasticsearch import AsyncElasticsearch

            async with AsyncElasticsearch(args.es) as client:
                await client.indices.delete(index=f"{prefix}-*")
                for kind in ("events", "alerts", "incidents", "audit"):
                    await client.options(ignore_status=404).indices.delete_index_template(
                        name=f"{prefix}-{kind}"
                    )
    else:
        print(f"Elasticsearch: not reachable at {args.es}; run `make services` for its figures")


if __name__ == "__main__":
    asyncio.run(main())
