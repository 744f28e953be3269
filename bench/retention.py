"""Retention on SQLite: how fast old events are deleted (documents and their full-text rows, in
batches), against how fast the same events were written, in the same run; and how long a write
waits while a purge runs beside it. Never fails on a time."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soc.config import RetentionConfig  # noqa: E402
from soc.retention import purge_once  # noqa: E402
from soc.store.sqlite import SqliteStore  # noqa: E402
from soc.timeutil import format_ts  # noqa: E402

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def event(i: int, days_ago: int) -> dict[str, Any]:
    return {
        "@timestamp": format_ts(NOW - timedelta(days=days_ago, seconds=i % 86_400)),
        "event": {"id": f"bench-{days_ago}-{i}", "kind": "event", "dataset": "system.auth"},
        "organization": {"id": f"agency-{i % 20}"},
        "host": {"name": f"web{i % 50}"},
        "source": {"ip": f"203.0.{i % 250}.{i % 200}"},
        "user": {"name": f"user{i % 300}"},
        "message": f"Failed password for user{i % 300} from 203.0.{i % 250}.{i % 200} port {i}",
        "event.original": f"<38>Nov 28 10:00:00 web{i % 50} sshd[{i}]: Failed password",
    }


async def run(old: int, recent: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "soc.db")
        await store.open()
        docs = [event(i, 400) for i in range(old)]
        started = time.perf_counter()
        for offset in range(0, len(docs), batch):
            await store.write("events", docs[offset : offset + batch])
        write_rate = old / (time.perf_counter() - started)
        await store.write("events", [event(i, 1) for i in range(recent)])

        waits: list[float] = []

        async def writer() -> None:
            for round_ in range(1_000_000):
                began = time.perf_counter()
                await store.write("events", [event(round_ * 100 + i, 0) for i in range(100)])
                waits.append(time.perf_counter() - began)
                await asyncio.sleep(0.01)

        beside = asyncio.create_task(writer())
        started = time.perf_counter()
        purges = await purge_once(
            store, RetentionConfig(events_days=365, alerts_days=0, incidents_days=0), now=NOW
        )
        elapsed = time.perf_counter() - started
        beside.cancel()
        await asyncio.gather(beside, return_exceptions=True)
        await store.close()
    deleted = sum(p.deleted for p in purges)
    delete_rate = deleted / elapsed
    print(f"events written (baseline):  {old:,} in batches of {batch}: {write_rate:,.0f} events/s")
    print(
        f"events deleted by retention: {deleted:,} in {elapsed:.2f} s: {delete_rate:,.0f} events/s"
    )
    print(f"ratio delete/write: {delete_rate / write_rate:.2f}x")
    if waits:
        waits.sort()
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
        print(
            f"writes of 100 events beside the purge: {len(waits)}, median"
            f" {statistics.median(waits) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", type=int, default=200_000, help="events older than the period")
    parser.add_argument("--recent", type=int, default=10_000, help="events kept")
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(run(args.old, args.recent, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
