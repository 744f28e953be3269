"""`soc doctor` on good and broken configurations: each problem is named, with how to mend it,
and the exit code says whether the installation can run."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from soc.cli import main
from soc.doctor import _skew

RULES = Path(__file__).resolve().parents[1] / "rules"


@pytest.fixture(autouse=True)
def _no_soc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the configuration file each test writes counts."""
    import os

    for name in list(os.environ):
        if name.startswith("SOC_"):
            monkeypatch.delenv(name)


def doctor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *extra: str
) -> tuple[int, dict[str, dict[str, str]]]:
    config = tmp_path / "soc.yaml"
    config.write_text(text)
    code = main(["doctor", "--config", str(config), "--json", *extra])
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] == (code == 0)
    return code, {check["name"]: check for check in body["checks"]}


def good(tmp_path: Path, **lines: str) -> str:
    values = {"data_dir": str(tmp_path / "data"), "rules": f"\n  paths: [{RULES}]"} | lines
    return "".join(f"{key}: {value}\n" for key, value in values.items())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_good_embedded_configuration_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks = doctor(tmp_path, capsys, good(tmp_path), "--min-free-gib", "0")
    assert code == 0
    for name in ("config", "data_dir", "disk", "bus", "store", "versions.python", "rules"):
        assert checks[name]["status"] == "OK", checks[name]
    assert "memory://" in checks["bus"]["detail"]
    assert "routed" in checks["rules"]["detail"]
    assert checks["clock"]["status"] == "SKIP"


def test_text_output_names_each_check_and_the_mend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "soc.yaml"
    config.write_text(good(tmp_path, rules="\n  paths: [/nonexistent/rules]"))
    assert main(["doctor", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("FAIL rules") for line in out.splitlines())
    assert "fix: correct rules.paths" in out
    assert out.rstrip().endswith("1 FAIL, 1 SKIP")


def test_a_wrong_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = doctor(tmp_path, capsys, "sylsog:\n  udp: true\n")
    assert code == 1
    assert checks["config"]["status"] == "FAIL"
    assert "unknown key 'sylsog'" in checks["config"]["detail"]
    assert "Configuration reference" in checks["config"]["fix"]


def test_a_wrong_value_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = doctor(tmp_path, capsys, "retention:\n  events_days: 30\n")
    assert code == 1
    assert "retention.events_days" in checks["config"]["detail"]


def test_unreachable_kafka_fails_the_bus_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    code, checks = doctor(tmp_path, capsys, good(tmp_path, bus=f"kafka://127.0.0.1:{port}"))
    assert code == 1
    assert checks["bus"]["status"] == "FAIL"
    assert f"kafka 127.0.0.1:{port}: unreachable" in checks["bus"]["detail"]
    assert "start Kafka" in checks["bus"]["fix"]


def test_unreachable_elasticsearch_fails_the_store_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, checks = doctor(tmp_path, capsys, good(tmp_path, store=url))
    assert code == 1
    assert checks["store"]["status"] == "FAIL"
    assert "unreachable" in checks["store"]["detail"]
    assert f"SOC_STORE={url}" in checks["store"]["fix"]


def test_an_unwritable_data_dir_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A regular file where a parent directory should be: no user, root included, can write there.
    (tmp_path / "blocker").write_text("not a directory")
    code, checks = doctor(tmp_path, capsys, good(tmp_path, data_dir=str(tmp_path / "blocker/d")))
    assert code == 1
    assert checks["data_dir"]["status"] == "FAIL"
    assert "not writable" in checks["data_dir"]["detail"]
    assert "SOC_DATA_DIR" in checks["data_dir"]["fix"]


def test_a_missing_rule_path_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-rules-here"
    code, checks = doctor(tmp_path, capsys, good(tmp_path, rules=f"\n  paths: [{missing}]"))
    assert code == 1
    assert checks["rules"]["status"] == "FAIL"
    assert str(missing) in checks["rules"]["detail"]


def test_a_corrupt_sqlite_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "soc.db").write_bytes(b"this is not a database" * 300)
    code, checks = doctor(tmp_path, capsys, good(tmp_path))
    assert code == 1
    assert checks["store"]["status"] == "FAIL"
    assert "restore" in checks["store"]["fix"]


def test_low_disk_space_warns_but_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks = doctor(tmp_path, capsys, good(tmp_path), "--min-free-gib", "1000000")
    assert code == 0
    assert checks["disk"]["status"] == "WARN"
    assert "under 1e+06 GiB" in checks["disk"]["detail"]


def test_a_lowered_legal_minimum_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = good(tmp_path, retention="\n  legal_minimum_days: 90\n  events_days: 90")
    code, checks = doctor(tmp_path, capsys, text, "--min-free-gib", "0")
    assert code == 0
    assert checks["retention"]["status"] == "WARN"
    assert "Decree 53/2022" in checks["retention"]["fix"]


def test_clock_skew_is_judged_beyond_the_round_trip() -> None:
    sent = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    received = sent + timedelta(milliseconds=40)

    def millis(moment: datetime) -> int:
        return int(moment.timestamp() * 1000)

    assert _skew(millis(sent + timedelta(milliseconds=20)), sent, received, "ES").status == "OK"
    assert _skew(millis(sent - timedelta(seconds=5)), sent, received, "ES").status == "WARN"
    late = _skew(millis(sent + timedelta(minutes=3)), sent, received, "ES")
    assert late.status == "FAIL"
    assert "-179.980 s" in late.detail
    assert "chrony" in late.fix
    assert _skew(None, sent, received, "ES").status == "SKIP"


class _OldElasticsearch(BaseHTTPRequestHandler):
    """Speaks the three requests the doctor makes, as an 8.x node would answer them."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        bodies: dict[str, Any] = {
            "/_cluster/health": {"status": "yellow"},
            "/_nodes": {"nodes": {"n1": {"version": "8.15.0"}}},
            "/_nodes/_local/stats/os": {
                "nodes": {"n1": {"timestamp": int(datetime.now(UTC).timestamp() * 1000)}}
            },
        }
        body = json.dumps(bodies.get(path, {})).encode()
        self.send_response(200 if path in bodies else 404)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def old_elasticsearch() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OldElasticsearch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_elasticsearch_of_another_major_fails_and_yellow_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old_elasticsearch: str
) -> None:
    code, checks = doctor(tmp_path, capsys, good(tmp_path, store=old_elasticsearch))
    assert code == 1
    assert checks["versions.elasticsearch"]["status"] == "FAIL"
    assert "server 8.15.0" in checks["versions.elasticsearch"]["detail"]
    assert checks["store"]["status"] == "WARN"
    assert checks["clock"]["status"] == "OK"


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            response.read()
    except OSError:
        return False
    return True


def test_a_good_distributed_configuration_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    es = "http://127.0.0.1:9200"
    if not _reachable(f"{es}/_cluster/health"):
        pytest.skip("Elasticsearch not running on 127.0.0.1:9200; `make services` starts it")
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 9092)) != 0:
            pytest.skip("Kafka not running on 127.0.0.1:9092; `make services` starts it")
    text = good(tmp_path, bus="kafka://127.0.0.1:9092", store=es)
    code, checks = doctor(tmp_path, capsys, text, "--min-free-gib", "0")
    assert code == 0, checks
    assert checks["bus"]["status"] == "OK"
    assert "broker" in checks["bus"]["detail"]
    assert checks["store"]["status"] in ("OK", "WARN")
    assert checks["versions.elasticsearch"]["status"] == "OK"
    assert checks["clock"]["status"] == "OK"
