"""Incidents: the lifecycle, the audit trail of every change, and grouping alerts into incidents
over a real SQLite store and the in-process bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from soc.bus.base import ALERTS, INCIDENTS, Delivered
from soc.bus.memory import MemoryBus
from soc.config import IncidentsConfig
from soc.incidents import grouping, model
from soc.incidents.grouping import IncidentStage
from soc.incidents.service import Actor, IncidentService
from soc.store.base import Conflict, NotFound, Query, Scope
from soc.store.sqlite import SqliteStore

ALL = Scope.everything()
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def ts(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert(n: int, *, rule: str = "r-ssh", host: str = "web01", agency: str = "so-a",
          minutes: float | None = None, level: str = "medium", user: str = "root",
          technique: str = "T1110") -> dict[str, Any]:  # fmt: skip
    return {
        "@timestamp": ts(n if minutes is None else minutes),
        "event": {"id": f"alert-{rule}-{host}-{agency}-{n}", "kind": "alert", "severity": 47},
        "rule": {"id": rule, "name": f"Rule {rule}", "level": level},
        "host": {"name": host},
        "user": {"name": user},
        "source": {"ip": f"203.0.113.{n % 250}"},
        "organization": {"id": agency},
        "threat": {"technique": {"id": [technique]}},
        "message": f"Rule {rule}",
        "events": [{"event": {"id": f"ev-{n}"}, "@timestamp": ts(n), "message": f"line {n}"}],
    }


def delivered(alerts: list[dict[str, Any]]) -> list[Delivered]:
    return [Delivered(ALERTS, 0, i, "k", a) for i, a in enumerate(alerts)]


class _Counting(SqliteStore):
    """Counts the incident reads the grouping stage makes; optionally lets an analyst change an
    incident between the stage reading it and replacing it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.searches = 0
        self.multigets = 0
        self.meddle: str | None = None

    async def search(self, kind, query):  # type: ignore[no-untyped-def]
        self.searches += kind == "incidents"
        return await super().search(kind, query)

    async def get_many_versioned(self, kind, idents, scope):  # type: ignore[no-untyped-def]
        self.multigets += kind == "incidents"
        return await super().get_many_versioned(kind, idents, scope)

    async def write(self, kind, docs):  # type: ignore[no-untyped-def]
        if kind == "alerts" and self.meddle is not None:
            ident, self.meddle = self.meddle, None
            service = IncidentService(self)
            _, version = await service.get(ident, ALL)
            await service.update(ident, Actor("lan", ALL), version, assignee="lan")
        return await super().write(kind, docs)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[_Counting]:
    instance = _Counting(tmp_path / "soc.db")
    await instance.open()
    yield instance
    await instance.close()


# The lifecycle, as pure functions


def fresh() -> dict[str, Any]:
    doc = model.new_incident("k", alert(1), T0)
    return model.add_alerts(doc, [alert(1)], T0)


@pytest.mark.parametrize(
    ("path", "final"),
    [
        (["acknowledged", "investigating", "resolved"], "resolved"),
        (["acknowledged", "false_positive"], "false_positive"),
        (["investigating", "resolved"], "resolved"),
        (["false_positive"], "false_positive"),
    ],
)
def test_allowed_transitions(path: list[str], final: str) -> None:
    doc = fresh()
    for step, status in enumerate(path, start=1):
        doc = model.change_status(doc, status, T0 + timedelta(minutes=step))
    assert doc["incident"]["status"] == final
    assert doc["incident"]["tta_seconds"] == 60.0  # the first step left "new"
    assert doc["incident"]["ttr_seconds"] == 60.0 * len(path)
    assert doc["incident"]["resolved_at"] == ts(len(path))


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        (["acknowledged"], "new"),
        (["investigating"], "acknowledged"),
        (["resolved"], "investigating"),
        (["resolved"], "acknowledged"),
        (["false_positive"], "resolved"),
        ([], "new"),
        ([], "closed"),
    ],
)
def test_illegal_transitions_are_refused(path: list[str], refused: str) -> None:
    doc = fresh()
    for status in path:
        doc = model.change_status(doc, status, T0)
    with pytest.raises(model.TransitionError):
        model.change_status(doc, refused, T0)


def test_reopen_only_from_an_end_state_and_it_counts() -> None:
    doc = fresh()
    with pytest.raises(model.TransitionError):
        model.reopen(doc, T0)
    doc = model.change_status(doc, "resolved", T0 + timedelta(minutes=5))
    doc = model.reopen(doc, T0 + timedelta(minutes=6))
    body = doc["incident"]
    assert (body["status"], body["reopen_count"], body["resolved_at"]) == ("investigating", 1, None)
    doc = model.change_status(doc, "resolved", T0 + timedelta(minutes=10))
    assert doc["incident"]["ttr_seconds"] == 600.0


def test_alerts_fold_into_counts_severity_times_and_entities() -> None:
    doc = model.new_incident("k", alert(5), T0)
    doc = model.add_alerts(
        doc,
        [alert(5), alert(2, level="high", user="admin", technique="T1078"), alert(9)],
        T0,
    )
    body = doc["incident"]
    assert body["alert_count"] == 3
    assert body["severity"] == "high"
    assert (body["first_seen"], body["last_seen"]) == (ts(2), ts(9))
    assert doc["@timestamp"] == ts(9)
    assert doc["threat"]["technique"]["id"] == ["T1110", "T1078"]
    assert doc["related"]["user"] == ["root", "admin"]
    assert doc["related"]["ip"] == ["203.0.113.5", "203.0.113.2", "203.0.113.9"]


def test_keys_never_mix_agencies() -> None:
    by = ("rule.id", "host.name")
    assert model.grouping_key(alert(1), by) != model.grouping_key(alert(1, agency="so-b"), by)
    assert model.grouping_key(alert(1), by) == model.grouping_key(alert(2), by)


# Lifecycle through the service: the store's versions and the audit log


async def test_each_change_is_stored_audited_and_announced(store: SqliteStore) -> None:
    bus = MemoryBus()
    await bus.start()
    doc = fresh()
    await store.write("incidents", [doc])
    ident = doc["incident"]["id"]
    service = IncidentService(store, bus)
    consumer = await bus.subscribe(INCIDENTS, "test")
    actor = Actor("lan", ALL, "198.51.100.7")
    _, version = await service.get(ident, ALL)
    steps: list[dict[str, Any]] = [
        {"status": "acknowledged"},
        {"assignee": "lan"},
        {"status": "investigating"},
        {"tags": ["ssh", "brute-force"]},
        {"status": "resolved"},
        {"reopen": True},
        {"status": "false_positive"},
    ]
    for change in steps:
        _, version = await service.update(ident, actor, version, **change)
    _, version, comment = await service.comment(ident, actor, "Đã chặn IP 203.0.113.7")
    final, _ = await service.get(ident, ALL)
    assert final["incident"]["status"] == "false_positive"
    assert final["incident"]["assignee"] == "lan"
    assert final["incident"]["comments"][0]["text"] == "Đã chặn IP 203.0.113.7"
    trail = await store.search(
        "audit", Query(scope=ALL, filters={"audit.object.id": [ident]}, descending=False, limit=50)
    )
    actions = [entry["event"]["action"] for entry in trail.items]
    assert actions == [
        "incident.status",
        "incident.assigned",
        "incident.status",
        "incident.tagged",
        "incident.status",
        "incident.reopened",
        "incident.status",
        "incident.comment",
    ]
    first = trail.items[0]
    assert first["user"]["name"] == "lan"
    assert first["source"]["ip"] == "198.51.100.7"
    assert first["audit"]["changes"] == {"status": ["new", "acknowledged"]}
    assert first["organization"]["id"] == "so-a"
    assert first["@timestamp"]
    announced = await consumer.poll(100, 1.0)
    assert [r.value["change"] for r in announced] == [
        "status", "assigned", "status", "tagged", "status", "reopened", "status", "commented"
    ]  # fmt: skip
    assert comment["author"] == "lan"
    await bus.close()


async def test_a_stale_version_is_a_conflict_and_changes_nothing(store: SqliteStore) -> None:
    doc = fresh()
    await store.write("incidents", [doc])
    ident = doc["incident"]["id"]
    service = IncidentService(store)
    actor = Actor("lan", ALL)
    _, seen = await service.get(ident, ALL)
    await service.update(ident, actor, seen, status="acknowledged")
    with pytest.raises(Conflict):
        await service.update(ident, Actor("minh", ALL), seen, status="false_positive")
    now, _ = await service.get(ident, ALL)
    assert now["incident"]["status"] == "acknowledged"
    audit = await store.search("audit", Query(scope=ALL, filters={"user.name": ["minh"]}))
    assert audit.total == 0


async def test_illegal_change_through_the_service_is_refused_and_not_audited(
    store: SqliteStore,
) -> None:
    doc = fresh()
    await store.write("incidents", [doc])
    ident = doc["incident"]["id"]
    service = IncidentService(store)
    _, version = await service.get(ident, ALL)
    with pytest.raises(model.TransitionError):
        await service.update(ident, Actor("lan", ALL), version, status="new")
    assert (await store.search("audit", Query(scope=ALL))).total == 0


async def test_another_agency_cannot_reach_the_incident(store: SqliteStore) -> None:
    doc = fresh()
    await store.write("incidents", [doc])
    ident = doc["incident"]["id"]
    service = IncidentService(store)
    other = Scope(frozenset({"so-b"}))
    with pytest.raises(NotFound):
        await service.get(ident, other)
    _, version = await service.get(ident, ALL)
    with pytest.raises(NotFound):
        await service.update(ident, Actor("eve", other), version, status="resolved")


# Grouping alerts into incidents


async def incidents(store: SqliteStore) -> list[dict[str, Any]]:
    page = await store.search("incidents", Query(scope=ALL, limit=100, descending=False))
    return page.items


async def test_alerts_with_one_key_make_one_incident(store: SqliteStore) -> None:
    bus = MemoryBus()
    await bus.start()
    consumer = await bus.subscribe(INCIDENTS, "test")
    stage = IncidentStage(store, IncidentsConfig(), bus)
    await stage.handle(delivered([alert(n) for n in range(5)]))
    await stage.handle(delivered([alert(n) for n in range(5, 8)]))
    await stage.handle(delivered([alert(8, host="db01"), alert(9, agency="so-b")]))
    found = await incidents(store)
    assert sorted((i["incident"]["alert_count"], i["organization"]["id"]) for i in found) == [
        (1, "so-a"),
        (1, "so-b"),
        (8, "so-a"),
    ]
    main = next(i for i in found if i["incident"]["alert_count"] == 8)
    alerts = await store.search(
        "alerts", Query(scope=ALL, filters={"incident.id": [main["incident"]["id"]]}, limit=100)
    )
    assert alerts.total == 8
    changes = [r.value["change"] for r in await consumer.poll(100, 1.0)]
    assert changes == ["created", "grown", "created", "created"]
    await bus.close()


async def test_a_replayed_batch_counts_nothing_twice(store: SqliteStore) -> None:
    stage = IncidentStage(store, IncidentsConfig())
    batch = delivered([alert(n) for n in range(4)])
    await stage.handle(batch)
    await stage.handle(batch)
    # A new process (empty cache) replaying the same records.
    await IncidentStage(store, IncidentsConfig()).handle(batch)
    found = await incidents(store)
    assert [i["incident"]["alert_count"] for i in found] == [4]


async def test_a_replay_after_a_crash_between_alerts_and_incident_opens_it(
    store: SqliteStore,
) -> None:
    batch = [alert(n) for n in range(3)]
    key = model.grouping_key(batch[0], IncidentsConfig().group_by)
    ident = model.incident_id(key, batch[0]["event"]["id"])
    # The alerts were stored (with their incident id), then the process died.
    await store.write("alerts", [{**a, "incident": {"id": ident}} for a in batch])
    await IncidentStage(store, IncidentsConfig()).handle(delivered(batch))
    found = await incidents(store)
    assert [i["incident"]["id"] for i in found] == [ident]
    assert found[0]["incident"]["alert_count"] == 3


async def test_outside_the_window_or_after_closing_a_new_incident_opens(
    store: SqliteStore,
) -> None:
    config = IncidentsConfig(window_seconds=3600)
    stage = IncidentStage(store, config)
    await stage.handle(delivered([alert(0)]))
    await stage.handle(delivered([alert(1, minutes=30)]))
    await stage.handle(delivered([alert(2, minutes=200)]))  # 170 min after the last: new
    found = await incidents(store)
    assert [i["incident"]["alert_count"] for i in found] == [2, 1]
    latest = found[1]
    service = IncidentService(store)
    _, version = await service.get(latest["incident"]["id"], ALL)
    await service.update(latest["incident"]["id"], Actor("lan", ALL), version, status="resolved")
    # A fresh stage must find the state in the store, not in its cache.
    await IncidentStage(store, config).handle(delivered([alert(3, minutes=201)]))
    await stage.handle(delivered([alert(4, minutes=202)]))
    found = await incidents(store)
    assert [(i["incident"]["alert_count"], i["incident"]["status"]) for i in found] == [
        (2, "new"),
        (1, "resolved"),
        (2, "new"),
    ]


async def test_grouping_keeps_the_analysts_changes(store: SqliteStore) -> None:
    stage = IncidentStage(store, IncidentsConfig())
    await stage.handle(delivered([alert(0)]))
    ident = (await incidents(store))[0]["incident"]["id"]
    service = IncidentService(store)
    _, version = await service.get(ident, ALL)
    await service.update(ident, Actor("lan", ALL), version, status="acknowledged", assignee="lan")
    await stage.handle(delivered([alert(1), alert(2)]))
    doc, _ = await service.get(ident, ALL)
    assert doc["incident"]["alert_count"] == 3
    assert (doc["incident"]["status"], doc["incident"]["assignee"]) == ("acknowledged", "lan")


class _DiesBeforeCounting(SqliteStore):
    """A store whose next incident update fails, as if the process died between storing a
    batch's alerts and counting them in their incidents."""

    fail_next = False

    async def replace_many(self, kind, items, scope, *, wait=True):  # type: ignore[no-untyped-def]
        if kind == "incidents" and self.fail_next:
            self.fail_next = False
            raise RuntimeError("died before counting")
        return await super().replace_many(kind, items, scope, wait=wait)


def at(alerts: list[dict[str, Any]], first_offset: int, partition: int = 0) -> list[Delivered]:
    return [Delivered(ALERTS, partition, first_offset + i, "k", a) for i, a in enumerate(alerts)]


async def test_alerts_stored_by_a_batch_that_died_before_counting_are_counted_on_its_replay(
    tmp_path: Path,
) -> None:
    store = _DiesBeforeCounting(tmp_path / "soc.db")
    await store.open()
    try:
        await IncidentStage(store, IncidentsConfig()).handle(at([alert(n) for n in range(3)], 0))
        batch = at([alert(n) for n in range(3, 8)], 3)
        store.fail_next = True
        with pytest.raises(RuntimeError, match="died before counting"):
            await IncidentStage(store, IncidentsConfig()).handle(batch)
        # Its alerts are stored; the incident has not counted them.
        assert [i["incident"]["alert_count"] for i in await incidents(store)] == [3]
        stored = await store.search("alerts", Query(scope=ALL, limit=100))
        assert stored.total == 8
        # The successor reads the batch again: each of its alerts counts once.
        successor = IncidentStage(store, IncidentsConfig())
        await successor.handle(batch)
        assert [i["incident"]["alert_count"] for i in await incidents(store)] == [8]
        # And again (it died after counting, before committing): nothing counts twice.
        await successor.handle(batch)
        await IncidentStage(store, IncidentsConfig()).handle(batch)
        assert [i["incident"]["alert_count"] for i in await incidents(store)] == [8]
    finally:
        await store.close()


async def test_an_alert_published_again_upstream_is_not_counted_twice(store: SqliteStore) -> None:
    stage = IncidentStage(store, IncidentsConfig())
    await stage.handle(at([alert(n) for n in range(4)], 0))
    # Detection evaluated those events again (its engine died before committing): the same
    # alerts, further on in the topic, mixed with new ones; and one alert twice in a batch.
    await stage.handle(at([alert(2), alert(3), alert(4), alert(5), alert(5)], 4))
    await IncidentStage(store, IncidentsConfig()).handle(at([alert(1), alert(6)], 9))
    found = await incidents(store)
    assert [i["incident"]["alert_count"] for i in found] == [7]
    assert found[0]["incident"]["counted_upto"] == {"0": 10}


def test_an_incident_is_copied_whole_and_apart_from_the_original() -> None:
    doc = model.add_alerts(fresh(), [alert(2), alert(3)], T0)
    doc["related"]["ip"] = [f"198.51.100.{n}" for n in range(100)]
    copy = model.copied(doc)
    assert copy == doc
    copy["related"]["ip"].append("203.0.113.9")
    copy["incident"]["alert_count"] = 99
    assert len(doc["related"]["ip"]) == 100 and doc["incident"]["alert_count"] == 3
    # Folding alerts into an incident leaves the caller's document as it was.
    before = model.copied(doc)
    model.add_alerts(doc, [alert(4)], T0)
    assert doc == before


def test_an_incident_that_is_not_plain_json_is_still_copied_as_it_is() -> None:
    when = datetime(2026, 11, 30, tzinfo=UTC)
    doc = {"incident": {"first_seen": when, "tags": ["a"]}, 7: "key that is not text"}
    copy = model.copied(doc)
    assert copy == doc and copy["incident"]["first_seen"] == when  # a datetime still
    copy["incident"]["tags"].append("b")
    assert doc["incident"]["tags"] == ["a"]


def host_of(incident: dict[str, Any]) -> str:
    return str(incident["incident"]["title"]).rsplit(" ", 1)[-1]


async def test_a_new_process_finds_the_open_incidents_of_a_batchs_keys_in_one_search(
    store: _Counting,
) -> None:
    hosts = [f"web{n:02d}" for n in range(6)]
    await IncidentStage(store, IncidentsConfig()).handle(
        delivered([alert(n, host=host) for n, host in enumerate(hosts)])
    )
    store.searches = 0
    # A successor (nothing remembered): six keys with an open incident, one without.
    successor = IncidentStage(store, IncidentsConfig())
    await successor.handle(
        delivered([alert(10 + n, host=host) for n, host in enumerate([*hosts, "db01"])])
    )
    assert store.searches == 1
    found = await incidents(store)
    assert sorted((host_of(i), i["incident"]["alert_count"]) for i in found) == [
        ("db01", 1),
        *((host, 2) for host in hosts),
    ]


async def test_keys_a_full_page_of_open_incidents_leaves_out_are_searched_one_by_one(
    store: _Counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grouping, "_SEARCH_PAGE", 2)
    config = IncidentsConfig(window_seconds=3600)
    # Three open incidents of web01 (each opened when the one before had gone quiet), and
    # one of db01, older than the two newest of web01.
    await IncidentStage(store, config).handle(delivered([alert(0, host="db01", minutes=5)]))
    for minutes in (0, 200, 400):
        await IncidentStage(store, config).handle(delivered([alert(minutes, minutes=minutes)]))
    store.searches = 0
    successor = IncidentStage(store, config)
    await successor.handle(
        delivered([alert(401, minutes=401), alert(402, host="db01", minutes=40)])
    )
    # The page held web01's two newest; db01 was searched for on its own.
    assert store.searches == 2
    found = await incidents(store)
    assert [(host_of(i), i["incident"]["alert_count"]) for i in found] == [
        ("web01", 1),
        ("db01", 2),
        ("web01", 1),
        ("web01", 2),
    ]


async def test_incidents_read_to_join_them_are_not_read_again_to_add_the_alerts(
    store: _Counting,
) -> None:
    stage = IncidentStage(store, IncidentsConfig())
    await stage.handle(delivered([alert(0), alert(1, host="db01")]))
    store.multigets = 0
    await stage.handle(delivered([alert(2), alert(3, host="db01")]))
    assert store.multigets == 1
    assert [i["incident"]["alert_count"] for i in await incidents(store)] == [2, 2]


async def test_an_analysts_change_between_the_stage_reading_and_replacing_is_kept(
    store: _Counting,
) -> None:
    stage = IncidentStage(store, IncidentsConfig())
    await stage.handle(delivered([alert(0)]))
    ident = (await incidents(store))[0]["incident"]["id"]
    store.meddle = ident  # after the stage has read the incident, before it replaces it
    store.multigets = 0
    await stage.handle(delivered([alert(1), alert(2)]))
    # The replace under the version read first conflicted; the incident was read again.
    assert store.multigets == 2
    doc, _ = await IncidentService(store).get(ident, ALL)
    assert (doc["incident"]["alert_count"], doc["incident"]["assignee"]) == (3, "lan")
