"""The syslog server: UDP, TCP (RFC 6587) and TLS (RFC 5425), with octet counting and LF framing,
into `soc.raw`.

It parses nothing but framing. Each message becomes a raw record with its receipt metadata and is
published as received, so a parser bug can never lose a line: the normalizer works from the
record, which is kept whole. The sender's address names its configured source and agency
(`source.id`, `organization.id`; see `sources.py`), and every count is kept per source.

Backpressure: a TCP or TLS connection is read only as fast as the bus accepts its records, so a
slow pipeline slows senders instead of filling memory. UDP cannot be slowed; datagrams wait in a
bounded queue and, past it, are dropped and counted (`soc_dropped_total{reason="udp_queue_full"}`
and `soc_syslog_source_dropped_total` by source).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from collectors.syslog.sources import UNKNOWN, Sender, SourceMap
from collectors.syslog.tls import ServerTls
from soc import metrics
from soc.bus.base import RAW, Bus, Message
from soc.config import Address, SyslogConfig
from soc.timeutil import format_ts, utcnow

log = logging.getLogger(__name__)

#: Reads while stopping end once a connection has been quiet this long.
_QUIET_SECONDS = 0.3
#: Stopping never takes longer than this, however busy a sender is.
_STOP_GRACE_SECONDS = 5.0
_READ_SIZE = 256 * 1024
_MAX_DATAGRAM = 65535
#: Datagrams handed from the receiving thread to the event loop at most at once.
_UDP_BATCH = 1000
_Datagram = tuple[bytes, tuple[str, int], str]
#: LF, CR and NUL between frames.
_SEPARATORS = frozenset(b"\n\r\x00")
#: An octet-counted frame's header: the length, a space, and the "<" of the message's PRI.
_OCTET_COUNT = re.compile(rb"([0-9]{1,11}) <")
_TLS_LISTEN = SyslogConfig().tls_listen


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes
    truncated: bool = False
    #: The stream ended inside an octet-counted frame: fewer bytes came than the count said.
    incomplete: bool = False


@dataclass
class Framer:
    """Splits a TCP byte stream into syslog messages (RFC 6587).

    A frame starting `<digits> <` is octet-counted; anything else ends at LF (a CR before it
    and NULs around it are dropped). A message longer than `max_bytes` is cut there and flagged;
    the rest of it is skipped, never taken for the next message.
    """

    max_bytes: int
    _buffer: bytearray = field(default_factory=bytearray)
    _skip: int = 0
    _skip_to_newline: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        # Frames are read at a moving position and the buffer cut once per feed: cutting it
        # per frame cost as much as finding the frames.
        position = self._discard(0)
        while position is not None:
            position, frame = self._next(position)
            if frame is None:
                break
            frames.append(frame)
            position = self._discard(position)
        del self._buffer[: len(self._buffer) if position is None else position]
        return frames

    def finish(self) -> list[Frame]:
        """At end of stream: what is left is a last message without its LF."""
        rest = bytes(self._buffer).strip(b"\r\n\x00")
        self._buffer.clear()
        if self._skip or self._skip_to_newline or not rest:
            return []
        counted = _OCTET_COUNT.match(rest)
        if counted is not None:
            return [Frame(rest[counted.end() - 1 :], incomplete=True)]
        if len(rest) > self.max_bytes:
            return [Frame(rest[: self.max_bytes], truncated=True)]
        return [Frame(rest)]

    def _discard(self, position: int) -> int | None:
        """Pass the tail of an over-long message; None when the buffer ends inside it."""
        if self._skip:
            taken = min(self._skip, len(self._buffer) - position)
            position += taken
            self._skip -= taken
            if self._skip:
                return None
        if self._skip_to_newline:
            end = self._buffer.find(b"\n", position)
            if end < 0:
                return None
            position = end + 1
            self._skip_to_newline = False
        return position

    def _next(self, position: int) -> tuple[int, Frame | None]:
        """The frame at `position` and the position after it; no frame when more input is
        needed first."""
        buffer, size = self._buffer, len(self._buffer)
        while position < size and buffer[position] in _SEPARATORS:
            position += 1
        if position == size:
            return position, None
        counted = _OCTET_COUNT.match(buffer, position)
        if counted is not None:
            length, start = int(counted[1]), counted.end() - 1
            if length > self.max_bytes:
                if size < start + self.max_bytes:
                    return position, None
                self._skip = length - self.max_bytes
                end = start + self.max_bytes
                return end, Frame(bytes(buffer[start:end]), truncated=True)
            if size < start + length:
                return position, None
            data = bytes(buffer[start : start + length])
            return start + length, Frame(data.rstrip(b"\r\n\x00"))
        end = buffer.find(b"\n", position)
        if end < 0:
            if size - position > self.max_bytes:
                self._skip_to_newline = True
                data = bytes(buffer[position : position + self.max_bytes])
                return size, Frame(data, truncated=True)
            return position, None
        if end - position > self.max_bytes:
            # Judged on the line as sent, as when its LF has not arrived yet: the same stream
            # frames the same however the network cut it.
            data = bytes(buffer[position : position + self.max_bytes])
            return end + 1, Frame(data, truncated=True)
        return end + 1, Frame(bytes(buffer[position:end]).rstrip(b"\r\x00"))


class RecordMaker:
    """Raw records with receipt metadata and ids unique to this process's receipt order: 16 hex
    digits drawn at start, then the receipt sequence in 16 more. Nothing needs them hashed, and
    hashing them was the collector's largest single cost."""

    def __init__(self, listener: str) -> None:
        self._listener = listener
        self._instance = os.urandom(8).hex()
        self._sequence = 0

    def make(
        self,
        frame: Frame,
        transport: str,
        peer: tuple[str, int],
        received_at: str,
        sender: Sender | None = None,
    ) -> dict[str, Any]:
        self._sequence += 1
        flags: list[str] = []
        source: dict[str, Any] = {
            "type": "syslog",
            "transport": transport,
            "peer": {"ip": peer[0], "port": peer[1]},
            "listener": self._listener,
        }
        record: dict[str, Any] = {
            "id": f"{self._instance}{self._sequence:016x}",
            "received_at": received_at,
            "source": source,
        }
        if sender is not None:
            source["id"] = sender.id
            record["organization"] = {"id": sender.agency}
        try:
            record["data"] = frame.data.decode("utf-8")
        except UnicodeDecodeError:
            record["data"] = frame.data.decode("utf-8", "backslashreplace")
            record["data_b64"] = base64.b64encode(frame.data).decode("ascii")
            flags.append("invalid_utf8")
        if frame.truncated:
            flags.append("truncated")
        if frame.incomplete:
            flags.append("incomplete")
        if flags:
            record["flags"] = flags
            label = source_label(sender)
            for flag in flags:
                metrics.RECORDS_FLAGGED.labels("syslog", flag).inc()
                metrics.SYSLOG_SOURCE_FLAGGED.labels(label, flag).inc()
        return record


def source_label(sender: Sender | None) -> str:
    return sender.id if sender is not None else UNKNOWN


def _grow_receive_buffer(sock: Any, size: int) -> None:
    """A burst of datagrams that outruns the event loop waits in the kernel's receive buffer;
    Linux's default (208 KiB) overflows within milliseconds at a few thousand lines a second.
    SO_RCVBUFFORCE passes net.core.rmem_max when we have CAP_NET_ADMIN; else the cap applies."""
    if sock is None:
        return
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    try:
        if force is None:
            raise PermissionError
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if granted < size:
        log.warning(
            "udp receive buffer smaller than asked asked=%d granted=%d "
            "(raise net.core.rmem_max to avoid losing bursts)",
            size,
            granted,
        )


def _count_received(transport: str, counts: dict[str, list[int]]) -> None:
    """`counts`: source label -> [records, bytes] for one published batch. Counted per batch,
    not per record: a labelled series costs a lock and a look-up per call."""
    records = sum(count[0] for count in counts.values())
    size = sum(count[1] for count in counts.values())
    metrics.RECORDS_RECEIVED.labels("syslog", transport).inc(records)
    metrics.BYTES_RECEIVED.labels("syslog", transport).inc(size)
    for label, (source_records, source_bytes) in counts.items():
        metrics.SYSLOG_SOURCE_RECORDS.labels(label, transport).inc(source_records)
        metrics.SYSLOG_SOURCE_BYTES.labels(label, transport).inc(source_bytes)


def _peer(address: Any) -> tuple[str, int]:
    """(ip, port) of a socket address. An IPv4 sender reaching a dual-stack socket appears as
    `::ffff:a.b.c.d`; it is recorded as the IPv4 address it is."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        return host, int(address[1])
    return "unknown", 0


class _UdpReceiver:
    """Reads datagrams on a thread of its own. asyncio reads one datagram per turn of the event
    loop, so while the loop is busy normalizing and matching, a burst waits in the kernel and
    overflows it; a blocking `recvfrom` on a thread keeps draining the socket whatever the loop
    does, and hands datagrams over in batches. At stop it empties the socket before closing it,
    so a datagram that reached the host before SIGTERM is not lost."""

    def __init__(self, sock: socket.socket, deliver: Callable[[list[_Datagram]], None]) -> None:
        self._sock = sock
        self._deliver = deliver
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syslog-udp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                first = self._sock.recvfrom(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            received_at = format_ts(utcnow())
            self._deliver([(first[0], _peer(first[1]), received_at), *self._drain(received_at)])
        self._deliver(self._drain(format_ts(utcnow())))

    def _drain(self, received_at: str) -> list[_Datagram]:
        """Whatever is queued in the socket now, without waiting. One receipt time for the sweep:
        it takes a millisecond or two, and formatting a time per datagram cost a sixth of it."""
        batch: list[_Datagram] = []
        self._sock.setblocking(False)
        try:
            while len(batch) < _UDP_BATCH:
                data, address = self._sock.recvfrom(_MAX_DATAGRAM)
                batch.append((data, _peer(address), received_at))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return batch
        finally:
            if not self._stop.is_set():
                self._sock.settimeout(0.2)
        return batch

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


class SyslogServer:
    """Syslog listeners (UDP, TCP, TLS) publishing raw records to `soc.raw`. `start` binds,
    `addresses` then says where (port 0 asks the system for one), `stop` drains."""

    def __init__(
        self,
        bus: Bus,
        listen: Address,
        *,
        udp: bool = True,
        tcp: bool = True,
        max_message_bytes: int = 65536,
        udp_queue: int = 100_000,
        batch_size: int = 2000,
        udp_receive_buffer: int = 32 * 1024 * 1024,
        tls: ssl.SSLContext | ServerTls | None = None,
        tls_listen: Address = _TLS_LISTEN,
        tls_handshake_timeout: float = 10.0,
        sources: SourceMap | None = None,
        max_connections: int = 4096,
    ) -> None:
        self._bus = bus
        self._listen = listen
        self._udp_enabled = udp
        self._tcp_enabled = tcp
        self._max = max_message_bytes
        self._batch = batch_size
        self._records = RecordMaker(str(listen))
        self._tls = tls
        self._tls_listen = tls_listen
        self._tls_records = RecordMaker(str(tls_listen))
        self._tls_handshake_timeout = tls_handshake_timeout
        self._sources = sources if sources is not None else SourceMap()
        self._udp_queue: deque[_Datagram] = deque()
        self._udp_capacity = udp_queue
        self._udp_buffer = udp_receive_buffer
        self._udp_wakeup = asyncio.Event()
        self._udp_receiver: _UdpReceiver | None = None
        self._udp_pump: asyncio.Task[None] | None = None
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._max_connections = max_connections
        self._refusal_logged_at = float("-inf")
        self._stopping = asyncio.Event()
        self.addresses: dict[str, Address] = {}

    async def start(self) -> None:
        if self._tcp_enabled:
            self.addresses["tcp"] = await self._listen_stream(self._serve_tcp, self._listen)
            self._records = RecordMaker(str(self.addresses["tcp"]))
        if self._udp_enabled:
            self._start_udp()
        if self._tls is not None:
            self.addresses["tls"] = await self._listen_stream(self._serve_tls, self._tls_listen)
            self._tls_records = RecordMaker(str(self.addresses["tls"]))

    async def _listen_stream(
        self,
        serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        listen: Address,
    ) -> Address:
        if ":" in listen.host:
            # asyncio makes IPv6 listeners IPv6-only; "[::]:514" should take IPv4 senders too,
            # as the UDP socket beside it does.
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((listen.host, listen.port))
            server = await asyncio.start_server(serve, sock=sock, limit=_READ_SIZE)
        else:
            server = await asyncio.start_server(serve, listen.host, listen.port, limit=_READ_SIZE)
        self._servers.append(server)
        return Address(listen.host, int(server.sockets[0].getsockname()[1]))

    def _start_udp(self) -> None:
        loop = asyncio.get_running_loop()
        # The same port as TCP when TCP asked the system for one, as syslog senders expect.
        port = self.addresses["tcp"].port if "tcp" in self.addresses else self._listen.port
        family = socket.AF_INET6 if ":" in self._listen.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((self._listen.host, port))
        _grow_receive_buffer(sock, self._udp_buffer)
        self.addresses["udp"] = Address(self._listen.host, int(sock.getsockname()[1]))
        self._records = RecordMaker(str(self.addresses["udp"]))

        def deliver(batch: list[_Datagram]) -> None:
            if batch:
                loop.call_soon_threadsafe(self._on_datagrams, batch)

        self._udp_receiver = _UdpReceiver(sock, deliver)
        self._udp_receiver.start()
        self._udp_pump = asyncio.create_task(self._pump_udp(), name="syslog-udp-pump")

    def _on_datagrams(self, batch: list[_Datagram]) -> None:
        room = max(self._udp_capacity - len(self._udp_queue), 0)
        if room < len(batch):
            metrics.DROPPED.labels("syslog", "udp_queue_full").inc(len(batch) - room)
            dropped: dict[str, int] = {}
            for _, peer, _ in batch[room:]:
                label = source_label(self._sources.lookup(peer[0]))
                dropped[label] = dropped.get(label, 0) + 1
            for label, count in dropped.items():
                metrics.SYSLOG_SOURCE_DROPPED.labels(label, "udp_queue_full").inc(count)
            batch = batch[:room]
        self._udp_queue.extend(batch)
        self._udp_wakeup.set()

    async def _pump_udp(self) -> None:
        lookup = self._sources.lookup
        while True:
            if not self._udp_queue:
                if self._stopping.is_set() and self._udp_receiver is None:
                    return
                self._udp_wakeup.clear()
                try:
                    await asyncio.wait_for(self._udp_wakeup.wait(), 0.2)
                except TimeoutError:
                    continue
            messages: list[Message] = []
            counts: dict[str, list[int]] = {}
            while self._udp_queue and len(messages) < self._batch:
                data, peer, received_at = self._udp_queue.popleft()
                data = data.rstrip(b"\r\n\x00")
                frame = Frame(data[: self._max], truncated=len(data) > self._max)
                sender = lookup(peer[0])
                record = self._records.make(frame, "udp", peer, received_at, sender)
                messages.append(Message(peer[0], record))
                count = counts.setdefault(source_label(sender), [0, 0])
                count[0] += 1
                count[1] += len(frame.data)
            _count_received("udp", counts)
            await self._bus.publish(RAW, messages)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, "tcp")

    async def _serve_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, "tls")

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        """One stream connection: admitted under the connection limit, through its TLS
        handshake when TLS, then read until it ends."""
        peer = _peer(writer.get_extra_info("peername"))
        sender = self._sources.lookup(peer[0])
        task = asyncio.current_task()
        if task is None or len(self._connections) >= self._max_connections:
            self._refuse(transport, peer, sender, "connection_limit")
            writer.close()
            return
        self._connections.add(task)
        metrics.SYSLOG_CONNECTIONS.labels(transport).inc()
        try:
            if transport == "tls" and not await self._handshake(writer, peer, sender):
                return
            records = self._tls_records if transport == "tls" else self._records
            await self._read(reader, transport, records, peer, sender)
        except (ConnectionError, OSError) as exc:
            log.info("syslog connection ended peer=%s:%d reason=%s", *peer, exc)
        finally:
            metrics.SYSLOG_CONNECTIONS.labels(transport).dec()
            self._connections.discard(task)
            writer.close()

    async def _handshake(
        self, writer: asyncio.StreamWriter, peer: tuple[str, int], sender: Sender | None
    ) -> bool:
        """The handshake is ours, not the listener's (`start_server(ssl=...)`), so that a refused
        client is counted against its source instead of vanishing into asyncio's debug log."""
        assert self._tls is not None
        context = self._tls if isinstance(self._tls, ssl.SSLContext) else self._tls.context()
        try:
            await writer.start_tls(context, ssl_handshake_timeout=self._tls_handshake_timeout)
        except (OSError, TimeoutError) as exc:
            self._refuse("tls", peer, sender, _handshake_failure(exc))
            return False
        return True

    def _refuse(
        self, transport: str, peer: tuple[str, int], sender: Sender | None, reason: str
    ) -> None:
        label = source_label(sender)
        metrics.SYSLOG_CONNECTIONS_REFUSED.labels(label, transport, reason).inc()
        # One line a second at most: a flood of refused connections must not flood the log.
        now = time.monotonic()
        if now - self._refusal_logged_at >= 1.0:
            self._refusal_logged_at = now
            log.warning(
                "syslog connection refused peer=%s:%d source=%s transport=%s reason=%s "
                "(counted in soc_syslog_connections_refused_total)",
                *peer, label, transport, reason,
            )  # fmt: skip

    async def _read(
        self,
        reader: asyncio.StreamReader,
        transport: str,
        records: RecordMaker,
        peer: tuple[str, int],
        sender: Sender | None,
    ) -> None:
        framer = Framer(self._max)
        while True:
            try:
                data = await asyncio.wait_for(reader.read(_READ_SIZE), _QUIET_SECONDS)
            except TimeoutError:
                if self._stopping.is_set():
                    return
                continue
            if not data:
                await self._publish_frames(framer.finish(), transport, records, peer, sender)
                return
            await self._publish_frames(framer.feed(data), transport, records, peer, sender)

    async def _publish_frames(
        self,
        frames: list[Frame],
        transport: str,
        records: RecordMaker,
        peer: tuple[str, int],
        sender: Sender | None,
    ) -> None:
        if not frames:
            return
        received_at = format_ts(utcnow())
        messages = [
            Message(peer[0], records.make(frame, transport, peer, received_at, sender))
            for frame in frames
        ]
        size = sum(len(frame.data) for frame in frames)
        _count_received(transport, {source_label(sender): [len(messages), size]})
        await self._bus.publish(RAW, messages)

    async def stop(self) -> None:
        """Stop listening, take in what senders already sent, publish it all, then return."""
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STOP_GRACE_SECONDS
        for server in self._servers:
            server.close()
        if self._udp_receiver is not None:
            await asyncio.to_thread(self._udp_receiver.stop)
            await asyncio.sleep(0)  # let the receiver's last hand-over run
            self._udp_receiver = None
        if self._connections:
            pending = set(self._connections)
            _, late = await asyncio.wait(pending, timeout=max(deadline - loop.time(), 0.1))
            for task in late:
                log.warning("syslog connection still sending at shutdown; closing it")
                task.cancel()
        if self._udp_pump is not None:
            self._udp_wakeup.set()
            await self._udp_pump


def _handshake_failure(exc: BaseException) -> str:
    """A short, bounded reason for the metric label: OpenSSL's reason code when there is one
    (`peer_did_not_return_a_certificate`, `certificate_verify_failed`, ...)."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower()
    if isinstance(exc, (TimeoutError, ConnectionAbortedError)):
        return "timeout"
    return "connection_lost"
