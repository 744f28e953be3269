"""The syslog server: UDP and TCP (RFC 6587 octet counting and LF framing) into `soc.raw`.

It parses nothing but framing. Each message becomes a raw record with its receipt metadata and is
published as received, so a parser bug can never lose a line: the normalizer works from the
record, which is kept whole.

Backpressure: a TCP connection is read only as fast as the bus accepts its records, so a slow
pipeline slows senders instead of filling memory. UDP cannot be slowed; datagrams wait in a
bounded queue and, past it, are dropped and counted (`soc_dropped_total{reason="udp_queue_full"}`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from soc import metrics
from soc.bus.base import RAW, Bus, Message
from soc.config import Address
from soc.ids import stable_id
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


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes
    truncated: bool = False


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
        while self._discard():
            frame = self._next()
            if frame is None:
                break
            frames.append(frame)
        return frames

    def finish(self) -> list[Frame]:
        """At end of stream: what is left is a last message without its LF."""
        rest = bytes(self._buffer).strip(b"\r\n\x00")
        self._buffer.clear()
        if self._skip or self._skip_to_newline or not rest:
            return []
        if len(rest) > self.max_bytes:
            return [Frame(rest[: self.max_bytes], truncated=True)]
        return [Frame(rest)]

    def _discard(self) -> bool:
        """Drop the tail of an over-long message; False when more input is needed first."""
        if self._skip:
            taken = min(self._skip, len(self._buffer))
            del self._buffer[:taken]
            self._skip -= taken
            if self._skip:
                return False
        if self._skip_to_newline:
            end = self._buffer.find(b"\n")
            if end < 0:
                self._buffer.clear()
                return False
            del self._buffer[: end + 1]
            self._skip_to_newline = False
        return True

    def _octet_count(self) -> tuple[int, int] | None:
        """(length, header size) when the buffer starts with an octet count."""
        limit = min(len(self._buffer), 11)
        index = 0
        while index < limit and 0x30 <= self._buffer[index] <= 0x39:
            index += 1
        if index == 0 or index >= len(self._buffer) - 1 or self._buffer[index] != 0x20:
            return None
        if self._buffer[index + 1] != 0x3C:  # "<": octet-counted frames carry a PRI
            return None
        return int(self._buffer[:index]), index + 1

    def _next(self) -> Frame | None:
        while self._buffer and self._buffer[0] in _SEPARATORS:
            del self._buffer[:1]
        if not self._buffer:
            return None
        counted = self._octet_count()
        if counted is not None:
            length, header = counted
            if length > self.max_bytes:
                if len(self._buffer) < header + self.max_bytes:
                    return None
                data = bytes(self._buffer[header : header + self.max_bytes])
                del self._buffer[: header + self.max_bytes]
                self._skip = length - self.max_bytes
                return Frame(data, truncated=True)
            if len(self._buffer) < header + length:
                return None
            data = bytes(self._buffer[header : header + length])
            del self._buffer[: header + length]
            return Frame(data.rstrip(b"\r\n\x00"))
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > self.max_bytes:
                data = bytes(self._buffer[: self.max_bytes])
                self._buffer.clear()
                self._skip_to_newline = True
                return Frame(data, truncated=True)
            return None
        data = bytes(self._buffer[:end]).rstrip(b"\r\x00")
        del self._buffer[: end + 1]
        if len(data) > self.max_bytes:
            return Frame(data[: self.max_bytes], truncated=True)
        return Frame(data)


class RecordMaker:
    """Raw records with receipt metadata and ids unique to this process's receipt order."""

    def __init__(self, listener: str) -> None:
        self._listener = listener
        self._instance = os.urandom(8).hex()
        self._sequence = 0

    def make(
        self, frame: Frame, transport: str, peer: tuple[str, int], received_at: str
    ) -> dict[str, Any]:
        self._sequence += 1
        flags: list[str] = []
        record: dict[str, Any] = {
            "id": stable_id(self._instance, str(self._sequence)),
            "received_at": received_at,
            "source": {
                "type": "syslog",
                "transport": transport,
                "peer": {"ip": peer[0], "port": peer[1]},
                "listener": self._listener,
            },
        }
        try:
            record["data"] = frame.data.decode("utf-8")
        except UnicodeDecodeError:
            record["data"] = frame.data.decode("utf-8", "backslashreplace")
            record["data_b64"] = base64.b64encode(frame.data).decode("ascii")
            flags.append("invalid_utf8")
        if frame.truncated:
            flags.append("truncated")
        if flags:
            record["flags"] = flags
            for flag in flags:
                metrics.RECORDS_FLAGGED.labels("syslog", flag).inc()
        return record


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


def _count_received(transport: str, records: int, size: int) -> None:
    metrics.RECORDS_RECEIVED.labels("syslog", transport).inc(records)
    metrics.BYTES_RECEIVED.labels("syslog", transport).inc(size)


def _peer(address: Any) -> tuple[str, int]:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
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
            self._deliver([(first[0], _peer(first[1]), format_ts(utcnow())), *self._drain()])
        self._deliver(self._drain())

    def _drain(self) -> list[_Datagram]:
        """Whatever is queued in the socket now, without waiting."""
        batch: list[_Datagram] = []
        self._sock.setblocking(False)
        try:
            while len(batch) < _UDP_BATCH:
                data, address = self._sock.recvfrom(_MAX_DATAGRAM)
                batch.append((data, _peer(address), format_ts(utcnow())))
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
    ) -> None:
        self._bus = bus
        self._listen = listen
        self._udp_enabled = udp
        self._tcp_enabled = tcp
        self._max = max_message_bytes
        self._batch = batch_size
        self._records = RecordMaker(str(listen))
        self._udp_queue: deque[_Datagram] = deque()
        self._udp_capacity = udp_queue
        self._udp_buffer = udp_receive_buffer
        self._udp_wakeup = asyncio.Event()
        self._udp_receiver: _UdpReceiver | None = None
        self._udp_pump: asyncio.Task[None] | None = None
        self._tcp_server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self.addresses: dict[str, Address] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._tcp_enabled:
            self._tcp_server = await asyncio.start_server(
                self._serve_connection, self._listen.host, self._listen.port, limit=_READ_SIZE
            )
            sockname = self._tcp_server.sockets[0].getsockname()
            self.addresses["tcp"] = Address(self._listen.host, int(sockname[1]))
        if self._udp_enabled:
            # The same port as TCP when TCP asked the system for one, as syslog senders expect.
            port = self.addresses["tcp"].port if "tcp" in self.addresses else self._listen.port
            family = socket.AF_INET6 if ":" in self._listen.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind((self._listen.host, port))
            _grow_receive_buffer(sock, self._udp_buffer)
            self.addresses["udp"] = Address(self._listen.host, int(sock.getsockname()[1]))

            def deliver(batch: list[_Datagram]) -> None:
                if batch:
                    loop.call_soon_threadsafe(self._on_datagrams, batch)

            self._udp_receiver = _UdpReceiver(sock, deliver)
            self._udp_receiver.start()
            self._udp_pump = asyncio.create_task(self._pump_udp(), name="syslog-udp-pump")

    def _on_datagrams(self, batch: list[_Datagram]) -> None:
        room = self._udp_capacity - len(self._udp_queue)
        if room < len(batch):
            metrics.DROPPED.labels("syslog", "udp_queue_full").inc(len(batch) - max(room, 0))
            batch = batch[: max(room, 0)]
        self._udp_queue.extend(batch)
        self._udp_wakeup.set()

    async def _pump_udp(self) -> None:
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
            size = 0
            while self._udp_queue and len(messages) < self._batch:
                data, peer, received_at = self._udp_queue.popleft()
                data = data.rstrip(b"\r\n\x00")
                frame = Frame(data[: self._max], truncated=len(data) > self._max)
                record = self._records.make(frame, "udp", peer, received_at)
                messages.append(Message(peer[0], record))
                size += len(frame.data)
            _count_received("udp", len(messages), size)
            await self._bus.publish(RAW, messages)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = _peer(writer.get_extra_info("peername"))
        framer = Framer(self._max)
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(_READ_SIZE), _QUIET_SECONDS)
                except TimeoutError:
                    if self._stopping.is_set():
                        break
                    continue
                if not data:
                    await self._publish_frames(framer.finish(), peer)
                    break
                await self._publish_frames(framer.feed(data), peer)
        except (ConnectionError, OSError) as exc:
            log.info("syslog connection ended peer=%s:%d reason=%s", *peer, exc)
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _publish_frames(self, frames: list[Frame], peer: tuple[str, int]) -> None:
        if not frames:
            return
        received_at = format_ts(utcnow())
        messages = [
            Message(peer[0], self._records.make(frame, "tcp", peer, received_at))
            for frame in frames
        ]
        _count_received("tcp", len(messages), sum(len(frame.data) for frame in frames))
        await self._bus.publish(RAW, messages)

    async def stop(self) -> None:
        """Stop listening, take in what senders already sent, publish it all, then return."""
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STOP_GRACE_SECONDS
        if self._tcp_server is not None:
            self._tcp_server.close()
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
