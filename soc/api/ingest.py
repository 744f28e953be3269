"""The HTTP intake: `POST /api/v1/ingest`, lines pushed by agents and other machines.

Machines, not analysts, call it, so it does not go through the user authentication: each sender
is a configured source (`sources[]`) holding a token, and the token names the agency that owns
what it sends. Every accepted line becomes a raw record on `soc.raw` (the same contract the
syslog server follows) and the answer is a 2xx only once the bus acknowledged them all, so a
sender that got a 2xx may forget its lines and one that did not must send them again; the
deterministic record ids make that re-send harmless.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gc
import hashlib
import hmac
import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse

from soc import metrics
from soc.bus.base import RAW, Bus, Message
from soc.config import IntakeConfig, SourceConfig
from soc.timeutil import format_ts, utcnow

log = logging.getLogger(__name__)

#: Formats the normalizer dispatches on (the raw-record contract); others are refused per line.
FORMATS = frozenset(
    {"syslog", "ecs", "json", "nginx", "apache", "web", "iis", "auditd", "suricata", "zeek",
     "windows", "plain"}
)  # fmt: skip
#: Per-line errors listed in one answer; the counts cover every line.
MAX_ERRORS_LISTED = 100
_READ_CHUNK = 64 * 1024

DESCRIPTION = """
Push log lines from a machine (the `soc agent`, a script, an appliance).

**Authentication**: `Authorization: Bearer <token>`, the token of a configured source
(`sources[].token_sha256` or `sources[].token`). The source names the agency
(`organization.id`) of every line sent with it; a missing or unknown token is refused (401).

**Body**: one of
- `application/x-ndjson`: one JSON value per line;
- `application/json`: one JSON array of such values;
- `text/plain`: each line is a log line as is.

Optionally `Content-Encoding: gzip`.

**Items**: a JSON string is a log line. An object carries the line and what the sender knows:
`{"data": "<line>" (or "message"), "format": "nginx", "fields": {"host": {"name": "web01"}},
"id": "...", "file": "<file identity>", "offset": 1234, "data_b64": "<exact bytes>",
"truncated": true}`.
`format` is one of syslog (default), ecs, json, nginx, apache, web, iis, auditd, suricata, zeek,
windows, plain. `fields` holds ECS fields the sender vouches for (`organization` is always the
source's and cannot be set). `data_b64` carries the exact bytes of a line that was not valid
UTF-8 (`data` then holds it decoded with backslash escapes); `"truncated": true` says the
sender cut an over-long line, and the record is flagged `truncated`.

**Record ids** are deterministic, so a re-sent line is stored once: from the source id and the
item's `id` if given; else its `file` and `offset` (what the agent sends); else the SHA-256 of
the whole request body and the line's position in it (re-sending the same request is harmless).

**Answer**: 200 with `accepted`, `rejected` and `errors` (`line`: 1-based line or item number,
`reason`) once every accepted line is on the bus; lines with errors are left out and counted,
the others are accepted. 413 names the limit a request exceeds (body, decompressed size, lines);
503 when the bus did not take the lines (send them again later).
"""


@dataclass(frozen=True, slots=True)
class _Limits:
    max_body: int
    max_decompressed: int
    max_lines: int
    max_line: int
    publish_timeout: float


class Intake:
    """What the route needs: the bus, the sources by token digest, the limits."""

    def __init__(self, bus: Bus, sources: Sequence[SourceConfig], limits: IntakeConfig) -> None:
        self.bus = bus
        self.limits = _Limits(
            limits.max_body_bytes,
            limits.max_decompressed_bytes,
            limits.max_lines,
            limits.max_line_bytes,
            limits.publish_timeout_ms / 1000,
        )
        self._tokens: list[tuple[bytes, SourceConfig]] = []
        for source in sources:
            if source.token_sha256:
                self._tokens.append((bytes.fromhex(source.token_sha256), source))
            if source.token:
                self._tokens.append((hashlib.sha256(source.token.encode()).digest(), source))
        self._closing = False
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Count a request in flight; refuse new ones (503) once closing."""
        if self._closing:
            metrics.INTAKE_REQUESTS.labels("unavailable").inc()
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the platform is stopping; send again later",
                headers={"Retry-After": "5"},
            )
        self._inflight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()

    async def close(self, grace: float = 10.0) -> None:
        """Refuse new requests and wait for those publishing now: the pipeline drains only
        after, so no line acknowledged to a sender is left behind on the bus at a stop."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)

    def authenticate(self, authorization: str | None) -> SourceConfig:
        """The source whose token this is; 401 otherwise. Digests are compared in constant
        time and every one is compared, so the answer's timing tells nothing about the token."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            metrics.INTAKE_REQUESTS.labels("unauthenticated").inc()
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "source token required: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: SourceConfig | None = None
        for known, source in self._tokens:
            if hmac.compare_digest(known, digest):
                found = source
        if found is None:
            metrics.INTAKE_REQUESTS.labels("unauthenticated").inc()
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown source token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found


def _too_large(what: str, limit: int, key: str) -> HTTPException:
    metrics.INTAKE_REQUESTS.labels("too_large").inc()
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"{what} exceeds the limit of {limit} (intake.{key})",
    )


async def _read_body(request: Request, limits: _Limits) -> bytes:
    """The body as sent, refused as soon as it passes the limit (never held whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body:
        raise _too_large("request body", limits.max_body, "max_body_bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_body:
            raise _too_large("request body", limits.max_body, "max_body_bytes")
    return bytes(body)


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress at most `limit` bytes, a window at a time: a gzip bomb is refused after
    `limit` bytes of output, never expanded in memory. Concatenated gzip members are read."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        pending = rest
        while pending:
            try:
                out += inflater.decompress(pending, limit + 1 - len(out))
            except zlib.error as exc:
                metrics.INTAKE_REQUESTS.labels("bad_request").inc()
                raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid gzip: {exc}") from None
            if len(out) > limit:
                raise _too_large("decompressed body", limit, "max_decompressed_bytes")
            pending = inflater.unconsumed_tail
        if not inflater.eof:
            metrics.INTAKE_REQUESTS.labels("bad_request").inc()
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid gzip: truncated stream")
        rest = inflater.unused_data.lstrip(b"\x00")
    return bytes(out)


def _items(body: bytes, content_type: str, limits: _Limits) -> list[tuple[int, Any]]:
    """(1-based line or item number, decoded value or an error string) for each line."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        try:
            values = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            metrics.INTAKE_REQUESTS.labels("bad_request").inc()
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid JSON: {exc}") from None
        if not isinstance(values, list):
            metrics.INTAKE_REQUESTS.labels("bad_request").inc()
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                "application/json: expected an array of lines or objects",
            )
        if len(values) > limits.max_lines:
            raise _too_large("item count", limits.max_lines, "max_lines")
        return list(enumerate(values, 1))
    if kind in {"application/x-ndjson", "application/ndjson", "application/jsonl"}:
        lines = body.split(b"\n")
        if len(lines) > limits.max_lines + 1:
            raise _too_large("line count", limits.max_lines, "max_lines")
        items: list[tuple[int, Any]] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                items.append((number, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                items.append((number, _Invalid(f"invalid JSON: {exc}")))
        if len(items) > limits.max_lines:
            raise _too_large("line count", limits.max_lines, "max_lines")
        return items
    if kind == "text/plain":
        lines = body.split(b"\n")
        if len(lines) > limits.max_lines + 1:
            raise _too_large("line count", limits.max_lines, "max_lines")
        return [
            (number, _RawLine(line.rstrip(b"\r")))
            for number, line in enumerate(lines, 1)
            if line.strip()
        ]
    metrics.INTAKE_REQUESTS.labels("bad_request").inc()
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        f"content type {kind or '(none)'!r}: send application/x-ndjson, application/json "
        "or text/plain",
    )


@dataclass(frozen=True, slots=True)
class _Invalid:
    reason: str


@dataclass(frozen=True, slots=True)
class _RawLine:
    data: bytes


class _LineError(ValueError):
    """One line cannot be accepted; the message is its reason in the answer."""


@dataclass(slots=True)
class _Item:
    """One line as the sender described it."""

    data: str | None
    exact: bytes | None = None
    form: str | None = None
    fields: dict[str, Any] | None = None
    ident: str | None = None
    file: str | None = None
    offset: int = 0
    path: str | None = None
    #: The sender cut the line (the agent's `max_line_bytes`).
    truncated: bool = False


def _parse_item(item: Any) -> _Item:
    if isinstance(item, _Invalid):
        raise _LineError(item.reason)
    if isinstance(item, _RawLine):
        return _Item(None, exact=item.data)
    if isinstance(item, str):
        return _Item(item)
    if not isinstance(item, dict):
        raise _LineError(f"expected a string or an object, got {type(item).__name__}")
    data = item.get("data", item.get("message"))
    if not isinstance(data, str):
        raise _LineError("'data' (or 'message') must be a string")
    parsed = _Item(data)
    encoded = item.get("data_b64")
    if encoded is not None:
        if not isinstance(encoded, str):
            raise _LineError("'data_b64' must be a base64 string")
        try:
            parsed.exact = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise _LineError("'data_b64' is not valid base64") from None
    form = item.get("format")
    if form is not None and form not in FORMATS:
        raise _LineError(f"unknown format {form!r} (known: {', '.join(sorted(FORMATS))})")
    parsed.form = form if form != "syslog" else None
    fields = item.get("fields")
    if fields is not None and not isinstance(fields, dict):
        raise _LineError("'fields' must be an object")
    if fields:
        # The agency comes from the token, never from what the sender claims.
        if "organization" in fields:
            fields = {key: value for key, value in fields.items() if key != "organization"}
        parsed.fields = fields
    ident = item.get("id")
    if ident is not None and (not isinstance(ident, str) or not ident):
        raise _LineError("'id' must be a non-empty string")
    parsed.ident = ident
    file, offset = item.get("file"), item.get("offset")
    if file is not None or offset is not None:
        if not isinstance(file, str) or not file:
            raise _LineError("'file' must be a non-empty string when 'offset' is given")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise _LineError("'offset' must be a non-negative integer when 'file' is given")
        parsed.file, parsed.offset = file, offset
    path = item.get("path")
    parsed.path = path if isinstance(path, str) else None
    parsed.truncated = item.get("truncated") is True
    return parsed


def _feed(digest: Any, part: str) -> None:
    """One part the way `soc.ids.stable_id` takes it: length-prefixed."""
    data = part.encode("utf-8", "surrogatepass")
    digest.update(len(data).to_bytes(8, "big"))
    digest.update(data)


class RecordBuilder:
    """Raw records (the `soc.raw` contract) from the items of one request."""

    def __init__(
        self, source: SourceConfig, body_digest: str, peer: tuple[str, int], max_line: int
    ) -> None:
        self._source = source
        self._digest = body_digest
        # The source id starts every id: hashed once per request, copied per line (the same
        # digest as stable_id(source.id, ...), at a third of the cost).
        self._ids = hashlib.blake2b(digest_size=16)
        _feed(self._ids, source.id)
        self._peer = peer
        self._max_line = max_line
        self._received_at = format_ts(utcnow())

    def build(self, number: int, raw: Any) -> Message:
        item = _parse_item(raw)
        flags: list[str] = ["truncated"] if item.truncated else []
        exact = item.exact
        if exact is not None and len(exact) > self._max_line:
            exact = exact[: self._max_line]
            if "truncated" not in flags:
                flags.append("truncated")
        data = item.data
        if exact is not None:
            try:
                data = exact.decode("utf-8")
            except UnicodeDecodeError:
                data = exact.decode("utf-8", "backslashreplace")
                flags.append("invalid_utf8")
            else:
                exact = None
        elif data is not None and len(data) > self._max_line // 4:
            encoded = data.encode("utf-8", "surrogatepass")
            if len(encoded) > self._max_line:
                data = encoded[: self._max_line].decode("utf-8", "ignore")
                if "truncated" not in flags:
                    flags.append("truncated")
        source: dict[str, Any] = {
            "type": "agent" if item.file is not None else "http",
            "id": self._source.id,
            "transport": "http",
            "peer": {"ip": self._peer[0], "port": self._peer[1]},
        }
        if item.path is not None:
            source["file"] = {"path": item.path}
        record: dict[str, Any] = {
            "id": self._record_id(number, item),
            "received_at": self._received_at,
            "data": data or "",
            "source": source,
            "organization": {"id": self._source.agency},
        }
        if exact is not None:
            record["data_b64"] = base64.b64encode(exact).decode("ascii")
        if item.form is not None:
            record["format"] = item.form
        if item.fields:
            record["fields"] = item.fields
        if flags:
            record["flags"] = flags
            for flag in flags:
                metrics.RECORDS_FLAGGED.labels("intake", flag).inc()
        return Message(self._host(item.fields), record)

    def _record_id(self, number: int, item: _Item) -> str:
        """stable_id(source id, ...): the source id is in every id, so a sender cannot
        overwrite another source's records."""
        digest = self._ids.copy()
        if item.ident is not None:
            parts: tuple[str, ...] = ("id", item.ident)
        elif item.file is not None:
            parts = ("file", item.file, str(item.offset))
        else:
            parts = ("body", self._digest, str(number))
        for part in parts:
            _feed(digest, part)
        return digest.hexdigest()

    def _host(self, fields: dict[str, Any] | None) -> str:
        host = fields.get("host") if fields else None
        name = host.get("name") if isinstance(host, dict) else None
        return name if isinstance(name, str) and name else self._source.id


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cycle collector while a request's lines are parsed: the thousands of dicts
    they become (none in a cycle) set it off again and again, each pass walking all of them;
    measured, parsing and building 20,000 agent lines ran twice as fast without it. Reference
    counting still frees everything; the section never awaits, so nothing else runs meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


router = APIRouter(prefix="/api/v1", tags=["intake"])


@router.post(
    "/ingest",
    summary="Push log lines (NDJSON, JSON array or text; optionally gzip)",
    description=DESCRIPTION,
    responses={
        401: {"description": "missing or unknown source token"},
        413: {"description": "a size limit was exceeded; the message names it"},
        415: {"description": "unsupported content type"},
        503: {"description": "the bus did not take the lines; send them again"},
    },
)
async def ingest(request: Request) -> JSONResponse:
    intake: Intake = request.app.state.intake
    source = intake.authenticate(request.headers.get("authorization"))
    with intake.request():
        return await _ingest(request, intake, source)


async def _ingest(request: Request, intake: Intake, source: SourceConfig) -> JSONResponse:
    limits = intake.limits
    body = await _read_body(request, limits)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, limits.max_decompressed)
    elif encoding not in {"", "identity"}:
        metrics.INTAKE_REQUESTS.labels("bad_request").inc()
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"content encoding {encoding!r}: send gzip or none",
        )
    elif len(body) > limits.max_decompressed:
        raise _too_large("decompressed body", limits.max_decompressed, "max_decompressed_bytes")
    client = request.client
    peer = (client.host, client.port) if client else ("unknown", 0)
    builder = RecordBuilder(source, hashlib.sha256(body).hexdigest(), peer, limits.max_line)
    messages: list[Message] = []
    errors: list[dict[str, Any]] = []
    with _collector_paused():
        items = _items(body, request.headers.get("content-type", ""), limits)
        for number, item in items:
            try:
                messages.append(builder.build(number, item))
            except _LineError as exc:
                errors.append({"line": number, "reason": str(exc)})
    try:
        await asyncio.wait_for(intake.bus.publish(RAW, messages), limits.publish_timeout)
    except TimeoutError:
        metrics.INTAKE_REQUESTS.labels("unavailable").inc()
        log.warning("intake publish timed out source=%s lines=%d", source.id, len(messages))
        return JSONResponse(
            {
                "detail": "the bus did not acknowledge the lines within "
                f"{limits.publish_timeout:g} s (intake.publish_timeout_ms), send them again"
            },
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    except Exception as exc:
        metrics.INTAKE_REQUESTS.labels("unavailable").inc()
        log.warning(
            "intake could not publish source=%s lines=%d error=%r", source.id, len(messages), exc
        )
        return JSONResponse(
            {"detail": f"the bus did not take the lines, send them again: {exc}"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    metrics.INTAKE_REQUESTS.labels("ok").inc()
    metrics.INTAKE_LINES.labels(source.id, "accepted").inc(len(messages))
    metrics.RECORDS_RECEIVED.labels(source.id, "http").inc(len(messages))
    metrics.BYTES_RECEIVED.labels(source.id, "http").inc(len(body))
    if errors:
        metrics.INTAKE_LINES.labels(source.id, "refused").inc(len(errors))
        metrics.DROPPED.labels("intake", "invalid_line").inc(len(errors))
        log.info("intake refused lines source=%s count=%d", source.id, len(errors))
    return JSONResponse(
        {
            "accepted": len(messages),
            "rejected": len(errors),
            "errors": errors[:MAX_ERRORS_LISTED],
        }
    )


def install_intake(
    app: FastAPI, bus: Bus, sources: Sequence[SourceConfig], limits: IntakeConfig
) -> Intake:
    """Add the intake to an API application: it needs the bus to publish on and the sources
    to authenticate senders with."""
    intake = Intake(bus, sources, limits)
    app.state.intake = intake
    app.include_router(router)
    return intake
