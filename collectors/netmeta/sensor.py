"""The packet-metadata sensor: frames from a pcap file or a live interface, through the flow
table, onto `soc.raw` as raw records of format "ecs" (the normalizer passes them through).

Replay reads as fast as the bus takes the records, so a pcap of any size streams in bounded
memory. Live capture reads on a thread of its own (a blocking socket read keeps draining the
kernel's buffer whatever the event loop is doing) which owns the flow table; documents cross to
the event loop in batches and wait in a bounded queue for the bus. Past that queue they are
dropped and counted (`soc_dropped_total{stage="netmeta",reason="queue_full"}`): a network does
not slow down for its sensor.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from collectors.netmeta.flows import Document, FlowSettings, FlowTable
from collectors.netmeta.packets import LINKTYPE_ETHERNET, LINKTYPE_RAW, Decoded, decode
from collectors.netmeta.pcapfile import CaptureError, Frame, read_pcap
from collectors.syslog.sources import SourceMap
from soc import metrics
from soc.bus.base import RAW, Bus, Message
from soc.config import SourceConfig
from soc.timeutil import format_ts, utcnow

log = logging.getLogger(__name__)

_CHUNK: Final = 4096  # packets decoded between two hand-overs to the bus
_SNAPLEN: Final = 65535
_SOL_PACKET: Final = 263
_PACKET_STATISTICS: Final = 6
_SO_RCVBUFFORCE: Final = getattr(socket, "SO_RCVBUFFORCE", 33)
_RECEIVE_BUFFER: Final = 32 * 1024 * 1024
#: A live interface's hardware type (ARPHRD_*, linux/if_arp.h) -> the pcap link type of the
#: frames a packet socket gives: Ethernet headers, or none (IP straight away) on tunnels.
_LIVE_LINKTYPES: Final = {
    1: LINKTYPE_ETHERNET, 772: LINKTYPE_ETHERNET,  # Ethernet, loopback
    65534: LINKTYPE_RAW, 512: LINKTYPE_RAW, 768: LINKTYPE_RAW,  # tun (none), PPP, IPIP
    769: LINKTYPE_RAW, 776: LINKTYPE_RAW, 778: LINKTYPE_RAW,  # IP6IP6, SIT, GRE
}  # fmt: skip


class Organizations:
    """The agency (`organization.id`) of a record: the sensor's own source when configured
    (`netmeta.source_id`), else the source whose networks hold the flow's source address, else
    its destination address (an outsider probing an agency's server belongs to that agency).
    Addresses are looked up as the syslog collector looks up its senders (`SourceMap`)."""

    def __init__(self, sources: Sequence[SourceConfig], source_id: str = "") -> None:
        self._fixed: str | None = None
        if source_id:
            chosen = [s for s in sources if s.id == source_id]
            if not chosen:
                raise ValueError(f"netmeta.source_id {source_id!r} names no configured source")
            self._fixed = chosen[0].agency
        self._map = SourceMap(sources, log_strangers=False)
        self._networks = self._map.networks > 0

    def _lookup(self, ip: str) -> str | None:
        sender = self._map.lookup(ip)
        return sender.agency if sender is not None else None

    def attribute(self, document: Document) -> str | None:
        """The record's agency; also sets `network.direction` (ECS: inbound, outbound,
        internal, external) when networks are configured, the agencies' networks being the
        inside."""
        if not self._networks:
            return self._fixed
        source = self._lookup(document["source"]["ip"])
        destination = self._lookup(document["destination"]["ip"])
        document["network"]["direction"] = _DIRECTIONS[source is not None, destination is not None]
        if self._fixed is not None:
            return self._fixed
        return source if source is not None else destination


_DIRECTIONS: Final = {
    (True, True): "internal",
    (True, False): "outbound",
    (False, True): "inbound",
    (False, False): "external",
}


@dataclass
class Sensor:
    """Turns the flow table's documents into raw records and publishes them."""

    bus: Bus
    settings: FlowSettings
    organizations: Organizations
    batch_size: int = 2000

    def records(self, documents: list[Document], origin: dict[str, Any]) -> list[Message]:
        received = format_ts(utcnow())
        messages = []
        key = self.settings.sensor_id
        for document in documents:
            agency = self.organizations.attribute(document)
            record: dict[str, Any] = {
                "id": document["event"]["id"],
                "received_at": received,
                "format": "ecs",
                "data": orjson.dumps(document).decode(),
                "source": origin,
            }
            if agency is not None:
                record["organization"] = {"id": agency}
            messages.append(Message(key, record))
            metrics.NETMETA_RECORDS.labels(document["event"]["dataset"]).inc()
        return messages

    async def publish(self, documents: list[Document], origin: dict[str, Any]) -> None:
        for start in range(0, len(documents), self.batch_size):
            chunk = documents[start : start + self.batch_size]
            await self.bus.publish(RAW, self.records(chunk, origin))

    async def replay(self, paths: Sequence[Path]) -> FlowTable:
        """Read pcap/pcapng files in order (one flow table across them, as for a capture
        rotated into several files), publish everything, end the flows still open."""
        table = FlowTable(self.settings)
        for path in paths:
            origin = {"type": "netmeta", "sensor": self.settings.sensor_id, "file": str(path)}
            for _ in process_frames(table, read_pcap(path), _CHUNK):
                await self.publish(_take(table), origin)
        table.finish("capture_end")
        flush_counts(table)
        last = {"type": "netmeta", "sensor": self.settings.sensor_id}
        if paths:
            last["file"] = str(paths[-1])
        await self.publish(_take(table), last)
        return table

    async def capture(
        self,
        interface: str,
        bpf: str,
        stop: asyncio.Event,
        queue: int,
        ready: asyncio.Event | None = None,
    ) -> None:
        """Live capture until `stop` is set; then the open flows are ended and published.
        `ready` is set once the interface is being read."""
        origin = {"type": "netmeta", "sensor": self.settings.sensor_id, "interface": interface}
        loop = asyncio.get_running_loop()
        pending: deque[Document] = deque()
        wakeup = asyncio.Event()

        def deliver(documents: list[Document]) -> None:
            room = queue - len(pending)
            if room < len(documents):
                metrics.DROPPED.labels("netmeta", "queue_full").inc(len(documents) - max(room, 0))
                documents = documents[: max(room, 0)]
            pending.extend(documents)
            wakeup.set()

        capture = LiveCapture(
            interface,
            bpf,
            self.settings,
            lambda docs: loop.call_soon_threadsafe(deliver, docs),
        )
        capture.start()
        if ready is not None:
            ready.set()
        try:
            while True:
                while pending:
                    batch = [pending.popleft() for _ in range(min(len(pending), self.batch_size))]
                    await self.publish(batch, origin)
                if stop.is_set() and not capture.running:
                    break
                if stop.is_set():
                    await asyncio.to_thread(capture.stop)
                    await asyncio.sleep(0)  # let the last hand-over run
                    continue
                wakeup.clear()
                waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wakeup.wait())]
                try:
                    await asyncio.wait(waiters, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
                if capture.error is not None:
                    raise capture.error
        finally:
            if capture.running:
                await asyncio.to_thread(capture.stop)


def _take(table: FlowTable) -> list[Document]:
    documents, table.out = table.out, []
    return documents


def flush_counts(table: FlowTable) -> None:
    """Move the table's counts to Prometheus (in bulk: once per chunk, not per packet)."""
    for name, count in table.take_counts().items():
        if name.startswith("skipped_"):
            reason = name.removeprefix("skipped_")
            metrics.NETMETA_PACKETS.labels(reason).inc(count)
            if reason in ("truncated", "malformed"):
                metrics.DROPPED.labels("netmeta", reason).inc(count)
        elif name == "packets":
            metrics.NETMETA_PACKETS.labels("flow").inc(count)
        elif name == "evicted":
            metrics.NETMETA_FLOWS_EVICTED.inc(count)
        elif name.startswith("parse_error_"):
            metrics.NETMETA_PARSE_ERRORS.labels(name.removeprefix("parse_error_")).inc(count)
    metrics.NETMETA_FLOWS.set(len(table))


def process_frames(table: FlowTable, frames: Iterator[Frame], chunk: int) -> Iterator[int]:
    """Feed frames to the table; yield after every `chunk` frames so the caller can publish."""
    add = table.add
    counts = table.counts
    seen = 0
    packets = 0
    for ts, frame, linktype in frames:
        packet = decode(frame, linktype)
        if isinstance(packet, Decoded):
            add(ts, packet, frame)
            packets += 1
        else:
            name = f"skipped_{packet.reason}"
            counts[name] = counts.get(name, 0) + 1
        seen += 1
        if seen == chunk:
            counts["packets"] = counts.get("packets", 0) + packets
            flush_counts(table)
            seen = packets = 0
            yield chunk
    counts["packets"] = counts.get("packets", 0) + packets
    flush_counts(table)
    yield seen


class LiveCapture:
    """Frames from an interface (scapy's PF_PACKET listen socket, BPF filter compiled by
    libpcap) into a flow table on a thread of its own."""

    def __init__(
        self,
        interface: str,
        bpf: str,
        settings: FlowSettings,
        deliver: Callable[[list[Document]], Any],
    ) -> None:
        # Importing them sets conf.L2listen for this platform and the link types it knows.
        import scapy.arch
        import scapy.layers.l2  # noqa: F401
        from scapy.config import conf
        from scapy.error import Scapy_Exception

        try:
            # scapy caches interface indexes; one re-created since (a bond, a veth) would
            # otherwise be joined by its old index and refused.
            conf.ifaces.reload()
            self._socket = conf.L2listen(iface=interface, filter=bpf or None)
        except (OSError, ValueError, Scapy_Exception, ImportError) as exc:
            raise CaptureError(f"cannot capture on {interface!r}: {exc}") from None
        hardware = int(self._socket.ins.getsockname()[3])
        self._linktype = _LIVE_LINKTYPES.get(hardware, LINKTYPE_ETHERNET)
        if hardware not in _LIVE_LINKTYPES:
            log.warning(
                "unknown link type, decoding frames as Ethernet interface=%s arphrd=%d",
                interface, hardware,
            )  # fmt: skip
        _grow_buffer(self._socket.ins)
        self._table = FlowTable(settings)
        self._deliver = deliver
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="netmeta-capture", daemon=True)
        self.error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            for _ in process_frames(self._table, self._frames(), 256):
                self._hand_over()
            self._table.finish("capture_end")
            flush_counts(self._table)
            self._hand_over()
        except BaseException as exc:  # reported to the event loop, which stops the sensor
            log.exception("netmeta capture failed")
            self.error = exc
        finally:
            self._socket.close()

    def _hand_over(self) -> None:
        if self._table.out:
            self._deliver(_take(self._table))

    def _frames(self) -> Iterator[Frame]:
        sock = self._socket
        sock.ins.settimeout(0.2)
        next_tick = time.monotonic() + 1.0
        while True:
            # Once stopping, what the kernel already holds is still read, then the loop ends.
            stopping = self._stop.is_set()
            if stopping:
                sock.ins.setblocking(False)
            try:
                _, data, ts = sock.recv_raw(_SNAPLEN)
            except (TimeoutError, BlockingIOError):
                if stopping:
                    return
                data = None
            if data is not None:
                yield (ts or time.time()), data, self._linktype
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + 1.0
                self._table.sweep(time.time())
                _count_kernel_drops(sock.ins)
                flush_counts(self._table)
                self._hand_over()


def _grow_buffer(sock: socket.socket) -> None:
    """A burst waits in the socket's buffer while the thread is busy; scapy asks for 64 KiB."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RECEIVE_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)


def _count_kernel_drops(sock: socket.socket) -> None:
    """Packets the kernel dropped because the socket's buffer was full (reset on each read)."""
    try:
        raw = sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)
    except OSError:
        return
    _, drops = struct.unpack("II", raw)
    if drops:
        metrics.DROPPED.labels("netmeta", "kernel").inc(drops)
