"""What both stores index for free-text search of an event: its original record, and its message
only where the message holds words the original does not (see the store contract's free-text
tests for the searches themselves)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from soc.store.base import Query, Scope
from soc.store.documents import fts_text
from soc.store.sqlite import SqliteStore


def _event(original: str | None, message: str) -> dict[str, object]:
    event: dict[str, object] = {"id": "e1", "kind": "event"}
    if original is not None:
        event["original"] = original
    return {"event": event, "message": message, "host": {"name": "web00"}}


def test_a_syslog_lines_message_is_not_indexed_a_second_time() -> None:
    line = "<38>Nov 28 10:00:00 web00 sshd[1000]: Failed password for root from 203.0.113.0"
    assert fts_text("events", _event(line, line.split(": ", 1)[1])) == line
    assert fts_text("events", _event(line, line)) == line
    assert fts_text("events", _event(line, "")) == line


def test_a_message_with_words_of_its_own_is_indexed_beside_the_original() -> None:
    assert fts_text("events", _event("app: xfailed loginz", "failed login")) == (
        "app: xfailed loginz\nfailed login"
    )
    assert fts_text("events", _event("code=ABC123", "ABC")) == "code=ABC123\nABC"
    assert fts_text("events", _event("GET /a", "rewritten by the parser")) == (
        "GET /a\nrewritten by the parser"
    )


def test_an_event_without_an_original_has_every_string_indexed() -> None:
    text = fts_text("events", _event(None, "hello"))
    assert text.split("\n") == ["e1", "event", "hello", "web00"]


async def test_sqlite_text_indexed_before_d_was_mapped_is_still_found(tmp_path: Path) -> None:
    """A database written before `đ` was mapped to `d` holds `đ` in its index: the word as
    written still finds it, and the new text is found both ways."""
    store = SqliteStore(tmp_path / "soc.db")
    await store.open()
    try:
        old = {"@timestamp": "2026-11-28T08:00:00Z", "event": {"id": "old"}, "message": "Đăng"}
        new = {**old, "event": {"id": "new"}}
        await store.write("events", [old, new])
        with sqlite3.connect(tmp_path / "soc.db") as conn:  # as the previous version indexed it
            conn.execute(
                "UPDATE events_fts SET text = 'Đăng' WHERE rowid ="
                " (SELECT rowid FROM events WHERE id = 'old')"
            )

        async def found(text: str) -> list[str]:
            page = await store.search("events", Query(scope=Scope.everything(), text=text))
            return sorted(d["event"]["id"] for d in page.items)

        assert await found("Đăng") == ["new", "old"]
        assert await found("dang") == ["new"]
    finally:
        await store.close()
