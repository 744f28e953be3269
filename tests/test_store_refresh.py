"""How soon each kind's documents become searchable on Elasticsearch: alerts, which analysts
wait for, every half second; events at Elasticsearch's default second. Against the real node
`deploy/local/` starts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch

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
    settings = await client.indices.get_settings(index=index, name="index.refresh_interval")
    value = settings.body[index]["settings"].get("index", {}).get("refresh_interval")
    return str(value) if value is not None else None


def _event(ident: str, kind: str) -> dict[str, object]:
    return {
        "@timestamp": "2026-11-28T03:00:00.000000Z",
        "event": {"id": ident, "kind": kind},
        "organization": {"id": "so-tttt"},
        "message": "Failed password for root",
    }


async def test_alerts_refresh_every_half_second_and_events_every_second(prefix: str) -> None:
    store = ElasticsearchStore(ES_URL, prefix=prefix, refresh="false")
    await store.open()  # no index of the prefix yet: nothing to update, no error
    try:
        await store.write("alerts", [_event("a1", "alert")])
        await store.write("events", [_event("e1", "event")])
        async with AsyncElasticsearch(ES_URL) as client:
            templates = await client.indices.get_index_template(name=f"{prefix}-*")
            by_name = {
                t["name"]: t["index_template"]["template"]["settings"]["index"]["refresh_interval"]
                for t in templates.body["index_templates"]
            }
            assert by_name[f"{prefix}-alerts"] == "500ms"
            assert by_name[f"{prefix}-events"] == "1s"
            assert await _interval(client, f"{prefix}-alerts-2026.11") == "500ms"
            assert await _interval(client, f"{prefix}-events-2026.11.28") == "1s"
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
