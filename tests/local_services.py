"""Clearing what tests and benchmarks leave on the local Kafka and Elasticsearch.

Every test and benchmark run works in a namespace of its own (topics, consumer groups, indices
and index templates under a fresh prefix), so runs never see each other's records. Left behind,
those namespaces pile up run after run on the same services (`deploy/local/` keeps their data
between starts). A broker holding 12,000 partitions from earlier runs spent about twice the CPU an
event of a clean one on the same stream (issue 4: 14-20 us against 7-10; G1 marking took a
quarter of its time, with the housekeeping of every partition), and every later run's figures
carried that cost.
"""

from __future__ import annotations

import asyncio
import re
import socket

import httpx
from aiokafka.admin import AIOKafkaAdminClient

KAFKA = "127.0.0.1:9092"
ES = "http://127.0.0.1:9200"

#: The names of the namespaces tests give themselves (a fixed start and a random hex tag; see the
#: tests that make them): only those, and only if they appeared during the session, are cleared,
#: so that nothing a person made on these services is touched. Benchmarks clear their own.
TEST_NAMES = re.compile(
    r"(?:test-[0-9a-f]{8}-|test-ingest-[0-9a-f]{32}\.|(?:it|nm)[0-9a-f]{8}[.-]|lag-[0-9a-f]{8}\."
    r"|t-notify-[0-9a-f]{8}\.|soc-(?:test|diff|test-ret)-[0-9a-f]{8}-)"
)


def es_unreachable() -> str | None:
    """Why the local Elasticsearch cannot be used (a test skips with it), or None."""
    try:
        httpx.get(f"{ES}/_cluster/health", timeout=2).raise_for_status()
    except httpx.HTTPError as exc:
        return f"Elasticsearch not reachable at {ES} ({exc}); `make services` starts it"
    return None


def drop_store(prefix: str) -> None:
    """Delete what an Elasticsearch store under `prefix` made: its indices (`<prefix>-…`) and
    index templates (`<prefix>-<kind>`)."""
    indices = httpx.get(
        f"{ES}/_cat/indices/{prefix}-*", params={"h": "index", "format": "json"}, timeout=30
    ).json()
    for row in indices:
        httpx.delete(f"{ES}/{row['index']}", timeout=60)
    templates = httpx.get(f"{ES}/_index_template/{prefix}-*", timeout=30).json()
    for item in templates.get("index_templates", []):
        httpx.delete(f"{ES}/_index_template/{item['name']}", timeout=60)


def _up(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _topics() -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=30_000)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _delete_topics(names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=60_000)
    await admin.start()
    try:
        for start in range(0, len(names), 200):
            await admin.delete_topics(names[start : start + 200], timeout_ms=60_000)
    finally:
        await admin.close()


def snapshot() -> dict[str, set[str]]:
    """The topics, indices and index templates on the local services now (empty where a service
    is not running)."""
    found: dict[str, set[str]] = {"topics": set(), "indices": set(), "templates": set()}
    if _up(9092):
        found["topics"] = asyncio.run(_topics())
    if _up(9200):
        indices = httpx.get(
            f"{ES}/_cat/indices", params={"h": "index", "format": "json"}, timeout=30
        )
        found["indices"] = {row["index"] for row in indices.json()}
        templates = httpx.get(f"{ES}/_index_template", timeout=30).json()
        found["templates"] = {item["name"] for item in templates["index_templates"]}
    return found


def _ours(name: str, prefixes: tuple[str, ...] | None) -> bool:
    if name.startswith(("__", ".")):
        return False
    return TEST_NAMES.match(name) is not None if prefixes is None else name.startswith(prefixes)


def forget(before: dict[str, set[str]], prefixes: tuple[str, ...] | None = None) -> dict[str, int]:
    """Delete what appeared since `before` (a `snapshot`): under `prefixes`, or (None) named as
    the tests name their namespaces (`TEST_NAMES`). How many of each were deleted."""
    now = snapshot()
    gone = {
        kind: sorted(name for name in now[kind] - before[kind] if _ours(name, prefixes))
        for kind in now
    }
    if gone["topics"]:
        asyncio.run(_delete_topics(gone["topics"]))
    for start in range(0, len(gone["indices"]), 50):
        names = ",".join(gone["indices"][start : start + 50])
        httpx.delete(f"{ES}/{names}", params={"ignore_unavailable": "true"}, timeout=60)
    for start in range(0, len(gone["templates"]), 50):
        names = ",".join(gone["templates"][start : start + 50])
        httpx.delete(f"{ES}/_index_template/{names}", timeout=60)
    return {kind: len(names) for kind, names in gone.items()}


def forget_namespace(namespace: str) -> dict[str, int]:
    """Delete one namespace's topics (`<namespace>.…`), indices and index templates
    (`<namespace>-soc-…`), as a distributed run of the platform under it leaves them."""
    return forget(
        {"topics": set(), "indices": set(), "templates": set()},
        (f"{namespace}.", f"{namespace}-soc-"),
    )
