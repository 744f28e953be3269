"""Clearing a run's namespaces from the local services deletes what the run made under the test
prefixes, and nothing else."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests import local_services


async def _create(*names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=local_services.KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        await admin.close()


def _template(name: str) -> None:
    body = {"index_patterns": [f"{name}-*"], "priority": 1}
    httpx.put(f"{local_services.ES}/_index_template/{name}", json=body, timeout=30)


def test_forget_deletes_only_what_appeared_under_the_prefixes() -> None:
    if not (local_services._up(9092) and local_services._up(9200)):
        pytest.skip("Kafka and Elasticsearch are not running (make services)")
    tag = uuid.uuid4().hex[:8]
    old, new, other = f"test-{tag}-old", f"test-{tag}-new", f"keep{tag}"
    asyncio.run(_create(f"{old}.t"))
    _template(f"{old}-soc-events")
    before = local_services.snapshot()
    asyncio.run(_create(f"{new}.t", f"{other}.t"))
    _template(f"{new}-soc-events")
    _template(f"{other}-soc-events")
    httpx.put(f"{local_services.ES}/{new}-soc-events-2026.11.30", timeout=30)
    try:
        gone = local_services.forget(before)
        after = local_services.snapshot()
        assert f"{new}.t" not in after["topics"]
        assert f"{new}-soc-events" not in after["templates"]
        assert f"{new}-soc-events-2026.11.30" not in after["indices"]
        # There before the run, or not under a test prefix: kept.
        assert {f"{old}.t", f"{other}.t"} <= after["topics"]
        assert {f"{old}-soc-events", f"{other}-soc-events"} <= after["templates"]
        assert gone["topics"] >= 1 and gone["templates"] >= 1 and gone["indices"] >= 1
    finally:
        leftovers = {"topics": set(), "indices": set(), "templates": set()}
        local_services.forget(leftovers, (f"{old}", f"keep{tag}"))


def test_forget_namespace_takes_its_topics_indices_and_templates() -> None:
    if not (local_services._up(9092) and local_services._up(9200)):
        pytest.skip("Kafka and Elasticsearch are not running (make services)")
    namespace = f"bench{uuid.uuid4().hex[:6]}"
    neighbour = f"{namespace}x"  # shares the start of the name, not the namespace
    asyncio.run(_create(f"{namespace}.soc.raw", f"{neighbour}.soc.raw"))
    _template(f"{namespace}-soc-alerts")
    try:
        gone = local_services.forget_namespace(namespace)
        after = local_services.snapshot()
        assert gone["topics"] == 1 and gone["templates"] == 1
        assert f"{namespace}.soc.raw" not in after["topics"]
        assert f"{neighbour}.soc.raw" in after["topics"]
    finally:
        local_services.forget_namespace(neighbour)
