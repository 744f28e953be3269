"""`soc run` as a user runs it: a subprocess on free ports, real sockets, the HTTP API."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from soc.store.base import Query, Scope
from soc.store.sqlite import SqliteStore

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "e2e-token-abcdefghijklmnopqrstuvwxyz"
FAILED_PASSWORD = "0b0c9a3e-6f1d-4d8e-9a57-2f4f1f0a6c11"
INVALID_USER = "6c3f2d1a-8e4b-4f0a-b8c2-9d5e7a1b3c22"
ACCEPTED = "2d7f5c1e-93a4-4b62-8f0d-4e6a1c9b7d31"


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    http: str
    tcp: int
    udp: int
    data_dir: Path
    log: Path

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.http}{path}",
            params=params,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def send_udp(self, lines: list[bytes]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for line in lines:
                udp.sendto(line, ("127.0.0.1", self.udp))

    def send_tcp(self, payload: bytes) -> None:
        with socket.create_connection(("127.0.0.1", self.tcp)) as tcp:
            tcp.sendall(payload)


def _start(tmp_path: Path, rules: Path = ROOT / "rules") -> Running:
    log = tmp_path / "soc.log"
    env = {**os.environ, "SOC_AUTH__API_TOKEN": TOKEN}
    command = [
        sys.executable, "-m", "soc", "run",
        "--data-dir", str(tmp_path / "data"),
        "--http", "127.0.0.1:0",
        "--syslog", "127.0.0.1:0",
        "--rules", str(rules),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        ready = re.search(r"ready .*http=(\S+) syslog_tcp=\S+:(\d+) syslog_udp=\S+:(\d+)", text)
        if ready:
            return Running(
                process, f"http://{ready[1]}", int(ready[2]), int(ready[3]), tmp_path / "data", log
            )
        if process.poll() is not None:
            pytest.fail(f"soc run exited early with {process.returncode}:\n{text}")
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"soc run did not become ready:\n{log.read_text(errors='replace')}")


@pytest.fixture
def soc(tmp_path: Path) -> Iterator[Running]:
    running = _start(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(30)


def _wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def _stamp() -> str:
    return time.strftime("%b %e %H:%M:%S")


def test_sshd_lines_over_udp_and_tcp_become_events_and_alerts(soc: Running) -> None:
    stamp = _stamp()
    udp_lines = {
        f"<38>{stamp} web01 sshd[101]: Failed password for root from 203.0.113.7 port 50001 ssh2": {
            FAILED_PASSWORD
        },
        "<38>1 2026-11-28T10:00:00.5+07:00 web02 sshd 102 - - Invalid user admin from "
        "203.0.113.8 port 50002": {INVALID_USER},
    }
    tcp_lines = {
        f"<38>{stamp} web03 sshd[103]: Invalid user oracle from 198.51.100.9 port 50003": {
            INVALID_USER
        },
        "<38>1 2026-11-28T10:00:01Z web04 sshd 104 - - Failed password for invalid user test "
        "from 198.51.100.10 port 50004 ssh2": {FAILED_PASSWORD},
        f"<38>{stamp} web05 sshd[105]: Accepted publickey for bob from 10.0.0.5 port 50005 ssh2"
        ": ED25519 SHA256:abcdef": {ACCEPTED},
    }
    soc.send_udp([line.encode() for line in udp_lines])
    # TCP: one LF-framed line, one octet-counted, one LF-framed again, in one stream.
    tcp = list(tcp_lines)
    counted = tcp[1].encode()
    soc.send_tcp(
        tcp[0].encode()
        + b"\n"
        + str(len(counted)).encode()
        + b" "
        + counted
        + tcp[2].encode()
        + b"\n"
    )
    expected = {**udp_lines, **tcp_lines}

    events = _wait_for(
        lambda: (r := soc.api("/api/v1/events", limit=100))["total"] >= len(expected) and r
    )
    assert events, f"events did not arrive:\n{soc.log.read_text()}"
    originals = {e["event"]["original"]: e for e in events["items"]}
    assert set(originals) == set(expected)
    assert originals[tcp[1]]["source"]["ip"] == "198.51.100.10"
    assert originals[tcp[1]]["user"]["name"] == "test"

    want_alerts = sum(len(rules) for rules in expected.values())
    alerts = _wait_for(
        lambda: (r := soc.api("/api/v1/alerts", limit=100))["total"] >= want_alerts and r
    )
    assert alerts, "alerts did not arrive"
    got = {(a["events"][0]["event"]["original"], a["rule"]["id"]) for a in alerts["items"]}
    assert got == {(line, rule) for line, rules in expected.items() for rule in rules}
    for alert in alerts["items"]:
        assert alert["rule"]["name"] and alert["rule"]["level"] in {
            "informational",
            "low",
            "medium",
        }
        assert any(
            tag.startswith(("attack.t1110", "attack.t1078")) for tag in alert["rule"]["tags"]
        )
        assert alert["event"]["id"] and alert["event"]["kind"] == "alert"
    by_rule = soc.api("/api/v1/alerts", filter=f"rule.id:{INVALID_USER}")
    assert by_rule["total"] == 2
    text = soc.api("/api/v1/events", q="oracle")
    assert [e["host"]["name"] for e in text["items"]] == ["web03"]


def test_malformed_and_invalid_utf8_lines_are_stored_and_flagged(soc: Running) -> None:
    soc.send_udp([b"<<<garbage>>> not syslog at all", b"<13>Oct 11 22:14:15 host app: \xff\xfe"])
    soc.send_tcp(b"\x00\x01\x02 binary junk\n")
    events = _wait_for(lambda: (r := soc.api("/api/v1/events"))["total"] >= 3 and r)
    assert events and events["total"] == 3
    by_original = {e["event"]["original"]: e for e in events["items"]}
    garbage = by_original["<<<garbage>>> not syslog at all"]
    assert "syslog_unparsed" in garbage["tags"]
    assert garbage["error"]["message"]
    invalid = next(e for e in events["items"] if "invalid_utf8" in e["tags"])
    assert "\\xff\\xfe" in invalid["event"]["original"]
    assert invalid["soc"]["original_b64"]
    junk = next(e for e in events["items"] if "binary junk" in e["event"]["original"])
    assert junk["tags"], "junk must be flagged"


def test_sigterm_drains_everything_sent_and_exits_zero(soc: Running) -> None:
    tcp_count, udp_count = 5000, 300
    payload = b"".join(
        # one user name throughout, so that no spraying correlation adds alerts
        b"<38>Nov 28 10:00:00 bulk sshd[9]: Invalid user admin from 203.0.113.9 port %d\n" % i
        for i in range(tcp_count)
    )
    soc.send_tcp(payload)
    soc.send_udp([b"<13>Nov 28 10:00:00 bulk app: datagram %d" % i for i in range(udp_count)])
    soc.process.send_signal(signal.SIGTERM)
    assert soc.process.wait(60) == 0, soc.log.read_text()
    assert "stopped cleanly" in soc.log.read_text()

    async def count() -> tuple[int, int]:
        store = SqliteStore(soc.data_dir / "soc.db")
        await store.open()
        events = await store.search("events", Query(scope=Scope.everything(), limit=0))
        alerts = await store.search("alerts", Query(scope=Scope.everything(), limit=0))
        await store.close()
        return events.total, alerts.total

    events, alerts = asyncio.run(count())
    assert events == tcp_count + udp_count
    assert alerts == tcp_count


def test_a_bad_configuration_stops_with_a_message_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "soc.yaml").write_text("syslog:\n  listen: 127.0.0.1:5514\n  lisen_tls: yes\n")
    result = subprocess.run(
        [sys.executable, "-m", "soc", "run"], cwd=tmp_path, capture_output=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 2
    assert b"syslog.lisen_tls" in result.stderr


def test_ssh_brute_force_raises_one_correlation_alert_with_its_failures(soc: Running) -> None:
    stamp = _stamp()
    lines = [
        f"<38>{stamp} web07 sshd[700]: Failed password for root from 198.51.100.77 "
        f"port {4000 + i} ssh2"
        for i in range(12)
    ]
    soc.send_tcp("\n".join(lines).encode() + b"\n")
    found = _wait_for(
        lambda: (
            (r := soc.api("/api/v1/alerts", filter="rule.name:SSH Brute Force From One Address"))[
                "total"
            ]
            >= 1
            and r
        )
    )
    assert found, "no brute-force alert"
    (alert,) = found["items"]
    assert alert["correlation"]["group"] == {"source.ip": "198.51.100.77"}
    assert alert["correlation"]["value"] == 10
    assert len(alert["correlation"]["event_ids"]) == 10
    assert alert["source"]["ip"] == "198.51.100.77"
    assert alert["rule"]["level"] == "medium"


def test_sighup_reloads_rules_without_a_restart(tmp_path: Path) -> None:
    import shutil

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    running = _start(tmp_path, rules=rules)
    try:
        (rules / "linux" / "cron_job_marker.yml").write_text(
            "title: Test Marker In Syslog\nid: 99999999-9999-4999-8999-999999999999\n"
            "status: test\nlogsource: {product: linux, service: syslog}\n"
            "tags: [attack.t1053.003]\n"
            "detection:\n  sel:\n    message|contains: reload-marker-42\n  condition: sel\n"
            "level: high\n"
        )
        running.process.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: "rules reloaded" in running.log.read_text(), 60)
        running.send_tcp(b"<13>Nov 28 10:00:00 host app: reload-marker-42 seen\n")
        alerts = _wait_for(
            lambda: (r := running.api("/api/v1/alerts", filter="rule.level:high"))["total"] and r
        )
        assert alerts and alerts["items"][0]["rule"]["name"] == "Test Marker In Syslog"
        assert running.process.poll() is None
    finally:
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(60) == 0


def test_syslog_lines_become_an_incident_an_analyst_works_through_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "mật-khẩu-quản-trị-2026"
    monkeypatch.setenv("SOC_ADMIN_PASSWORD", password)
    running = _start(tmp_path)
    try:
        stamp = _stamp()
        lines = [
            f"<38>{stamp} mail01 sshd[9{n}]: Invalid user u{n} from 203.0.113.50 port 4{n}\n"
            for n in range(5)
        ]
        running.send_tcp("".join(lines).encode())
        with httpx.Client(base_url=running.http, timeout=10) as http:
            login = http.post(
                "/api/v1/auth/token", data={"username": "admin", "password": password}
            )
            assert login.status_code == 200, login.text
            http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            queue = _wait_for(
                lambda: [
                    i
                    for i in http.get("/api/v1/incidents").json()["items"]
                    if i["incident"]["rule"]["id"] == INVALID_USER
                    and i["incident"]["alert_count"] == 5
                ]
            )
            assert len(queue) == 1, http.get("/api/v1/incidents").json()
            ident = queue[0]["incident"]["id"]
            assert queue[0]["related"]["hosts"] == ["mail01"]
            version = http.get(f"/api/v1/incidents/{ident}").json()["incident"]["version"]
            for change in (
                {"status": "acknowledged"},
                {"assignee": "admin"},
                {"status": "resolved"},
            ):
                response = http.patch(
                    f"/api/v1/incidents/{ident}", json={"version": version, **change}
                )
                assert response.status_code == 200, response.text
                version = response.json()["incident"]["version"]
            comment = http.post(f"/api/v1/incidents/{ident}/comments", json={"text": "Đã xử lý"})
            assert comment.status_code == 201
            done = http.get(f"/api/v1/incidents/{ident}").json()["incident"]
            assert done["status"] == "resolved" and done["ttr_seconds"] is not None
            trail = http.get(f"/api/v1/incidents/{ident}/audit").json()
            assert [e["event"]["action"] for e in trail] == [
                "incident.status", "incident.assigned", "incident.status", "incident.comment"
            ]  # fmt: skip
    finally:
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(30) == 0
