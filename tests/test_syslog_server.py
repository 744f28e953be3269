"""The syslog server over real sockets, and its TCP framing (RFC 6587)."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from collectors.syslog.server import Frame, Framer, SyslogServer
from soc.bus.base import RAW
from soc.bus.memory import MemoryBus
from soc.config import Address


def frames(chunks: list[bytes], max_bytes: int = 1024) -> list[Frame]:
    framer = Framer(max_bytes)
    out: list[Frame] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out + framer.finish()


def test_lf_framing_with_crlf_and_a_last_line_without_newline() -> None:
    got = frames([b"<13>one\r\n<13>two\n\n<13>thr", b"ee"])
    assert [f.data for f in got] == [b"<13>one", b"<13>two", b"<13>three"]


def test_octet_counting_including_newlines_inside_a_message() -> None:
    message = b"<13>1 - h app - - - line one\nline two"
    stream = str(len(message)).encode() + b" " + message + b"10 <13>second"
    got = frames([stream[:7], stream[7:30], stream[30:]])
    assert [f.data for f in got] == [message, b"<13>second"]


def test_a_digit_led_line_that_is_not_a_count_is_lf_framed() -> None:
    got = frames([b"123: Oct 11 22:14:15: %SYS-5-CONFIG_I: Configured\n"])
    assert [f.data for f in got] == [b"123: Oct 11 22:14:15: %SYS-5-CONFIG_I: Configured"]


def test_over_long_messages_are_truncated_flagged_and_do_not_bleed() -> None:
    long_line = b"<13>" + b"a" * 3000 + b"\n<13>next\n"
    got = frames([long_line[:1000], long_line[1000:]], max_bytes=600)
    assert [(len(f.data), f.truncated) for f in got] == [(600, True), (8, False)]
    counted = b"3000 <13>" + b"b" * 2996 + b"9 <13>after"
    got = frames([counted], max_bytes=600)
    assert [(f.data[:9], f.truncated) for f in got] == [(b"<13>bbbbb", True), (b"<13>after", False)]


@pytest.fixture
async def running() -> AsyncIterator[tuple[SyslogServer, Any]]:
    bus = MemoryBus()
    consumer = await bus.subscribe(RAW, "test")
    server = SyslogServer(bus, Address("127.0.0.1", 0), max_message_bytes=600)
    await server.start()
    yield server, consumer
    await server.stop()


async def collect(consumer: Any, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 5
    while len(got) < count and asyncio.get_running_loop().time() < deadline:
        got += [d.value for d in await consumer.poll(1000, 0.2)]
    return got


async def test_udp_and_tcp_records_carry_receipt_metadata(running: Any) -> None:
    server, consumer = running
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.sendto(
        b"<13>Oct 11 22:14:15 host app: over udp\n", ("127.0.0.1", server.addresses["udp"].port)
    )
    udp.close()
    _, writer = await asyncio.open_connection("127.0.0.1", server.addresses["tcp"].port)
    writer.write(b"<13>Oct 11 22:14:15 host app: over tcp\n")
    await writer.drain()
    writer.close()
    records = await collect(consumer, 2)
    by_transport = {r["source"]["transport"]: r for r in records}
    assert by_transport["udp"]["data"] == "<13>Oct 11 22:14:15 host app: over udp"
    assert by_transport["tcp"]["data"] == "<13>Oct 11 22:14:15 host app: over tcp"
    for record in records:
        assert record["source"]["peer"]["ip"] == "127.0.0.1"
        assert record["source"]["peer"]["port"] > 0
        assert record["received_at"].endswith("Z")
        assert len(record["id"]) == 32
    assert records[0]["id"] != records[1]["id"]


async def test_invalid_utf8_is_kept_exactly_and_flagged(running: Any) -> None:
    server, consumer = running
    raw = b"<13>Oct 11 22:14:15 host app: bad \xff\xfe bytes"
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.sendto(raw, ("127.0.0.1", server.addresses["udp"].port))
    udp.close()
    (record,) = await collect(consumer, 1)
    assert record["flags"] == ["invalid_utf8"]
    assert base64.b64decode(record["data_b64"]) == raw
    assert "\\xff\\xfe" in record["data"]


async def test_tcp_lines_sent_just_before_stop_are_published(running: Any) -> None:
    server, consumer = running
    _, writer = await asyncio.open_connection("127.0.0.1", server.addresses["tcp"].port)
    writer.write(b"".join(b"<13>Oct 11 22:14:15 h app: line %d\n" % i for i in range(2000)))
    await writer.drain()
    await server.stop()
    writer.close()
    records = await collect(consumer, 2000)
    assert len(records) == 2000
    assert records[-1]["data"].endswith("line 1999")


async def test_connections_past_the_limit_are_refused_counted_and_room_comes_back() -> None:
    bus = MemoryBus()
    consumer = await bus.subscribe(RAW, "test")
    server = SyslogServer(bus, Address("127.0.0.1", 0), udp=False, max_connections=2)
    await server.start()
    port = server.addresses["tcp"].port
    labels = {"source": "unknown", "transport": "tcp", "reason": "connection_limit"}
    before = REGISTRY.get_sample_value("soc_syslog_connections_refused_total", labels) or 0.0
    try:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for _, writer in held:  # a line from each: both are taken in before the third comes
            writer.write(b"<13>x: held\n")
            await writer.drain()
        assert len(await collect(consumer, 2)) == 2
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()
        after = REGISTRY.get_sample_value("soc_syslog_connections_refused_total", labels)
        assert after == before + 1
        held[0][1].close()
        await held[0][1].wait_closed()
        # The freed place is taken again once the server has seen the close.
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"<13>x: admitted\n")
            await writer.drain()
            writer.close()
            records = await collect(consumer, 1)
            if records or asyncio.get_running_loop().time() > deadline:
                break
        assert [r["data"] for r in records] == ["<13>x: admitted"]
        held[1][1].close()
    finally:
        await server.stop()


# --- properties of the framer (hypothesis) ---------------------------------------------------

_MAX = 64
#: A message as a sender frames it: starts with a PRI, may hold newlines when octet-counted.
_messages = st.binary(min_size=0, max_size=2 * _MAX).map(
    lambda body: b"<13>" + body.rstrip(b"\r\n\x00")
)


def _feed(stream: bytes, cuts: list[int], max_bytes: int = _MAX) -> list[Frame]:
    framer = Framer(max_bytes)
    frames: list[Frame] = []
    start = 0
    for cut in [*sorted({min(cut, len(stream)) for cut in cuts}), len(stream)]:
        frames += framer.feed(stream[start:cut])
        start = cut
    return frames + framer.finish()


@given(st.lists(_messages, max_size=20), st.lists(st.integers(0, 4000), max_size=30))
@settings(max_examples=300)
def test_octet_counted_messages_come_out_whole_however_the_stream_is_cut(
    messages: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(str(len(m)).encode() + b" " + m for m in messages)
    frames = _feed(stream, cuts)
    assert [(f.data, f.truncated) for f in frames] == [(m[:_MAX], len(m) > _MAX) for m in messages]


#: Pieces that make framing decisions hard: counts, separators, lines around the maximum.
_pieces = st.sampled_from(
    [b"\n", b"\r", b"\x00", b" ", b"<13>", b"12", b"5 ", b"99 <", b"a" * 10, b"a" * 60, b"\xff"]
)
_streams = st.one_of(st.binary(max_size=600), st.lists(_pieces, max_size=40).map(b"".join))


@given(_streams, st.lists(st.integers(0, 600), max_size=20))
@example(b"a" * _MAX + b"\r\r\n<13>next\n", [])  # a full line whose CRs come after a cut
@settings(max_examples=1000)
def test_any_bytes_cut_anywhere_frame_as_when_sent_whole_and_never_overflow(
    stream: bytes, cuts: list[int]
) -> None:
    whole = [(f.data, f.truncated, f.incomplete) for f in _feed(stream, [])]
    for cut in (cuts, list(range(len(stream)))):  # random cuts, and a byte at a time
        assert [(f.data, f.truncated, f.incomplete) for f in _feed(stream, cut)] == whole
    assert all(len(data) <= _MAX for data, _, _ in whole)
    assert sum(len(data) for data, _, _ in whole) <= len(stream)
