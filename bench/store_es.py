"""What Elasticsearch spends to index what the platform writes most: events and alerts.

Normalized syslog events (the stream bench/distributed.py sends) and the alerts our own rules
raise on them are bulk-written, as the store writes them, into fresh indices under the store's
templates, and again under the baseline: the same templates with `soc_text` excluded from
`_source` at write time (what the store did before; the exclusion made Elasticsearch parse and
re-serialize every document). Prints documents/s, Elasticsearch's CPU per document (user +
system from /proc) and the bytes stored per document, and the ratios. Needs `make services`;
never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.distributed import _cpu_seconds, _service_pids, _up  # noqa: E402
from bench.run import make_lines  # noqa: E402
from soc.detect.alerts import build_alert  # noqa: E402
from soc.detect.rules import load_rules  # noqa: E402
from soc.normalize import NormalizeOptions, normalize  # noqa: E402
from soc.store import elasticsearch as es  # noqa: E402
from soc.store.base import Kind  # noqa: E402

ES = "http://127.0.0.1:9200"


def documents(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = []
    for n, line in enumerate(make_lines(count)):
        record = {
            "id": f"bench-{n}",
            "received_at": "2026-11-28T03:00:00.000000Z",
            "source": {"type": "syslog", "peer": {"ip": "10.1.2.3", "port": 51514}},
            "organization": {"id": "so-ttt"},
            "data": line.decode(),
        }
        events.append(normalize(record, NormalizeOptions()))
    rules = load_rules([ROOT / "rules"])
    alerts = [build_alert(rule, event) for event in events for rule in rules.match(event)]
    return events, alerts


def template(prefix: str, kind: Kind, baseline: bool) -> dict[str, Any]:
    body = es._template(prefix, kind)  # a new dict each call
    if baseline:
        body["template"]["mappings"]["_source"] = {"excludes": [es.TEXT_FIELD]}
    return body


async def index(kind: Kind, docs: list[dict[str, Any]], baseline: bool) -> dict[str, float]:
    prefix = f"benchstore{uuid.uuid4().hex[:6]}"
    store = es.ElasticsearchStore(ES, prefix=prefix, refresh="false")
    bodies = []
    for start in range(0, len(docs), 2000):
        actions, errors = store._actions(kind, docs[start : start + 2000])
        assert not errors, errors[:3]
        bodies.append(b"".join(action.lines for action in actions))
    await store.close()
    async with httpx.AsyncClient(base_url=ES, timeout=120) as client:
        name = f"{prefix}-{kind}"
        (
            await client.put(f"/_index_template/{name}", json=template(prefix, kind, baseline))
        ).raise_for_status()
        pids = _service_pids()["elasticsearch"]
        cpu_before = _cpu_seconds(pids)
        started = time.perf_counter()
        # Two bulk requests in flight, as two stages of an engine write at once.
        gate = asyncio.Semaphore(2)

        async def send(body: bytes) -> None:
            async with gate:
                response = await client.post(
                    "/_bulk",
                    content=body,
                    headers={"content-type": "application/x-ndjson"},
                    params={"filter_path": "errors"},
                )
                assert response.json() == {"errors": False}, response.text[:300]

        await asyncio.gather(*(send(body) for body in bodies))
        await client.post(f"/{name}-*/_refresh")
        seconds = time.perf_counter() - started
        await asyncio.sleep(2)  # work the writes left behind (flushes) is theirs too
        cpu = _cpu_seconds(pids) - cpu_before
        stats = (await client.get(f"/{name}-*/_stats/store")).json()
        stored = stats["_all"]["primaries"]["store"]["size_in_bytes"]
        await client.delete(f"/{name}-*")
        await client.delete(f"/_index_template/{name}")
    return {
        "rate": len(docs) / seconds,
        "cpu": cpu / len(docs) * 1e6,
        "bytes": stored / len(docs),
    }


async def main_async(count: int, rounds: int) -> None:
    events, alerts = documents(count)
    print(f"{len(events):,} syslog events, {len(alerts):,} alerts (own rules); best of {rounds}")
    written: list[tuple[Kind, list[dict[str, Any]]]] = [("events", events), ("alerts", alerts)]
    for kind, docs in written:
        best: dict[bool, dict[str, float]] = {}
        for _ in range(rounds):
            for baseline in (True, False):  # interleaved: the VM's noise hits both alike
                result = await index(kind, docs, baseline)
                kept = best.get(baseline)
                if kept is None or result["cpu"] < kept["cpu"]:
                    best[baseline] = result
        for baseline in (True, False):
            label = "baseline (soc_text excluded)" if baseline else "store's templates"
            r = best[baseline]
            print(f"  {kind:<7} {label:<29}: {r['rate']:>8,.0f} docs/s, Elasticsearch CPU "
                  f"{r['cpu']:6.1f} us/doc, stored {r['bytes']:5.0f} B/doc")  # fmt: skip
        base, ours = best[True], best[False]
        print(f"  {kind:<7} CPU per document: {base['cpu'] / ours['cpu']:.2f}x less; "
              f"stored: {base['bytes'] / ours['bytes']:.2f}x less")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not _up(9200):
        print("Elasticsearch is not running: make services")
        return 0
    asyncio.run(main_async(args.events, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
