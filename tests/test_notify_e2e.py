"""`soc run` end to end: sshd lines over syslog become alerts, an incident, and one signed webhook
message per incident however many alerts it grows by, listed in the delivery log."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml

from tests.notify_fakes import FakeProvider, channels_config, route_to_all

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "notify-e2e-token-0123456789abcdef"


def test_an_attack_over_syslog_reaches_the_webhook_once_per_incident(tmp_path: Path) -> None:
    with FakeProvider() as provider:
        hook = [c for c in channels_config(provider.url, None, None) if c["name"] == "hook"]
        config = tmp_path / "soc.yaml"
        config.write_text(
            yaml.safe_dump(
                {"notify": {"channels": hook, "routes": [route_to_all(hook, min_severity="low")]}}
            )
        )
        log = tmp_path / "soc.log"
        command = [
            sys.executable, "-m", "soc", "--config", str(config), "run",
            "--data-dir", str(tmp_path / "data"), "--http", "127.0.0.1:0",
            "--syslog", "127.0.0.1:0", "--rules", str(ROOT / "rules"),
        ]  # fmt: skip
        env = {**os.environ, "SOC_AUTH__API_TOKEN": TOKEN}
        with log.open("wb") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=tmp_path)
        try:
            ready = _ready(log, process)
            http, tcp = f"http://{ready[1]}", int(ready[2])
            stamp = time.strftime("%b %e %H:%M:%S")
            lines = b"".join(
                f"<38>{stamp} web01 sshd[{i}]: Failed password for root from 203.0.113.7 "
                f"port {50000 + i} ssh2\n".encode()
                for i in range(50)
            )
            with socket.create_connection(("127.0.0.1", tcp)) as sender:
                sender.sendall(lines)
            deadline = time.monotonic() + 60
            while not provider.state.of("webhook") and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3)  # later alerts on the same incidents must not send more
            deliveries = httpx.get(
                f"{http}/api/v1/notifications/deliveries",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            ).json()
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(60)
    hooks = provider.state.of("webhook")
    assert hooks, f"no notification arrived:\n{log.read_text()[-3000:]}"
    per_incident = Counter(h.body["notice"]["incident_id"] for h in hooks)
    assert set(per_incident.values()) == {1}
    assert provider.state.violations == []
    assert deliveries["total"] == len(hooks)
    assert {d["status"] for d in deliveries["items"]} == {"sent"}
    assert code == 0


def _ready(log: Path, process: subprocess.Popen[bytes]) -> re.Match[str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = re.search(r"ready .*http=(\S+) syslog_tcp=\S+:(\d+)", text)
        if found:
            return found
        if process.poll() is not None:
            pytest.fail(f"soc run exited early:\n{text}")
        time.sleep(0.1)
    pytest.fail(f"soc run not ready:\n{log.read_text(errors='replace')}")
