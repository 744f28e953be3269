"""The flow table: packets in, ECS documents out (flows, DNS, HTTP, TLS).

A flow is the bidirectional conversation of one 5-tuple; its source is the initiator (the
sender of the first SYN, or of the first packet seen, turned round when that packet came from a
well-known port to an ephemeral one). It ends with FIN both ways or a RST (kept open for
`closed_timeout` more seconds so trailing ACKs do not start a new flow), after `idle_timeout`
without packets, after `active_timeout` in all (a long connection is reported in pieces), when
the table is full (the least recently seen flow goes, counted in
`soc_netmeta_flows_evicted_total`) or when the capture ends.

Time is packet time: a replay of the same pcap produces the same records with the same ids,
whatever the machine's speed. Live capture also advances the clock from the wall clock, so a
quiet link still expires its flows. A flow's `@timestamp` is its last packet: records then leave
the sensor in nearly time order (out of order by at most the idle timeout), which is what the
correlation windows downstream expect.
"""

from __future__ import annotations

import socket
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Final

from collectors.netmeta import dns as dnsparse
from collectors.netmeta import http as httpparse
from collectors.netmeta import tls as tlsparse
from collectors.netmeta.community_id import community_id
from collectors.netmeta.packets import (
    ACK,
    FIN,
    ICMP,
    ICMPV6,
    RST,
    SYN,
    TCP,
    UDP,
    Decoded,
    flag_names,
)
from soc.ids import stable_id
from soc.timeutil import format_ts, from_micros

Document = dict[str, Any]
#: Initiator address, responder address, IP protocol, their ports, VLAN id (0: untagged).
FlowKey = tuple[bytes, bytes, int, int, int, int]

_TRANSPORTS: Final = {TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMPV6: "ipv6-icmp", 132: "sctp"}
_DNS_PORT: Final = 53
_WELL_KNOWN: Final = 1024
#: Payload packets looked at before a flow that shows no known protocol is left alone.
_INSPECT_PACKETS: Final = 8
#: HTTP requests waiting for their response, per flow (pipelining); older ones are reported
#: without a response.
_MAX_PENDING_HTTP: Final = 8
#: Requests waiting for a response across the table, and bytes of ClientHellos being gathered:
#: flows that never complete (an attacker's, or a lossy capture) cannot grow memory past these.
_PENDING_HTTP_BUDGET: Final = 20_000
_HELLO_BUDGET: Final = 32 * 1024 * 1024
#: A ClientHello spread over segments is gathered up to this size.
_MAX_HELLO: Final = 16 * 1024 + 9
_SWEEP_EVERY: Final = 1.0


@dataclass(frozen=True, slots=True)
class FlowSettings:
    sensor_id: str = "netmeta"
    idle_timeout: float = 30.0
    active_timeout: float = 1800.0
    closed_timeout: float = 2.0
    max_flows: int = 100_000
    #: observer.ingress.interface.name; empty for a pcap.
    interface: str = ""


class Flow:
    __slots__ = (
        "bytes", "client_hello", "closed", "dport", "dst", "fin", "flags", "hello", "http",
        "inspect", "key", "last", "ordinal", "packets", "proto", "protocol", "rbytes", "rfin",
        "rflags", "rpackets", "sport", "src", "start", "texts", "vlan",
    )  # fmt: skip

    def __init__(self, key: FlowKey, ts: float) -> None:
        self.key = key
        self.src, self.dst, self.proto, self.sport, self.dport, self.vlan = key
        self.start = self.last = ts
        self.packets = self.bytes = self.rpackets = self.rbytes = 0
        self.flags = self.rflags = 0
        self.fin = self.rfin = False
        self.closed: str | None = None
        self.ordinal = 0
        self.inspect = _INSPECT_PACKETS
        self.protocol: str | None = None
        self.http: list[tuple[float, Document]] = []
        self.hello: bytes | None = None
        self.client_hello: tlsparse.ClientHello | None = None
        self.texts: tuple[str, str, str] | None = None


def _ip_text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


_second_text: dict[int, str] = {}


def _ts(seconds: float) -> str:
    """As `soc.timeutil.format_ts` gives it; the text of the whole second is remembered, since
    records come in bursts within the same second (strftime is most of the cost)."""
    micros = round(seconds * 1_000_000)
    whole, fraction = divmod(micros, 1_000_000)
    text = _second_text.get(whole)
    if text is None:
        if len(_second_text) > 4096:
            _second_text.clear()
        text = _second_text[whole] = format_ts(from_micros(whole * 1_000_000))[:19]
    return f"{text}.{fraction:06d}Z"


class FlowTable:
    def __init__(self, settings: FlowSettings) -> None:
        self.settings = settings
        self.clock = 0.0
        self.out: list[Document] = []
        #: Counts since the last `take_counts`: the sensor moves them to Prometheus in bulk,
        #: since a counter increment per packet would cost more than decoding the packet.
        self.counts: dict[str, int] = {}
        self._pending_http = 0
        self._hello_bytes = 0
        self._flows: OrderedDict[FlowKey, Flow] = OrderedDict()
        self._closing: deque[tuple[float, Flow]] = deque()
        self._next_sweep = 0.0
        self._observer: Document = {"name": settings.sensor_id, "type": "sensor"}
        if settings.interface:
            self._observer["ingress"] = {"interface": {"name": settings.interface}}

    def __len__(self) -> int:
        return len(self._flows)

    def _count(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount

    def take_counts(self) -> dict[str, int]:
        counts, self.counts = self.counts, {}
        return counts

    # --- packets -----------------------------------------------------------------------------

    def add(self, ts: float, packet: Decoded, frame: bytes) -> None:
        """Account one decoded packet captured at `ts` (seconds since the epoch)."""
        if ts > self.clock:
            self.clock = ts
            if ts >= self._next_sweep:
                self.sweep(ts)
        src, dst, proto, sport, dport = packet[:5]
        vlan = packet.vlan
        key = (src, dst, proto, sport, dport, vlan)
        flows = self._flows
        flow = flows.get(key)
        forward = True
        if flow is None:
            flow = flows.get((dst, src, proto, dport, sport, vlan))
            forward = False
            if flow is None:
                flow, forward = self._open(packet, ts)
        if flow.closed is not None and proto == TCP and packet.tcp_flags & (SYN | ACK) == SYN:
            self._end(flow, flow.closed)  # the 5-tuple reused for a new connection
            flow, forward = self._open(packet, ts)
        elif ts - flow.start >= self.settings.active_timeout:
            self._end(flow, "active_timeout")
            flow = self._insert(flow.key, ts)
        else:
            flows.move_to_end(flow.key)
        if ts > flow.last:
            flow.last = ts
        if forward:
            flow.packets += 1
            flow.bytes += packet.size
        else:
            flow.rpackets += 1
            flow.rbytes += packet.size
        if proto == TCP:
            self._tcp(flow, forward, packet.tcp_flags, ts)
        if packet.payload_len and flow.inspect:
            self._payload(flow, forward, packet, frame, ts)

    def _open(self, packet: Decoded, ts: float) -> tuple[Flow, bool]:
        src, dst, proto, sport, dport = packet[:5]
        vlan = packet.vlan
        if proto == TCP and packet.tcp_flags & SYN:
            reverse = bool(packet.tcp_flags & ACK)  # a SYN-ACK: the receiver initiated
        else:
            reverse = sport < _WELL_KNOWN <= dport
        key = (
            (dst, src, proto, dport, sport, vlan)
            if reverse
            else (src, dst, proto, sport, dport, vlan)
        )
        return self._insert(key, ts), not reverse

    def _insert(self, key: FlowKey, ts: float) -> Flow:
        flows = self._flows
        while len(flows) >= self.settings.max_flows:
            _, oldest = flows.popitem(last=False)
            if oldest.closed is None:
                self._count("evicted")
            self._emit_flow(oldest, oldest.closed or "table_full")
        flow = flows[key] = Flow(key, ts)
        return flow

    def _tcp(self, flow: Flow, forward: bool, flags: int, ts: float) -> None:
        if forward:
            flow.flags |= flags
            if flags & FIN:
                flow.fin = True
        else:
            flow.rflags |= flags
            if flags & FIN:
                flow.rfin = True
        if flow.closed is None:
            if flags & RST:
                flow.closed = "rst"
            elif flow.fin and flow.rfin:
                flow.closed = "fin"
            else:
                return
            self._closing.append((ts, flow))

    # --- time --------------------------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """End the flows whose time is up at `now`; call it from a timer when packets stop."""
        if now > self.clock:
            self.clock = now
        self._next_sweep = now + _SWEEP_EVERY
        flows = self._flows
        closing = self._closing
        limit = now - self.settings.closed_timeout
        while closing and closing[0][0] <= limit:
            _, flow = closing.popleft()
            if flows.get(flow.key) is flow:
                del flows[flow.key]
                self._emit_flow(flow, flow.closed or "idle_timeout")
        limit = now - self.settings.idle_timeout
        while flows:
            flow = next(iter(flows.values()))
            if flow.last > limit:
                break
            del flows[flow.key]
            self._emit_flow(flow, flow.closed or "idle_timeout")

    def finish(self, reason: str = "capture_end") -> None:
        """The capture is over: report every flow still open."""
        flows = self._flows
        while flows:
            _, flow = flows.popitem(last=False)
            self._emit_flow(flow, flow.closed or reason)
        self._closing.clear()

    def _end(self, flow: Flow, reason: str) -> None:
        if self._flows.get(flow.key) is flow:
            del self._flows[flow.key]
        self._emit_flow(flow, reason)

    # --- application payloads ----------------------------------------------------------------

    def _payload(self, flow: Flow, forward: bool, packet: Decoded, frame: bytes, ts: float) -> None:
        payload = frame[packet.payload_at : packet.payload_at + packet.payload_len]
        if flow.sport == _DNS_PORT or flow.dport == _DNS_PORT:
            if flow.proto == TCP:
                payload = payload[2:]  # DNS over TCP: a length prefix (whole messages only)
            if flow.proto in (TCP, UDP):
                self._dns(flow, payload, ts)
                return
        if flow.proto != TCP:
            flow.inspect -= 1
            return
        if forward:
            self._client_payload(flow, payload, ts)
        else:
            self._server_payload(flow, payload, ts)

    def _client_payload(self, flow: Flow, payload: bytes, ts: float) -> None:
        if flow.hello is not None:
            hello = flow.hello + payload
            self._hello_bytes += len(payload)
            needed = tlsparse.handshake_length(hello) or 0
            if len(hello) < min(needed, _MAX_HELLO) and self._hello_bytes <= _HELLO_BUDGET:
                flow.hello = hello
                return
            self._hello_bytes -= len(hello)
            flow.hello = None
            self._client_hello(flow, hello)
        elif httpparse.is_request(payload):
            fields = httpparse.parse_request(payload)
            if fields is None:
                self._count("parse_error_http")
                return
            flow.protocol = "http"
            flow.inspect = _INSPECT_PACKETS  # keep-alive: later requests follow the bodies
            if len(flow.http) >= _MAX_PENDING_HTTP or self._pending_http >= _PENDING_HTTP_BUDGET:
                if not flow.http:
                    self._emit_http(flow, ts, fields, None)
                    return
                self._emit_http(flow, *flow.http.pop(0), None)
                self._pending_http -= 1
            flow.http.append((ts, fields))
            self._pending_http += 1
        elif flow.client_hello is None and (length := tlsparse.handshake_length(payload)):
            if len(payload) < length:
                if self._hello_bytes + len(payload) > _HELLO_BUDGET:
                    self._count("parse_error_tls")
                    flow.inspect = 0
                    return
                flow.hello = payload
                self._hello_bytes += len(payload)
                return
            self._client_hello(flow, payload)
        elif flow.protocol != "http":
            flow.inspect -= 1

    def _client_hello(self, flow: Flow, payload: bytes) -> None:
        try:
            flow.client_hello = tlsparse.parse_client_hello(payload)
            flow.protocol = "tls"
        except tlsparse.TlsError:
            self._count("parse_error_tls")
            flow.inspect = 0

    def _server_payload(self, flow: Flow, payload: bytes, ts: float) -> None:
        if payload.startswith(httpparse.RESPONSE_PREFIX):
            response = httpparse.parse_response(payload)
            if response is None:
                self._count("parse_error_http")
                return
            if flow.http:
                self._emit_http(flow, *flow.http.pop(0), response)
                self._pending_http -= 1
            else:
                self._emit_http(flow, ts, {}, response)
            flow.inspect = _INSPECT_PACKETS
        elif flow.client_hello is not None and tlsparse.handshake_length(payload):
            try:
                server = tlsparse.parse_server_hello(payload)
            except tlsparse.TlsError:
                self._count("parse_error_tls")
                server = None
            self._emit_tls(flow, ts, server)
            flow.inspect = 0  # encrypted from here on
        elif flow.protocol != "http":
            flow.inspect -= 1

    def _dns(self, flow: Flow, payload: bytes, ts: float) -> None:
        try:
            fields, truncated = dnsparse.parse(payload)
        except (dnsparse.DnsError, ValueError, IndexError):
            self._count("parse_error_dns")
            return
        flow.protocol = "dns"
        doc = self._document(flow, "dns", ts, fields["type"], fields["id"], str(flow.ordinal))
        doc["event"]["type"] = ["protocol"]
        doc["event"]["action"] = f"dns_{fields['type']}"
        doc["network"]["protocol"] = "dns"
        doc["dns"] = fields
        if truncated:
            doc["tags"] = ["dns_answers_truncated"]
        self.out.append(doc)

    # --- documents ---------------------------------------------------------------------------

    def _document(self, flow: Flow, kind: str, ts: float, *parts: str) -> Document:
        """What every record of a flow carries; the id hashes the sensor, the flow's identity
        and start, the kind of record and its position within the flow."""
        flow.ordinal += 1
        if flow.texts is None:
            cid = community_id(flow.src, flow.dst, flow.proto, flow.sport, flow.dport)
            flow.texts = (_ip_text(flow.src), _ip_text(flow.dst), cid)
        src, dst, cid = flow.texts
        transport = _TRANSPORTS.get(flow.proto)
        identity = f"{flow.proto} {src} {flow.sport} {dst} {flow.dport}"
        if flow.vlan:
            identity += f" vlan {flow.vlan}"
        ident = stable_id(
            self.settings.sensor_id,
            identity,
            str(round(flow.start * 1_000_000)),
            kind,
            *parts,
        )
        network: Document = {
            "iana_number": str(flow.proto),
            "type": "ipv4" if len(flow.src) == 4 else "ipv6",
            "community_id": cid,
        }
        if transport:
            network["transport"] = transport
        if flow.vlan:
            network["vlan"] = {"id": str(flow.vlan)}
        source: Document = {"ip": src}
        destination: Document = {"ip": dst}
        if flow.proto not in (ICMP, ICMPV6) and (flow.sport or flow.dport):
            source["port"] = flow.sport
            destination["port"] = flow.dport
        return {
            "@timestamp": _ts(ts),
            "event": {
                "id": ident,
                "kind": "event",
                "category": ["network"],
                "module": "netmeta",
                "dataset": f"netmeta.{kind}",
            },
            "source": source,
            "destination": destination,
            "network": network,
            "related": {"ip": [src, dst] if src != dst else [src]},
            "observer": self._observer,
        }

    def _emit_http(
        self, flow: Flow, ts: float, request: Document, response: Document | None
    ) -> None:
        doc = self._document(flow, "http", ts, str(flow.ordinal))
        doc["event"]["type"] = ["protocol"]
        doc["event"]["action"] = "http_transaction"
        doc["network"]["protocol"] = "http"
        http = request.get("http", {})
        doc.update({k: v for k, v in request.items() if k != "http"})
        if response is not None:
            http["response"] = response
            code = response["status_code"]
            doc["event"]["outcome"] = "failure" if code >= 400 else "success"
        doc["http"] = http
        self.out.append(doc)

    def _emit_tls(self, flow: Flow, ts: float, server: tlsparse.ServerHello | None) -> None:
        doc = self._document(flow, "tls", ts, str(flow.ordinal))
        doc["event"]["type"] = ["protocol"]
        doc["event"]["action"] = "tls_handshake"
        doc["network"]["protocol"] = "tls"
        doc["tls"] = tlsparse.ecs_tls(flow.client_hello, server)
        self.out.append(doc)
        flow.client_hello = None

    def _emit_flow(self, flow: Flow, reason: str) -> None:
        for ts, request in flow.http:
            self._emit_http(flow, ts, request, None)
        self._pending_http -= len(flow.http)
        flow.http = []
        if flow.hello is not None:  # a ClientHello that never arrived whole
            self._hello_bytes -= len(flow.hello)
            flow.hello = None
            self._count("parse_error_tls")
        if flow.client_hello is not None:
            self._emit_tls(flow, flow.last, None)
        doc = self._document(flow, "flow", flow.last)
        event = doc["event"]
        event["type"] = ["connection", "end"]
        event["action"] = "network_flow"
        event["start"] = _ts(flow.start)
        event["end"] = _ts(flow.last)
        event["duration"] = (round(flow.last * 1e6) - round(flow.start * 1e6)) * 1000
        event["reason"] = reason
        doc["source"].update(packets=flow.packets, bytes=flow.bytes)
        doc["destination"].update(packets=flow.rpackets, bytes=flow.rbytes)
        network = doc["network"]
        network["packets"] = flow.packets + flow.rpackets
        network["bytes"] = flow.bytes + flow.rbytes
        if flow.protocol:
            network["protocol"] = flow.protocol
        if flow.proto == TCP:
            doc["netmeta"] = {
                "tcp_flags": flag_names(flow.flags | flow.rflags),
                "source": {"tcp_flags": flag_names(flow.flags)},
                "destination": {"tcp_flags": flag_names(flow.rflags)},
            }
        self.out.append(doc)
        self._count(f"flow_{reason}")
