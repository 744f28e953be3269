"""The Elasticsearch store sends the bulk bodies it builds without copying them again."""

from __future__ import annotations

import orjson

from soc.store.elasticsearch import ElasticsearchStore, _BulkBody


def test_a_built_body_is_sent_as_it_is() -> None:
    body = b'{"create":{"_index":"x","_id":"1"}}\n{"a":1}\n'
    assert _BulkBody().dumps(body) is body


def test_other_bodies_are_still_serialized_as_ndjson() -> None:
    serializer = _BulkBody()
    lines = serializer.dumps([{"index": {"_id": "1"}}, {"a": "đ"}]).split(b"\n")
    assert [orjson.loads(line) for line in lines[:-1]] == [{"index": {"_id": "1"}}, {"a": "đ"}]
    assert lines[-1] == b""
    # A body without its final newline gets one: Elasticsearch refuses a bulk without it.
    assert serializer.dumps(b'{"a":1}') == b'{"a":1}\n'


async def test_the_store_client_uses_it_for_ndjson_in_both_mimetypes() -> None:
    store = ElasticsearchStore("http://127.0.0.1:1")  # never connects
    try:
        serializers = store._client.transport.serializers
        for mimetype in ("application/x-ndjson", "application/vnd.elasticsearch+x-ndjson"):
            assert isinstance(serializers.get_serializer(mimetype), _BulkBody)
        assert serializers.dumps({"a": 1}, "application/json") == b'{"a":1}'
    finally:
        await store.close()
