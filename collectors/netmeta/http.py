"""HTTP/1.x request and response heads to ECS `http.*`, `url.*` and `user_agent.*`.

Only the head in the first segment of each message is read (no TCP reassembly): it holds the
request line, Host and User-Agent in all but pathological cases, and that is what detections
look at.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

METHODS: Final = frozenset(
    {b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC", b"PROP"}
)
RESPONSE_PREFIX: Final = b"HTTP/1."
_MAX_HEAD: Final = 8192
_MAX_VALUE: Final = 2048


def is_request(payload: bytes) -> bool:
    return payload[:4] in METHODS


def _lines(payload: bytes) -> list[str]:
    head = payload[:_MAX_HEAD].split(b"\r\n\r\n", 1)[0]
    return head.decode("latin-1").split("\r\n")


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip()[:_MAX_VALUE])
    return headers


def parse_request(payload: bytes) -> dict[str, Any] | None:
    """ECS fields of a request head, or None when the first line is not a request line."""
    lines = _lines(payload)
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    method, target, version = parts
    headers = _headers(lines)
    http: dict[str, Any] = {"request": {"method": method}, "version": version[5:]}
    url: dict[str, Any] = {"original": target[:_MAX_VALUE]}
    host = headers.get("host", "")
    if target.startswith(("http://", "https://")):
        parsed = urlsplit(target)
        host = parsed.netloc or host
        target = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    path, _, query = target.partition("?")
    url["path"] = path[:_MAX_VALUE]
    if query:
        url["query"] = query[:_MAX_VALUE]
    if host:
        domain, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        url["domain"] = domain.strip("[]")
        if port.isdigit():
            url["port"] = int(port)
    fields: dict[str, Any] = {"http": http, "url": url}
    if agent := headers.get("user-agent"):
        fields["user_agent"] = {"original": agent}
    if referrer := headers.get("referer"):
        http["request"]["referrer"] = referrer
    if (length := headers.get("content-length", "").strip()).isdigit():
        http["request"]["body"] = {"bytes": int(length)}
    return fields


def parse_response(payload: bytes) -> dict[str, Any] | None:
    """`http.response` of a response head, or None when the status line is not one."""
    lines = _lines(payload)
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return None
    response: dict[str, Any] = {"status_code": int(parts[1])}
    headers = _headers(lines)
    if mime := headers.get("content-type"):
        response["mime_type"] = mime.split(";", 1)[0].strip()
    if (length := headers.get("content-length", "").strip()).isdigit():
        response["body"] = {"bytes": int(length)}
    return response
