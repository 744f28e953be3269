"""The store contract. Every backend runs these same tests (add it to BACKENDS)."""

from __future__ import annotations

import functools
import os
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from elasticsearch import AsyncElasticsearch

from soc import metrics
from soc.bus.base import Delivered
from soc.store.base import KINDS, Conflict, Encoded, NotFound, Query, QueryError, Scope, Store
from soc.store.documents import doc_time, fts_text, hints
from soc.store.elasticsearch import ElasticsearchStore
from soc.store.sqlite import SqliteStore
from soc.store.writer import StoreWriter

#: A backend: given a temporary directory, a store that is not open yet, and whatever the backend
#: leaves behind removed once the test is over.
StoreFactory = Callable[[Path], AbstractAsyncContextManager[Store]]


@asynccontextmanager
async def _sqlite(tmp: Path) -> AsyncIterator[Store]:
    yield SqliteStore(tmp / "store.db")


ES_URL = os.environ.get("SOC_TEST_ES_URL", "http://127.0.0.1:9200")


@functools.cache
def _es_unreachable() -> str | None:
    """Why the test Elasticsearch cannot be used, or None; asked once per session, in 1 s."""
    try:
        with urllib.request.urlopen(f"{ES_URL}/_cluster/health", timeout=1) as response:
            response.read()
    except OSError as exc:
        return f"Elasticsearch not reachable at {ES_URL} ({exc}); set SOC_TEST_ES_URL"
    return None


@asynccontextmanager
async def _elasticsearch(tmp: Path) -> AsyncIterator[Store]:
    reason = _es_unreachable()
    if reason:
        pytest.skip(reason)
    prefix = f"soc-test-{uuid.uuid4().hex[:8]}"
    try:
        yield ElasticsearchStore(ES_URL, prefix=prefix)
    finally:
        async with AsyncElasticsearch(ES_URL) as client:
            found = await client.indices.get(index=f"{prefix}-*", allow_no_indices=True)
            for name in found.body:
                await client.indices.delete(index=name)
            for kind in KINDS:
                await client.indices.delete_index_template(name=f"{prefix}-{kind}")


BACKENDS: dict[str, StoreFactory] = {"sqlite": _sqlite, "elasticsearch": _elasticsearch}

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
ALL = Scope.everything()


def event(n: int, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": (T0 + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "event": {"id": f"ev-{n:04d}", "kind": "event", "dataset": "system.auth"},
        "host": {"name": f"web{n % 3:02d}"},
        "organization": {"id": "so-tttt" if n % 2 == 0 else "ubnd-hue"},
        "message": f"message number {n}",
    }
    for name, value in fields.items():
        node = doc
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return doc


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with BACKENDS[request.param](tmp_path) as instance:
        await instance.open()
        yield instance
        await instance.close()


@pytest.fixture
async def filled(store: Store) -> Store:
    docs = [event(n) for n in range(20)]
    docs[3] = event(3, **{"user.name": "root", "source.ip": "203.0.113.7", "source.port": 22})
    docs[4] = event(4, **{"user.name": "bob", "related.ip": ["10.0.0.1", "203.0.113.7"]})
    docs[5] = event(5, message="Đăng nhập thất bại cho người dùng quản trị", **{"ok": True})
    docs[6] = event(6, **{"user.name": "root", "event.outcome": "failure"})
    await store.write("events", docs)
    return store


async def test_writes_are_searchable_and_counted(filled: Store) -> None:
    page = await filled.search("events", Query(scope=ALL, limit=100))
    assert page.total == 20
    assert len(page.items) == 20


async def test_writing_an_id_again_changes_nothing(store: Store) -> None:
    first = await store.write("events", [event(1), event(2)])
    again = await store.write("events", [event(1, message="changed"), event(3)])
    assert (first.written, first.duplicates) == (2, 0)
    assert (again.written, again.duplicates) == (1, 1)
    assert again.duplicate_ids == ("ev-0001",)
    doc = await store.get("events", "ev-0001", ALL)
    assert doc is not None and doc["message"] == "message number 1"
    assert (await store.search("events", Query(scope=ALL))).total == 3


async def test_a_document_without_an_id_is_reported_not_stored(store: Store) -> None:
    result = await store.write("events", [{"message": "no id"}, event(1)])
    assert result.written == 1
    assert len(result.errors) == 1 and "event.id" in result.errors[0][1]


async def test_get_returns_the_document_or_none(filled: Store) -> None:
    doc = await filled.get("events", "ev-0003", ALL)
    assert doc is not None and doc["user"]["name"] == "root"
    assert await filled.get("events", "nope", ALL) is None


async def test_time_range_is_start_inclusive_end_exclusive(filled: Store) -> None:
    query = Query(scope=ALL, start=T0 + timedelta(minutes=5), end=T0 + timedelta(minutes=8))
    page = await filled.search("events", query)
    assert sorted(d["event"]["id"] for d in page.items) == ["ev-0005", "ev-0006", "ev-0007"]


async def test_filters_or_within_a_field_and_across_fields(filled: Store) -> None:
    either = await filled.search("events", Query(scope=ALL, filters={"user.name": ["root", "bob"]}))
    assert either.total == 3
    both = Query(scope=ALL, filters={"user.name": ["root"], "event.outcome": ["failure"]})
    assert [d["event"]["id"] for d in (await filled.search("events", both)).items] == ["ev-0006"]


async def test_filter_matches_any_element_of_a_list_field(filled: Store) -> None:
    page = await filled.search("events", Query(scope=ALL, filters={"related.ip": ["203.0.113.7"]}))
    assert [d["event"]["id"] for d in page.items] == ["ev-0004"]


async def test_filter_on_numbers_and_booleans_takes_their_text(filled: Store) -> None:
    port = await filled.search("events", Query(scope=ALL, filters={"source.port": ["22"]}))
    assert [d["event"]["id"] for d in port.items] == ["ev-0003"]
    flag = await filled.search("events", Query(scope=ALL, filters={"ok": ["true"]}))
    assert [d["event"]["id"] for d in flag.items] == ["ev-0005"]


async def test_filter_on_an_indexed_field(filled: Store) -> None:
    page = await filled.search("events", Query(scope=ALL, filters={"host.name": ["web01"]}))
    assert page.total == 7
    assert all(d["host"]["name"] == "web01" for d in page.items)


async def test_free_text_requires_every_word(filled: Store) -> None:
    page = await filled.search("events", Query(scope=ALL, text="number 12"))
    assert [d["event"]["id"] for d in page.items] == ["ev-0012"]


async def test_free_text_finds_an_address(filled: Store) -> None:
    page = await filled.search("events", Query(scope=ALL, text="203.0.113.7"))
    assert sorted(d["event"]["id"] for d in page.items) == ["ev-0003", "ev-0004"]


async def test_free_text_ignores_vietnamese_diacritics(filled: Store) -> None:
    exact = await filled.search("events", Query(scope=ALL, text="thất bại"))
    plain = await filled.search("events", Query(scope=ALL, text="that bai quan tri"))
    assert [d["event"]["id"] for d in exact.items] == ["ev-0005"]
    assert [d["event"]["id"] for d in plain.items] == ["ev-0005"]


async def test_free_text_finds_d_with_stroke_by_d(store: Store) -> None:
    """`đ` carries its stroke in the letter, so Unicode decomposition leaves it: both stores
    map it, and `dang nhap` finds `Đăng nhập` as `đăng` does (SQLite's tokenizer alone did not:
    the most common Vietnamese login message was not found unaccented)."""
    await store.write("events", [event(35, message="Đăng nhập thất bại: Đỗ Văn Đức")])

    async def found(text: str) -> list[str]:
        page = await store.search("events", Query(scope=ALL, text=text))
        return [d["event"]["id"] for d in page.items]

    for text in ["dang nhap", "Đăng nhập", "đang", "do van duc", "ĐỨC", "du*"]:
        assert await found(text) == ["ev-0035"], text


async def test_free_text_finds_words_of_the_original_and_of_the_message(store: Store) -> None:
    """A syslog line's message is the tail of its original (indexed once); a message whose
    words sit inside longer words of the original is indexed as well."""
    tail = "Failed password for root from 203.0.113.9"
    inside = "failed login"
    await store.write(
        "events",
        [
            event(30, **{"event.original": f"<38>Nov 28 web00 sshd[1]: {tail}", "message": tail}),
            event(31, **{"event.original": "<13>web01 app: xfailed loginz", "message": inside}),
        ],
    )

    async def found(text: str) -> list[str]:
        page = await store.search("events", Query(scope=ALL, text=text))
        return [d["event"]["id"] for d in page.items]

    assert await found("sshd password 203.0.113.9") == ["ev-0030"]
    assert await found("failed") == ["ev-0031", "ev-0030"]
    assert await found("failed login") == ["ev-0031"]
    assert await found("xfailed loginz") == ["ev-0031"]


async def test_free_text_with_query_syntax_is_searched_literally(filled: Store) -> None:
    plain = await filled.search("events", Query(scope=ALL, text="root"))
    quoted = await filled.search("events", Query(scope=ALL, text='"root"'))
    assert plain.total == 2
    assert [d["event"]["id"] for d in quoted.items] == [d["event"]["id"] for d in plain.items]
    # Operators are words here, not operators: all three words are required.
    assert (await filled.search("events", Query(scope=ALL, text="root OR bob"))).total == 0
    for text in ["(x", "NEAR(a b)", "a:b", "col:umn^2", "x AND (y", "(((", "- -"]:
        page = await filled.search("events", Query(scope=ALL, text=text))
        assert page.total == 0
    for text in ['"', "*", "   "]:
        with pytest.raises(QueryError, match="no words"):
            await filled.search("events", Query(scope=ALL, text=text))


async def test_default_sort_is_newest_first_and_paging_is_stable(filled: Store) -> None:
    first = await filled.search("events", Query(scope=ALL, limit=5))
    second = await filled.search("events", Query(scope=ALL, limit=5, offset=5))
    ids = [d["event"]["id"] for d in first.items + second.items]
    assert ids == [f"ev-{n:04d}" for n in range(19, 9, -1)]
    assert first.total == second.total == 20


async def test_sort_ascending_and_by_another_field(filled: Store) -> None:
    ascending = await filled.search("events", Query(scope=ALL, descending=False, limit=2))
    assert [d["event"]["id"] for d in ascending.items] == ["ev-0000", "ev-0001"]
    by_host = await filled.search("events", Query(scope=ALL, sort="host.name", descending=False))
    hosts = [d["host"]["name"] for d in by_host.items]
    assert hosts == sorted(hosts)


async def test_scope_limits_every_read(filled: Store) -> None:
    scope = Scope(frozenset({"so-tttt"}))
    page = await filled.search("events", Query(scope=scope, limit=100))
    assert page.total == 10
    assert {d["organization"]["id"] for d in page.items} == {"so-tttt"}
    assert await filled.get("events", "ev-0003", scope) is None
    assert await filled.get("events", "ev-0004", scope) is not None
    counts = dict(await filled.count_by("events", "organization.id", Query(scope=scope)))
    assert counts == {"so-tttt": 10}
    buckets = await filled.histogram("events", 3600, Query(scope=scope))
    assert sum(b.count for b in buckets) == 10
    nothing = await filled.search("events", Query(scope=Scope(frozenset())))
    assert nothing.total == 0


async def test_count_by_field(filled: Store) -> None:
    hosts = await filled.count_by("events", "host.name", Query(scope=ALL))
    assert hosts == [("web00", 7), ("web01", 7), ("web02", 6)]
    users = await filled.count_by("events", "user.name", Query(scope=ALL), size=1)
    assert users == [("root", 2)]


async def test_histogram_buckets_by_time(filled: Store) -> None:
    buckets = await filled.histogram("events", 600, Query(scope=ALL))
    assert [(b.start, b.count) for b in buckets] == [
        (T0, 10),
        (T0 + timedelta(minutes=10), 10),
    ]


async def test_alerts_are_kept_apart_from_events(store: Store) -> None:
    alert = event(1, **{"event.kind": "alert", "rule.id": "r1", "rule.level": "high"})
    alert["event"]["id"] = "al-1"
    await store.write("alerts", [alert])
    await store.write("events", [event(1)])
    alerts = await store.search("alerts", Query(scope=ALL, filters={"rule.level": ["high"]}))
    assert [d["event"]["id"] for d in alerts.items] == ["al-1"]
    assert (await store.search("events", Query(scope=ALL))).total == 1


async def test_an_alert_keeps_its_events_whole_but_is_not_searched_by_their_fields(
    store: Store,
) -> None:
    """The events an alert carries are its evidence, returned as written and found by free
    text; an alert is filtered, sorted and counted by its own fields, and a query on the
    fields of its events is refused by name on every store (not answered empty on one)."""
    source = event(2, **{"event.original": "sshd: Failed password for khanhnv", "user.name": "u"})
    alert = event(2, **{"event.kind": "alert", "rule.level": "high", "user.name": "khanhnv"})
    alert["event"]["id"] = "al-2"
    alert["events"] = [source]
    await store.write("alerts", [alert])
    assert await store.get("alerts", "al-2", ALL) == alert
    found = await store.search("alerts", Query(scope=ALL, text="password khanhnv"))
    assert [d["event"]["id"] for d in found.items] == ["al-2"]
    own = await store.search("alerts", Query(scope=ALL, filters={"user.name": ["khanhnv"]}))
    assert own.total == 1
    assert await store.count_by("alerts", "user.name", Query(scope=ALL)) == [("khanhnv", 1)]
    refused = [
        store.search("alerts", Query(scope=ALL, filters={"events.user.name": ["u"]})),
        store.search("alerts", Query(scope=ALL, sort="events.@timestamp")),
        store.count_by("alerts", "events.host.name", Query(scope=ALL)),
        store.latest_by("alerts", "events", Query(scope=ALL)),
        store.histogram("alerts", 60, Query(scope=ALL, filters={"events.event.id": ["x"]})),
    ]
    for call in refused:
        with pytest.raises(QueryError, match="'events' is kept but not indexed"):
            await call
    # Events are searched by their own fields as ever.
    await store.write("events", [source])
    by_user = await store.search("events", Query(scope=ALL, filters={"user.name": ["u"]}))
    assert by_user.total == 1


def test_queries_refuse_field_names_that_are_not_field_names() -> None:
    for bad in ["a b", "x'); DROP TABLE events; --", "", "a..b"]:
        with pytest.raises(QueryError):
            Query(scope=ALL, filters={bad: ["1"]})
    with pytest.raises(QueryError):
        Query(scope=ALL, sort="1; DROP")


def incident(ident: str, status: str = "new", agency: str = "so-tttt") -> dict[str, Any]:
    return {
        "@timestamp": T0.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "event": {"id": ident, "kind": "incident"},
        "organization": {"id": agency},
        "incident": {"id": ident, "status": status, "title": "Dò mật khẩu SSH", "key": "k"},
    }


async def test_a_mutable_document_is_replaced_under_its_version(store: Store) -> None:
    await store.write("incidents", [incident("inc-1")])
    doc, version = await store.get_versioned("incidents", "inc-1", ALL) or ({}, "")
    assert doc["incident"]["status"] == "new"
    newer = await store.replace("incidents", incident("inc-1", "acknowledged"), version, ALL)
    assert newer != version
    again = await store.get_versioned("incidents", "inc-1", ALL)
    assert again is not None and again[1] == newer
    assert again[0]["incident"]["status"] == "acknowledged"
    # The one who read the old version loses: nothing they write lands.
    with pytest.raises(Conflict):
        await store.replace("incidents", incident("inc-1", "resolved"), version, ALL)
    latest = await store.get("incidents", "inc-1", ALL)
    assert latest is not None and latest["incident"]["status"] == "acknowledged"
    # Searches see the replaced document, by its new values only.
    found = await store.search(
        "incidents", Query(scope=ALL, filters={"incident.status": ["acknowledged"]})
    )
    assert [d["event"]["id"] for d in found.items] == ["inc-1"]
    stale = await store.search("incidents", Query(scope=ALL, filters={"incident.status": ["new"]}))
    assert stale.total == 0


async def test_replace_and_versioned_reads_keep_to_the_scope(store: Store) -> None:
    await store.write("incidents", [incident("inc-b", agency="ubnd-hue")])
    theirs = Scope(frozenset({"so-tttt"}))
    assert await store.get_versioned("incidents", "inc-b", theirs) is None
    _, version = await store.get_versioned("incidents", "inc-b", ALL) or ({}, "")
    with pytest.raises(NotFound):
        await store.replace("incidents", incident("inc-b", "resolved", "ubnd-hue"), version, theirs)
    # Nor can a document be moved into a foreign agency by a scoped caller.
    await store.write("incidents", [incident("inc-a")])
    _, mine = await store.get_versioned("incidents", "inc-a", theirs) or ({}, "")
    with pytest.raises(NotFound):
        await store.replace("incidents", incident("inc-a", agency="ubnd-hue"), mine, theirs)
    assert (await store.get("incidents", "inc-b", ALL) or {})["incident"]["status"] == "new"


async def test_many_are_read_and_replaced_at_once_each_on_its_own(store: Store) -> None:
    await store.write(
        "incidents",
        [incident("inc-m1"), incident("inc-m2"), incident("inc-m3", agency="ubnd-hue")],
    )
    theirs = Scope(frozenset({"so-tttt"}))
    seen = await store.get_many_versioned("incidents", ["inc-m1", "inc-m2", "inc-m3", "no"], theirs)
    assert sorted(seen) == ["inc-m1", "inc-m2"]  # the foreign one and the missing one left out
    everything = await store.get_many_versioned("incidents", ["inc-m1", "inc-m3"], ALL)
    assert sorted(everything) == ["inc-m1", "inc-m3"]
    _, v1 = seen["inc-m1"]
    _, v2 = seen["inc-m2"]
    # inc-m2 changes under the caller's hands before the batch lands.
    newer2 = await store.replace("incidents", incident("inc-m2", "acknowledged"), v2, ALL)
    outcomes = await store.replace_many(
        "incidents",
        [
            (incident("inc-m1", "investigating"), v1),
            (incident("inc-m2", "resolved"), v2),
            (incident("inc-m3", "resolved", "ubnd-hue"), everything["inc-m3"][1]),
            (incident("no-such"), v1),
        ],
        theirs,
    )
    assert isinstance(outcomes[0], str) and outcomes[0] != v1
    assert isinstance(outcomes[1], Conflict)
    assert isinstance(outcomes[2], NotFound)  # out of the caller's scope
    assert isinstance(outcomes[3], NotFound)
    after = await store.get_many_versioned("incidents", ["inc-m1", "inc-m2", "inc-m3"], ALL)
    assert after["inc-m1"] == (incident("inc-m1", "investigating"), outcomes[0])
    assert after["inc-m2"][0]["incident"]["status"] == "acknowledged"
    assert after["inc-m2"][1] == newer2
    assert after["inc-m3"][0]["incident"]["status"] == "new"
    assert await store.get_many_versioned("incidents", [], ALL) == {}


async def test_every_read_returns_the_document_exactly_as_written(store: Store) -> None:
    """Nothing a store derives for itself (Elasticsearch's folded search text) comes back."""
    written = event(1, message="Đăng nhập thất bại từ 203.0.113.7")
    await store.write("events", [written])
    await store.write("incidents", [incident("inc-x")])
    assert await store.get("events", "ev-0001", ALL) == written
    assert (await store.search("events", Query(scope=ALL))).items == [written]
    assert (await store.search("events", Query(scope=ALL, text="that bai"))).items == [written]
    assert (await store.get_versioned("incidents", "inc-x", ALL) or ({}, ""))[0] == incident(
        "inc-x"
    )
    assert (await store.search("incidents", Query(scope=ALL))).items == [incident("inc-x")]


async def test_events_are_never_replaced(store: Store) -> None:
    await store.write("events", [event(1)])
    with pytest.raises(QueryError):
        await store.replace("events", event(1), "1", ALL)


async def test_latest_by_gives_count_and_last_time_per_value(filled: Store) -> None:
    rows = await filled.latest_by("events", "host.name", Query(scope=ALL))
    # 20 events one minute apart over hosts web00..web02 (n % 3); web01 got n=19, the last.
    assert [(value, count) for value, count, _ in rows] == [
        ("web01", 7),
        ("web00", 7),
        ("web02", 6),
    ]
    assert rows[0][2] == T0 + timedelta(minutes=19)
    assert rows[1][2] == T0 + timedelta(minutes=18)
    scoped = await filled.latest_by(
        "events", "host.name", Query(scope=Scope(frozenset({"so-tttt"})))
    )
    assert sum(count for _, count, _ in scoped) == 10


async def test_written_documents_are_read_back_by_id_and_time_at_once(store: Store) -> None:
    """What the incident stage reads of alerts its write found already stored: the stored copy
    (not the one in hand), from whichever dated index its time put it in, before a refresh."""
    if isinstance(store, ElasticsearchStore):
        # Writes that do not wait for a refresh, as the pipeline's do.
        unrefreshed = ElasticsearchStore(ES_URL, prefix=store.prefix, refresh="false")
        await unrefreshed.open()
        try:
            await _written_read_back(unrefreshed)
        finally:
            await unrefreshed.close()
    else:
        await _written_read_back(store)


async def _written_read_back(store: Store) -> None:
    november = event(1, **{"event.kind": "alert", "incident.id": "inc-a"})
    december = event(60 * 24 * 5, **{"event.kind": "alert", "incident.id": "inc-b"})
    await store.write("alerts", [november, december])
    again = [
        {**november, "incident": {"id": "inc-other"}},
        december,
        event(2, **{"event.kind": "alert"}),  # never stored
    ]
    found = await store.get_written("alerts", again)
    assert found == {"ev-0001": november, f"ev-{60 * 24 * 5:04d}": december}
    assert await store.get_written("alerts", []) == {}


def _published(docs: list[dict[str, Any]], offset: int = 0) -> list[Delivered]:
    """Events as the Kafka bus hands them to the indexer: bytes, with the hints the
    normalizing stage attaches (see `soc.store.documents.hints`)."""
    return [
        Delivered(
            "soc.events", 0, offset + n, "k", raw=orjson.dumps(doc), headers=hints("events", doc)
        )
        for n, doc in enumerate(docs)
    ]


async def test_events_published_with_hints_are_stored_as_written(store: Store) -> None:
    """The indexer stores hinted events from their bytes where the store can (Elasticsearch)
    and decodes them where it cannot: either way, what is stored, found and counted as a
    duplicate is what `write` gives."""
    vietnamese = event(40, **{"event.original": "<38>web00 app: Đăng nhập thất bại"})
    # Holding the name of the free-text field: not spliced, decoded and written as a document.
    named = event(41, message="soc_text appears in this message")
    docs = [vietnamese, named, event(42, **{"user.name": "root"})]
    writer = StoreWriter(store, "events")
    await writer.handle(_published(docs))
    for doc in docs:
        assert await store.get("events", doc["event"]["id"], ALL) == doc

    async def found(text: str) -> list[str]:
        page = await store.search("events", Query(scope=ALL, text=text))
        return [d["event"]["id"] for d in page.items]

    assert await found("nhap that bai") == ["ev-0040"]
    assert await found("appears") == ["ev-0041"]
    assert (
        await store.search("events", Query(scope=ALL, filters={"user.name": ["root"]}))
    ).total == 1
    again = await store.write("events", [docs[2], event(43)])
    assert (again.written, again.duplicates) == (1, 1)
    duplicates = metrics.STORE_DUPLICATES.labels("events")
    before = duplicates._value.get()
    await writer.handle(_published([*docs, event(43), event(44)], offset=3))
    assert duplicates._value.get() - before == 4
    assert (await store.search("events", Query(scope=ALL))).total == 5


async def test_hinted_bytes_that_are_not_an_object_are_refused_by_name(store: Store) -> None:
    write_encoded = getattr(store, "write_encoded", None)
    if write_encoded is None:
        pytest.skip("this store takes documents, not bytes (the indexer decodes for it)")
    good, timeless = event(50), event(51)
    result = await write_encoded(
        "events",
        [
            Encoded("ev-bad", 0, "", b"[1, 2]"),
            Encoded("ev-worse", 0, "", b"{not json"),
            Encoded("ev-empty", 0, "", b"{ }"),
            Encoded("ev-0050", doc_time(good), fts_text("events", good), orjson.dumps(good)),
            # A time no index can be named after: decoded, filed under its own time.
            Encoded("ev-0051", 10**22, "", orjson.dumps(timeless)),
        ],
    )
    assert result.written == 2
    assert [ident for ident, _ in result.errors] == ["ev-bad", "ev-worse", "?"]
    assert "event.id" in result.errors[2][1]
    assert await store.get("events", "ev-0050", ALL) == good
    assert await store.get("events", "ev-0051", ALL) == timeless
    page = await store.search("events", Query(scope=ALL, text="number 51"))
    assert [d["event"]["id"] for d in page.items] == ["ev-0051"]
