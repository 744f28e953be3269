"""`make bench`: syslog records per second received and published, over UDP, TCP and TLS.

For each transport a sender process blasts syslog lines at a `SyslogServer` on loopback, which
publishes to an in-process bus that a consumer in the same process empties (so the figures are
the collector's, not a pipeline's). The server process's CPU time (every thread: the UDP
receiver, the event loop, the consumer) gives records per CPU-second, i.e. per core. UDP is the
baseline of the ratios. The source map holds 1,000 networks, so the agency look-up is part of
every figure.

Prints figures and ratios; never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.syslog.server import SyslogServer  # noqa: E402
from collectors.syslog.sources import SourceMap  # noqa: E402
from collectors.syslog.tls import server_context  # noqa: E402
from soc.bus.base import RAW  # noqa: E402
from soc.bus.memory import MemoryBus  # noqa: E402
from soc.config import Address, SourceConfig, SyslogConfig  # noqa: E402
from tests.pki import Pki, make_pki  # noqa: E402

LINE = (
    "<38>Nov 28 10:00:{second:02d} web-{host:02d} sshd[{pid}]: Failed password for invalid user "
    "admin from 203.0.113.{octet} port {port} ssh2"
)
#: Once the sender is done, the run ends when nothing more arrived for this long (UDP has no
#: end of stream; lost datagrams never come).
_IDLE = 0.5
#: Datagrams the windowed UDP sender lets be in flight: fewer than the kernel's receive buffer
#: holds, so that none is lost and the figure is the server's, not the buffer's.
_WINDOW = 4000
RUNS = ("udp", "udp-blast", "tcp", "tls")


def _lines(count: int) -> list[bytes]:
    return [
        LINE.format(
            second=i % 60, host=i % 20, pid=1000 + i % 5000, octet=i % 250, port=1024 + i % 60000
        ).encode()
        for i in range(count)
    ]


def _sources() -> list[SourceConfig]:
    """A province's worth of networks; the senders (127.0.0.1) fall in the last, a /8."""
    sources = [
        SourceConfig(
            id=f"agency-{n}", agency=f"agency-{n}", networks=(f"10.{n // 256}.{n % 256}.0/24",)
        )
        for n in range(999)
    ]
    return [*sources, SourceConfig(id="loopback", agency="lab", networks=("127.0.0.0/8",))]


def _send(run: str, port: int, count: int, pki: Pki | None, shared: Any) -> None:
    """The sender process: every line, as fast as the socket takes them, once told to start
    (so that starting a process is not timed). It closes without reading, as syslog senders do.
    `udp` keeps at most `_WINDOW` datagrams unpublished, `udp-blast` sends regardless."""
    ready, go, published = shared
    lines = _lines(count)
    ready.set()
    go.wait()
    if run.startswith("udp"):
        window = count if run == "udp-blast" else _WINDOW
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for sent, line in enumerate(lines):
                while sent - published.value >= window:
                    time.sleep(0.0002)
                udp.sendto(line, ("127.0.0.1", port))
        return
    framed = [str(len(line)).encode() + b" " + line for line in lines]
    chunks = [b"".join(framed[i : i + 200]) for i in range(0, len(framed), 200)]
    raw = socket.create_connection(("127.0.0.1", port))
    if run == "tls":
        assert pki is not None
        context = ssl.create_default_context(cafile=str(pki.ca.cert))
        context.load_cert_chain(str(pki.client.cert), str(pki.client.key))
        raw = context.wrap_socket(raw, server_hostname="127.0.0.1")
    with raw:
        for chunk in chunks:
            raw.sendall(chunk)


@dataclass
class Figures:
    run: str
    sent: int
    published: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0

    @property
    def per_core(self) -> float:
        return self.published / self.cpu_seconds if self.cpu_seconds else 0.0


async def _measure(run: str, count: int, pki: Pki, sources: SourceMap) -> Figures:
    transport = run.split("-")[0]
    bus = MemoryBus(capacity=200_000)
    consumer = await bus.subscribe(RAW, "bench")
    syslog = SyslogConfig(
        tls=True,
        tls_listen=Address("127.0.0.1", 0),
        tls_cert=str(pki.server.cert),
        tls_key=str(pki.server.key),
        tls_client_ca=str(pki.ca.cert),
        tls_require_client_cert=True,
    )
    server = SyslogServer(
        bus,
        Address("127.0.0.1", 0),
        udp=transport == "udp",
        tcp=transport == "tcp",
        tls=server_context(syslog) if transport == "tls" else None,
        tls_listen=syslog.tls_listen,
        sources=sources,
    )
    await server.start()
    port = server.addresses[transport].port
    spawn = multiprocessing.get_context("spawn")
    ready, go, shared_published = spawn.Event(), spawn.Event(), spawn.Value("q", 0, lock=False)
    sender = spawn.Process(
        target=_send,
        args=(run, port, count, pki if run == "tls" else None, (ready, go, shared_published)),
    )
    sender.start()
    await asyncio.to_thread(ready.wait)
    published = 0
    last = started = time.perf_counter()
    cpu_start = cpu_last = time.process_time()
    go.set()
    while published < count:
        batch = await consumer.poll(10_000, 0.1)
        if batch:
            published += len(batch)
            shared_published.value = published
            await consumer.commit()
            last, cpu_last = time.perf_counter(), time.process_time()
        elif not sender.is_alive() and time.perf_counter() - last > _IDLE:
            break  # UDP: what was lost is lost
    sender.join()
    await server.stop()
    await bus.close()
    return Figures(run, count, published, last - started, cpu_last - cpu_start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines per run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are shown")
    parser.add_argument(
        "--runs", default=",".join(RUNS), help="comma-separated: " + ", ".join(RUNS)
    )
    args = parser.parse_args(argv)
    runs = [run for run in args.runs.split(",") if run]
    if unknown := set(runs) - set(RUNS):
        parser.error(f"unknown run {sorted(unknown)[0]!r}")
    sources = SourceMap(_sources())
    with tempfile.TemporaryDirectory() as directory:
        pki = make_pki(Path(directory))
        # Rounds interleave the runs, so that load from elsewhere on the machine falls on all
        # of them alike; each figure is the median over the rounds.
        rounds: dict[str, list[Figures]] = {run: [] for run in runs}
        for _ in range(max(args.rounds, 1)):
            for run in runs:
                rounds[run].append(asyncio.run(_measure(run, args.lines, pki, sources)))
    results = [_median(figures) for figures in rounds.values()]
    print(
        f"syslog collector: {args.lines:,} lines of ~{len(_lines(1)[0])} bytes per run, "
        f"median of {max(args.rounds, 1)} rounds, {os.cpu_count()} CPUs"
    )
    print(f"{'run':<10}{'sent':>10}{'published':>11}{'lost':>8}{'records/s':>12}"
          f"{'cpu s':>8}{'rec/s/core':>12}{'vs udp':>8}{'/core vs udp':>14}")  # fmt: skip
    base = results[0]
    for r in results:
        print(
            f"{r.run:<10}{r.sent:>10,}{r.published:>11,}{r.sent - r.published:>8,}"
            f"{r.rate:>12,.0f}{r.cpu_seconds:>8.2f}{r.per_core:>12,.0f}"
            f"{_ratio(r.rate, base.rate):>8}{_ratio(r.per_core, base.per_core):>14}"
        )
    print("records/s: wall clock from the sender's start to the last record published;")
    print("rec/s/core: records per CPU-second of the server process (all its threads).")
    print(f"udp: the sender keeps at most {_WINDOW:,} datagrams unpublished; udp-blast does not,")
    print("and what the kernel's receive buffer cannot hold is lost (as with a real burst).")
    return 0


def _median(figures: list[Figures]) -> Figures:
    """Published, seconds and CPU seconds each the median of the rounds."""
    return Figures(
        figures[0].run,
        figures[0].sent,
        int(statistics.median(f.published for f in figures)),
        statistics.median(f.seconds for f in figures),
        statistics.median(f.cpu_seconds for f in figures),
    )


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "n/a"


if __name__ == "__main__":
    sys.exit(main())
