"""Retention over a real SQLite file and (when reachable) a real Elasticsearch: what is older than
its period goes, with its free-text rows; what is younger stays; a configuration that would
delete before the legal minimum never starts."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from soc.cli import main
from soc.config import ConfigError, RetentionConfig, load_config
from soc.retention import cutoff, periods, purge_once, run_retention
from soc.store.base import KINDS, Query, Scope
from soc.store.elasticsearch import ElasticsearchStore
from soc.store.sqlite import SqliteStore
from soc.timeutil import format_ts
from tests.local_services import ES as ES_URL
from tests.local_services import drop_store, es_unreachable

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ALL = Scope.everything()
#: Keep a year of events and two of alerts; incidents for ever (0).
CONFIG = RetentionConfig(events_days=365, alerts_days=730, incidents_days=0)


def doc(ident: str, days_ago: int, text: str = "sshd failed password") -> dict[str, Any]:
    return {
        "@timestamp": format_ts(NOW - timedelta(days=days_ago)),
        "event": {"id": ident, "kind": "event"},
        "organization": {"id": "so-tttt"},
        "host": {"name": "web01"},
        "message": f"{text} {ident}",
    }


def deleted(kind: str, unit: str) -> float:
    value = REGISTRY.get_sample_value("soc_retention_deleted_total", {"kind": kind, "unit": unit})
    return value or 0.0


async def test_sqlite_deletes_old_documents_and_their_text_rows(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "soc.db")
    await store.open()
    try:
        await store.write("events", [doc(f"e{d}", d) for d in (1, 100, 364, 367, 400, 800)])
        await store.write("alerts", [doc(f"a{d}", d) for d in (1, 400, 729, 732, 1000)])
        before = deleted("events", "documents")
        purges = await purge_once(store, CONFIG, now=NOW)
        events = await store.search("events", Query(scope=ALL, limit=100))
        alerts = await store.search("alerts", Query(scope=ALL, limit=100))
        # The free-text index must not keep rows of deleted documents: an old word finds nothing.
        found_old = await store.search("events", Query(scope=ALL, text="e800"))
    finally:
        await store.close()
    assert sorted(d["event"]["id"] for d in events.items) == ["e1", "e100", "e364"]
    assert sorted(d["event"]["id"] for d in alerts.items) == ["a1", "a400", "a729"]
    assert found_old.total == 0
    assert {p.kind: p.deleted for p in purges}["events"] == 3
    assert deleted("events", "documents") - before == 3
    with sqlite3.connect(tmp_path / "soc.db") as conn:
        (fts_rows,) = conn.execute("SELECT COUNT(*) FROM events_fts").fetchone()
    assert fts_rows == 3


async def test_sqlite_purge_in_small_batches_deletes_everything_due(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "soc.db")
    await store.open()
    try:
        await store.write("events", [doc(f"old{i}", 500 + i % 7) for i in range(23)])
        await store.write("events", [doc("new", 2)])
        count = await store.delete_before("events", cutoff(365, NOW), batch_size=5)
        left = await store.search("events", Query(scope=ALL))
    finally:
        await store.close()
    assert count == 23
    assert [d["event"]["id"] for d in left.items] == ["new"]


async def test_a_period_of_zero_keeps_for_ever(tmp_path: Path) -> None:
    assert "incidents" not in periods(CONFIG)
    assert "audit" not in periods(CONFIG)
    forever = RetentionConfig(events_days=0, alerts_days=0, incidents_days=0)
    store = SqliteStore(tmp_path / "soc.db")
    await store.open()
    try:
        await store.write("events", [doc("ancient", 5000)])
        assert await purge_once(store, forever, now=NOW) == []
        assert (await store.search("events", Query(scope=ALL))).total == 1
    finally:
        await store.close()


async def test_the_periodic_task_purges_at_start_and_stops_when_asked(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "soc.db")
    await store.open()
    try:
        await store.write("events", [doc("ancient", 5000), doc("today", 0)])
        stop = asyncio.Event()
        task = asyncio.create_task(run_retention(store, CONFIG, stop))
        for _ in range(100):
            if (await store.search("events", Query(scope=ALL))).total == 1:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
        left = await store.search("events", Query(scope=ALL))
    finally:
        await store.close()
    assert [d["event"]["id"] for d in left.items] == ["today"]
    assert REGISTRY.get_sample_value("soc_retention_last_success_timestamp_seconds")


class _Broken:
    """A store whose retention fails: the pass is counted as an error, not swallowed."""

    async def delete_before(self, kind: str, day: object) -> int:
        raise ConnectionError("store away")


async def test_a_failed_pass_is_counted_and_raised() -> None:
    before = REGISTRY.get_sample_value("soc_retention_errors_total", {"kind": "events"}) or 0.0
    with pytest.raises(ConnectionError):
        await purge_once(_Broken(), CONFIG, now=NOW)  # type: ignore[arg-type]
    after = REGISTRY.get_sample_value("soc_retention_errors_total", {"kind": "events"})
    assert after == before + 1


@pytest.mark.parametrize("key", ["events_days", "alerts_days", "incidents_days"])
def test_keeping_less_than_the_legal_minimum_is_refused(key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(file=None, environ={f"SOC_RETENTION__{key.upper()}": "90"})
    message = str(error.value)
    assert f"retention.{key}" in message
    assert "legal minimum of 365 days" in message


def test_the_default_minimum_is_twelve_months_and_defaults_respect_it() -> None:
    config = load_config(file=None, environ={})
    assert config.retention.legal_minimum_days == 365
    for kind in KINDS:
        days = periods(config.retention).get(kind)
        assert days is None or days >= 365


def test_soc_refuses_to_start_with_a_short_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "soc.yaml"
    config.write_text("retention:\n  alerts_days: 30\n")
    assert main(["--config", str(config), "run", "--data-dir", str(tmp_path)]) == 2
    assert (
        "retention.alerts_days: 30 days is less than the legal minimum" in capsys.readouterr().err
    )


async def test_elasticsearch_drops_dated_indices_older_than_the_period() -> None:
    if reason := es_unreachable():
        pytest.skip(reason)
    prefix = f"soc-test-ret-{uuid.uuid4().hex[:8]}"
    store = ElasticsearchStore(ES_URL, prefix=prefix)
    await store.open()
    try:
        await store.write("events", [doc("e400", 400), doc("e2", 2)])
        await store.write("alerts", [doc("a800", 800), doc("a2", 2)])
        before = deleted("events", "indices")
        purges = await purge_once(store, CONFIG, now=NOW)
        await asyncio.sleep(0)
        events = await store.search("events", Query(scope=ALL))
        alerts = await store.search("alerts", Query(scope=ALL))
    finally:
        await store.close()
        drop_store(prefix)
    by_kind = {p.kind: p for p in purges}
    assert by_kind["events"].indices == (f"{prefix}-events-2025.10.24",)
    assert by_kind["alerts"].indices == (f"{prefix}-alerts-2024.09",)
    assert [d["event"]["id"] for d in events.items] == ["e2"]
    assert [d["event"]["id"] for d in alerts.items] == ["a2"]
    assert deleted("events", "indices") - before == 1
