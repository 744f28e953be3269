"""`soc agent` against a real intake on loopback: rotation, truncation, multi-line records,
restart after SIGKILL, a bounded spool, and an outage of the whole platform."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from prometheus_client import REGISTRY

from collectors.agent.agent import Agent
from soc.api.ingest import install_intake
from soc.bus.base import RAW, Consumer
from soc.bus.memory import MemoryBus
from soc.config import AgentConfig, AgentInput, ConfigError, IntakeConfig, SourceConfig
from soc.store.base import Query, Scope
from soc.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "agent-token-0123456789abcdef0123"
SOURCE = SourceConfig(
    id="portal-agent", agency="so-tttt", token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest()
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test owns signals
        return None


class Intake:
    """The intake app under uvicorn on a loopback port, publishing to a real in-process bus;
    `records` collects what reached `soc.raw`."""

    def __init__(self, port: int, limits: IntakeConfig | None = None) -> None:
        self.port = port
        self.limits = limits or IntakeConfig()
        self.url = f"http://127.0.0.1:{port}/api/v1/ingest"
        self.bus = MemoryBus()
        self.records: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._consumer: Consumer | None = None

    async def start(self) -> None:
        app = FastAPI()
        install_intake(app, self.bus, [SOURCE], self.limits)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self._server = _Server(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        )
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:  # noqa: ASYNC110 (uvicorn offers no event)
            await asyncio.sleep(0.01)
        if self._consumer is None:
            self._consumer = await self.bus.subscribe(RAW, "test")

    async def stop(self) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task

    async def collect(self) -> None:
        assert self._consumer is not None
        while batch := await self._consumer.poll(10_000, 0.01):
            self.records += [record.value for record in batch]
            await self._consumer.commit()

    async def wait_for(
        self,
        done: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 30,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.collect()
            if done(self.records):
                return self.records
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out; {len(self.records)} records so far")

    def lines(self) -> list[str]:
        return [record["data"] for record in self.records]


@pytest.fixture
async def intake() -> AsyncIterator[Intake]:
    server = Intake(free_port())
    await server.start()
    yield server
    await server.stop()


def agent_config(url: str, *inputs: AgentInput, **overrides: Any) -> AgentConfig:
    settings: dict[str, Any] = {
        "url": url,
        "token": TOKEN,
        "files": inputs,
        "batch_wait_ms": 50,
        "scan_interval_ms": 100,
        "close_inactive_ms": 500,
        "retry_max_ms": 500,
        "timeout_ms": 5000,
    }
    settings.update(overrides)
    return AgentConfig(**settings)


class Running:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.task = asyncio.create_task(agent.run())

    async def stop(self) -> None:
        self.agent.stop()
        await asyncio.wait_for(self.task, 10)


async def eventually(check: Callable[[], bool], seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def unique_ids(records: list[dict[str, Any]]) -> dict[str, str]:
    """id -> line; fails if one id ever carried two different lines."""
    seen: dict[str, str] = {}
    for record in records:
        previous = seen.setdefault(record["id"], record["data"])
        assert previous == record["data"], f"id {record['id']} reused for another line"
    return seen


async def test_lines_carry_the_agency_path_host_and_fields(intake: Intake, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    append(log, "first", "second")
    source = AgentInput(
        paths=(str(tmp_path / "*.log"),),
        format="nginx",
        host_name="web01",
        fields=("service.name=portal",),
    )
    running = Running(Agent(agent_config(intake.url, source), tmp_path / "state"))
    records = await intake.wait_for(lambda r: len(r) == 2)
    await running.stop()
    assert [r["data"] for r in records] == ["first", "second"]
    record = records[0]
    assert record["organization"] == {"id": "so-tttt"}
    assert record["source"]["type"] == "agent"
    assert record["source"]["id"] == "portal-agent"
    assert record["source"]["file"] == {"path": str(log)}
    assert record["format"] == "nginx"
    assert record["fields"] == {
        "service": {"name": "portal"},
        "host": {"name": "web01"},
        "log": {"file": {"path": str(log)}},
    }


async def test_rotation_by_rename_finishes_the_old_file_then_follows_the_new(
    intake: Intake, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    append(log, *(f"old {n}" for n in range(100)))
    source = AgentInput(paths=(str(log),))
    running = Running(Agent(agent_config(intake.url, source), tmp_path / "state"))
    await intake.wait_for(lambda r: len(r) >= 100)
    with log.open("a", encoding="utf-8") as writer:
        os.rename(log, tmp_path / "app.log.1")
        # The writer has not reopened yet: these go to the renamed file.
        writer.write("".join(f"late {n}\n" for n in range(50)))
        writer.write("last line without newline")
    append(log, *(f"new {n}" for n in range(100)))
    expected = (
        [f"old {n}" for n in range(100)]
        + [f"late {n}" for n in range(50)]
        + ["last line without newline"]
        + [f"new {n}" for n in range(100)]
    )
    records = await intake.wait_for(lambda r: len(r) >= len(expected))
    await running.stop()
    assert sorted(r["data"] for r in records) == sorted(expected)
    assert len(unique_ids(records)) == len(expected)
    # The old file's lines come before the new file's; only its unterminated last line waits
    # until the old file is finished (quiet for close_inactive).
    complete = [r["data"] for r in records if r["data"] != "last line without newline"]
    assert complete == [line for line in expected if line != "last line without newline"]
    paths = [r["source"]["file"]["path"] for r in records]
    assert paths[:150] == [str(log)] * 100 + [str(tmp_path / "app.log.1")] * 50


async def test_rotation_by_truncation_starts_again_at_zero_with_new_ids(
    intake: Intake, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    append(log, *(f"before truncation, a long line number {n}" for n in range(20)))
    source = AgentInput(paths=(str(log),))
    running = Running(Agent(agent_config(intake.url, source), tmp_path / "state"))
    await intake.wait_for(lambda r: len(r) >= 20)
    with log.open("r+") as handle:
        handle.truncate(0)
    append(log, *(f"after {n}" for n in range(5)))
    records = await intake.wait_for(lambda r: len(r) >= 25)
    await asyncio.sleep(0.5)  # nothing more may come
    await intake.collect()
    await running.stop()
    assert intake.lines()[20:] == [f"after {n}" for n in range(5)]
    assert len(records) == 25
    assert len(unique_ids(records)) == 25, "a line at a reused offset must get a new id"


async def test_multiline_records_are_joined(intake: Intake, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(
        log,
        "2026-11-28 10:00:00 ERROR request failed",
        "java.lang.IllegalStateException: boom",
        "\tat vn.gov.portal.Service.handle(Service.java:42)",
        "\tat vn.gov.portal.Servlet.doGet(Servlet.java:7)",
        "2026-11-28 10:00:01 INFO next request",
        "2026-11-28 10:00:02 WARN with a tail",
        "  tail line",
    )
    source = AgentInput(
        paths=(str(log),), multiline_start=r"^\d{4}-\d{2}-\d{2} ", multiline_timeout_ms=300
    )
    running = Running(Agent(agent_config(intake.url, source), tmp_path / "state"))
    # The last record has no successor: it is sent once its timeout passed.
    records = await intake.wait_for(lambda r: len(r) >= 3)
    await asyncio.sleep(0.5)
    await intake.collect()
    await running.stop()
    assert intake.lines() == [
        "2026-11-28 10:00:00 ERROR request failed\n"
        "java.lang.IllegalStateException: boom\n"
        "\tat vn.gov.portal.Service.handle(Service.java:42)\n"
        "\tat vn.gov.portal.Servlet.doGet(Servlet.java:7)",
        "2026-11-28 10:00:01 INFO next request",
        "2026-11-28 10:00:02 WARN with a tail\n  tail line",
    ]
    assert len(unique_ids(records)) == 3


async def test_start_at_end_skips_the_history_of_files_already_there(
    intake: Intake, tmp_path: Path
) -> None:
    old = tmp_path / "old.log"
    append(old, "history 1", "history 2")
    with old.open("a") as handle:
        handle.write("partial history")  # its end arrives later: a line not seen whole
    source = AgentInput(paths=(str(tmp_path / "*.log"),), start_at="end")
    running = Running(Agent(agent_config(intake.url, source), tmp_path / "state"))
    await asyncio.sleep(0.5)  # the first scan has passed
    append(old, " ends", "new in old")
    append(tmp_path / "created.log", "created after start")  # read from its beginning
    await intake.wait_for(lambda r: len(r) >= 3)
    await asyncio.sleep(0.3)
    await intake.collect()
    await running.stop()
    assert sorted(intake.lines()) == ["created after start", "new in old", "partial history ends"]


async def test_a_restart_resumes_at_the_saved_offsets(intake: Intake, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, *(f"first run {n}" for n in range(30)))
    source = AgentInput(paths=(str(log),))
    config = agent_config(intake.url, source)
    running = Running(Agent(config, tmp_path / "state"))
    await intake.wait_for(lambda r: len(r) >= 30)
    await running.stop()
    append(log, *(f"while stopped {n}" for n in range(10)))
    running = Running(Agent(config, tmp_path / "state"))
    await intake.wait_for(lambda r: len(r) >= 40)
    await asyncio.sleep(0.3)
    await intake.collect()
    await running.stop()
    assert intake.lines()[30:] == [f"while stopped {n}" for n in range(10)]
    assert len(intake.records) == 40


async def test_a_file_whose_device_number_changed_keeps_its_offset_and_ids(
    intake: Intake, tmp_path: Path
) -> None:
    """A volume renumbered at boot changes st_dev: the same path, inode and first bytes are
    the same file, resumed where it was, not sent again under new ids."""
    log = tmp_path / "app.log"
    append(log, *(f"before reboot {n}" for n in range(10)))
    config = agent_config(intake.url, AgentInput(paths=(str(log),)))
    running = Running(Agent(config, tmp_path / "state"))
    await intake.wait_for(lambda r: len(r) >= 10)
    await running.stop()
    offsets = tmp_path / "state" / "offsets.json"
    saved = orjson.loads(offsets.read_bytes())
    for state in saved["files"].values():
        state["dev"] += 1  # as if the volume came back under another device number
    offsets.write_bytes(orjson.dumps(saved))
    append(log, "after reboot")
    running = Running(Agent(config, tmp_path / "state"))
    await intake.wait_for(lambda r: len(r) >= 11)
    await asyncio.sleep(0.5)
    await intake.collect()
    await running.stop()
    assert intake.lines()[10:] == ["after reboot"]
    assert len(unique_ids(intake.records)) == 11
    (state,) = orjson.loads(offsets.read_bytes())["files"].values()
    assert state["dev"] == log.stat().st_dev, "found again under its new device number"


async def test_a_batch_the_intake_refuses_is_parked_on_disk_not_retried_forever(
    tmp_path: Path,
) -> None:
    server = Intake(free_port(), IntakeConfig(max_lines=5))
    await server.start()
    log = tmp_path / "app.log"
    append(log, *(f"in a batch too large {n}" for n in range(10)))
    config = agent_config(server.url, AgentInput(paths=(str(log),)), batch_lines=10)
    parked_before = REGISTRY.get_sample_value(
        "soc_dropped_total", {"stage": "agent", "reason": "parked"}
    )
    running = Running(Agent(config, tmp_path / "state"))
    parked = tmp_path / "state" / "parked"
    assert await eventually(lambda: len(list(parked.glob("*.ndjson.gz"))) == 1, 10)
    append(log, "small enough")
    records = await server.wait_for(lambda r: len(r) >= 1)
    await running.stop()
    await server.stop()
    assert [r["data"] for r in records] == ["small enough"]
    (batch,) = parked.glob("*.ndjson.gz")
    kept = [orjson.loads(line)["data"] for line in gzip.decompress(batch.read_bytes()).splitlines()]
    assert kept == [f"in a batch too large {n}" for n in range(10)], "kept for an operator"
    parked_after = REGISTRY.get_sample_value(
        "soc_dropped_total", {"stage": "agent", "reason": "parked"}
    )
    assert (parked_after or 0) == (parked_before or 0) + 1


async def test_a_full_spool_pauses_reading_and_nothing_is_lost(tmp_path: Path) -> None:
    server = Intake(free_port())
    log = tmp_path / "app.log"
    lines = [f"line {n:05d} " + "x" * 200 for n in range(3000)]
    append(log, *lines)
    source = AgentInput(paths=(str(log),))
    config = agent_config(server.url, source, batch_lines=100, spool_max_bytes=20_000)
    running = Running(Agent(config, tmp_path / "state"))
    spool = tmp_path / "state" / "spool"

    def spooled() -> int:
        return sum(f.stat().st_size for f in spool.glob("*.ndjson.gz"))

    # The intake is not there: the spool fills up to its bound, and no further.
    assert await eventually(lambda: spooled() >= 20_000, 30)
    await asyncio.sleep(0.5)
    assert spooled() < 20_000 + 10_000, "at most one batch past the bound"
    offsets = (tmp_path / "state" / "offsets.json").read_text()
    saved = int(re.search(r'"offset":(\d+)', offsets)[1])  # type: ignore[index]
    assert 0 < saved < log.stat().st_size, "reading paused before the end of the file"
    await server.start()
    records = await server.wait_for(lambda r: len(unique_ids(r)) >= len(lines), timeout=60)
    # The last answer is on its way back; then the spool is empty.
    await eventually(lambda: not list(spool.glob("*.ndjson.gz")), 10)
    await running.stop()
    await server.stop()
    assert sorted({r["data"] for r in records}) == lines
    assert not list(spool.glob("*.ndjson.gz")), "the spool is emptied once sent"


def open_descriptors_on(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            continue
    return count


async def test_an_idle_file_is_released_and_followed_again_when_it_grows(
    intake: Intake, tmp_path: Path
) -> None:
    log = tmp_path / "quiet.log"
    append(log, "first")
    config = agent_config(intake.url, AgentInput(paths=(str(log),)), release_idle_ms=300)
    running = Running(Agent(config, tmp_path / "state"))
    await intake.wait_for(lambda r: len(r) == 1)
    assert await eventually(lambda: open_descriptors_on(log) == 0, 10), "released when idle"
    append(log, "second", "third")
    await intake.wait_for(lambda r: len(r) >= 3)
    await asyncio.sleep(0.5)
    await intake.collect()
    await running.stop()
    assert intake.lines() == ["first", "second", "third"]


async def test_invalid_utf8_lines_reach_the_intake_byte_for_byte(
    intake: Intake, tmp_path: Path
) -> None:
    log = tmp_path / "latin1.log"
    raw = "Đăng nhập thất bại".encode() + b" \xff\xfe caf\xe9"
    log.write_bytes(raw + b"\n")
    running = Running(
        Agent(agent_config(intake.url, AgentInput(paths=(str(log),))), tmp_path / "s")
    )
    (record,) = await intake.wait_for(lambda r: len(r) == 1)
    await running.stop()
    assert record["flags"] == ["invalid_utf8"]
    assert base64.b64decode(record["data_b64"]) == raw
    assert record["data"].startswith("Đăng nhập thất bại")


async def test_an_overlong_line_is_cut_flagged_and_the_next_lines_follow(
    intake: Intake, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    # Longer than one read (256 KiB): the cut must hold across chunks.
    log.write_bytes(b"short one\n" + b"A" * 700_000 + b"\nshort two\n")
    config = agent_config(intake.url, AgentInput(paths=(str(log),)), max_line_bytes=1000)
    running = Running(Agent(config, tmp_path / "state"))
    records = await intake.wait_for(lambda r: len(r) >= 3)
    await running.stop()
    assert [r["data"][:9] for r in records] == ["short one", "AAAAAAAAA", "short two"]
    assert records[1]["data"] == "A" * 1000
    assert records[1]["flags"] == ["truncated"]
    assert "flags" not in records[2]


def write_config(path: Path, settings: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "soc", "agent", "--config", str(config)],
            stdout=sink,
            stderr=sink,
            cwd=config.parent,
        )


def agent_yaml(url: str, tmp_path: Path, pattern: str, **agent: Any) -> dict[str, Any]:
    return {
        "log": {"level": "info"},
        "metrics": {"enabled": False},
        "agent": {
            "url": url,
            "token": TOKEN,
            "state_dir": str(tmp_path / "state"),
            "batch_wait_ms": 50,
            "scan_interval_ms": 100,
            "close_inactive_ms": 1000,
            "retry_max_ms": 1000,
            "files": [{"paths": [pattern]}],
            **agent,
        },
    }


async def test_sigkill_mid_stream_then_restart_loses_nothing_and_resends_little(
    intake: Intake, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    lines = [f"line {n:06d}" for n in range(40_000)]
    append(log, *lines)
    batch = 200
    config = write_config(
        tmp_path / "agent.yaml",
        agent_yaml(intake.url, tmp_path, str(log), batch_lines=batch),
    )
    process = start_agent(config, tmp_path / "agent.log")
    try:
        await intake.wait_for(lambda r: len(r) >= 10_000, timeout=60)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        await intake.collect()
        before = len(intake.records)
        assert before < len(lines), "killed mid-stream"
        process = start_agent(config, tmp_path / "agent.log")
        records = await intake.wait_for(
            lambda r: len(r) >= len(lines) and len({x["id"] for x in r}) >= len(lines), timeout=60
        )
    finally:
        process.kill()
        process.wait(10)
    assert sorted(unique_ids(records).values()) == lines
    resent = len(records) - len(lines)
    # Only what was in flight at the kill comes again (the batches held in memory, offsets
    # not yet on disk), not the 10,000+ lines acknowledged before it.
    assert 0 <= resent <= 10 * batch, resent


# -- the outage: `soc run` down for 30 s while the files rotate ------------------------------


def start_soc(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    config = write_config(
        tmp_path / "soc.yaml",
        {
            "data_dir": str(tmp_path / "data"),
            "http": f"127.0.0.1:{port}",
            "syslog": {"listen": "127.0.0.1:0"},
            "rules": {"paths": [str(ROOT / "rules")]},
            "auth": {"api_token": "outage-test-api-token-0123456789"},
            "sources": [{"id": SOURCE.id, "agency": SOURCE.agency, "token": TOKEN}],
        },
    )
    log = tmp_path / "soc.log"
    starts = log.read_text(errors="replace").count(" ready ") if log.exists() else 0
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "soc", "--config", str(config), "run"],
            stdout=sink,
            stderr=sink,
            cwd=tmp_path,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"soc run exited early:\n{log.read_text(errors='replace')}")
        if log.read_text(errors="replace").count(" ready ") > starts:
            return process
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"soc run did not start:\n{log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(60) == 0
    finally:
        process.kill()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def stored_originals(db: Path) -> list[str]:
    store = SqliteStore(db)
    await store.open()
    try:
        page = await store.search(
            "events",
            Query(
                scope=Scope.everything(),
                filters={"organization.id": [SOURCE.agency]},
                limit=100_000,
            ),
        )
    finally:
        await store.close()
    return [item["event"]["original"] for item in page.items]


@pytest.mark.e2e
async def test_outage_of_30s_while_files_rotate_stores_every_line_once(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    url = f"http://127.0.0.1:{port}/api/v1/ingest"
    config = write_config(
        tmp_path / "agent.yaml", agent_yaml(url, tmp_path, str(log), batch_lines=100)
    )
    written: list[str] = []

    def write(count: int, label: str) -> None:
        batch = [f"{label} {len(written) + n:05d}" for n in range(count)]
        append(log, *batch)
        written.extend(batch)

    soc = start_soc(tmp_path, port)
    processes.append(soc)
    agent = start_agent(config, tmp_path / "agent.log")
    processes.append(agent)
    write(500, "before")
    await asyncio.sleep(2)
    stop(soc)  # the intake goes down
    down = time.monotonic()
    for rotation in range(3):
        write(300, f"outage-{rotation}")
        os.rename(log, logs / f"app.log.{rotation + 1}")  # rotation by rename
        await asyncio.sleep(2)
        write(200, f"after-rotation-{rotation}")
        await asyncio.sleep(2)
    await asyncio.sleep(max(0.0, 30 - (time.monotonic() - down)))
    spool = tmp_path / "state" / "spool"
    assert list(spool.glob("*.ndjson.gz")), "the agent spooled during the outage"
    soc = start_soc(tmp_path, port)
    processes.append(soc)
    write(300, "back")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        if not list(spool.glob("*.ndjson.gz")) and _agent_caught_up(tmp_path, log):
            break
    else:
        pytest.fail("the agent did not catch up:\n" + (tmp_path / "agent.log").read_text())
    await asyncio.sleep(1.5)  # the last batch acknowledged
    stop(soc)  # drains the pipeline into the store
    stop(agent)
    stored = await stored_originals(tmp_path / "data" / "soc.db")
    assert len(stored) == len(written)
    assert sorted(stored) == sorted(written)


def _agent_caught_up(tmp_path: Path, log: Path) -> bool:
    offsets = (tmp_path / "state" / "offsets.json").read_text()
    size = log.stat().st_size
    return any(int(match) == size for match in re.findall(r'"offset":(\d+)', offsets))


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"url": "ftp://soc/ingest"}, "agent.url"),
        ({"token": ""}, "agent.token"),
        ({"token": "", "token_file": "/nonexistent/token"}, "agent.token_file"),
        ({"files": ()}, "agent.files"),
        ({"files": (AgentInput(paths=("/x",), multiline_start="(unclosed"),)}, "multiline_start"),
        ({"files": (AgentInput(paths=("/x",), fields=("no-equals",)),)}, "agent.files[0].fields"),
        ({"files": (AgentInput(paths=("/x",), start_at="middle"),)}, "agent.files[0].start_at"),
    ],
)
def test_a_wrong_agent_setting_is_named(
    tmp_path: Path, settings: dict[str, Any], named: str
) -> None:
    config = agent_config("http://127.0.0.1:1/api/v1/ingest", AgentInput(paths=("/x",)))
    with pytest.raises(ConfigError, match=re.escape(named)):
        Agent(replace(config, **settings), tmp_path / "state")


def test_soc_agent_without_a_url_exits_2_naming_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "soc", "agent"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "SOC_AGENT__TOKEN": TOKEN},
        timeout=60,
    )
    assert result.returncode == 2
    assert "agent.url" in result.stderr


async def test_the_token_can_come_from_a_file(intake: Intake, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    log = tmp_path / "app.log"
    append(log, "sent with the token from a file")
    config = agent_config(intake.url, AgentInput(paths=(str(log),)))
    running = Running(Agent(replace(config, token="", token_file=str(token)), tmp_path / "s"))
    records = await intake.wait_for(lambda r: len(r) == 1)
    await running.stop()
    assert records[0]["organization"] == {"id": "so-tttt"}
