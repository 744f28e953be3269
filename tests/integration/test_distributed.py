"""The distributed deployment on real services: `soc collector syslog`, `soc engine` and
`soc api` as separate processes over Kafka and Elasticsearch (started by `make services`)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
KAFKA = os.environ.get("SOC_TEST_KAFKA", "127.0.0.1:9092")
ES = os.environ.get("SOC_TEST_ES_URL", "http://127.0.0.1:9200")
TOKEN = "distributed-token-0123456789abcdef"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not (_reachable("127.0.0.1", int(KAFKA.rsplit(":", 1)[1])) and _reachable("127.0.0.1", 9200)),
    reason="Kafka and Elasticsearch not running (make services)",
)


class Part:
    def __init__(self, name: str, args: list[str], env: dict[str, str], workdir: Path) -> None:
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "soc", *args], stdout=sink, stderr=sink, env=env, cwd=workdir
            )

    def ready(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            line = next((ln for ln in text.splitlines() if " ready " in ln), None)
            if line:
                return line
            if self.process.poll() is not None:
                pytest.fail(f"exited early:\n{text}")
            time.sleep(0.1)
        pytest.fail(f"not ready:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            # Hung on the way out: what it was doing is the bug's evidence (printed, shown with
            # the failure), then it goes.
            print(f"--- {self.log.name}: no exit 60 s after SIGTERM; its threads:")
            print(_stacks(self.process.pid))
            self.process.kill()
            self.process.wait(30)
            return -signal.SIGKILL

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _niceness(pid: int) -> list[int]:
    """The niceness of each thread of a process (the 19th field of its threads' `stat`)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rpartition(")")[2].split()
        found.append(int(fields[16]))
    return found


def _stacks(pid: int) -> str:
    """The process's Python stacks (py-spy, when installed), for a hang's diagnosis."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return "(py-spy not installed)"
    done = subprocess.run(
        [str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60
    )
    return done.stdout + done.stderr


def _environment(namespace: str, workdir: Path, **extra: str) -> dict[str, str]:
    """What every part of one test's platform runs with: Kafka, Elasticsearch, one namespace."""
    return {
        **os.environ,
        "SOC_BUS": f"kafka://{KAFKA}",
        "SOC_STORE": ES,
        "SOC_NAMESPACE": namespace,
        "SOC_AUTH__API_TOKEN": TOKEN,
        "SOC_DATA_DIR": str(workdir / "data"),
        **extra,
    }


def _edge(env: dict[str, str], workdir: Path) -> tuple[Part, Part]:
    """The API and the syslog collector of a test's platform, started."""
    api = Part("api", ["api", "--http", "127.0.0.1:0"], env, workdir)
    collector = Part("collector", ["collector", "syslog", "--syslog", "127.0.0.1:0"], env, workdir)
    return api, collector


def _addresses(api: Part, collector: Part) -> tuple[str, int]:
    """Once both are ready: the API's base URL and the collector's syslog TCP port."""
    http = re.search(r"http=(\S+)", api.ready())
    tcp = re.search(r"syslog_tcp=\S+:(\d+)", collector.ready())
    assert http and tcp
    return f"http://{http[1]}", int(tcp[1])


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[dict[str, Any]]:
    namespace = f"it{uuid.uuid4().hex[:8]}"
    env = _environment(namespace, tmp_path)
    engine = Part("engine", ["engine", "--rules", str(ROOT / "rules")], env, tmp_path)
    api, collector = _edge(env, tmp_path)
    parts = [engine, api, collector]
    try:
        engine.ready()
        base, tcp = _addresses(api, collector)
        yield {"http": base, "tcp": tcp, "parts": parts}
    finally:
        codes = [part.stop() for part in parts]
        for part in parts:  # shown only when the test fails: what each process last said
            print(f"--- {part.log.name} (last lines)\n{part.tail()}")
        assert codes == [0, 0, 0], [part.log.read_text() for part in parts]
        httpx.delete(f"{ES}/{namespace}-soc-*", timeout=30)


def _api(base: str, path: str, **params: Any) -> Any:
    response = httpx.get(
        base + path, params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    return response.json()


def test_syslog_through_kafka_and_the_engine_into_elasticsearch_and_out_of_the_api(
    platform: dict[str, Any],
) -> None:
    lines = [
        f"<38>Nov 28 10:00:{i:02d} web09 sshd[900]: Failed password for root from "
        f"198.51.100.99 port {7000 + i} ssh2"
        for i in range(12)
    ] + ["<38>Nov 28 10:01:00 web09 sshd[901]: Invalid user oracle from 198.51.100.98 port 7100"]
    with socket.create_connection(("127.0.0.1", platform["tcp"])) as sender:
        sender.sendall("\n".join(lines).encode() + b"\n")
    deadline = time.monotonic() + 60
    events: dict[str, Any] = {"total": 0}
    alerts: dict[str, Any] = {"total": 0}
    while time.monotonic() < deadline:
        events = _api(platform["http"], "/api/v1/events", limit=100)
        alerts = _api(platform["http"], "/api/v1/alerts", limit=100)
        if events["total"] >= len(lines) and alerts["total"] >= 14:
            break
        time.sleep(0.5)
    assert events["total"] == len(lines)
    assert {e["event"]["original"] for e in events["items"]} == set(lines)
    # Every stage in one engine: detection chained to normalizing, not a consumer of its own.
    engine = platform["parts"][0].log.read_text()
    assert "engine stages=normalize,detect,index,correlate,incidents (detect chained" in engine
    assert re.search(r"Joined group '\S+\.normalize'", engine)
    assert not re.search(r"Joined group '\S+\.detect'", engine)
    names = [a["rule"]["name"] for a in alerts["items"]]
    assert names.count("SSH Failed Password") == 12
    assert names.count("SSH Login Attempt With an Invalid User") == 1
    assert names.count("SSH Brute Force From One Address") == 1
    brute = next(a for a in alerts["items"] if a["rule"]["name"].startswith("SSH Brute"))
    assert brute["correlation"]["group"] == {"source.ip": "198.51.100.99"}


def test_two_engines_share_the_work_and_survive_a_kill_9_with_nothing_lost_or_doubled(
    tmp_path: Path,
) -> None:
    namespace = f"it{uuid.uuid4().hex[:8]}"
    env = _environment(namespace, tmp_path, SOC_PIPELINE__BATCH_SIZE="500")
    first = Part("engine-a", ["engine", "--rules", str(ROOT / "rules")], env, tmp_path)
    second = Part("engine-b", ["engine", "--rules", str(ROOT / "rules")], env, tmp_path)
    api, collector = _edge(env, tmp_path)
    try:
        first.ready()
        second.ready()
        base, tcp = _addresses(api, collector)
        total = 20_000
        # One user name throughout: every line raises exactly one alert, and no correlation.
        lines = [
            b"<38>Nov 28 10:00:00 h%d sshd[1]: Invalid user admin from 203.0.113.%d port %d\n"
            % (i % 50, i % 200, i)
            for i in range(total)
        ]
        with socket.create_connection(("127.0.0.1", tcp)) as sender:
            for start in range(0, total, 1000):
                sender.sendall(b"".join(lines[start : start + 1000]))
                if start == 6000:
                    first.process.send_signal(signal.SIGKILL)
                time.sleep(0.05)
        assert first.process.wait(10) == -signal.SIGKILL
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            events = _api(base, "/api/v1/events", limit=0)["total"]
            alerts = _api(base, "/api/v1/alerts", limit=0)["total"]
            if events >= total and alerts >= total:
                break
            time.sleep(1)
        time.sleep(3)  # anything doubled would show up now
        assert _api(base, "/api/v1/events", limit=0)["total"] == total
        assert _api(base, "/api/v1/alerts", limit=0)["total"] == total
        hosts = _api(base, "/api/v1/events/counts", field="host.name", size=100)
        assert sorted(row["count"] for row in hosts) == [total // 50] * 50
    finally:
        codes = [part.stop() for part in (second, api, collector)]
        assert codes == [0, 0, 0], [p.log.read_text() for p in (second, api, collector)]
        httpx.delete(f"{ES}/{namespace}-soc-*", timeout=30)


def test_stages_spread_over_processes_share_the_stream_and_survive_a_kill_9(
    tmp_path: Path,
) -> None:
    """One engine process normalizes and indexes, another detects, correlates and groups
    (`--stages`): the way a small machine gives the engine more than one core. The detecting
    process is killed mid-stream and a new one takes its groups over: every event, alert and
    incident count exactly once. The first runs nicer (`--nice`), every thread of it."""
    namespace = f"it{uuid.uuid4().hex[:8]}"
    env = _environment(namespace, tmp_path, SOC_PIPELINE__BATCH_SIZE="500")
    rules = ["--rules", str(ROOT / "rules")]
    front_args = ["engine", *rules, "--stages", "normalize,index", "--nice", "5"]
    front = Part("engine-front", front_args, env, tmp_path)
    back_args = ["engine", *rules, "--stages", "detect,correlate,incidents"]
    back = Part("engine-back", back_args, env, tmp_path)
    api, collector = _edge(env, tmp_path)
    successor: Part | None = None
    try:
        front.ready()
        back.ready()
        base, tcp = _addresses(api, collector)
        started = front.log.read_text()
        # A process without detection stages does not load (or hold) the rules.
        assert "rules loaded" not in started
        assert "rules loaded" in back.log.read_text()
        inherited = os.getpriority(os.PRIO_PROCESS, 0)  # what the tests themselves run at
        assert f"engine stages=normalize,index nice={max(5, inherited)}" in started
        assert set(_niceness(front.process.pid)) == {max(5, inherited)}
        assert set(_niceness(back.process.pid)) == {inherited}
        total = 10_000
        lines = _lines(0, total)
        # Twelve failed passwords from one address: the brute-force correlation, once.
        lines += [
            b"<38>Nov 28 10:00:%02d web09 sshd[900]: Failed password for root from "
            b"198.51.100.99 port %d ssh2\n" % (i, 7000 + i)
            for i in range(12)
        ]
        with socket.create_connection(("127.0.0.1", tcp)) as sender:
            for start in range(0, len(lines), 500):
                sender.sendall(b"".join(lines[start : start + 500]))
                if start == 3000:
                    back.process.send_signal(signal.SIGKILL)
                    assert back.process.wait(10) == -signal.SIGKILL
                    successor = Part("engine-back-2", back_args, env, tmp_path)
                time.sleep(0.05)
        assert successor is not None
        successor.ready()
        # 10,000 invalid users, 12 failed passwords, 1 brute force.
        assert _settle(base, total + 12) == (total + 12, total + 13)
        names = _api(base, "/api/v1/alerts/counts", field="rule.name", size=10)
        assert {row["value"]: row["count"] for row in names} == {
            "SSH Login Attempt With an Invalid User": total,
            "SSH Failed Password": 12,
            "SSH Brute Force From One Address": 1,
        }
        incidents = _api(base, "/api/v1/incidents", limit=100)["items"]
        assert sum(item["incident"]["alert_count"] for item in incidents) == total + 13
    finally:
        alive = [part for part in (front, successor, api, collector) if part is not None]
        codes = [part.stop() for part in alive]
        for part in alive:
            print(f"--- {part.log.name} (last lines)\n{part.tail()}")
        assert codes == [0] * len(alive), [p.log.read_text() for p in alive]
        httpx.delete(f"{ES}/{namespace}-soc-*", timeout=30)


SERVICES = ROOT / "deploy" / "local" / "services.sh"


def _services(*args: str) -> None:
    subprocess.run(["bash", str(SERVICES), *args], check=True, capture_output=True, timeout=300)


def _send(port: int, lines: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sender:
        for start in range(0, len(lines), 500):
            sender.sendall(b"".join(lines[start : start + 500]))


def _lines(start: int, count: int) -> list[bytes]:
    return [
        b"<38>Nov 28 10:00:00 h%d sshd[1]: Invalid user admin from 203.0.113.%d port %d\n"
        % (i % 20, i % 200, i)
        for i in range(start, start + count)
    ]


def _settle(base: str, expected: int, timeout: float = 180) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    events = alerts = 0
    while time.monotonic() < deadline:
        try:
            events = _api(base, "/api/v1/events", limit=0)["total"]
            alerts = _api(base, "/api/v1/alerts", limit=0)["total"]
        except httpx.HTTPError:
            events = alerts = 0
        if events >= expected and alerts >= expected:
            break
        time.sleep(1)
    time.sleep(3)  # anything doubled would show up now
    return (
        _api(base, "/api/v1/events", limit=0)["total"],
        _api(base, "/api/v1/alerts", limit=0)["total"],
    )


def test_elasticsearch_down_for_20_s_pauses_the_engine_and_loses_nothing(
    platform: dict[str, Any],
) -> None:
    _send(platform["tcp"], _lines(0, 2000))
    _services("down", "es")
    try:
        _send(platform["tcp"], _lines(2000, 2000))
        down = httpx.get(
            platform["http"] + "/api/v1/events",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert down.status_code == 503 and "store unavailable" in down.text
        time.sleep(20)
    finally:
        _services("up", "es")
    _send(platform["tcp"], _lines(4000, 2000))
    assert _settle(platform["http"], 6000) == (6000, 6000)


def test_kafka_restarted_mid_stream_collectors_hold_and_nothing_is_lost(
    platform: dict[str, Any],
) -> None:
    _send(platform["tcp"], _lines(0, 2000))
    _services("down", "kafka")
    try:
        # The collector holds these in its connection while the broker is away.
        sender = threading.Thread(target=_send, args=(platform["tcp"], _lines(2000, 2000)))
        sender.start()
        time.sleep(10)
    finally:
        _services("up", "kafka")
    sender.join(120)
    assert not sender.is_alive()
    _send(platform["tcp"], _lines(4000, 2000))
    assert _settle(platform["http"], 6000) == (6000, 6000)
