"""How soon each kind's documents become searchable on Elasticsearch: alerts, which analysts
wait for, every half second; events as Elasticsearch does by default, every second while they
are searched and not at all while nobody looks. Against the real node `deploy/local/` starts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch

from soc.store.base import Query, Scope
from soc.store.elasticsearch import ElasticsearchStore
from tests.local_services import ES as ES_URL
from tests.local_services import drop_store, es_unreachable


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    if reason := es_unreachable():
        pytest.skip(reason)
    name = f"soc-test-{uuid.uuid4().hex[:8]}"
    yield name
    drop_store(name)


async def _interval(client: AsyncElasticsearch, index: str) -> str | None:
    assert await client.indices.exists(index=index), index
    settings = await client.indices.get_settings(index=index, name="index.refresh_interval")
    # An index without the setting is left out of the answer.
    value = settings.body.get(index, {}).get("settings", {}).get("index", {})
    return str(value["refresh_interval"]) if "refresh_interval" in value else None


def _event(ident: str, kind: str) -> dict[str, object]:
    return {
        "@timestamp": "2026-11-28T03:00:00.000000Z",
        "event": {"id": ident, "kind": kind},
        "organization": {"id": "so-tttt"},
        "message": "Failed password for root",
    }


async def test_alerts_refresh_every_half_second_and_events_as_elasticsearch_does(
    prefix: str,
) -> None:
    store = ElasticsearchStore(ES_URL, prefix=prefix, refresh="false")
    await store.open()  # no index of the prefix yet: nothing to update, no error
    try:
        await store.write("alerts", [_event("a1", "alert")])
        await store.write("events", [_event("e1", "event")])
        async with AsyncElasticsearch(ES_URL) as client:
            templates = await client.indices.get_index_template(name=f"{prefix}-*")
            by_name = {
                t["name"]: t["index_template"]["template"]["settings"]["index"].get(
                    "refresh_interval"
                )
                for t in templates.body["index_templates"]
            }
            assert by_name[f"{prefix}-alerts"] == "500ms"
            # Unset, not "1s": an interval set, even to the default, turns off the search-idle
            # skip (test_events_are_not_refreshed_while_nobody_searches_them).
            assert by_name[f"{prefix}-events"] is None
            assert await _interval(client, f"{prefix}-alerts-2026.11") == "500ms"
            assert await _interval(client, f"{prefix}-events-2026.11.28") is None
    finally:
        await store.close()


async def test_an_alerts_index_of_an_earlier_version_takes_the_interval_at_open(
    prefix: str,
) -> None:
    async with AsyncElasticsearch(ES_URL) as client:
        # As an earlier version left them: the alerts index at one second, and an events index
        # an operator slowed down by hand, which is theirs to keep.
        await client.indices.create(
            index=f"{prefix}-alerts-2026.10", settings={"index.refresh_interval": "1s"}
        )
        await client.indices.create(
            index=f"{prefix}-events-2026.10.01", settings={"index.refresh_interval": "30s"}
        )
        store = ElasticsearchStore(ES_URL, prefix=prefix)
        await store.open()
        await store.close()
        assert await _interval(client, f"{prefix}-alerts-2026.10") == "500ms"
        assert await _interval(client, f"{prefix}-events-2026.10.01") == "30s"


async def _refreshes(client: AsyncElasticsearch, index: str) -> int:
    stats = await client.indices.stats(index=index, metric="refresh")
    return int(stats.body["indices"][index]["primaries"]["refresh"]["total"])


async def test_events_are_not_refreshed_while_nobody_searches_them(prefix: str) -> None:
    """A stream of events into an index nobody searches costs no refreshes, and the first search
    after it still finds every event: Elasticsearch's search-idle shards, which the events
    template leaves on (30 s idle by default, shortened here)."""
    index = f"{prefix}-events-2026.11.28"
    store = ElasticsearchStore(ES_URL, prefix=prefix, refresh="false")
    await store.open()
    try:
        await store.write("events", [_event("e0", "event")])
        async with AsyncElasticsearch(ES_URL) as client:
            await client.indices.put_settings(
                index=index, settings={"index.search.idle.after": "1s"}
            )
            await asyncio.sleep(2)  # no search for longer than the idle time: the shard idles
            before = await _refreshes(client, index)
            for n in range(1, 6):
                await store.write("events", [_event(f"e{n}", "event")])
                await asyncio.sleep(0.5)
            # Two and a half seconds of writes: with a 1 s interval set, two or more refreshes.
            assert await _refreshes(client, index) == before
            # A write that waits until it is searchable (the store's default) still gets its
            # refresh from the idle shard.
            waiting = ElasticsearchStore(ES_URL, prefix=prefix)
            try:
                await waiting.write("events", [_event("e6", "event")])
            finally:
                await waiting.close()
            assert await _refreshes(client, index) > before
        page = await store.search("events", Query(Scope.everything(), limit=10))
        assert page.total == 7
    finally:
        await store.close()
