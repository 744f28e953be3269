"""Notifications through the outbox to a local HTTP provider, against raw HTTP POSTs to the same
provider measured in the same run.

- throughput: N distinct incidents, each one signed webhook message, from bus publish to the
  provider's 200 (the stage's durable enqueue, the dispatcher, the outbox bookkeeping), vs the
  same number of POSTs of the same size with the same concurrency and client;
- delay: incident records published at a steady pace; from each record's publication to the
  provider receiving its message, p50 and p99.

The provider runs in a process of its own so that it does not share the GIL with the notifier.
Prints figures and a ratio; never fails on a time.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from soc.bus.base import INCIDENTS, Message  # noqa: E402
from soc.bus.memory import MemoryBus  # noqa: E402
from soc.config import load_config  # noqa: E402
from soc.notify.service import Notifier  # noqa: E402
from soc.notify.throttle import message_id  # noqa: E402
from soc.stage import run_stage  # noqa: E402
from soc.timeutil import format_ts, from_micros  # noqa: E402

MESSAGES = 3000
CONCURRENCY = 16
PACED = 300
PACE_PER_SECOND = 50


def _provider(port: multiprocessing.Queue[int], stop: Any) -> None:
    received: dict[str, float] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            delivery = self.headers.get("X-SOC-Delivery") or json.loads(body).get("id", "")
            with lock:
                received[delivery] = time.time()
            self._send(b'{"ok":true}')

        def do_GET(self) -> None:
            with lock:  # taken and emptied at once: a POST in between is not lost
                data = json.dumps(received).encode()
                received.clear()
            self._send(data)

        def _send(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # the default 5 refuses connections under 16 clients

    server = Server(("127.0.0.1", 0), Handler)
    port.put(server.server_address[1])
    server.serve_forever()


def incident(ident: str) -> dict[str, Any]:
    now = format_ts(from_micros(int(time.time() * 1e6)))
    return {
        "change": "created",
        "incident": {
            "@timestamp": now,
            "event": {"id": ident, "kind": "incident", "severity": 73},
            "organization": {"id": "so-tttt"},
            "incident": {
                "id": ident, "title": "Dò mật khẩu SSH on web01", "status": "new",
                "severity": "high", "alert_count": 1, "first_seen": now, "last_seen": now,
                "rule": {"id": "ssh-brute", "name": "Dò mật khẩu SSH", "level": "high"},
                "tags": [],
            },
            "related": {"hosts": ["web01"], "user": ["root"], "ip": ["203.0.113.9"]},
        },
        "alert": None,
        "actor": "system",
        "at": now,
    }  # fmt: skip


async def raw_posts(url: str, count: int, body: bytes) -> float:
    """Baseline: POSTs/s with the same client library and concurrency, nothing else."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    async with httpx.AsyncClient(timeout=10) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                response = await client.post(
                    url,
                    content=body,
                    headers={"Content-Type": "application/json", "X-SOC-Delivery": f"raw-{i}"},
                )
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - start)


async def received(url: str, client: httpx.AsyncClient | None = None) -> dict[str, float]:
    """What the provider received since the last call (delivery id -> time)."""
    if client is None:
        async with httpx.AsyncClient(timeout=10) as own:
            return await received(url, own)
    result: dict[str, float] = (await client.get(url)).json()
    return result


def _check_stuck(since: float, seen: int, wanted: int) -> None:
    if time.time() - since > 300:
        raise SystemExit(f"notify bench: only {seen} of {wanted} messages arrived in 300 s")


async def through_outbox(provider: str, data_dir: Path) -> tuple[float, list[float]]:
    empty = data_dir / "soc.yaml"
    empty.write_text("{}\n")
    config = load_config(
        file=empty,
        environ={},
        overrides={
            "data_dir": str(data_dir),
            "notify": {
                "concurrency": CONCURRENCY,
                "channels": [
                    {"name": "hook", "type": "webhook", "base_url": provider, "secret": "k"}
                ],
                "routes": [{"min_severity": "low", "recipients": [{"channel": "hook", "to": ""}]}],
            },
        },
    )
    notifier = Notifier(config)
    bus = MemoryBus(capacity=50_000)
    await bus.start()
    stop = asyncio.Event()
    notifier.start()
    stage = asyncio.create_task(run_stage(bus, notifier.stage, stop, 500))
    # One client for polling the provider: creating one loads the CA bundle (~0.1 s of CPU).
    poll = httpx.AsyncClient(timeout=10)
    await received(provider, poll)  # clear
    try:
        # Throughput: everything published at once, timed to the last acceptance.
        idents = [f"bulk-{i}" for i in range(MESSAGES)]
        start = time.time()
        await bus.publish(INCIDENTS, [Message(i, incident(i)) for i in idents])
        seen: dict[str, float] = {}
        while len(seen) < MESSAGES:
            await asyncio.sleep(0.2)
            seen.update(await received(provider, poll))
            _check_stuck(start, len(seen), MESSAGES)
        rate = MESSAGES / (max(seen.values()) - start)
        # Delay: records at a steady pace, each timed from its publication.
        published: dict[str, float] = {}
        for n in range(PACED):
            ident = f"paced-{n}"
            published[message_id(ident, "hook", "", 0)] = time.time()
            await bus.publish(INCIDENTS, [Message(ident, incident(ident))])
            await asyncio.sleep(1 / PACE_PER_SECOND)
        seen = {}
        paced_start = time.time()
        while len(seen) < PACED:
            await asyncio.sleep(0.2)
            seen.update(await received(provider, poll))
            _check_stuck(paced_start, len(seen), PACED)
        delays = sorted(seen[i] - published[i] for i in published)
    finally:
        await poll.aclose()
        stop.set()
        await stage
        await notifier.stop()
        await bus.close()
    return rate, delays


def main() -> None:
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=_provider, args=(ports, None), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{ports.get(timeout=10)}"
    try:
        sample = json.dumps(incident("sample")).encode()
        baseline = asyncio.run(raw_posts(f"{url}/raw", MESSAGES, sample))
        asyncio.run(received(url))
        with tempfile.TemporaryDirectory() as tmp:
            rate, delays = asyncio.run(through_outbox(f"{url}/hook", Path(tmp)))
        # The machine is shared: the baseline is taken before and after, and the better one
        # kept, so the ratio errs against the outbox.
        baseline = max(baseline, asyncio.run(raw_posts(f"{url}/raw", MESSAGES, sample)))
    finally:
        server.terminate()
    p50 = statistics.median(delays)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(f"notify: {MESSAGES} messages, concurrency {CONCURRENCY}, local HTTP provider")
    print(f"  raw HTTP POSTs (baseline)     {baseline:8.0f} /s   (best of before and after)")
    print(f"  through the outbox            {rate:8.0f} messages/s   ratio {rate / baseline:.2f}")
    print(
        f"  delay publish -> accepted     p50 {p50 * 1000:6.1f} ms   p99 {p99 * 1000:6.1f} ms"
        f"   ({PACED} records at {PACE_PER_SECOND}/s)"
    )


if __name__ == "__main__":
    main()
