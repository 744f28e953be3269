"""Channels: how a notice reaches a provider, and what counts as accepted.

A send returns `Accepted` only when the provider said yes: HTTP 2xx and, for Zalo, `error == 0`
in the JSON body; for Telegram `ok: true`; for SMTP a 250 after DATA. Anything else raises
`DeliveryError` with a short reason (the metric label) and the provider's words.
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import hmac
import json
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from soc import __version__
from soc.config import ConfigError, NotifyChannelConfig
from soc.notify.models import Accepted, DeliveryError, Notice
from soc.notify.outbox import Token
from soc.notify.templates import (
    TELEGRAM_TEXT_LIMIT,
    ZALO_TEXT_LIMIT,
    render_html,
    render_subject,
    render_text,
    zns_template_data,
)

DEFAULT_BASE_URLS = {
    "zalo_oa": "https://openapi.zalo.me",
    "zalo_zns": "https://business.openapi.zalo.me",
    "telegram": "https://api.telegram.org",
}
#: Zalo's answers for an access token that is invalid or expired: refresh it and send again.
ZALO_TOKEN_ERRORS = frozenset({-216, -124, -220})
#: Refresh this long before the token's announced expiry.
TOKEN_MARGIN_SECONDS = 300.0
_ANSWER_LIMIT = 2000


class TokenStore(Protocol):
    def load_token(self, channel: str) -> Token | None: ...

    def save_token(self, channel: str, token: Token, now: float) -> None: ...


class Channel(Protocol):
    name: str
    type: str

    async def send(self, recipient: str, notice: Notice, message_id: str) -> Accepted: ...

    async def close(self) -> None: ...


def make_channel(config: NotifyChannelConfig, tokens: TokenStore, zone: ZoneInfo) -> Channel:
    """The sender for one configured channel. Channels of one Zalo app share its tokens
    through `tokens` (the outbox)."""
    kinds: dict[str, Callable[[NotifyChannelConfig, TokenStore, ZoneInfo], Channel]] = {
        "zalo_oa": ZaloOAChannel,
        "zalo_zns": ZaloZNSChannel,
        "webhook": WebhookChannel,
        "telegram": TelegramChannel,
        "email": EmailChannel,
    }
    if config.type not in kinds:
        raise ConfigError(f"notify channel {config.name!r}: unknown type {config.type!r}")
    return kinds[config.type](config, tokens, zone)


def base_url(config: NotifyChannelConfig) -> str:
    url = config.base_url or DEFAULT_BASE_URLS.get(config.type, "")
    if not url:
        raise ConfigError(f"notify channel {config.name!r}: base_url is required")
    return url.rstrip("/")


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class _HttpChannel:
    """What the HTTP channels share: one client, error classes, answers kept short."""

    def __init__(self, config: NotifyChannelConfig, tokens: TokenStore, zone: ZoneInfo) -> None:
        self.config = config
        self.name = config.name
        self.type = config.type
        self.base_url = base_url(config)
        self.tokens = tokens
        self.zone = zone
        self.client = httpx.AsyncClient(
            timeout=float(config.timeout_seconds),
            verify=_ssl_context(config.ca_file),
            headers={"User-Agent": f"soc/{__version__}"},
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self.client.aclose()

    def _scrub(self, text: str) -> str:
        """Never let a secret reach the log or the delivery log through an error text."""
        for secret in (self.config.bot_token, self.config.access_token, self.config.secret_key):
            if secret:
                text = text.replace(secret, "***")
        return text

    async def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.client.post(url, **kwargs)
        except httpx.TimeoutException as exc:
            raise DeliveryError("timeout", self._scrub(repr(exc))) from None
        except httpx.HTTPError as exc:
            raise DeliveryError("connection", self._scrub(repr(exc))) from None
        if response.status_code == 429:
            raise DeliveryError(
                "rate_limited", _short(response.text), retry_after=_retry_after(response)
            )
        if response.status_code >= 500 or response.status_code in (408, 425):
            raise DeliveryError("http_5xx", f"{response.status_code} {_short(response.text)}")
        if not 200 <= response.status_code < 300:
            raise DeliveryError(
                "http_4xx", f"{response.status_code} {_short(response.text)}", retryable=False
            )
        return response


def _short(text: str) -> str:
    return text[:_ANSWER_LIMIT]


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from `Retry-After`, or Telegram's `parameters.retry_after`."""
    value = response.headers.get("Retry-After", "")
    if value.isdigit():
        return float(value)
    try:
        seconds = response.json().get("parameters", {}).get("retry_after")
    except (ValueError, AttributeError):
        return None
    return float(seconds) if isinstance(seconds, int | float) else None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise DeliveryError("provider_error", f"not JSON: {_short(response.text)}") from None
    if not isinstance(body, dict):
        raise DeliveryError("provider_error", f"unexpected answer: {_short(response.text)}")
    return body


class _ZaloChannel(_HttpChannel):
    """Zalo's OpenAPI: `access_token` header, `{"error": 0, ...}` for success, and an access token
    that expires (about 25 h) and is refreshed with a single-use refresh token, which is why the
    new pair is saved before it is used."""

    #: One lock per Zalo app in this process: OA and ZNS channels of one app must not both
    #: spend the single-use refresh token.
    _locks: ClassVar[dict[tuple[int, str], asyncio.Lock]] = {}

    def __init__(self, config: NotifyChannelConfig, tokens: TokenStore, zone: ZoneInfo) -> None:
        super().__init__(config, tokens, zone)
        self._token: Token | None = None
        # Tokens belong to the app, not the channel.
        self.token_key = f"zalo:{config.app_id or config.name}"

    def _lock(self) -> asyncio.Lock:
        key = (id(asyncio.get_running_loop()), self.token_key)
        if key not in self._locks:
            self._locks[key] = asyncio.Lock()
        return self._locks[key]

    async def _current(self) -> Token:
        if self._token is None:
            stored = await asyncio.to_thread(self.tokens.load_token, self.token_key)
            self._token = stored or Token(self.config.access_token, self.config.refresh_token, 0)
        if self._token.expires_at and self._token.expires_at - TOKEN_MARGIN_SECONDS < time.time():
            return await self._refresh(self._token.access_token)
        return self._token

    async def _refresh(self, stale: str) -> Token:
        async with self._lock():
            stored = await asyncio.to_thread(self.tokens.load_token, self.token_key)
            if stored is not None and stored.access_token != stale:
                self._token = stored  # another send (or process) refreshed it meanwhile
                return stored
            if self._token is not None and self._token.access_token != stale:
                return self._token
            refresh = self._token.refresh_token if self._token else self.config.refresh_token
            if not (refresh and self.config.app_id and self.config.secret_key):
                raise DeliveryError("token", "access token rejected and no refresh credentials")
            url = f"{self.config.oauth_url.rstrip('/')}/v4/oa/access_token"
            response = await self._post(
                url,
                headers={"secret_key": self.config.secret_key},
                data={
                    "app_id": self.config.app_id,
                    "grant_type": "refresh_token",
                    "refresh_token": refresh,
                },
            )
            body = _json(response)
            if not body.get("access_token") or not body.get("refresh_token"):
                raise DeliveryError("token", f"refresh refused: {_short(response.text)}")
            expires_in = float(body.get("expires_in") or 0)
            token = Token(
                str(body["access_token"]),
                str(body["refresh_token"]),
                time.time() + expires_in if expires_in else 0.0,
            )
            await asyncio.to_thread(self.tokens.save_token, self.token_key, token, time.time())
            self._token = token
            return token

    async def _call(self, path: str, payload: dict[str, Any]) -> Accepted:
        token = await self._current()
        for attempt in (1, 2):
            response = await self._post(
                f"{self.base_url}{path}",
                headers={"access_token": token.access_token, "Content-Type": "application/json"},
                content=json.dumps(payload, ensure_ascii=False).encode(),
            )
            body = _json(response)
            error = body.get("error")
            if error == 0:
                data = body.get("data") or {}
                ident = data.get("message_id") or data.get("msg_id") or ""
                return Accepted(str(ident), _short(response.text))
            if error in ZALO_TOKEN_ERRORS and attempt == 1:
                token = await self._refresh(token.access_token)
                continue
            raise DeliveryError(
                "provider_error", f"error {error}: {body.get('message', '')}"[:_ANSWER_LIMIT]
            )
        raise DeliveryError("token", "access token still rejected after a refresh")


class ZaloOAChannel(_ZaloChannel):
    """A text message from the Official Account to a follower (`to`: the follower's user id)."""

    async def send(self, recipient: str, notice: Notice, message_id: str) -> Accepted:
        text = render_text(notice, self.zone, ZALO_TEXT_LIMIT)
        return await self._call(
            "/v3.0/oa/message/cs",
            {"recipient": {"user_id": recipient}, "message": {"text": text}},
        )


def zns_phone(number: str) -> str:
    """Zalo wants Vietnamese numbers as 84xxxxxxxxx: `0912 345 678` and `+84912345678` both
    become `84912345678`."""
    digits = re.sub(r"[\s.\-()]", "", number).removeprefix("+")
    if digits.startswith("0"):
        digits = "84" + digits[1:]
    if not re.fullmatch(r"84\d{9,10}", digits):
        raise DeliveryError("invalid_recipient", f"not a Vietnamese phone number: {number!r}",
                            retryable=False)  # fmt: skip
    return digits


class ZaloZNSChannel(_ZaloChannel):
    """An approved template message to a phone number; `tracking_id` is the outbox id, so a
    resend after a crash can be recognised in Zalo's delivery reports."""

    async def send(self, recipient: str, notice: Notice, message_id: str) -> Accepted:
        payload: dict[str, Any] = {
            "phone": zns_phone(recipient),
            "template_id": self.config.template_id,
            "template_data": zns_template_data(notice, self.config.template_params, self.zone),
            "tracking_id": message_id,
        }
        if self.config.development:
            payload["mode"] = "development"
        return await self._call("/message/template", payload)


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel(_HttpChannel):
    """JSON to any HTTP endpoint. `X-SOC-Signature` is the HMAC-SHA256 of the body, which holds
    `sent_at` (also in `X-SOC-Timestamp`), so a receiver that checks both and refuses old
    timestamps cannot be fed a replay; `X-SOC-Delivery` is stable across retries, for
    receivers that want exactly-once."""

    async def send(self, recipient: str, notice: Notice, message_id: str) -> Accepted:
        if recipient.startswith(("http://", "https://")):
            url = recipient
        elif recipient:
            url = f"{self.base_url}/{recipient.lstrip('/')}"
        else:
            url = self.base_url
        sent_at = int(time.time())
        body = json.dumps(
            {
                "id": message_id,
                "type": "soc.incident.notification",
                "sent_at": sent_at,
                "text": render_text(notice, self.zone, TELEGRAM_TEXT_LIMIT),
                "notice": notice.as_dict(),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        response = await self._post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-SOC-Signature": webhook_signature(self.config.secret, body),
                "X-SOC-Timestamp": str(sent_at),
                "X-SOC-Delivery": message_id,
            },
        )
        return Accepted("", _short(response.text))


class TelegramChannel(_HttpChannel):
    """Bot API sendMessage (`to`: chat id), plain text so nothing needs escaping."""

    async def send(self, recipient: str, notice: Notice, message_id: str) -> Accepted:
        url = f"{self.base_url}/bot{self.config.bot_token}/sendMessage"
        try:
            response = await self._post(
                url,
                json={
                    "chat_id": recipient,
                    "text": render_text(notice, self.zone, TELEGRAM_TEXT_LIMIT),
                    "disable_web_page_preview": True,
                },
            )
        except DeliveryError as exc:
            raise DeliveryError(
                exc.reason, self._scrub(exc.detail), retryable=exc.retryable,
                retry_after=exc.retry_after,
            ) from None  # fmt: skip
        body = _json(response)
        if body.get("ok") is not True:
            raise DeliveryError("provider_error", _short(response.text))
        result = body.get("result") or {}
        return Accepted(str(result.get("message_id", "")), _short(response.text))


class EmailChannel:
    """SMTP with STARTTLS (required, `smtp://`) or implicit TLS (`smtps://`); plain SMTP only
    when asked for by name (`smtp+insecure://`). smtplib runs in a worker thread."""

    def __init__(self, config: NotifyChannelConfig, tokens: TokenStore, zone: ZoneInfo) -> None:
        self.config = config
        self.name = config.name
        self.type = config.type
        self.zone = zone
        url = urlsplit(base_url(config))
        if url.scheme not in ("smtp", "smtps", "smtp+insecure") or not url.hostname:
            raise ConfigError(
                f"notify channel {config.name!r}: base_url must be smtp://HOST:PORT,"
                " smtps://HOST:PORT or smtp+insecure://HOST:PORT"
            )
        if not config.sender:
            raise ConfigError(f"notify channel {config.name!r}: sender is required")
        self.scheme = url.scheme
        self.host = url.hostname
        self.port = url.port or {"smtp": 587, "smtps": 465}.get(url.scheme, 25)
        self.context = _ssl_context(config.ca_file)

    async def close(self) -> None:
        return None

    def build(self, recipient: str, notice: Notice, message_id: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = recipient
        message["Subject"] = render_subject(notice)
        message["Date"] = formatdate(localtime=False)
        # Stable across retries: a mail reader shows a resent copy as the same message.
        message["Message-ID"] = f"<{message_id}@soc.notify>"
        message["X-SOC-Incident"] = notice.incident_id
        # Quoted-printable keeps the message 7-bit: any relay takes it, 8BITMIME or not.
        message.set_content(render_text(notice, self.zone, 100_000), cte="quoted-printable")
        message.add_alternative(
            render_html(notice, self.zone), subtype="html", cte="quoted-printable"
        )
        return message

    async def send(self, recipient: str, notice: Notice, message_id: str) -> Accepted:
        message = self.build(recipient, notice, message_id)
        return await asyncio.to_thread(self._send, recipient, message)

    def _send(self, recipient: str, message: EmailMessage) -> Accepted:
        timeout = float(self.config.timeout_seconds)
        try:
            smtp: smtplib.SMTP
            if self.scheme == "smtps":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=self.context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
            with smtp:
                smtp.ehlo()
                if self.scheme == "smtp":
                    smtp.starttls(context=self.context)
                    smtp.ehlo()
                if self.config.username:
                    smtp.login(self.config.username, self.config.password)
                code, answer = smtp.mail(self.config.sender, ["SMTPUTF8"] if _needs_utf8(
                    message) and smtp.has_extn("smtputf8") else [])  # fmt: skip
                if code != 250:
                    raise smtplib.SMTPSenderRefused(code, answer, self.config.sender)
                code, answer = smtp.rcpt(recipient)
                if code not in (250, 251):
                    raise smtplib.SMTPRecipientsRefused({recipient: (code, answer)})
                # SMTP wants CRLF line ends; smtplib leaves bytes as they are.
                code, answer = smtp.data(message.as_bytes(policy=_SMTP_POLICY))
                if code != 250:
                    raise smtplib.SMTPDataError(code, answer)
        except smtplib.SMTPRecipientsRefused as exc:
            code, answer = next(iter(exc.recipients.values()))
            raise _smtp_error(code, answer) from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError("smtp", str(exc), retryable=False) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError("connection", repr(exc)) from None
        text = answer.decode("utf-8", "replace")
        return Accepted(text, f"{code} {text}")


_SMTP_POLICY = email.policy.SMTP


def _needs_utf8(message: EmailMessage) -> bool:
    return not str(message["To"]).isascii() or not str(message["From"]).isascii()


def _smtp_error(code: int, answer: bytes | str) -> DeliveryError:
    text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer
    # 5xx is the relay's final word (bad address, refused login): retrying cannot help.
    if code >= 500:
        return DeliveryError("smtp_5xx", f"{code} {text}", retryable=False)
    return DeliveryError("smtp_4xx", f"{code} {text}")
