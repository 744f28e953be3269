"""`soc agent`: tail files, push their records to the intake, spool while it is unreachable.

Flow: the reader follows every file matched by the configured globs, joins lines into records,
and cuts batches (by count, bytes and age). While the intake answers, batches go to it straight
from memory, and a file's offset is saved only once the intake acknowledged its batch. When a
push fails, the batch and every one behind it go to the spool on disk (their offsets are saved
then: the spool survives a restart), the reader goes on filling the spool, and the sender retries
the oldest spooled batch with exponential backoff and jitter until the intake is back and the
spool is empty. When the spool reaches its bound the reader pauses: lines wait in their files,
where nothing is lost. After a crash the agent resumes at the saved offsets and sends the spool
first; a line re-read is re-sent with the same id (file identity and offset), which the store
absorbs. Delivery is at-least-once, and one host's records reach the intake in order (one
request in flight).

Modules: `tail` (a file's identity, lines and multi-line records), `store` (offsets and spool on
disk), this one (scanning, batching, sending).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import fnmatch
import glob
import gzip
import logging
import os
import random
import re
import signal
import socket
import ssl
import stat
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import prometheus_client

from collectors.agent.store import FileState, Offsets, Spool, write_atomically
from collectors.agent.tail import Identity, Joiner, Record, Tail
from soc import __version__, metrics
from soc.config import AgentConfig, AgentInput, Config, ConfigError

log = logging.getLogger("soc.agent")

#: Batches held in memory between the reader and the sender while the intake answers.
_QUEUE_BATCHES = 4
_IDLE_SLEEP = 0.05
#: Records the reader handles before it lets the sender run.
_YIELD_EVERY = 200
_RETRY_BASE = 0.5
_READ = metrics.AGENT_LINES.labels("read")
#: Intake answers that mean "this batch will never be accepted": parked, not retried.
_REFUSED = frozenset({400, 413, 415, 422})


@dataclass
class _Input:
    config: AgentInput
    start: re.Pattern[str] | None
    fields: dict[str, Any]


@dataclass
class _Followed:
    tail: Tail
    input: _Input
    joiner: Joiner
    seen: bool = True
    #: Found by the agent's first scan (there before it started), not created since.
    preexisting: bool = False
    #: When the file last grew (monotonic); a file no longer under its glob is finished after
    #: `close_inactive` without growth.
    active: float = 0.0
    #: The input's fields plus this file's `log.file.path`.
    fields: dict[str, Any] = field(default_factory=dict)

    _item_tail: bytes = b""

    @property
    def key(self) -> str:
        assert self.tail.identity is not None
        return self.tail.identity.key

    def named(self, path: str) -> None:
        self.tail.path = path
        fields = copy.deepcopy(self.input.fields)
        fields.setdefault("log", {}).setdefault("file", {})["path"] = path
        self.fields = fields
        self._item_tail = b""

    def identified(self, identity: Identity | None) -> None:
        self.tail.identity = identity
        self._item_tail = b""

    def item_tail(self) -> bytes:
        """The end of every item of this file: `"file":...,"path":...,"fields":...}`."""
        if not self._item_tail:
            item: dict[str, Any] = {"file": self.key, "path": self.tail.path, "fields": self.fields}
            if self.input.config.format:
                item["format"] = self.input.config.format
            self._item_tail = orjson.dumps(item)[1:]
        return self._item_tail


@dataclass
class Batch:
    lines: list[bytes] = field(default_factory=list)
    size: int = 0
    #: Identity key -> offset up to which this batch holds the file's records.
    ends: dict[str, int] = field(default_factory=dict)
    started: float = 0.0
    #: The request body (gzipped NDJSON), made once the batch is complete.
    body: bytes = b""

    def seal(self) -> None:
        self.body = gzip.compress(b"\n".join(self.lines) + b"\n", compresslevel=1, mtime=0)


def _parse_fields(pairs: tuple[str, ...], key: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"{key}: expected dotted.name=value, got {pair!r}")
        node = fields
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return fields


def _inputs(agent: AgentConfig) -> list[_Input]:
    if not agent.files:
        raise ConfigError("agent.files: at least one input with 'paths' is required")
    inputs = []
    for i, item in enumerate(agent.files):
        key = f"agent.files[{i}]"
        if not item.paths:
            raise ConfigError(f"{key}.paths: at least one glob pattern is required")
        try:
            start = re.compile(item.multiline_start) if item.multiline_start else None
        except re.error as exc:
            raise ConfigError(f"{key}.multiline_start: not a valid regex: {exc}") from None
        if item.start_at not in {"beginning", "end"}:
            raise ConfigError(f"{key}.start_at: expected beginning or end, got {item.start_at!r}")
        fields = _parse_fields(item.fields, f"{key}.fields")
        fields.setdefault("host", {})["name"] = item.host_name or socket.gethostname()
        inputs.append(_Input(item, start, fields))
    return inputs


def _token(agent: AgentConfig) -> str:
    if agent.token_file:
        try:
            token = Path(agent.token_file).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"agent.token_file: cannot read {agent.token_file}: {exc}") from None
    else:
        token = agent.token
    if not token:
        raise ConfigError("agent.token or agent.token_file: the source's intake token is needed")
    return token


class Agent:
    def __init__(self, agent: AgentConfig, state_dir: Path) -> None:
        if not agent.url.startswith(("http://", "https://")):
            raise ConfigError(f"agent.url: expected the intake's http(s) URL, got {agent.url!r}")
        self.config = agent
        self._inputs = _inputs(agent)
        self._token = _token(agent)
        state_dir.mkdir(parents=True, exist_ok=True)
        self._state_dir = state_dir
        self._offsets = Offsets(state_dir / "offsets.json")
        self._spool = Spool(state_dir / "spool")
        self._parked = state_dir / "parked"
        self._followed: dict[tuple[int, int], _Followed] = {}
        self._queue: deque[Batch] = deque()
        self._outage = len(self._spool) > 0
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._batch = Batch()
        self._failures = 0
        self._last_scan = 0.0
        self._first_scan = True
        #: Generation a truncated file's next identity takes (dev, ino -> generation).
        self._generations: dict[tuple[int, int], int] = {}
        self._dirty = asyncio.Event()
        self._save_lock = asyncio.Lock()

    @property
    def spooled(self) -> int:
        """Batches waiting in the spool."""
        return len(self._spool)

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    async def run(self) -> None:
        verify: ssl.SSLContext | bool = self.config.verify_tls
        if self.config.ca_file:
            verify = ssl.create_default_context(cafile=self.config.ca_file)
        elif not self.config.verify_tls:
            log.warning("agent.verify_tls is off: the intake's certificate is not checked")
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "gzip",
            "User-Agent": f"soc-agent/{__version__}",
        }
        timeout = httpx.Timeout(self.config.timeout_ms / 1000)
        async with httpx.AsyncClient(verify=verify, headers=headers, timeout=timeout) as client:
            sender = asyncio.create_task(self._send_loop(client), name="agent-sender")
            saver = asyncio.create_task(self._save_loop(), name="agent-saver")
            try:
                await self._read_loop([sender, saver])
            finally:
                for task in (sender, saver):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await self._save()
                for followed in self._followed.values():
                    followed.tail.close()
        log.info("agent stopped spooled_batches=%d", len(self._spool))

    # -- reading ----------------------------------------------------------------------------

    async def _read_loop(self, helpers: list[asyncio.Task[None]]) -> None:
        scan_every = self.config.scan_interval_ms / 1000
        wait = self.config.batch_wait_ms / 1000
        while not self._stop.is_set():
            for helper in helpers:
                if helper.done():
                    helper.result()  # the sender or saver failed (a disk error): say why
            now = time.monotonic()
            if now - self._last_scan >= scan_every:
                self._scan(now)
                self._last_scan = now
                self._first_scan = False
            if self._outage and self._spool.size >= self.config.spool_max_bytes:
                # The spool is full: stop reading, the lines wait safely in their files.
                await self._pause(0.2)
                continue
            progressed = await self._read_all(now)
            if self._batch.lines and (now - self._batch.started >= wait):
                await self._submit()
            if not progressed:
                await self._pause(_IDLE_SLEEP)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _read_all(self, now: float) -> bool:
        progressed = False
        release = self.config.release_idle_ms / 1000
        for key, followed in list(self._followed.items()):
            records = await self._read_file(followed, now)
            if records:
                progressed = True
                for count, record in enumerate(records, 1):
                    await self._add(followed, record)
                    if not count % _YIELD_EVERY:
                        # Let the sender run: an answer left waiting while the reader goes on
                        # is time the intake sits idle.
                        await asyncio.sleep(0)
                await asyncio.sleep(0)
            elif followed.joiner.due(now):
                for record in followed.joiner.flush():
                    await self._add(followed, record)
            if now - followed.active < self.config.close_inactive_ms / 1000:
                continue
            if not followed.seen:
                await self._finish(key, followed)
            elif release and now - followed.active >= release and self._all_saved(followed):
                # Idle and all of it safe: let the descriptor go (thousands of old files must
                # not exhaust them); a scan opens it again once it grows.
                followed.tail.close()
                del self._followed[key]
        return progressed

    def _all_saved(self, followed: _Followed) -> bool:
        if followed.tail.identity is None or followed.joiner.pending:
            return False
        state = self._offsets.files.get(followed.key)
        return state is not None and state.offset == followed.tail.position

    async def _read_file(self, followed: _Followed, now: float) -> list[Record]:
        tail = followed.tail
        size = tail.size()
        if size < tail.position or (
            tail.identity is not None and size and not tail.matches(tail.identity)
        ):
            await self._truncated(followed)
        if tail.identity is None and not await self._identify(followed):
            return []
        lines = tail.read()
        if not lines:
            return []
        self._current_name(followed)
        followed.active = now
        records: list[Record] = []
        for line in lines:
            records += followed.joiner.feed(line, now)
        return records

    async def _truncated(self, followed: _Followed) -> None:
        """Truncated in place (copytruncate): start again at 0 under a new identity, so the
        new lines' ids differ from those of the lines that were at the same offsets. What was
        read of the old content is sent first, under the old identity."""
        tail = followed.tail
        log.info("file truncated, reading from its start path=%s", tail.path)
        if tail.identity is not None:
            now = time.monotonic()
            for line in tail.finish():
                for record in followed.joiner.feed(line, now):
                    await self._add(followed, record)
            for record in followed.joiner.flush():
                await self._add(followed, record)
            self._generations[(tail.dev, tail.ino)] = tail.identity.generation + 1
            self._offsets.files.pop(tail.identity.key, None)
        tail.seek(0)
        followed.identified(None)

    async def _identify(self, followed: _Followed) -> bool:
        """Give a file its identity once it has bytes, resuming at a saved offset if it is a
        file already read; the identity is saved before any of its lines is sent, so ids stay
        the same across a restart."""
        tail = followed.tail
        generation = self._generations.get((tail.dev, tail.ino), 0)
        resumed = None
        for key, state in list(self._offsets.files.items()):
            if (state.dev, state.ino) != (tail.dev, tail.ino):
                continue
            known = Identity(state.dev, state.ino, state.fingerprint, state.fingerprint_len,
                             state.generation, key)  # fmt: skip
            if tail.matches(known) and tail.size() >= state.offset:
                resumed = (known, state.offset)
                break
            # Another file under a reused inode, or truncated while we were away.
            generation = max(generation, state.generation + 1)
            del self._offsets.files[key]
        if resumed is None:
            resumed = self._renumbered(tail)
        if resumed is not None:
            identity, offset = resumed
        else:
            found = tail.identify(generation)
            if found is None:
                return False
            identity, offset = found, 0
            if followed.preexisting and followed.input.config.start_at == "end":
                offset = tail.end_of_last_line()
        followed.identified(identity)
        tail.seek(offset)
        self._offsets.files[identity.key] = FileState(
            tail.dev, tail.ino, identity.fingerprint, identity.fingerprint_len,
            identity.generation, offset, tail.path,
        )  # fmt: skip
        # Saved before any of its lines is sent: the identity (and so the ids) must not change.
        await self._save()
        log.info("following file path=%s identity=%s offset=%d", tail.path, identity.key, offset)
        return True

    def _renumbered(self, tail: Tail) -> tuple[Identity, int] | None:
        """The same file under another device number (a volume renumbered at boot): same
        path, inode and first bytes. It keeps its identity, so its lines keep their ids."""
        followed = set(self._followed)
        for key, state in self._offsets.files.items():
            if (
                state.ino == tail.ino
                and state.path == tail.path
                and (state.dev, state.ino) not in followed
            ):
                known = Identity(state.dev, state.ino, state.fingerprint, state.fingerprint_len,
                                 state.generation, key)  # fmt: skip
                if tail.matches(known) and tail.size() >= state.offset:
                    log.info("file's device number changed, resuming path=%s", tail.path)
                    return known, state.offset
        return None

    async def _finish(self, key: tuple[int, int], followed: _Followed) -> None:
        """A file renamed away or deleted and quiet: send its last line and let it go."""
        for line in followed.tail.finish():
            for record in followed.joiner.feed(line, time.monotonic()):
                await self._add(followed, record)
        for record in followed.joiner.flush():
            await self._add(followed, record)
        followed.tail.close()
        del self._followed[key]
        log.info("finished file path=%s", followed.tail.path)

    def _scan(self, now: float) -> None:
        for followed in self._followed.values():
            followed.seen = False
        live: set[tuple[int, int]] = set()
        #: (inode, path) of what the globs match: a file whose device number changed is kept.
        inodes: set[tuple[int, str]] = set()
        done = {(state.dev, state.ino, state.offset) for state in self._offsets.files.values()}
        for item in self._inputs:
            for pattern in item.config.paths:
                for path in sorted(glob.glob(pattern)):
                    if any(fnmatch.fnmatch(path, ex) for ex in item.config.exclude):
                        continue
                    present = self._discover(path, item, now, done)
                    if present is not None:
                        live.add(present)
                        inodes.add((present[1], path))
        live |= {(f.tail.dev, f.tail.ino) for f in self._followed.values()}
        # Offsets of files gone for good (deleted, or rotated out of every glob and finished)
        # are forgotten once nothing of theirs waits to be sent.
        pending = {key for batch in self._queue for key in batch.ends} | set(self._batch.ends)
        stale = [
            key
            for key, state in self._offsets.files.items()
            if (state.dev, state.ino) not in live
            and (state.ino, state.path) not in inodes
            and key not in pending
        ]
        if stale:
            for key in stale:
                del self._offsets.files[key]
            self._dirty.set()

    def _current_name(self, followed: _Followed) -> None:
        """A file rotated by rename is read to its end: give its records the name it has now
        (Linux tells it through /proc), even before the next scan, so log.file.path says where
        the lines are."""
        try:
            current = os.readlink(f"/proc/self/fd/{followed.tail.fd}")
        except OSError:
            return
        if current != followed.tail.path and not current.endswith(" (deleted)"):
            followed.named(current)

    def _discover(
        self, path: str, item: _Input, now: float, done: set[tuple[int, int, int]]
    ) -> tuple[int, int] | None:
        """Follow a file the globs match, unless it is read to its end already; returns its
        (device, inode) when it exists."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        key = (info.st_dev, info.st_ino)
        followed = self._followed.get(key)
        if followed is not None:
            followed.seen = True
            if followed.tail.path != path:
                followed.named(path)  # renamed, and still under a glob
            return key
        if (info.st_dev, info.st_ino, info.st_size) in done:
            return key  # released, and not grown since it was read to its end
        try:
            tail = Tail.open(path, self.config.max_line_bytes)
        except OSError as exc:
            log.warning("cannot open file path=%s error=%s", path, exc)
            return None
        config = item.config
        joiner = Joiner(
            item.start,
            config.multiline_max_lines,
            self.config.max_line_bytes,
            config.multiline_timeout_ms / 1000,
        )
        followed = _Followed(tail, item, joiner, active=now, preexisting=self._first_scan)
        followed.named(path)
        self._followed[(tail.dev, tail.ino)] = followed
        return key

    # -- batching ---------------------------------------------------------------------------

    async def _add(self, followed: _Followed, record: Record) -> None:
        """Append a record to the batch as one NDJSON item (see soc/api/ingest.py)."""
        try:
            text = record.data.decode("utf-8")
            exact = b""
        except UnicodeDecodeError:
            text = record.data.decode("utf-8", "backslashreplace")
            exact = b'"data_b64":"' + base64.b64encode(record.data) + b'",'
        # What is the same for every record of the file is serialized once (`item_tail`).
        if record.truncated:
            exact += b'"truncated":true,'
        line = b'{"offset":%d,"data":%b,%b%b' % (
            record.start, orjson.dumps(text), exact, followed.item_tail()
        )  # fmt: skip
        batch = self._batch
        if not batch.lines:
            batch.started = time.monotonic()
        batch.lines.append(line)
        batch.size += len(line) + 1
        batch.ends[followed.key] = record.end
        if len(batch.lines) >= self.config.batch_lines or batch.size >= self.config.batch_bytes:
            await self._submit()

    async def _submit(self) -> None:
        batch, self._batch = self._batch, Batch()
        _READ.inc(len(batch.lines))
        while not self._outage and len(self._queue) >= _QUEUE_BATCHES:
            if self._stop.is_set():
                return  # not committed: read again at the next start
            self._changed.clear()
            await self._changed.wait()
        batch.seal()
        while self._outage and self._spool.size >= self.config.spool_max_bytes:
            # Full: hold the reader here; the batch is not saved, so a stop re-reads it.
            if self._stop.is_set():
                return
            await self._pause(0.2)
        if self._outage:
            self._spool.append(batch.body)
            self._commit(batch)
        else:
            self._queue.append(batch)
        self._changed.set()

    def _commit(self, batch: Batch) -> None:
        """Advance the batch's offsets, its records being acknowledged or spooled; the saver
        writes them to disk while the next batch is on its way."""
        for key, end in batch.ends.items():
            state = self._offsets.files.get(key)
            if state is not None and end > state.offset:
                state.offset = end
        self._dirty.set()

    async def _save(self) -> None:
        """Write the offsets as they are now; saves are one at a time, each newer than the
        last, and the disk work runs on a thread so sending goes on meanwhile."""
        async with self._save_lock:
            self._dirty.clear()
            data = self._offsets.snapshot()
            writing = asyncio.ensure_future(
                asyncio.to_thread(write_atomically, self._offsets.path, data)
            )
            try:
                await asyncio.shield(writing)
            except asyncio.CancelledError:
                await writing  # never leave a write half done behind the lock
                raise

    async def _save_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await self._save()

    # -- sending ----------------------------------------------------------------------------

    async def _send_loop(self, client: httpx.AsyncClient) -> None:
        while True:
            if len(self._spool):
                path, body = self._spool.head()
                result = await self._post(client, body)
                if result == "ok":
                    self._spool.remove(path)
                elif result == "refused":
                    self._spool.park(path, self._parked)
                    metrics.DROPPED.labels("agent", "parked").inc()
                else:
                    await self._backoff()
                    continue
                if not len(self._spool) and not self._queue:
                    log.info("spool emptied, back to sending from memory")
                    self._outage = False
                self._changed.set()
            elif self._queue:
                batch = self._queue[0]
                body = batch.body
                result = await self._post(client, body)
                if result == "retry":
                    self._enter_outage()
                    await self._backoff()
                    continue
                self._queue.popleft()
                if result == "refused":
                    self._park_body(body)
                self._commit(batch)
                self._changed.set()
            else:
                self._outage = self._outage and bool(len(self._spool))
                self._changed.clear()
                await self._changed.wait()

    def _enter_outage(self) -> None:
        """The intake failed: what waits in memory goes to disk, in order, and so does all
        that is read from now on, until the spool is sent."""
        if not self._outage:
            log.warning("intake unreachable, spooling to disk batches=%d", len(self._queue))
        self._outage = True
        while self._queue:
            batch = self._queue.popleft()
            self._spool.append(batch.body)
            self._commit(batch)
        self._changed.set()

    async def _backoff(self) -> None:
        ceiling = self.config.retry_max_ms / 1000
        delay = min(ceiling, _RETRY_BASE * 2 ** min(self._failures, 16))
        self._failures += 1
        # Full jitter spreads the retries of many agents after the SOC comes back.
        await asyncio.sleep(random.uniform(delay / 2, delay))

    async def _post(self, client: httpx.AsyncClient, body: bytes) -> str:
        """ "ok", "retry" (the intake is away or busy) or "refused" (never acceptable)."""
        try:
            with metrics.AGENT_PUSH_SECONDS.time():
                response = await client.post(self.config.url, content=body)
        except httpx.HTTPError as exc:
            metrics.AGENT_SEND_FAILURES.labels("unreachable").inc()
            log.warning("intake unreachable url=%s error=%r", self.config.url, exc)
            return "retry"
        if response.is_success:
            self._failures = 0
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            metrics.AGENT_LINES.labels("sent").inc(int(answer.get("accepted", 0)))
            if answer.get("rejected"):
                metrics.AGENT_LINES.labels("refused").inc(int(answer["rejected"]))
                log.error("intake refused lines count=%s errors=%s",
                          answer["rejected"], answer.get("errors"))  # fmt: skip
            return "ok"
        reason = f"http_{response.status_code}"
        metrics.AGENT_SEND_FAILURES.labels(reason).inc()
        if response.status_code in _REFUSED:
            log.error("intake refused a batch, parked in %s status=%d detail=%s",
                      self._parked, response.status_code, response.text[:500])  # fmt: skip
            return "refused"
        if response.status_code in {401, 403}:
            log.error("intake refused the token (check agent.token) status=%d",
                      response.status_code)  # fmt: skip
        else:
            log.warning("intake busy or failing status=%d", response.status_code)
        return "retry"

    def _park_body(self, body: bytes) -> None:
        self._parked.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}.ndjson.gz"
        write_atomically(self._parked / name, body)
        metrics.DROPPED.labels("agent", "parked").inc()


def state_dir(config: Config) -> Path:
    return Path(config.agent.state_dir) if config.agent.state_dir else config.data_dir / "agent"


async def run_agent(config: Config) -> int:
    """`soc agent` until SIGINT or SIGTERM; what was read but not acknowledged is read again
    at the next start."""
    agent = Agent(config.agent, state_dir(config))
    # One line per request is noise; failures are logged by the agent with their reason.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if config.metrics.enabled:
        listen = config.metrics.listen
        try:
            prometheus_client.start_http_server(listen.port, listen.host)
        except OSError as exc:
            # Another part holds the port: the agent still runs, unobserved, and says so.
            log.error("metrics not served listen=%s error=%s", listen, exc)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, agent.stop)
    log.info(
        "agent ready url=%s inputs=%d state_dir=%s spooled_batches=%d",
        config.agent.url, len(config.agent.files), state_dir(config), agent.spooled,
    )  # fmt: skip
    await agent.run()
    return 0
