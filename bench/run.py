"""`make bench`: lines per second through `soc run`, next to the same events written straight to
the store, in the same run on the same machine.

    soc run  : syslog TCP in -> bus -> normalize -> detect + index -> SQLite (events and alerts)
    baseline : the same events, already normalized, written to a fresh SQLite store in batches

Prints figures and ratios; never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soc.normalize import NormalizeOptions, normalize  # noqa: E402
from soc.store.sqlite import SqliteStore  # noqa: E402
from soc.timeutil import format_ts, utcnow  # noqa: E402

TOKEN = "bench-token-0123456789abcdefghijkl"

#: A day on a province's Linux servers, roughly: mostly routine lines, one line in ten an
#: attacker's (failed passwords and invalid users from a few hundred addresses, which also feed
#: the brute-force and spraying correlations).
ROUTINE = [
    "<30>Nov 28 10:00:00 web{h:02d} systemd[1]: Started Session {p} of user deploy.",
    "<13>Nov 28 10:00:00 web{h:02d} app[{p}]: request handled in {a} ms status=200 path=/api/v{b}",
    "<78>Nov 28 10:00:00 web{h:02d} CRON[{p}]: (root) CMD (/usr/lib/php/sessionclean)",
    "<38>Nov 28 10:00:00 web{h:02d} sshd[{p}]: Disconnected from user deploy 10.1.{a}.{b} port {p}",
    "<86>Nov 28 10:00:00 web{h:02d} sudo:   deploy : TTY=pts/0 ; PWD=/srv ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
    "<13>1 2026-11-28T10:00:00.123+07:00 web{h:02d} nginx {p} - - 10.1.{a}.{b} GET /tin-tuc/{p} 200",
    "<30>Nov 28 10:00:00 web{h:02d} kernel: [UFW BLOCK] IN=eth0 OUT= SRC=203.0.{a}.{b} DST=10.0.0.1 PROTO=TCP DPT={p}",
    "<13>Nov 28 10:00:00 web{h:02d} app[{p}]: cache refreshed entries={a}",
    "<38>Nov 28 10:00:00 web{h:02d} sshd[{p}]: Accepted publickey for deploy from 10.1.{a}.{b} port {p} ssh2: ED25519 SHA256:Zm9vYmFy",
]
ATTACK = [
    "<38>Nov 28 10:00:00 web{h:02d} sshd[{p}]: Failed password for root from 203.0.113.{b} port {p} ssh2",
    "<38>1 2026-11-28T10:00:00.123+07:00 web{h:02d} sshd {p} - - Invalid user admin{a} from 198.51.100.{b} port {p}",
]
TEMPLATES = ROUTINE + ATTACK  # fmt: skip


def make_lines(count: int) -> list[bytes]:
    lines = []
    for i in range(count):
        template = ATTACK[i // 10 % len(ATTACK)] if i % 10 == 0 else ROUTINE[i % len(ROUTINE)]
        lines.append(template.format(h=i % 40, p=1000 + i % 60000, a=i % 250, b=i % 251).encode())
    return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def bench_soc_run(lines: list[bytes], workdir: Path) -> dict[str, Any]:
    log = workdir / "soc.log"
    command = [
        sys.executable, "-m", "soc", "run", "--data-dir", str(workdir / "data"),
        "--http", "127.0.0.1:0", "--syslog", "127.0.0.1:0", "--rules", str(ROOT / "rules"),
    ]  # fmt: skip
    env = {**os.environ, "SOC_AUTH__API_TOKEN": TOKEN}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=workdir)
    try:
        ready = None
        for _ in range(300):
            ready = re.search(r"ready .*http=(\S+) syslog_tcp=\S+:(\d+)", log.read_text())
            if ready or process.poll() is not None:
                break
            time.sleep(0.1)
        if not ready:
            raise RuntimeError(f"soc run did not start:\n{log.read_text()}")
        http, tcp_port = f"http://{ready[1]}", int(ready[2])
        client = httpx.Client(base_url=http, headers={"Authorization": f"Bearer {TOKEN}"})

        def total(kind: str) -> int:
            return int(client.get(f"/api/v1/{kind}", params={"limit": 0}).json()["total"])

        payload = b"\n".join(lines) + b"\n"
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", tcp_port)) as sock:
            sock.sendall(payload)
        sent = time.perf_counter()
        while total("events") < len(lines):
            time.sleep(0.05)
        stored = time.perf_counter()
        # Detection runs beside the event writer and may finish after it: the stream is through
        # when the alerts stop coming too (the last change, once 2 s pass without one).
        alerts = total("alerts")
        quiet = time.perf_counter()
        while time.perf_counter() - quiet < 2:
            time.sleep(0.05)
            now, count = time.perf_counter(), total("alerts")
            if count != alerts:
                alerts, quiet, stored = count, now, now
        rss = _peak_rss_mib(process.pid)
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)
        return {
            "lines": len(lines),
            "seconds": stored - started,
            "send_seconds": sent - started,
            "alerts": alerts,
            "peak_rss_mib": rss,
            "exit_code": exit_code,
        }
    finally:
        if process.poll() is None:
            process.kill()


async def bench_store_direct(lines: list[bytes], workdir: Path, batch: int) -> dict[str, Any]:
    options = NormalizeOptions()
    received = format_ts(utcnow())
    started = time.perf_counter()
    events = [
        normalize(
            {
                "id": f"bench-{i}",
                "received_at": received,
                "source": {"type": "syslog", "transport": "tcp", "peer": {"ip": "127.0.0.1"}},
                "data": line.decode(),
            },
            options,
        )
        for i, line in enumerate(lines)
    ]
    normalized = time.perf_counter()
    store = SqliteStore(workdir / "direct.db")
    await store.open()
    write_started = time.perf_counter()
    for offset in range(0, len(events), batch):
        await store.write("events", events[offset : offset + batch])
    written = time.perf_counter()
    await store.close()
    return {
        "normalize_seconds": normalized - started,
        "write_seconds": written - write_started,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    lines = make_lines(args.lines)
    workdir = Path(tempfile.mkdtemp(prefix="soc-bench-"))
    try:
        run = bench_soc_run(lines, workdir)
        direct = asyncio.run(bench_store_direct(lines, workdir, args.batch))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    n = args.lines
    through = n / run["seconds"]
    store_rate = n / direct["write_seconds"]
    normalize_rate = n / direct["normalize_seconds"]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"lines: {n} ({len(TEMPLATES)} kinds, one in ten an attack; RFC 3164 and 5424)")
    print()
    print(f"soc run, syslog TCP -> events and alerts stored : {through:>10,.0f} lines/s"
          f"  ({run['seconds']:.2f} s, {run['alerts']} alerts, peak RSS {run['peak_rss_mib']:.0f} MiB,"
          f" exit {run['exit_code']})")  # fmt: skip
    print(f"baseline: same events straight to SQLite         : {store_rate:>10,.0f} events/s"
          f"  ({direct['write_seconds']:.2f} s, batches of {args.batch})")  # fmt: skip
    print(f"normalizer alone (one core)                      : {normalize_rate:>10,.0f} lines/s")
    print()
    print(f"ratio soc run / direct store write: {through / store_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
