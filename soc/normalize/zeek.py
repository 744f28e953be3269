"""Zeek JSON logs -> ECS, as Elastic's Zeek integration shapes them (``event.module: zeek``,
``event.dataset: zeek.<log>``, the log's own fields under ``zeek.<log>``, ``zeek.session_id``).

Zeek writes one log per file (conn.log, dns.log...) and its JSON lines do not say which, unless
a ``_path`` is written with them. The log comes from ``_path``, else the file's name, else the
fields that only that log has.
"""

import re
from collections.abc import Callable
from typing import Any, Final

from soc.normalize.ecs import Event, branch, canonical_ip
from soc.normalize.network import as_int, as_str, epoch_time, set_endpoint, set_url

__all__ = ["is_zeek", "log_from_path", "normalize_zeek"]

_MODULE: Final = "zeek"
# Zeek log name -> the dataset name Elastic gives it.
_DATASETS: Final = {"conn": "connection"}
_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ID_KEYS: Final = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")
_COMMON: Final = frozenset({"ts", "uid", "_path", "_write_ts", "id", *_ID_KEYS})
# The fields that tell a log apart, checked in order, when neither _path nor a file name says.
_SIGNATURES: Final = (
    ("notice", ("note",)),
    ("conn", ("conn_state", "orig_ip_bytes", "history")),
    ("dns", ("qtype_name", "rcode_name", "trans_id", "query")),
    ("http", ("status_code", "method", "request_body_len")),
    ("ssl", ("server_name", "cipher", "established")),
    ("ssh", ("auth_success", "auth_attempts", "hassh")),
    ("files", ("fuid",)),
    ("weird", ("peer",)),
)
_TLS_VERSIONS: Final = {
    "TLSv10": ("tls", "1.0"),
    "TLSv11": ("tls", "1.1"),
    "TLSv12": ("tls", "1.2"),
    "TLSv13": ("tls", "1.3"),
    "SSLv2": ("ssl", "2.0"),
    "SSLv3": ("ssl", "3.0"),
    "DTLSv10": ("dtls", "1.0"),
    "DTLSv12": ("dtls", "1.2"),
}


def is_zeek(document: dict[str, Any]) -> bool:
    """Every Zeek log line has ``ts``; connection logs add ``uid`` and the ``id.*`` 4-tuple."""
    return "ts" in document and ("uid" in document or "id.orig_h" in document)


def log_from_path(path: str) -> str | None:
    """conn.log, conn.2026-11-28-10-00-00.log or dns.00:00:00-01:00:00.log.gz -> the log."""
    name = path.replace("\\", "/").rpartition("/")[2]
    log = name.partition(".")[0]
    return log if log and name != log else None


def normalize_zeek(document: dict[str, Any], log: str | None = None) -> Event:
    """One Zeek log line -> ECS fields (without the record envelope)."""
    name = _valid(as_str(document.get("_path"))) or _valid(log) or _guess(document)
    dataset = _DATASETS.get(name, name)
    own = {key: value for key, value in document.items() if key not in _COMMON}
    event: Event = {
        "event": {"kind": "event", "module": _MODULE, "dataset": f"zeek.{dataset}"},
        "zeek": {dataset: own},
    }
    stamp = epoch_time(document.get("ts"))
    if stamp is not None:
        event["@timestamp"] = stamp
    session = as_str(document.get("uid"))
    if session is not None:
        event["zeek"]["session_id"] = session
    _set_endpoints(event, document)
    handler = _HANDLERS.get(name)
    if handler is not None:
        handler(event, document)
    return event


def _valid(name: str | None) -> str | None:
    """A log name fit to be a field name: the log's namespace sits beside zeek.session_id."""
    if name is None or not _NAME_RE.fullmatch(name) or name == "session_id":
        return None
    return name


def _guess(document: dict[str, Any]) -> str:
    for name, keys in _SIGNATURES:
        if any(key in document for key in keys):
            return name
    return "unknown"


def _set_endpoints(event: Event, document: dict[str, Any]) -> None:
    nested = document.get("id")
    ids = nested if isinstance(nested, dict) else {}
    for side, host, port in (("source", "orig_h", "orig_p"), ("destination", "resp_h", "resp_p")):
        address = document.get(f"id.{host}", ids.get(host))
        set_endpoint(event, side, address, document.get(f"id.{port}", ids.get(port)))


def _categorize(event: Event, category: list[str], kinds: list[str]) -> None:
    event["event"]["category"] = category
    event["event"]["type"] = kinds


def _conn(event: Event, document: dict[str, Any]) -> None:
    """Packets and bytes each way; bytes are payload bytes (orig_bytes), as Filebeat and the
    ecs_zeek_beats pipeline have them, the IP-level counts staying under zeek.connection."""
    _categorize(event, ["network"], ["connection"])
    network = branch(event, "network")
    transport = as_str(document.get("proto"))
    if transport is not None:
        network["transport"] = transport.lower()
    service = as_str(document.get("service"))
    if service is not None:
        network["protocol"] = service.split(",")[0].lower()
    community = as_str(document.get("community_id"))
    if community is not None:
        network["community_id"] = community
    totals = {"packets": 0, "bytes": 0}
    for side, prefix in (("source", "orig"), ("destination", "resp")):
        for unit, key in (("packets", "pkts"), ("bytes", "bytes")):
            value = as_int(document.get(f"{prefix}_{key}"))
            if value is not None:
                branch(event, side)[unit] = value
                totals[unit] += value
    if any(totals.values()):
        network.update(totals)
    duration = document.get("duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool) and duration >= 0:
        event["event"]["duration"] = int(min(duration, 9.2e9) * 1_000_000_000)
    state = as_str(document.get("conn_state"))
    if state is not None:
        event["zeek"]["connection"]["state"] = state
    if not network:
        del event["network"]


def _dns(event: Event, document: dict[str, Any]) -> None:
    _categorize(event, ["network"], ["protocol"])
    dns: dict[str, Any] = {}
    transaction = as_int(document.get("trans_id"))
    if transaction is not None:
        dns["id"] = str(transaction)
    question = {
        target: value
        for key, target in (("query", "name"), ("qtype_name", "type"), ("qclass_name", "class"))
        if (value := as_str(document.get(key))) is not None
    }
    if question:
        dns["question"] = question
    rcode = as_str(document.get("rcode_name"))
    if rcode is not None:
        dns["response_code"] = rcode
    dns["type"] = "answer" if rcode is not None else "query"
    flags = [flag for flag in ("AA", "TC", "RD", "RA") if document.get(flag) is True]
    if flags:
        dns["header_flags"] = flags
    answers, resolved = _answers(document)
    if answers:
        dns["answers"] = answers
    if resolved:
        dns["resolved_ip"] = resolved
    event["dns"] = dns


def _answers(document: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    listed, ttls = document.get("answers"), document.get("TTLs")
    values = listed if isinstance(listed, list) else []
    times = ttls if isinstance(ttls, list) else []
    answers: list[dict[str, Any]] = []
    resolved: list[str] = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            continue
        answer: dict[str, Any] = {"data": value}
        ttl = times[index] if index < len(times) else None
        if isinstance(ttl, int | float) and not isinstance(ttl, bool) and 0 <= ttl < 2**31:
            answer["ttl"] = int(ttl)
        answers.append(answer)
        ip = canonical_ip(value)
        if ip is not None:
            resolved.append(ip)
    return answers, resolved


def _http(event: Event, document: dict[str, Any]) -> None:
    _categorize(event, ["network", "web"], ["access", "protocol"])
    set_url(event, document.get("uri"), document.get("host"))
    http: dict[str, Any] = {}
    method = as_str(document.get("method"))
    if method is not None:
        branch(http, "request")["method"] = method
    referrer = as_str(document.get("referrer"))
    if referrer is not None:
        branch(http, "request")["referrer"] = referrer
    for key, direction in (("request_body_len", "request"), ("response_body_len", "response")):
        length = as_int(document.get(key))
        if length is not None:
            branch(http, direction, "body")["bytes"] = length
    status = as_int(document.get("status_code"))
    if status is not None:
        branch(http, "response")["status_code"] = status
        event["event"]["outcome"] = "success" if status < 400 else "failure"
    version = as_str(document.get("version"))
    if version is not None:
        http["version"] = version
    if http:
        event["http"] = http
    agent = as_str(document.get("user_agent"))
    if agent is not None:
        event["user_agent"] = {"original": agent}
    user = as_str(document.get("username"))
    if user is not None:
        event["user"] = {"name": user}


def _ssl(event: Event, document: dict[str, Any]) -> None:
    _categorize(event, ["network"], ["protocol"])
    tls: dict[str, Any] = {}
    version = as_str(document.get("version"))
    if version is not None:
        protocol, number = _TLS_VERSIONS.get(version, ("", version))
        tls["version"] = number
        if protocol:
            tls["version_protocol"] = protocol
    for key, target in (
        ("cipher", "cipher"),
        ("curve", "curve"),
        ("next_protocol", "next_protocol"),
    ):
        value = as_str(document.get(key))
        if value is not None:
            tls[target] = value
    for key in ("established", "resumed"):
        flag = document.get(key)
        if isinstance(flag, bool):
            tls[key] = flag
    server_name = as_str(document.get("server_name"))
    if server_name is not None:
        branch(tls, "client")["server_name"] = server_name
        branch(event, "destination")["domain"] = server_name
    for key, side, target in (
        ("subject", "server", "subject"),
        ("issuer", "server", "issuer"),
        ("ja3", "client", "ja3"),
        ("ja3s", "server", "ja3s"),
        ("ja4", "client", "ja4"),
    ):
        value = as_str(document.get(key))
        if value is not None:
            branch(tls, side)[target] = value
    if tls:
        event["tls"] = tls


def _notice(event: Event, document: dict[str, Any]) -> None:
    """Zeek's own detections: an alert named by its note."""
    event["event"]["kind"] = "alert"
    _categorize(event, ["network", "intrusion_detection"], ["info"])
    note = as_str(document.get("note"))
    if note is not None:
        event["rule"] = {"name": note}
    message = as_str(document.get("msg"))
    if message is not None:
        event["message"] = message
    if "source" not in event:
        set_endpoint(event, "source", document.get("src"))
    if "destination" not in event:
        set_endpoint(event, "destination", document.get("dst"), document.get("p"))


def _ssh(event: Event, document: dict[str, Any]) -> None:
    _categorize(event, ["network", "authentication"], ["info"])
    success = document.get("auth_success")
    if isinstance(success, bool):
        event["event"]["outcome"] = "success" if success else "failure"
        event["event"]["action"] = "ssh_login"
    network = branch(event, "network")
    network["protocol"] = "ssh"
    network.setdefault("transport", "tcp")


_HANDLERS: Final[dict[str, Callable[[Event, dict[str, Any]], None]]] = {
    "conn": _conn,
    "dns": _dns,
    "http": _http,
    "ssl": _ssl,
    "notice": _notice,
    "ssh": _ssh,
}
