"""The HTTP intake `POST /api/v1/ingest` over the real in-process bus."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import socket
import uuid
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from soc.api.ingest import install_intake
from soc.bus.base import RAW, Delivered, Message
from soc.bus.memory import MemoryBus
from soc.config import IntakeConfig, SourceConfig
from soc.ids import stable_id

PORTAL_TOKEN = "portal-token-0123456789abcdef"
MAIL_TOKEN = "mail-token-fedcba9876543210"
SOURCES = (
    SourceConfig(
        id="portal-web",
        agency="so-tttt",
        token_sha256=hashlib.sha256(PORTAL_TOKEN.encode()).hexdigest(),
    ),
    SourceConfig(id="mail", agency="vp-ubnd", token=MAIL_TOKEN),
    SourceConfig(id="syslog-only", agency="so-yt", networks=("10.0.0.0/8",)),
)
LIMITS = IntakeConfig(
    max_body_bytes=64 * 1024,
    max_decompressed_bytes=256 * 1024,
    max_lines=100,
    max_line_bytes=1000,
)
NDJSON = {"Content-Type": "application/x-ndjson"}


def auth(token: str = PORTAL_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class RefusingBus(MemoryBus):
    """A bus whose broker is away: every publish fails, as the Kafka bus does after retries."""

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        raise ConnectionError("broker unreachable")


async def make_client(bus: MemoryBus) -> httpx.AsyncClient:
    app = FastAPI()
    install_intake(app, bus, SOURCES, LIMITS)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://soc")


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus()
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def client(bus: MemoryBus) -> AsyncIterator[httpx.AsyncClient]:
    async with await make_client(bus) as http:
        yield http


async def published(bus: MemoryBus) -> list[Delivered]:
    consumer = await bus.subscribe(RAW, "test-reader")
    records: list[Delivered] = []
    while batch := await consumer.poll(10_000, 0.05):
        records += batch
    await consumer.commit()
    await consumer.close()
    return records


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def ndjson(*items: Any) -> bytes:
    return b"\n".join(orjson.dumps(item) for item in items) + b"\n"


async def test_ndjson_lines_become_raw_records_of_the_tokens_agency(
    client: httpx.AsyncClient, bus: MemoryBus
) -> None:
    body = ndjson(
        "<13>Nov 28 10:00:00 web01 sshd[1]: Failed password for root",
        {
            "data": '10.0.0.1 - - [28/Nov/2026:10:00:00 +0700] "GET / HTTP/1.1" 200 5',
            "format": "nginx",
            "fields": {"host": {"name": "web01"}, "organization": {"id": "someone-else"}},
        },
    )
    response = await client.post("/api/v1/ingest", content=body, headers={**auth(), **NDJSON})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "rejected": 0, "errors": []}
    records = await published(bus)
    assert [r.value["data"][:4] for r in records] == ["<13>", "10.0"]
    first, second = (r.value for r in records)
    for record in (first, second):
        assert record["organization"] == {"id": "so-tttt"}
        assert record["source"]["type"] == "http"
        assert record["source"]["id"] == "portal-web"
        assert record["source"]["peer"] == {"ip": "192.0.2.7", "port": 40000}
        assert record["received_at"].endswith("Z")
    assert "format" not in first
    assert second["format"] == "nginx"
    # The agency comes from the token; a sender cannot claim another one.
    assert second["fields"] == {"host": {"name": "web01"}}
    assert records[1].key == "web01"
    assert records[0].key == "portal-web"


async def test_the_same_request_sent_twice_gives_the_same_ids(
    client: httpx.AsyncClient, bus: MemoryBus
) -> None:
    body = ndjson("line one", "line two", "line one")
    for _ in range(2):
        response = await client.post("/api/v1/ingest", content=body, headers={**auth(), **NDJSON})
        assert response.status_code == 200
    ids = [r.value["id"] for r in await published(bus)]
    assert len(ids) == 6
    assert ids[:3] == ids[3:]
    assert len(set(ids[:3])) == 3, "equal lines at different positions are different records"


async def test_agent_items_are_identified_by_source_file_and_offset(
    client: httpx.AsyncClient, bus: MemoryBus
) -> None:
    item = {"data": "x", "file": "2049:77:abcd:0", "offset": 120, "path": "/var/log/app.log"}
    for token in (PORTAL_TOKEN, MAIL_TOKEN, PORTAL_TOKEN):
        body = ndjson({"data": "first"}, item)
        response = await client.post(
            "/api/v1/ingest", content=body, headers={**auth(token), **NDJSON}
        )
        assert response.status_code == 200
    records = [r.value for r in await published(bus)]
    agent_records = [r for r in records if r["data"] == "x"]
    assert agent_records[0]["source"]["type"] == "agent"
    assert agent_records[0]["source"]["file"] == {"path": "/var/log/app.log"}
    portal, mail, portal_again = (r["id"] for r in agent_records)
    assert portal == stable_id("portal-web", "file", "2049:77:abcd:0", "120")
    assert portal == portal_again, "a re-sent line keeps its id whatever the request"
    assert portal != mail, "another source can never produce (or overwrite) the same id"
    assert agent_records[1]["organization"] == {"id": "vp-ubnd"}


async def test_json_array_is_accepted(client: httpx.AsyncClient, bus: MemoryBus) -> None:
    body = orjson.dumps(["a", {"message": "b", "format": "plain"}, {"data": "c", "id": "my-1"}])
    response = await client.post(
        "/api/v1/ingest", content=body, headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == 3
    records = [r.value for r in await published(bus)]
    assert [r["data"] for r in records] == ["a", "b", "c"]
    assert records[1]["format"] == "plain"


async def test_gzip_bodies_are_decompressed(client: httpx.AsyncClient, bus: MemoryBus) -> None:
    body = gzip.compress(ndjson(*(f"line {n}" for n in range(50))))
    headers = {**auth(), **NDJSON, "Content-Encoding": "gzip"}
    response = await client.post("/api/v1/ingest", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert [r.value["data"] for r in await published(bus)] == [f"line {n}" for n in range(50)]


async def test_plain_text_lines_keep_invalid_utf8_exactly(
    client: httpx.AsyncClient, bus: MemoryBus
) -> None:
    raw = b"caf\xe9 latin-1 line"
    body = b"first\r\n" + raw + b"\n"
    headers = {**auth(), "Content-Type": "text/plain; charset=utf-8"}
    response = await client.post("/api/v1/ingest", content=body, headers=headers)
    assert response.status_code == 200
    first, second = (r.value for r in await published(bus))
    assert first["data"] == "first"
    assert second["flags"] == ["invalid_utf8"]
    assert base64.b64decode(second["data_b64"]) == raw


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-known-token"},
        # A hash of a token is not the token.
        {"Authorization": f"Bearer {SOURCES[0].token_sha256}"},
    ],
    ids=["missing", "basic", "empty", "unknown", "digest-as-token"],
)
async def test_missing_or_unknown_tokens_are_refused(
    client: httpx.AsyncClient, bus: MemoryBus, headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/ingest", content=ndjson("x"), headers={**headers, **NDJSON}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await published(bus) == []


async def test_oversize_body_is_refused_naming_the_limit(
    client: httpx.AsyncClient, bus: MemoryBus
) -> None:
    body = ndjson(*("y" * 900 for _ in range(80)))
    assert len(body) > LIMITS.max_body_bytes
    response = await client.post("/api/v1/ingest", content=body, headers={**auth(), **NDJSON})
    assert response.status_code == 413
    assert "intake.max_body_bytes" in response.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(80):
            yield b'"' + b"y" * 1000 + b'"\n'

    response = await client.post("/api/v1/ingest", content=chunks(), headers={**auth(), **NDJSON})
    assert response.status_code == 413
    assert await published(bus) == []


async def test_gzip_bomb_is_refused_without_expanding_it(
    client: httpx.AsyncClient, bus: MemoryBus
) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"0" * (1024 * 1024)
    bomb = packer.compress(b'"') + b"".join(packer.compress(zeros) for _ in range(50))
    bomb += packer.compress(b'"\n') + packer.flush()  # 50 MiB in ~50 KiB
    assert len(bomb) < LIMITS.max_body_bytes
    headers = {**auth(), **NDJSON, "Content-Encoding": "gzip"}
    response = await client.post("/api/v1/ingest", content=bomb, headers=headers)
    assert response.status_code == 413
    assert "intake.max_decompressed_bytes" in response.json()["detail"]
    assert await published(bus) == []


async def test_too_many_lines_are_refused_naming_the_limit(
    client: httpx.AsyncClient, bus: MemoryBus
) -> None:
    body = ndjson(*(str(n) for n in range(LIMITS.max_lines + 1)))
    response = await client.post("/api/v1/ingest", content=body, headers={**auth(), **NDJSON})
    assert response.status_code == 413
    assert "intake.max_lines" in response.json()["detail"]
    body = orjson.dumps([str(n) for n in range(LIMITS.max_lines + 1)])
    headers = {**auth(), "Content-Type": "application/json"}
    response = await client.post("/api/v1/ingest", content=body, headers=headers)
    assert response.status_code == 413
    assert await published(bus) == []


async def test_bad_lines_are_reported_and_the_good_ones_published(
    client: httpx.AsyncClient, bus: MemoryBus
) -> None:
    body = b"\n".join(
        [
            b'"good one"',
            b"{not json",
            b'{"data": "x", "format": "cobol"}',
            b'{"data": "good two", "fields": {"service": {"name": "portal"}}}',
            b"42",
            b'{"data": "x", "file": "f"}',
            b'{"data": "x", "fields": "host=a"}',
            b"",
            b'{"message": "' + b"z" * 1500 + b'"}',
        ]
    )
    refused_before = _sample("soc_intake_lines_total", source="portal-web", result="refused")
    accepted_before = _sample("soc_intake_lines_total", source="portal-web", result="accepted")
    dropped_before = _sample("soc_dropped_total", stage="intake", reason="invalid_line")
    response = await client.post("/api/v1/ingest", content=body, headers={**auth(), **NDJSON})
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 3
    assert answer["rejected"] == 5
    assert _sample("soc_intake_lines_total", source="portal-web", result="refused") == (
        refused_before + 5
    )
    assert _sample("soc_intake_lines_total", source="portal-web", result="accepted") == (
        accepted_before + 3
    )
    assert _sample("soc_dropped_total", stage="intake", reason="invalid_line") == (
        dropped_before + 5
    )
    assert [error["line"] for error in answer["errors"]] == [2, 3, 5, 6, 7]
    reasons = [error["reason"] for error in answer["errors"]]
    assert reasons[0].startswith("invalid JSON")
    assert "unknown format 'cobol'" in reasons[1]
    assert "string or an object" in reasons[2]
    assert "'offset'" in reasons[3]
    assert "'fields' must be an object" in reasons[4]
    records = [r.value for r in await published(bus)]
    assert [r["data"][:8] for r in records] == ["good one", "good two", "z" * 8]
    assert len(records[2]["data"]) == LIMITS.max_line_bytes
    assert records[2]["flags"] == ["truncated"]


async def test_unavailable_bus_answers_503_so_the_sender_retries() -> None:
    async with await make_client(RefusingBus()) as http:
        response = await http.post(
            "/api/v1/ingest", content=ndjson("x"), headers={**auth(), **NDJSON}
        )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


async def test_unknown_content_type_and_encoding_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/ingest", content=b"x", headers={**auth(), "Content-Type": "application/xml"}
    )
    assert response.status_code == 415
    response = await client.post(
        "/api/v1/ingest", content=b"x", headers={**auth(), **NDJSON, "Content-Encoding": "br"}
    )
    assert response.status_code == 415
    response = await client.post(
        "/api/v1/ingest",
        content=b"\x1f\x8b not gzip",
        headers={**auth(), **NDJSON, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 400


async def test_a_closing_intake_refuses_new_requests(bus: MemoryBus) -> None:
    app = FastAPI()
    intake = install_intake(app, bus, SOURCES, LIMITS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://soc") as http:
        await intake.close()
        response = await http.post(
            "/api/v1/ingest", content=ndjson("x"), headers={**auth(), **NDJSON}
        )
    assert response.status_code == 503
    assert await published(bus) == []


async def test_route_is_documented_in_openapi(client: httpx.AsyncClient) -> None:
    app = FastAPI()
    install_intake(app, MemoryBus(), SOURCES, LIMITS)
    operation = app.openapi()["paths"]["/api/v1/ingest"]["post"]
    assert "application/x-ndjson" in operation["description"]
    assert {"401", "413", "503"} <= set(operation["responses"])


async def test_a_bus_that_does_not_acknowledge_in_time_gets_503() -> None:
    """A full in-process bus holds publishers (backpressure); the intake answers 503 after
    its timeout instead of holding the sender, which spools and retries."""
    bus = MemoryBus(capacity=2)
    await bus.subscribe(RAW, "slow-stage")  # a stage that never commits
    await bus.publish(RAW, [Message("h", {"n": 1}), Message("h", {"n": 2})])
    app = FastAPI()
    install_intake(app, bus, SOURCES, replace(LIMITS, publish_timeout_ms=200))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://soc") as http:
        response = await http.post(
            "/api/v1/ingest", content=ndjson("x"), headers={**auth(), **NDJSON}
        )
    assert response.status_code == 503
    assert "intake.publish_timeout_ms" in response.json()["detail"]


def _kafka_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 9092), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _kafka_reachable(), reason="Kafka not running (make services)")
async def test_lines_acknowledged_by_the_intake_are_on_kafka() -> None:
    from soc.bus.kafka import KafkaBus

    bus = KafkaBus("127.0.0.1:9092", partitions=1, namespace=f"test-ingest-{uuid.uuid4().hex}.")
    await bus.start()
    try:
        app = FastAPI()
        install_intake(app, bus, SOURCES, LIMITS)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://soc") as http:
            response = await http.post(
                "/api/v1/ingest",
                content=gzip.compress(ndjson("one", {"data": "two", "format": "plain"})),
                headers={**auth(MAIL_TOKEN), **NDJSON, "Content-Encoding": "gzip"},
            )
        assert response.status_code == 200
        consumer = await bus.subscribe(RAW, "reader")
        records: list[dict[str, Any]] = []
        for _ in range(50):
            records += [r.value for r in await consumer.poll(100, 0.2)]
            if len(records) >= 2:
                break
        assert [r["data"] for r in records] == ["one", "two"]
        assert {r["organization"]["id"] for r in records} == {"vp-ubnd"}
    finally:
        await bus.close()


def _post_and_read(body: bytes, content_type: str) -> tuple[httpx.Response, list[dict[str, Any]]]:
    async def run() -> tuple[httpx.Response, list[dict[str, Any]]]:
        bus = MemoryBus()
        async with await make_client(bus) as http:
            response = await http.post(
                "/api/v1/ingest", content=body, headers={**auth(), "Content-Type": content_type}
            )
        return response, [r.value for r in await published(bus)]

    return asyncio.run(run())


_LINES = st.lists(st.binary(max_size=1200).map(lambda b: b.replace(b"\n", b"")), max_size=30)


@settings(max_examples=60, deadline=None)
@given(lines=_LINES)
def test_any_text_body_is_kept_byte_for_byte(lines: list[bytes]) -> None:
    response, records = _post_and_read(b"\n".join(lines) + b"\n", "text/plain")
    assert response.status_code == 200
    kept = [line.rstrip(b"\r")[: LIMITS.max_line_bytes] for line in lines if line.strip()]
    exact = [
        base64.b64decode(r["data_b64"]) if "data_b64" in r else r["data"].encode() for r in records
    ]
    assert exact == kept
    assert len({r["id"] for r in records}) == len(records)


@settings(max_examples=60, deadline=None)
@given(lines=_LINES)
def test_any_ndjson_body_is_answered_line_by_line_never_with_a_crash(lines: list[bytes]) -> None:
    response, records = _post_and_read(b"\n".join(lines), "application/x-ndjson")
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] + answer["rejected"] == sum(1 for line in lines if line.strip())
    assert answer["accepted"] == len(records)
