"""Local stand-ins for the providers the notifier talks to: an HTTP server that checks Zalo's,
Telegram's and our webhook's request formats exactly and can fail on demand, and an SMTP server
(aiosmtpd) with STARTTLS or implicit TLS and AUTH, on a certificate made here."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

APP_ID = "4291763606161179100"
SECRET_KEY = "zalo-app-secret"
BOT_TOKEN = "123456:telegram-bot-token"
WEBHOOK_SECRET = "webhook-signing-key"
ZNS_LIMITS = {"title": 30, "severity": 30, "link": 200, "count": 10}


@dataclass
class Received:
    """One request the provider accepted."""

    kind: str  # zalo_oa, zalo_zns, telegram, webhook
    key: str  # what identifies the message: delivery id, tracking id or the text
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class ProviderState:
    access_token: str = "zalo-access-0"
    refresh_token: str = "zalo-refresh-0"
    token_generation: int = 0
    #: Until this wall-clock time every request fails, cycling through `failure_modes`.
    fail_until: float = 0.0
    failure_modes: tuple[str, ...] = ("http503",)
    #: Seconds each accepted request takes (a slow provider, for kill-mid-queue tests).
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    refreshes: int = 0
    failures: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self, kind: str) -> list[str]:
        with self.lock:
            return [r.key for r in self.received if r.kind == kind]

    def of(self, kind: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.kind == kind]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _violation(self, text: str) -> None:
        with self.server.state.lock:
            self.server.state.violations.append(f"{self.path}: {text}")
        self._reply(400, {"error": -201, "message": text})

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        with state.lock:
            state.requests += 1
            failing = time.time() < state.fail_until
            mode = state.failure_modes[state.failures % len(state.failure_modes)]
            if failing:
                state.failures += 1
        if failing:
            self._fail(mode)
            return
        if state.delay:
            time.sleep(state.delay)
        if self.path == "/v4/oa/access_token":
            self._refresh(raw)
        elif self.path == "/v3.0/oa/message/cs":
            self._zalo_oa(raw)
        elif self.path == "/message/template":
            self._zalo_zns(raw)
        elif self.path == f"/bot{BOT_TOKEN}/sendMessage":
            self._telegram(raw)
        elif self.path.startswith("/hooks/"):
            self._webhook(raw)
        else:
            self._reply(404, {"error": -1, "message": f"no route {self.path}"})

    def _fail(self, mode: str) -> None:
        zalo = self.path in ("/v3.0/oa/message/cs", "/message/template")
        if mode == "http503" or (mode == "zalo_error" and not zalo):
            self._reply(503, {"error": -1, "message": "unavailable"})
        elif mode == "zalo_error":
            # HTTP 200 but Zalo's own error: not an acceptance.
            self._reply(200, {"error": -32, "message": "Request limit exceeded", "data": {}})
        elif mode == "reset":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif mode == "rate_limited":
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()

    def _json(self, raw: bytes) -> dict[str, Any] | None:
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            self._violation(f"Content-Type {self.headers.get('Content-Type')!r}")
            return None
        try:
            body = json.loads(raw)
        except ValueError:
            self._violation("body is not JSON")
            return None
        if not isinstance(body, dict):
            self._violation("body is not an object")
            return None
        return body

    def _token_ok(self) -> bool:
        if self.headers.get("access_token") != self.server.state.access_token:
            # Zalo answers an expired or unknown token with HTTP 200 and error -216.
            self._reply(200, {"error": -216, "message": "Access token is invalid"})
            return False
        return True

    def _accept(self, kind: str, key: str, body: dict[str, Any]) -> None:
        with self.server.state.lock:
            self.server.state.received.append(
                Received(kind, key, body, dict(self.headers.items()), time.time())
            )

    def _refresh(self, raw: bytes) -> None:
        state = self.server.state
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if self.headers.get("secret_key") != SECRET_KEY:
            self._violation("secret_key header missing or wrong")
            return
        expected = {"app_id": APP_ID, "grant_type": "refresh_token"}
        if {k: form.get(k) for k in expected} != expected or "refresh_token" not in form:
            self._violation(f"refresh form {form}")
            return
        with state.lock:
            if form["refresh_token"] != state.refresh_token:
                answer = {"error": -14014, "message": "Invalid refresh token"}
            else:
                state.token_generation += 1
                state.refreshes += 1
                state.access_token = f"zalo-access-{state.token_generation}"
                state.refresh_token = f"zalo-refresh-{state.token_generation}"
                answer = {
                    "access_token": state.access_token,
                    "refresh_token": state.refresh_token,
                    "expires_in": "90000",
                }
        self._reply(200, answer)

    def _zalo_oa(self, raw: bytes) -> None:
        body = self._json(raw)
        if body is None or not self._token_ok():
            return
        recipient, message = body.get("recipient"), body.get("message")
        if set(body) != {"recipient", "message"} or not isinstance(recipient, dict):
            self._violation(f"OA body keys {sorted(body)}")
            return
        if set(recipient) != {"user_id"} or not isinstance(recipient["user_id"], str):
            self._violation(f"OA recipient {recipient}")
            return
        if not isinstance(message, dict) or set(message) != {"text"}:
            self._violation(f"OA message {message}")
            return
        text = message["text"]
        if not isinstance(text, str) or not 0 < len(text) <= 2000:
            self._violation("OA text missing or over 2000 characters")
            return
        self._accept("zalo_oa", text, body)
        self._reply(200, {"error": 0, "message": "Success", "data": {"message_id": "oa-1"}})

    def _zalo_zns(self, raw: bytes) -> None:
        body = self._json(raw)
        if body is None or not self._token_ok():
            return
        allowed = {"phone", "template_id", "template_data", "tracking_id", "mode"}
        if not {"phone", "template_id", "template_data"} <= set(body) <= allowed:
            self._violation(f"ZNS body keys {sorted(body)}")
            return
        if not re.fullmatch(r"84\d{9,10}", str(body["phone"])):
            self._violation(f"ZNS phone {body['phone']!r}")
            return
        data = body["template_data"]
        if not isinstance(data, dict) or set(data) != set(ZNS_LIMITS):
            self._violation(f"ZNS template_data keys {data}")
            return
        for name, value in data.items():
            if not isinstance(value, str) or len(value) > ZNS_LIMITS[name]:
                self._violation(f"ZNS param {name} = {value!r} over {ZNS_LIMITS[name]}")
                return
        self._accept("zalo_zns", str(body.get("tracking_id")), body)
        self._reply(
            200,
            {"error": 0, "message": "Success", "data": {"msg_id": "zns-1", "sent_time": "1"}},
        )

    def _telegram(self, raw: bytes) -> None:
        body = self._json(raw)
        if body is None:
            return
        text = body.get("text")
        if not isinstance(body.get("chat_id"), str) or not isinstance(text, str):
            self._violation(f"Telegram body {sorted(body)}")
            return
        if not 0 < len(text) <= 4096:
            self._violation("Telegram text over 4096 characters")
            return
        self._accept("telegram", text, body)
        self._reply(200, {"ok": True, "result": {"message_id": 7, "text": text}})

    def _webhook(self, raw: bytes) -> None:
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        signature = self.headers.get("X-SOC-Signature", "")
        if not hmac.compare_digest(signature, expected):
            self._violation("bad X-SOC-Signature")
            return
        body = self._json(raw)
        if body is None:
            return
        stamp = self.headers.get("X-SOC-Timestamp", "")
        if stamp != str(body.get("sent_at")) or abs(time.time() - int(stamp)) > 300:
            self._violation(f"X-SOC-Timestamp {stamp!r} stale or not the signed sent_at")
            return
        delivery = self.headers.get("X-SOC-Delivery", "")
        if delivery != body.get("id"):
            self._violation("X-SOC-Delivery is not the body's id")
            return
        self._accept("webhook", delivery, body)
        self._reply(200, {"received": True})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 refuses connections from a busy notifier

    def __init__(self, state: ProviderState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class FakeProvider:
    """Zalo (OA, ZNS, OAuth), Telegram and webhook receiver on one loopback port."""

    def __init__(self) -> None:
        self.state = ProviderState()
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; (cert, key) PEM paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


SMTP_USER, SMTP_PASSWORD = "soc-notify", "smtp-password"


class _MailHandler:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not session.authenticated:
            return "530 Authentication required"
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Ok: queued as FAKE"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeSmtp:
    """aiosmtpd with AUTH (only over TLS): STARTTLS required (`implicit=False`) or TLS from the
    first byte (`implicit=True`)."""

    def __init__(self, cert: Path, key: Path, *, implicit: bool = False, port: int = 0) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.handler = _MailHandler()
        self.port = port or _free_port()
        common: dict[str, Any] = {
            "authenticator": _authenticator,
            "auth_required": True,
            "auth_require_tls": True,
        }
        if implicit:
            # aiosmtpd does not see implicit TLS as TLS when deciding to offer AUTH; the whole
            # session is encrypted here anyway.
            common["auth_require_tls"] = False
            self.controller = Controller(
                self.handler, hostname="127.0.0.1", port=self.port, ssl_context=context,
                **common,
            )  # fmt: skip
        else:
            self.controller = Controller(
                self.handler, hostname="127.0.0.1", port=self.port, tls_context=context,
                require_starttls=True, **common,
            )  # fmt: skip
        self.url = f"{'smtps' if implicit else 'smtp'}://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[tuple[str, list[str], bytes]]:
        with self.handler.lock:
            return list(self.handler.messages)

    def __enter__(self) -> FakeSmtp:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def channels_config(
    provider: str, smtp: FakeSmtp | None, cert: Path | None
) -> list[dict[str, Any]]:
    """One channel of each kind, all pointing at the local fakes."""
    channels: list[dict[str, Any]] = [
        {
            "name": "zalo",
            "type": "zalo_oa",
            "base_url": provider,
            "oauth_url": provider,
            "app_id": APP_ID,
            "secret_key": SECRET_KEY,
            "access_token": "zalo-access-0",
            "refresh_token": "zalo-refresh-0",
            "timeout_seconds": 2,
        },
        {
            "name": "zns",
            "type": "zalo_zns",
            "base_url": provider,
            "oauth_url": provider,
            "app_id": APP_ID,
            "secret_key": SECRET_KEY,
            "access_token": "zalo-access-0",
            "refresh_token": "zalo-refresh-0",
            "template_id": "312456",
            "template_params": [
                {"name": "title", "value": "title", "max_length": ZNS_LIMITS["title"]},
                {"name": "severity", "value": "severity", "max_length": ZNS_LIMITS["severity"]},
                {"name": "link", "value": "url", "max_length": ZNS_LIMITS["link"]},
                {"name": "count", "value": "alert_count", "max_length": ZNS_LIMITS["count"]},
            ],
            "timeout_seconds": 2,
        },
        {
            "name": "hook",
            "type": "webhook",
            "base_url": f"{provider}/hooks",
            "secret": WEBHOOK_SECRET,
            "timeout_seconds": 2,
        },
        {
            "name": "tg",
            "type": "telegram",
            "base_url": provider,
            "bot_token": BOT_TOKEN,
            "timeout_seconds": 2,
        },
    ]
    if smtp is not None and cert is not None:
        channels.append(
            {
                "name": "mail",
                "type": "email",
                "base_url": smtp.url,
                "username": SMTP_USER,
                "password": SMTP_PASSWORD,
                "sender": "soc@stttt.example.gov.vn",
                "ca_file": str(cert),
                "timeout_seconds": 5,
            }
        )
    return channels


RECIPIENTS = {
    "zalo": "4572947693969771653",
    "zns": "0912345678",
    "hook": "soc",
    "tg": "-1001234567890",
    "mail": "truc-ban@stttt.example.gov.vn",
}


def route_to_all(channels: list[dict[str, Any]], **conditions: Any) -> dict[str, Any]:
    return {
        "name": "all",
        "min_severity": "medium",
        "recipients": [{"channel": c["name"], "to": RECIPIENTS[c["name"]]} for c in channels],
        **conditions,
    }


def incident_doc(ident: str, alert_count: int, **incident: Any) -> dict[str, Any]:
    """An incident document as the incidents stage publishes it (soc/incidents contract)."""
    now = "2026-11-29T01:00:00.000000Z"
    body: dict[str, Any] = {
        "id": ident,
        "key": f"ssh-brute|web01-{ident}",
        "title": "Dò mật khẩu SSH on web01",
        "status": "new",
        "severity": "high",
        "alert_count": alert_count,
        "first_seen": now,
        "last_seen": now,
        "created": now,
        "updated": now,
        "tags": [],
        "comments": [],
        "rule": {"id": "ssh-brute", "name": "Dò mật khẩu SSH", "level": "high"},
        "version": "1",
    }
    body.update(incident)
    return {
        "@timestamp": now,
        "event": {"id": ident, "kind": "incident", "severity": 73},
        "organization": {"id": "so-tttt"},
        "incident": body,
        "threat": {"technique": {"id": ["T1110"]}},
        "related": {"hosts": ["web01"], "user": ["root"], "ip": ["203.0.113.9"]},
    }


def incident_record(change: str, doc: dict[str, Any], at: float | None = None) -> dict[str, Any]:
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC)
    return {
        "change": change,
        "incident": doc,
        "alert": None,
        "actor": "system",
        "at": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
