"""Syslog over TLS (RFC 5425) against a certificate authority made in the test: the round trip,
client certificates required or optional, octet counting across and within TLS records, and the
configuration that refuses what would not serve."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from collectors.syslog.server import SyslogServer
from collectors.syslog.sources import SourceMap
from collectors.syslog.tls import ServerTls, server_context
from soc.bus.base import RAW
from soc.bus.memory import MemoryBus
from soc.config import Address, ConfigError, SourceConfig, SyslogConfig, load_config
from soc.store.base import Query, Scope
from soc.store.sqlite import SqliteStore
from tests.pki import Issued, Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _syslog_config(pki: Pki, *, require: bool = True, client_ca: bool = True) -> SyslogConfig:
    return SyslogConfig(
        tls=True,
        tls_listen=Address("127.0.0.1", 0),
        tls_cert=str(pki.server.cert),
        tls_key=str(pki.server.key),
        tls_client_ca=str(pki.ca.cert) if client_ca else "",
        tls_require_client_cert=require,
    )


# --- the server under test -------------------------------------------------------------------

_SOURCES = SourceMap([SourceConfig(id="portal", agency="so-tttt", networks=("127.0.0.1",))])

Running = tuple[SyslogServer, Any]


async def _start(config: SyslogConfig, max_message_bytes: int = 65536) -> Running:
    bus = MemoryBus()
    consumer = await bus.subscribe(RAW, "test")
    server = SyslogServer(
        bus,
        Address("127.0.0.1", 0),
        udp=False,
        tcp=False,
        tls=server_context(config),
        tls_listen=config.tls_listen,
        sources=_SOURCES,
        max_message_bytes=max_message_bytes,
    )
    await server.start()
    return server, consumer


@pytest.fixture
async def required(pki: Pki) -> AsyncIterator[Running]:
    server, consumer = await _start(_syslog_config(pki, require=True))
    yield server, consumer
    await server.stop()


@pytest.fixture
async def optional(pki: Pki) -> AsyncIterator[Running]:
    server, consumer = await _start(_syslog_config(pki, require=False))
    yield server, consumer
    await server.stop()


async def collect(consumer: Any, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 10
    while len(got) < count and asyncio.get_running_loop().time() < deadline:
        got += [d.value for d in await consumer.poll(1000, 0.2)]
        await consumer.commit()
    return got


def octets(message: bytes) -> bytes:
    return str(len(message)).encode() + b" " + message


def _client_context(
    pki: Pki, cert: Issued | None, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    if max_version is not None:
        context.maximum_version = max_version
    return context


def _send(
    port: int, context: ssl.SSLContext, writes: list[bytes], close_notify: bool = True
) -> None:
    """Each `sendall` is its own TLS record (or several, past 16 KiB), so the writes choose how
    messages fall across records. Without `close_notify` the sender just closes its socket, as
    many syslog senders do."""
    raw = socket.create_connection(("127.0.0.1", port))
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        for data in writes:
            tls.sendall(data)
        if close_notify:
            tls.unwrap()


def _attempt(port: int, context: ssl.SSLContext, data: bytes) -> str:
    """Connect, send and wait for the server's answer: how the server ended the connection."""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(data)
            return "closed" if tls.recv(1) == b"" else "answered"
    except ssl.SSLError as exc:
        return f"ssl:{exc.reason}"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"


def _failures(source: str) -> float:
    """TLS connections from `source` refused, whatever the reason."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "soc_syslog_connections_refused"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels["source"] == source
        and sample.labels["transport"] == "tls"
    )


async def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


# --- tests -----------------------------------------------------------------------------------


async def test_tls_round_trip_with_a_client_certificate_arrives_with_its_agency(
    pki: Pki, required: Running
) -> None:
    server, consumer = required
    lines = [b"<13>1 2026-11-28T10:00:00Z portal app - - - login ok %d" % i for i in range(3)]
    context = _client_context(pki, pki.client)
    await asyncio.to_thread(
        _send, server.addresses["tls"].port, context, [octets(line) for line in lines]
    )
    records = await collect(consumer, 3)
    assert [r["data"].encode() for r in records] == lines
    for record in records:
        assert record["organization"] == {"id": "so-tttt"}
        assert record["source"]["id"] == "portal"
        assert record["source"]["transport"] == "tls"
        assert record["source"]["listener"] == str(server.addresses["tls"])
        assert "flags" not in record


@pytest.mark.parametrize("client", ["none", "stranger"])
@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)
async def test_a_client_without_a_valid_certificate_is_refused_and_nothing_is_published(
    pki: Pki, required: Running, client: str, version: ssl.TLSVersion
) -> None:
    server, consumer = required
    port = server.addresses["tls"].port
    before = _failures("portal")
    cert = pki.stranger if client == "stranger" else None
    outcome = await asyncio.to_thread(
        _attempt, port, _client_context(pki, cert, version), octets(b"<13>1 - h a - - - sneaked in")
    )
    assert outcome != "answered"
    await _wait_for(lambda: _failures("portal") == before + 1)
    # A valid sender afterwards: its line is the only one that ever reaches the bus.
    await asyncio.to_thread(
        _send, port, _client_context(pki, pki.client), [octets(b"<13>1 - h a - - - marker")]
    )
    records = await collect(consumer, 1)
    assert [r["data"] for r in records] == ["<13>1 - h a - - - marker"]
    assert await consumer.poll(10, 0.05) == []


async def test_optional_client_certificates_admit_anonymous_senders_but_not_strangers(
    pki: Pki, optional: Running
) -> None:
    server, consumer = optional
    port = server.addresses["tls"].port
    await asyncio.to_thread(
        _send, port, _client_context(pki, None), [octets(b"<13>1 - h a - - - anonymous")]
    )
    before = _failures("portal")
    outcome = await asyncio.to_thread(
        _attempt, port, _client_context(pki, pki.stranger), octets(b"<13>1 - h a - - - stranger")
    )
    assert outcome != "answered"
    await _wait_for(lambda: _failures("portal") == before + 1)
    await asyncio.to_thread(
        _send, port, _client_context(pki, pki.client), [octets(b"<13>1 - h a - - - known")]
    )
    records = await collect(consumer, 2)
    assert [r["data"] for r in records] == [
        "<13>1 - h a - - - anonymous",
        "<13>1 - h a - - - known",
    ]


async def test_octet_counted_frames_several_per_record_and_split_across_records(
    pki: Pki, required: Running
) -> None:
    server, consumer = required
    many = [b"<13>1 - h a - - - in one record %d" % i for i in range(50)]
    split = b"<13>1 - h a - - - split\nacross records with a newline inside"
    big = b"<13>1 - h a - - - " + b"x" * 40_000  # more than two 16 KiB TLS records
    frame = octets(split)
    writes = [
        b"".join(octets(m) for m in many),
        frame[:1],  # even the length itself is split
        frame[1:25],
        frame[25:],
        octets(big)[:30_000],
        octets(big)[30_000:] + b"<13>lf framed too\n",
    ]
    await asyncio.to_thread(
        _send, server.addresses["tls"].port, _client_context(pki, pki.client), writes
    )
    records = await collect(consumer, len(many) + 3)
    assert [r["data"].encode() for r in records] == [*many, split, big, b"<13>lf framed too"]


async def test_a_sender_that_closes_without_reading_loses_no_line(
    pki: Pki, required: Running
) -> None:
    # A TLS 1.3 session ticket left unread in the sender's socket would turn its close into a
    # reset, and the kernel would throw away what the server had not read yet.
    lines = [b"<13>1 - h a - - - line %d" % i for i in range(20_000)]
    context = _client_context(pki, pki.client, ssl.TLSVersion.TLSv1_3)
    port = required[0].addresses["tls"].port
    chunks = [b"".join(octets(line) for line in lines[i : i + 500]) for i in range(0, 20_000, 500)]
    await asyncio.to_thread(_send, port, context, chunks, close_notify=False)
    records = await collect(required[1], len(lines))
    assert len(records) == len(lines)
    assert records[-1]["data"] == "<13>1 - h a - - - line 19999"


#: Frames of the stalled-bus test in one 256 KiB read of the server.
_READ_FRAMES = 256 * 1024 // 8000


async def test_a_stalled_bus_slows_a_tls_sender_instead_of_filling_memory(pki: Pki) -> None:
    config = _syslog_config(pki)
    bus = MemoryBus(capacity=100)
    consumer = await bus.subscribe(RAW, "test")
    server = SyslogServer(
        bus, Address("127.0.0.1", 0), udp=False, tcp=False, tls=server_context(config),
        tls_listen=config.tls_listen,
    )  # fmt: skip
    await server.start()
    line = octets(b"<13>1 - h a - - - " + b"x" * 8000)
    # 100 MB: more than every buffer between the two ends holds (Linux lets a TCP receive
    # buffer grow to tcp_rmem's maximum, 32 MB here).
    count = 12_500
    sending = asyncio.create_task(
        asyncio.to_thread(
            _send, server.addresses["tls"].port, _client_context(pki, pki.client),
            [line * 100] * (count // 100),
        )
    )  # fmt: skip
    try:
        await _wait_for(lambda: bus.backlog(RAW) > 0)
        # The bus is full and nobody reads it: the sender must be held up, not buffered for.
        await asyncio.sleep(0.5)
        assert not sending.done()
        assert bus.backlog(RAW) <= 2 * _READ_FRAMES + 100  # a read's worth, not 100 MB
        received = 0
        while received < count:
            received += len(await consumer.poll(10_000, 1))
            await consumer.commit()
        await sending
    finally:
        await server.stop()
    assert received == count


async def test_an_octet_count_cut_short_by_the_sender_is_kept_and_flagged(pki: Pki) -> None:
    server, consumer = await _start(_syslog_config(pki, require=True), max_message_bytes=1000)
    try:
        writes = [octets(b"<13>1 - h a - - - whole") + b"500 <13>1 - h a - - - cut short"]
        await asyncio.to_thread(
            _send, server.addresses["tls"].port, _client_context(pki, pki.client), writes
        )
        records = await collect(consumer, 2)
    finally:
        await server.stop()
    assert [(r["data"], r.get("flags")) for r in records] == [
        ("<13>1 - h a - - - whole", None),
        ("<13>1 - h a - - - cut short", ["incomplete"]),
    ]


async def test_rfc5424_bom_escapes_and_nil_values_survive_tls_and_parse(
    pki: Pki, required: Running
) -> None:
    server, consumer = required
    line = (
        b'<165>1 2003-10-11T22:14:15.003Z - evntslog - ID47 [exampleSDID@32473 q="say \\"hi\\"" '
        b'path="C:\\\\temp" br="[x\\]"][b@1 e=""] \xef\xbb\xbfTi\xe1\xba\xbfng Vi\xe1\xbb\x87t'
    )
    await asyncio.to_thread(
        _send, server.addresses["tls"].port, _client_context(pki, pki.client), [octets(line)]
    )
    (record,) = await collect(consumer, 1)
    assert record["data"].encode("utf-8") == line
    from soc.normalize.syslog import parse_syslog

    parsed = parse_syslog(record["data"])
    assert parsed.message == "Tiếng Việt"
    assert (parsed.hostname, parsed.procid, parsed.appname, parsed.msgid) == (
        None,
        None,
        "evntslog",
        "ID47",
    )
    assert parsed.structured_data == {
        "exampleSDID@32473": {"q": 'say "hi"', "path": "C:\\temp", "br": "[x]"},
        "b@1": {"e": ""},
    }


def test_rfc5424_escaped_backslash_before_the_closing_quote_ends_the_value() -> None:
    from soc.normalize.syslog import parse_syslog

    parsed = parse_syslog('<13>1 - h a - - [x@1 a="ends in \\\\"][y@2 b="x ] y"] msg')
    assert parsed.structured_data == {"x@1": {"a": "ends in \\"}, "y@2": {"b": "x ] y"}}
    assert parsed.message == "msg"


def _served_certificate(port: int, context: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        served = tls.getpeercert(binary_form=True)
        tls.unwrap()
    assert served is not None
    return served


def _der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


async def test_a_renewed_certificate_is_served_without_a_restart(pki: Pki, tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    for name in ("server.crt", "server.key"):
        (live / name).write_bytes((pki.server.cert.parent / name).read_bytes())
    (tmp_path / "renewed").mkdir()
    renewed = make_pki(tmp_path / "renewed")  # a new key pair and certificate, another CA
    config = SyslogConfig(
        tls=True, tls_listen=Address("127.0.0.1", 0),
        tls_cert=str(live / "server.crt"), tls_key=str(live / "server.key"),
    )  # fmt: skip
    server = SyslogServer(
        MemoryBus(), Address("127.0.0.1", 0), udp=False, tcp=False,
        tls=ServerTls(config, check_every=0), tls_listen=config.tls_listen,
    )  # fmt: skip
    await server.start()
    anyone = ssl.create_default_context()
    anyone.check_hostname, anyone.verify_mode = False, ssl.CERT_NONE
    port = server.addresses["tls"].port
    try:
        assert await asyncio.to_thread(_served_certificate, port, anyone) == _der(pki.server.cert)
        # Halfway through a renewal (new certificate, old key) the running context stays.
        (live / "server.crt").write_bytes(renewed.server.cert.read_bytes())
        assert await asyncio.to_thread(_served_certificate, port, anyone) == _der(pki.server.cert)
        # Renewal done: the next connection gets the new certificate.
        (live / "server.key").write_bytes(renewed.server.key.read_bytes())
        assert await asyncio.to_thread(_served_certificate, port, anyone) == _der(
            renewed.server.cert
        )
    finally:
        await server.stop()


# --- configuration ---------------------------------------------------------------------------


def _load(tmp_path: Path, syslog: dict[str, Any]) -> Any:
    file = tmp_path / "soc.yaml"
    file.write_text("{}\n")
    return load_config(file, environ={}, overrides={"syslog": syslog})


def test_tls_configuration_that_loads_is_accepted(pki: Pki, tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        {
            "tls": True,
            "tls_listen": "0.0.0.0:6514",
            "tls_cert": str(pki.server.cert),
            "tls_key": str(pki.server.key),
            "tls_client_ca": str(pki.ca.cert),
            "tls_require_client_cert": True,
        },
    )
    assert config.syslog.tls_listen == Address("0.0.0.0", 6514)
    assert server_context(config.syslog).verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tls_cert": ""}, "syslog.tls_cert and syslog.tls_key: both are required"),
        ({"tls_cert": "/nonexistent/server.crt"}, "syslog.tls_cert: no such file"),
        ({"tls_key": "CLIENT_KEY"}, "syslog.tls_cert/syslog.tls_key: cannot load"),
        ({"tls_key": "CA_CERT"}, "syslog.tls_cert/syslog.tls_key: cannot load"),
        ({"tls_client_ca": ""}, "syslog.tls_client_ca: required when"),
        ({"tls_client_ca": "SERVER_KEY"}, "syslog.tls_client_ca: cannot load"),
        ({"tls_listen": "127.0.0.1:5514"}, "syslog.tls_listen: 127.0.0.1:5514 is syslog.listen"),
    ],
)
def test_tls_configuration_that_would_not_serve_is_refused_naming_the_key(
    pki: Pki, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    files = {
        "CLIENT_KEY": str(pki.client.key),
        "CA_CERT": str(pki.ca.cert),
        "SERVER_KEY": str(pki.server.key),
    }
    syslog = {
        "tls": True,
        "tls_cert": str(pki.server.cert),
        "tls_key": str(pki.server.key),
        "tls_client_ca": str(pki.ca.cert),
        "tls_require_client_cert": True,
    }
    syslog.update({key: files.get(value, value) for key, value in change.items()})
    with pytest.raises(ConfigError, match=re.escape(message)):
        _load(tmp_path, syslog)


def test_tls_off_needs_no_certificate(tmp_path: Path) -> None:
    assert _load(tmp_path, {"tls": False}).syslog.tls_cert == ""


# --- `soc run` -------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
def test_soc_run_serves_tls_and_stores_events_under_their_agency(pki: Pki, tmp_path: Path) -> None:
    config = tmp_path / "soc.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "syslog": {
                    "listen": "127.0.0.1:0",
                    "tls": True,
                    "tls_listen": "127.0.0.1:0",
                    "tls_cert": str(pki.server.cert),
                    "tls_key": str(pki.server.key),
                    "tls_client_ca": str(pki.ca.cert),
                    "tls_require_client_cert": True,
                },
                "sources": [{"id": "portal", "agency": "so-tttt", "networks": ["127.0.0.1/32"]}],
            }
        )
    )
    (tmp_path / "rules").mkdir()
    log = tmp_path / "soc.log"
    command = [
        sys.executable, "-m", "soc", "run", "--config", str(config),
        "--data-dir", str(tmp_path / "data"), "--http", "127.0.0.1:0",
        "--rules", str(tmp_path / "rules"),
    ]  # fmt: skip
    env = {**os.environ, "SOC_AUTH__API_TOKEN": "tls-e2e-token-abcdefghijklmnopqrstuv"}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        ready = None
        while ready is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            ready = re.search(r"ready .*syslog_udp=\S+:(\d+) syslog_tls=\S+:(\d+)", log.read_text())
        assert ready, f"soc run did not become ready:\n{log.read_text()}"
        lines = [b"<38>1 2026-11-28T10:00:00Z web01 sshd 7 - - over tls %d" % i for i in range(2)]
        _send(int(ready[2]), _client_context(pki, pki.client), [octets(line) for line in lines])
        send_from_stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        send_from_stranger.bind(("127.0.0.2", 0))
        send_from_stranger.sendto(
            b"<38>Nov 28 10:00:00 web02 app: over udp", ("127.0.0.1", int(ready[1]))
        )
        send_from_stranger.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()

    async def search(scope: Scope) -> list[dict[str, Any]]:
        store = SqliteStore(tmp_path / "data" / "soc.db")
        await store.open()
        try:
            return (await store.search("events", Query(scope=scope, limit=10))).items
        finally:
            await store.close()

    everything = asyncio.run(search(Scope.everything()))
    assert len(everything) == 3
    agency = asyncio.run(search(Scope(frozenset({"so-tttt"}))))
    assert sorted(e["event"]["original"] for e in agency) == [line.decode() for line in lines]
    assert all(e["organization"]["id"] == "so-tttt" for e in agency)
