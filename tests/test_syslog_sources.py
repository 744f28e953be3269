"""Each syslog sender mapped to its agency by address or CIDR (longest prefix wins), over real UDP
and TCP sockets from several loopback addresses, and the per-source metrics."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from collectors.syslog.server import Frame, RecordMaker, SyslogServer
from collectors.syslog.sources import Sender, SourceMap
from soc.bus.base import RAW
from soc.bus.memory import MemoryBus
from soc.config import Address, ConfigError, SourceConfig, load_config
from tests.notify_harness import wait_until

SOURCES = (
    SourceConfig(id="so-tttt", agency="stttt", networks=("127.0.0.0/16", "2001:db8::/32")),
    SourceConfig(id="cong-an", agency="ca", networks=("127.0.1.0/24",)),
    SourceConfig(id="mail", agency="stttt-mail", networks=("127.0.1.7", "2001:db8:1::/48")),
)


# --- the look-up -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "source"),
    [
        ("127.0.0.2", "so-tttt"),
        ("127.0.255.255", "so-tttt"),
        ("127.0.1.3", "cong-an"),
        ("127.0.1.7", "mail"),
        ("127.0.1.8", "cong-an"),
        ("::ffff:127.0.1.7", "mail"),  # an IPv4 sender on a dual-stack socket
        ("2001:db8:5::1", "so-tttt"),
        ("2001:db8:1::9", "mail"),
        ("fe80::1%eth0", None),
        ("127.1.0.1", None),
        ("10.0.0.1", None),
        ("unknown", None),
    ],
)
def test_longest_prefix_wins_and_strangers_have_no_source(peer: str, source: str | None) -> None:
    sender = SourceMap(SOURCES).lookup(peer)
    assert (sender.id if sender else None) == source


def test_a_catch_all_network_takes_only_what_no_narrower_network_holds() -> None:
    sources = SourceMap([*SOURCES, SourceConfig(id="rest", agency="dtt", networks=("0.0.0.0/0",))])
    assert [
        sender.id if sender else None
        for sender in map(sources.lookup, ("8.8.8.8", "127.0.1.3", "::1"))
    ] == ["rest", "cong-an", None]


def test_a_source_carries_its_agency_and_answers_are_cached() -> None:
    sources = SourceMap(SOURCES)
    first = sources.lookup("127.0.1.7")
    assert first == Sender("mail", "stttt-mail")
    assert sources.lookup("127.0.1.7") is first
    assert sources.networks == 5


def test_the_cache_stays_bounded_under_many_distinct_senders() -> None:
    sources = SourceMap(SOURCES)
    for n in range(70_000):
        sources.lookup(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
    assert sources.lookup("127.0.1.3") == Sender("cong-an", "ca")
    assert len(sources._cache) <= 65_536


def test_a_network_claimed_by_two_sources_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"sources\[1\].networks: '127.0.0.0/16' is already"):
        SourceMap([SourceConfig(id="a", agency="x", networks=("127.0.0.1/16",)), SOURCES[0]])


def test_the_unknown_label_cannot_be_a_source_id() -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\].id: 'unknown' is reserved"):
        SourceMap([SourceConfig(id="unknown", agency="x", networks=("10.0.0.0/8",))])


def test_an_invalid_network_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\].networks: '127.0.0.300'"):
        SourceMap([SourceConfig(id="a", agency="x", networks=("127.0.0.300",))])


def test_configuration_with_a_network_claimed_twice_stops_naming_it(tmp_path: Path) -> None:
    file = tmp_path / "soc.yaml"
    file.write_text(
        "sources:\n"
        "  - {id: a, agency: x, networks: [10.1.0.0/16]}\n"
        "  - {id: b, agency: y, networks: ['10.1.2.3', 10.1.0.0/16]}\n"
    )
    with pytest.raises(ConfigError, match=r"sources\[1\].networks: '10.1.0.0/16' is already"):
        load_config(file, environ={})


def test_the_normalizer_puts_the_agency_on_the_event() -> None:
    from soc.normalize import NormalizeOptions, normalize

    sender = SourceMap(SOURCES).lookup("127.0.1.3")
    record = RecordMaker("127.0.0.1:514").make(
        Frame(b"<13>Oct 11 22:14:15 host app: hello"),
        "udp",
        ("127.0.1.3", 5000),
        "2026-11-28T10:00:00.000000Z",
        sender,
    )
    event = normalize(record, NormalizeOptions())
    assert event["organization"] == {"id": "ca"}
    assert event["message"] == "hello"


# --- over real sockets -----------------------------------------------------------------------


@pytest.fixture
async def running() -> AsyncIterator[tuple[SyslogServer, Any]]:
    bus = MemoryBus()
    consumer = await bus.subscribe(RAW, "test")
    server = SyslogServer(
        bus, Address("127.0.0.1", 0), max_message_bytes=600, sources=SourceMap(SOURCES)
    )
    await server.start()
    yield server, consumer
    await server.stop()


async def collect(consumer: Any, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 10
    while len(got) < count and asyncio.get_running_loop().time() < deadline:
        got += [d.value for d in await consumer.poll(1000, 0.2)]
        await consumer.commit()
    return got


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def send_udp(port: int, source_ip: str, lines: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((source_ip, 0))
        for line in lines:
            udp.sendto(line, ("127.0.0.1", port))


async def send_tcp(port: int, source_ip: str, data: bytes) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source_ip, 0))
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


SENDERS = {
    "127.0.0.2": ("so-tttt", "stttt"),
    "127.0.1.3": ("cong-an", "ca"),
    "127.0.1.7": ("mail", "stttt-mail"),
    "127.9.9.9": (None, None),
}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_records_carry_the_agency_of_their_sender_by_address_and_cidr(
    running: Any, transport: str
) -> None:
    server, consumer = running
    port = server.addresses[transport].port
    for ip in SENDERS:
        line = b"<13>Oct 11 22:14:15 host app: from %s\n" % ip.encode()
        if transport == "udp":
            send_udp(port, ip, [line])
        else:
            await send_tcp(port, ip, line)
    records = await collect(consumer, len(SENDERS))
    assert len(records) == len(SENDERS)
    for record in records:
        ip = record["source"]["peer"]["ip"]
        assert record["data"].endswith(f"from {ip}")
        source, agency = SENDERS[ip]
        assert record["source"].get("id") == source
        assert record.get("organization") == ({"id": agency} if agency else None)


async def test_records_and_bytes_are_counted_per_source_and_strangers_as_unknown(
    running: Any,
) -> None:
    server, consumer = running
    names = ("soc_syslog_source_records_total", "soc_syslog_source_bytes_total")
    keys = [(name, s, t) for name in names for s in ("mail", "unknown") for t in ("udp", "tcp")]
    before = {key: sample(key[0], source=key[1], transport=key[2]) for key in keys}
    send_udp(server.addresses["udp"].port, "127.0.1.7", [b"<13>x: 12345678"] * 3)
    send_udp(server.addresses["udp"].port, "127.9.9.9", [b"<13>x: 1234"] * 2)
    await send_tcp(server.addresses["tcp"].port, "127.0.1.7", b"<13>x: 1\n" * 4)
    await collect(consumer, 9)
    delta = {key: sample(key[0], source=key[1], transport=key[2]) - before[key] for key in keys}
    assert delta == {
        (names[0], "mail", "udp"): 3,
        (names[0], "mail", "tcp"): 4,
        (names[0], "unknown", "udp"): 2,
        (names[0], "unknown", "tcp"): 0,
        (names[1], "mail", "udp"): 3 * 15,
        (names[1], "mail", "tcp"): 4 * 8,
        (names[1], "unknown", "udp"): 2 * 11,
        (names[1], "unknown", "tcp"): 0,
    }
    assert (
        REGISTRY.get_sample_value(
            "soc_syslog_source_records_total", {"source": "127.9.9.9", "transport": "udp"}
        )
        is None
    )


async def test_framing_problems_are_flagged_and_counted_per_source(running: Any) -> None:
    server, consumer = running
    reasons = ("truncated", "invalid_utf8", "incomplete")
    before = {
        r: sample("soc_syslog_source_flagged_total", source="cong-an", reason=r) for r in reasons
    }
    send_udp(server.addresses["udp"].port, "127.0.1.3", [b"<13>x: " + b"a" * 700])
    await send_tcp(
        server.addresses["tcp"].port, "127.0.1.3", b"<13>x: bad \xff\n" + b"99 <13>x: cut"
    )
    records = await collect(consumer, 3)
    assert sorted(tuple(r["flags"]) for r in records) == [
        ("incomplete",),
        ("invalid_utf8",),
        ("truncated",),
    ]
    assert all(r["organization"] == {"id": "ca"} for r in records)
    after = {
        r: sample("soc_syslog_source_flagged_total", source="cong-an", reason=r) for r in reasons
    }
    assert {r: after[r] - before[r] for r in reasons} == dict.fromkeys(reasons, 1)


async def test_udp_drops_past_the_queue_are_counted_against_their_source() -> None:
    # A bus that holds one record until it is read stalls the pump, so a queue of two fills and
    # the rest of a burst must be dropped, and counted against the sender's source.
    bus = MemoryBus(capacity=1)
    consumer = await bus.subscribe(RAW, "test")
    server = SyslogServer(
        bus, Address("127.0.0.1", 0), tcp=False, udp_queue=2, batch_size=1,
        sources=SourceMap(SOURCES),
    )  # fmt: skip
    await server.start()
    port = server.addresses["udp"].port
    sources = ("so-tttt", "unknown")

    def dropped(source: str) -> float:
        return sample("soc_syslog_source_dropped_total", source=source, reason="udp_queue_full")

    before = {source: dropped(source) for source in sources}
    taken_before = sample("soc_syslog_source_records_total", source="so-tttt", transport="udp")
    send_udp(port, "127.0.0.2", [b"<13>x: first"])
    assert len(await consumer.poll(10, 5)) == 1
    # The topic now holds "first", read but not committed, so the pump stalls publishing
    # "second" with it in hand. Waiting until the pump has taken it (it counts a record before
    # publishing) leaves exactly the queue's two places for the burst, whatever the threads'
    # timing: else the pump may take its record only after the burst filled the queue, and a
    # stranger's datagram gets the place it frees.
    send_udp(port, "127.0.0.2", [b"<13>x: second"])
    await wait_until(
        lambda: (
            sample("soc_syslog_source_records_total", source="so-tttt", transport="udp")
            >= taken_before + 2
        ),
        within=10,
    )
    send_udp(port, "127.0.0.2", [b"<13>x: burst %d" % i for i in range(40)])
    send_udp(port, "127.9.9.9", [b"<13>x: stranger %d" % i for i in range(10)])
    # Two of the burst find room in the queue; the other 38 and all 10 strangers are dropped.
    await wait_until(lambda: sum(dropped(s) - before[s] for s in sources) >= 48, within=10)
    # Read everything: whatever was not dropped is published, nothing else is lost.
    delivered: list[Any] = []

    async def read() -> None:
        while True:
            delivered.extend(await consumer.poll(100, 0.05))
            await consumer.commit()

    reader = asyncio.create_task(read())
    await server.stop()  # returns once every record taken in is published
    reader.cancel()
    delivered.extend(await consumer.poll(100, 0))
    counted = {source: dropped(source) - before[source] for source in sources}
    assert counted == {"so-tttt": 38, "unknown": 10}
    assert len(delivered) == 3  # "second" and the two queued
    assert len(delivered) + counted["so-tttt"] + counted["unknown"] == 51


async def test_ipv4_senders_on_a_dual_stack_socket_keep_their_ipv4_address_and_agency() -> None:
    bus = MemoryBus()
    consumer = await bus.subscribe(RAW, "test")
    try:
        server = SyslogServer(bus, Address("::", 0), sources=SourceMap(SOURCES))
        await server.start()
    except OSError as exc:
        pytest.skip(f"no IPv6 on this machine: {exc}")
    try:
        send_udp(server.addresses["udp"].port, "127.0.1.7", [b"<13>x: dual stack"])
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp6:
            udp6.sendto(b"<13>x: over ipv6", ("::1", server.addresses["udp"].port))
        await send_tcp(server.addresses["tcp"].port, "127.0.0.2", b"<13>x: tcp dual stack\n")
        records = await collect(consumer, 3)
    finally:
        await server.stop()
    by_data = {r["data"]: r for r in records}
    assert by_data["<13>x: dual stack"]["source"]["peer"]["ip"] == "127.0.1.7"
    assert by_data["<13>x: dual stack"]["organization"] == {"id": "stttt-mail"}
    assert by_data["<13>x: over ipv6"]["source"]["peer"]["ip"] == "::1"
    assert "organization" not in by_data["<13>x: over ipv6"]
    assert by_data["<13>x: tcp dual stack"]["source"]["peer"]["ip"] == "127.0.0.2"
    assert by_data["<13>x: tcp dual stack"]["organization"] == {"id": "stttt"}
