"""The TLS side of syslog over TLS (RFC 5425): the server's context, built from configuration.

Configuration validation calls `server_context` too, so a missing file, a key that does not
match its certificate or an unreadable CA stops the program at start with the key named, rather
than at the first sender's handshake. `ServerTls` takes a renewed certificate without a restart
(a restart would lose the UDP datagrams that arrive meanwhile).
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from pathlib import Path

from soc.config import ConfigError, SyslogConfig

log = logging.getLogger(__name__)


def server_context(syslog: SyslogConfig) -> ssl.SSLContext:
    """TLS 1.2 or newer with the configured certificate; client certificates are asked for
    when a client CA is set and required when `tls_require_client_cert` is."""
    if not syslog.tls_cert or not syslog.tls_key:
        raise ConfigError("syslog.tls_cert and syslog.tls_key: both are required when syslog.tls")
    if syslog.tls_require_client_cert and not syslog.tls_client_ca:
        raise ConfigError(
            "syslog.tls_client_ca: required when syslog.tls_require_client_cert is true "
            "(the CA that client certificates must chain to)"
        )
    for key, value in (
        ("tls_cert", syslog.tls_cert),
        ("tls_key", syslog.tls_key),
        ("tls_client_ca", syslog.tls_client_ca),
    ):
        if value and not Path(value).is_file():
            raise ConfigError(f"syslog.{key}: no such file {value!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # No TLS 1.3 session tickets: a syslog sender never reads, so tickets would sit unread in
    # its socket, and a socket closed with unread data resets the connection (RST), which makes
    # the kernel discard the sender's last lines still waiting in our receive buffer.
    context.num_tickets = 0
    try:
        context.load_cert_chain(syslog.tls_cert, syslog.tls_key)
    except OSError as exc:  # ssl.SSLError is one; so is a file we may not read
        raise ConfigError(
            f"syslog.tls_cert/syslog.tls_key: cannot load {syslog.tls_cert!r} with key "
            f"{syslog.tls_key!r} (PEM certificate and its unencrypted private key expected): "
            f"{_why(exc)}"
        ) from None
    if syslog.tls_client_ca:
        try:
            context.load_verify_locations(cafile=syslog.tls_client_ca)
        except OSError as exc:
            raise ConfigError(
                f"syslog.tls_client_ca: cannot load {syslog.tls_client_ca!r} "
                f"(PEM CA certificates expected): {_why(exc)}"
            ) from None
        context.verify_mode = (
            ssl.CERT_REQUIRED if syslog.tls_require_client_cert else ssl.CERT_OPTIONAL
        )
    return context


def _why(exc: OSError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc.strerror or exc)


class ServerTls:
    """The server's TLS context, loaded again when its files change: operators renew a
    certificate by replacing the files. Open connections keep the context they began with; a
    replacement that does not load (a key not yet matching its new certificate, halfway through
    a renewal) leaves the running context in place and is tried again at the next check."""

    def __init__(self, syslog: SyslogConfig, check_every: float = 5.0) -> None:
        self._syslog = syslog
        self._check_every = check_every
        self._context = server_context(syslog)
        self._stamps = self._file_stamps()
        self._checked = time.monotonic()

    def context(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked >= self._check_every:
            self._checked = now
            stamps = self._file_stamps()
            if stamps != self._stamps:
                self._reload(stamps)
        return self._context

    def _reload(self, stamps: tuple[tuple[int, int, int], ...]) -> None:
        try:
            self._context = server_context(self._syslog)
        except ConfigError as exc:
            log.error(
                "syslog tls files changed but do not load; keeping the previous ones: %s", exc
            )
            return
        self._stamps = stamps
        log.info("syslog tls certificate reloaded cert=%s", self._syslog.tls_cert)

    def _file_stamps(self) -> tuple[tuple[int, int, int], ...]:
        """(mtime, inode, size) of each file: a replacement by rename changes the inode, and a
        rewrite within the clock's granularity most likely the size, when the time does not."""
        stamps = []
        for path in (self._syslog.tls_cert, self._syslog.tls_key, self._syslog.tls_client_ca):
            try:
                info = os.stat(path) if path else None
            except OSError:
                info = None
            stamps.append((info.st_mtime_ns, info.st_ino, info.st_size) if info else (0, 0, 0))
        return tuple(stamps)
