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
    # Named like a test's at first sight, but not as the tests name theirs: kept too.
    asyncio.run(_create(f"{new}.t", f"{other}.t", f"itdemo{tag}.soc.raw"))
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
        assert {f"{old}.t", f"{other}.t", f"itdemo{tag}.soc.raw"} <= after["topics"]
        assert {f"{old}-soc-events", f"{other}-soc-events"} <= after["templates"]
        assert gone["topics"] >= 1 and gone["templates"] >= 1 and gone["indices"] >= 1
    finally:
        leftovers = {"topics": set(), "indices": set(), "templates": set()}
        local_services.forget(leftovers, (f"{old}", f"keep{tag}", f"itdemo{tag}"))


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


def test_only_names_made_as_the_tests_make_them_are_taken_for_theirs() -> None:
    tag, long_tag = uuid.uuid4().hex[:8], uuid.uuid4().hex
    theirs = [
        f"it{tag}.soc.raw",
        f"it{tag}-soc-events-2026.11.30",
        f"nm{tag}-soc-alerts-2026.11",
        f"test-{tag}-t.raw",
        f"lag-{tag}.soc.events",
        f"test-ingest-{long_tag}.soc.raw",
        f"t-notify-{tag}.soc.incidents",
        f"soc-test-{tag}-events",
        f"soc-diff-{tag}-hunt",
        f"soc-test-ret-{tag}-events-2026.11.30",
    ]
    others = [
        "soc.raw",
        "soc-events-2026.11.30",
        "soc-alerts",
        "itops.soc.raw",
        "test-prod.soc.raw",
        f"bench{tag[:6]}.soc.raw",  # benchmarks clear their own namespace
        "__consumer_offsets",
        ".security-7",
    ]
    for name in theirs:
        assert local_services._ours(name, None), name
    for name in others:
        assert not local_services._ours(name, None), name
