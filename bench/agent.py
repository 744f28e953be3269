"""`soc agent` lines per second, from a file to the HTTP intake on loopback.

Three figures measured in the same run, so the ratios hold on any machine:
- reading the file and splitting it into lines in Python (the ceiling of any tailer);
- the intake alone: the same lines, batched and gzipped beforehand, posted one request at a
  time on one connection as the agent does;
- the agent: tail, batch, gzip, push and save offsets, until every line is acknowledged.
The intake runs in a process of its own (uvicorn, the real route, an in-process bus emptied by
a consumer), the agent in this one. Each side's CPU time is reported too (lines per CPU-second),
a figure that holds on a busy machine where wall-clock rates do not. Never fails on a time.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.agent.agent import Agent  # noqa: E402
from soc.config import AgentConfig, AgentInput, IntakeConfig, SourceConfig  # noqa: E402

LINES = int(os.environ.get("BENCH_AGENT_LINES", "200000"))
BATCH = 2000
TOKEN = "bench-agent-token-0123456789abcdef"
SOURCE = SourceConfig(
    id="bench", agency="bench", token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest()
)


def serve(port: int) -> None:
    """The intake process: the real route and bus; a consumer empties `soc.raw`."""
    import uvicorn
    from fastapi import FastAPI

    from soc.api.ingest import install_intake
    from soc.bus.base import RAW
    from soc.bus.memory import MemoryBus

    async def main() -> None:
        bus = MemoryBus()
        app = FastAPI()
        install_intake(app, bus, [SOURCE], IntakeConfig())
        consumer = await bus.subscribe(RAW, "sink")

        async def sink() -> None:
            while True:
                if await consumer.poll(10_000, 0.1):
                    await consumer.commit()

        task = asyncio.create_task(sink())
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="error", access_log=False
        )
        await uvicorn.Server(config).serve()
        task.cancel()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_file(path: Path) -> int:
    line = (
        "<38>Nov 28 10:00:{s:02d} portal-web01 sshd[{pid}]: Failed password for invalid user "
        "admin{n} from 203.0.113.{o} port {port} ssh2\n"
    )
    with path.open("w", encoding="utf-8") as handle:
        for n in range(LINES):
            handle.write(
                line.format(s=n % 60, pid=1000 + n % 5000, n=n, o=n % 250, port=1024 + n % 60000)
            )
    return path.stat().st_size


def read_baseline(path: Path) -> float:
    started = time.perf_counter()
    count = 0
    with path.open("rb") as handle:
        while chunk := handle.read(256 * 1024):
            count += chunk.count(b"\n")
    lines = path.read_bytes().split(b"\n")
    assert count == LINES and len(lines) == LINES + 1
    return LINES / (time.perf_counter() - started)


async def intake_baseline(url: str, lines: list[bytes]) -> float:
    bodies = []
    for start in range(0, len(lines), BATCH):
        items = [
            orjson.dumps({"data": line.decode(), "file": "bench", "offset": start + i})
            for i, line in enumerate(lines[start : start + BATCH])
        ]
        bodies.append(gzip.compress(b"\n".join(items) + b"\n", compresslevel=1))
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/x-ndjson",
        "Content-Encoding": "gzip",
    }
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        started = time.perf_counter()
        for body in bodies:
            response = await client.post(url, content=body)
            response.raise_for_status()
        return len(lines) / (time.perf_counter() - started)


async def agent_run(url: str, path: Path, size: int, state: Path) -> tuple[float, float, float]:
    """(lines/s wall clock, lines per second of this process's CPU time, share of the time a
    request was out waiting for the intake)."""
    config = AgentConfig(
        url=url,
        token=TOKEN,
        files=(AgentInput(paths=(str(path),), host_name="portal-web01"),),
        batch_lines=BATCH,
        batch_wait_ms=200,
        scan_interval_ms=200,
    )
    agent = Agent(config, state)
    offsets = state / "offsets.json"
    done = f'"offset":{size}'.encode()
    pushing = REGISTRY.get_sample_value("soc_agent_push_seconds_sum") or 0.0
    started = time.perf_counter()
    cpu = time.process_time()
    task = asyncio.create_task(agent.run())
    for _ in range(600_000):  # until every line is acknowledged (its offset saved)
        if offsets.exists() and done in offsets.read_bytes():
            break
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    pushing = (REGISTRY.get_sample_value("soc_agent_push_seconds_sum") or 0.0) - pushing
    agent.stop()
    await task
    return LINES / seconds, LINES / cpu, pushing / seconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(url: str, server: int, work: Path, log: Path, size: int, read: float) -> None:
    before = cpu_seconds(server)
    intake = await intake_baseline(url, log.read_bytes().splitlines())  # noqa: ASYNC240
    intake_cpu = LINES / (cpu_seconds(server) - before)
    agent, agent_cpu, waiting = await agent_run(url, log, size, work / "state")
    print(
        f"agent bench: {LINES:,} syslog lines ({size / LINES:.0f} bytes each), batches of {BATCH}"
    )
    print(f"  file read + line split (baseline):   {read:>12,.0f} lines/s")
    print(f"  intake alone, pre-built gzip batches: {intake:>11,.0f} lines/s")
    print(f"  agent, file -> intake acknowledged:  {agent:>12,.0f} lines/s")
    print(f"  CPU cost, lines per CPU-second: intake {intake_cpu:,.0f}, agent {agent_cpu:,.0f}")
    print(f"  share of the agent's run with a request at the intake: {waiting:.0%}")
    print(
        f"  ratio agent / intake alone: {agent / intake:.2f}; agent / file read: {agent / read:.3f}"
    )


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
        return 0
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    url = f"http://127.0.0.1:{port}/api/v1/ingest"
    try:
        for _ in range(200):
            try:
                httpx.post(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as work:
            log = Path(work) / "app.log"
            size = write_file(log)
            read = read_baseline(log)
            asyncio.run(measure(url, server.pid, Path(work), log, size, read))
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
