"""The TLS side of syslog over TLS (RFC 5425): the server's context, built from configuration.

Configuration validation calls `server_context` too, so a missing file, a key that does not
match its certificate or an unreadable CA stops the program at start with the key named, rather
than at the first sender's handshake.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from soc.config import ConfigError, SyslogConfig


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
