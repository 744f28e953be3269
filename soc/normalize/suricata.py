"""Suricata EVE JSON -> ECS, as Elastic's Suricata integration shapes it (``event.module:
suricata``, ``event.dataset: suricata.eve``, the document under ``suricata.eve``).

Alerts become ``event.kind: alert`` with ``rule.*``; flows fill packets and bytes each way; DNS,
HTTP, TLS and fileinfo records fill ``dns.*``, ``http.*``/``url.*``, ``tls.*`` and ``file.*``, the
fields the Sigma network and web pipelines map rule fields to.
"""

from collections.abc import Callable
from typing import Any, Final

from soc.normalize.ecs import Event, branch
from soc.normalize.network import as_int, as_str, iso_time, set_endpoint, set_url

__all__ = ["is_eve", "normalize_eve"]

_MODULE: Final = "suricata"
_DATASET: Final = "suricata.eve"
_ACTION_TYPES: Final = {"allowed": "allowed", "blocked": "denied"}


def is_eve(document: dict[str, Any]) -> bool:
    """EVE records always carry ``event_type`` and a ``timestamp``."""
    return isinstance(document.get("event_type"), str) and "timestamp" in document


def normalize_eve(document: dict[str, Any]) -> Event:
    """One EVE record -> ECS fields (without the record envelope)."""
    kind = as_str(document.get("event_type")) or "unknown"
    event: Event = {
        "event": {"kind": "event", "module": _MODULE, "dataset": _DATASET, "action": kind},
        "suricata": {"eve": {k: v for k, v in document.items() if k != "timestamp"}},
    }
    stamp = iso_time(document.get("timestamp"))
    if stamp is not None:
        event["@timestamp"] = stamp
    set_endpoint(event, "source", document.get("src_ip"), document.get("src_port"))
    set_endpoint(event, "destination", document.get("dest_ip"), document.get("dest_port"))
    _set_network(event, document)
    handler = _HANDLERS.get(kind)
    if handler is not None:
        body = document.get(kind)
        handler(event, body if isinstance(body, dict) else {}, document)
    return event


def _set_network(event: Event, document: dict[str, Any]) -> None:
    network: dict[str, Any] = {}
    transport = as_str(document.get("proto"))
    if transport is not None:
        network["transport"] = transport.lower()
    protocol = as_str(document.get("app_proto"))
    if protocol is not None and protocol != "failed":
        network["protocol"] = protocol.lower()
    community = as_str(document.get("community_id"))
    if community is not None:
        network["community_id"] = community
    if network:
        event["network"] = network
    interface = as_str(document.get("in_iface"))
    if interface is not None:
        event["observer"] = {"ingress": {"interface": {"name": interface}}}


def _categorize(event: Event, category: list[str], kinds: list[str]) -> None:
    event["event"]["category"] = category
    event["event"]["type"] = kinds


def _alert(event: Event, alert: dict[str, Any], document: dict[str, Any]) -> None:
    fields = event["event"]
    fields["kind"] = "alert"
    action = as_str(alert.get("action"))
    _categorize(
        event, ["network", "intrusion_detection"], [_ACTION_TYPES.get(action or "", "info")]
    )
    severity = as_int(alert.get("severity"))
    if severity is not None:
        fields["severity"] = severity
    rule: dict[str, Any] = {}
    signature_id = as_int(alert.get("signature_id"))
    if signature_id is not None:
        rule["id"] = str(signature_id)
    for key, target in (("signature", "name"), ("category", "category")):
        value = as_str(alert.get(key))
        if value is not None:
            rule[target] = value
    revision = as_int(alert.get("rev"))
    if revision is not None:
        rule["version"] = str(revision)
    if rule:
        event["rule"] = rule
    if "name" in rule:
        event["message"] = rule["name"]
    http = document.get("http")  # an alert on HTTP traffic carries the request's metadata
    if isinstance(http, dict):
        _http_fields(event, http)


def _flow(event: Event, flow: dict[str, Any], _document: dict[str, Any]) -> None:
    """Packets and bytes each way, as the port-scan rule reads them (destination.packets)."""
    _categorize(event, ["network"], ["connection", "end"])
    totals = {"packets": 0, "bytes": 0}
    for side, direction in (("source", "toserver"), ("destination", "toclient")):
        for unit, key in (("packets", "pkts"), ("bytes", "bytes")):
            value = as_int(flow.get(f"{key}_{direction}"))
            if value is not None:
                branch(event, side)[unit] = value
                totals[unit] += value
    if any(totals.values()):
        event.setdefault("network", {}).update(totals)
    for key, target in (("start", "start"), ("end", "end")):
        moment = iso_time(flow.get(key))
        if moment is not None:
            event["event"][target] = moment
    reason = as_str(flow.get("reason"))
    if reason is not None:
        event["event"]["reason"] = reason


def _dns(event: Event, dns: dict[str, Any], _document: dict[str, Any]) -> None:
    """EVE v1 (one record per answer), v2 (``answers``/``grouped``) and v3 (``queries``)."""
    _categorize(event, ["network"], ["protocol"])
    ecs: dict[str, Any] = {}
    kind = as_str(dns.get("type"))
    if kind is not None:
        ecs["type"] = "answer" if kind == "answer" else "query"
    transaction = as_int(dns.get("id"))
    if transaction is not None:
        ecs["id"] = str(transaction)
    question = _question(dns)
    if question:
        ecs["question"] = question
    rcode = as_str(dns.get("rcode"))
    if rcode is not None:
        ecs["response_code"] = rcode
    answers = _answers(dns)
    if answers:
        ecs["answers"] = answers
        resolved = [a["data"] for a in answers if a.get("type") in {"A", "AAAA"} and "data" in a]
        if resolved:
            ecs["resolved_ip"] = resolved
    if ecs:
        event["dns"] = ecs


def _question(dns: dict[str, Any]) -> dict[str, Any]:
    source = dns
    queries = dns.get("queries")
    if isinstance(queries, list) and queries and isinstance(queries[0], dict):
        source = queries[0]
    question: dict[str, Any] = {}
    name = as_str(source.get("rrname"))
    if name is not None:
        question["name"] = name
    rrtype = as_str(source.get("rrtype"))
    if rrtype is not None:
        question["type"] = rrtype
    return question


def _answers(dns: dict[str, Any]) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    listed = dns.get("answers")
    for item in listed if isinstance(listed, list) else ():
        if isinstance(item, dict):
            answer: dict[str, Any] = {
                target: value
                for key, target in (("rrname", "name"), ("rrtype", "type"), ("rdata", "data"))
                if (value := as_str(item.get(key))) is not None
            }
            ttl = as_int(item.get("ttl"))
            if ttl is not None:
                answer["ttl"] = ttl
            if answer:
                answers.append(answer)
    grouped = dns.get("grouped")
    for rrtype, values in grouped.items() if isinstance(grouped, dict) else ():
        for value in values if isinstance(values, list) else ():
            if isinstance(value, str):
                answers.append({"type": rrtype, "data": value})
    if dns.get("type") == "answer" and not answers and as_str(dns.get("rdata")):
        answers.append({"type": dns.get("rrtype"), "data": dns["rdata"]})  # EVE v1
    return answers


def _http(event: Event, http: dict[str, Any], _document: dict[str, Any]) -> None:
    """The fields the webserver/proxy pipelines map cs-method, cs-uri-query, cs-user-agent..."""
    _categorize(event, ["network", "web"], ["access", "protocol"])
    _http_fields(event, http)


def _http_fields(event: Event, http: dict[str, Any]) -> None:
    set_url(event, http.get("url"), http.get("hostname"))
    request: dict[str, Any] = {}
    method = as_str(http.get("http_method"))
    if method is not None:
        request["method"] = method
    referrer = as_str(http.get("http_refer"))
    if referrer is not None:
        request["referrer"] = referrer
    response: dict[str, Any] = {}
    status = as_int(http.get("status"))
    if status is not None:
        response["status_code"] = status
        event["event"]["outcome"] = "success" if status < 400 else "failure"
    length = as_int(http.get("length"))
    if length is not None:
        response["body"] = {"bytes": length}
    mime = as_str(http.get("http_content_type"))
    if mime is not None:
        response["mime_type"] = mime
    ecs: dict[str, Any] = {}
    if request:
        ecs["request"] = request
    if response:
        ecs["response"] = response
    protocol = as_str(http.get("protocol"))
    if protocol is not None and protocol.upper().startswith("HTTP/"):
        ecs["version"] = protocol[5:]
    if ecs:
        event["http"] = ecs
    agent = as_str(http.get("http_user_agent"))
    if agent is not None:
        event["user_agent"] = {"original": agent}


def _tls(event: Event, tls: dict[str, Any], _document: dict[str, Any]) -> None:
    _categorize(event, ["network"], ["protocol"])
    ecs: dict[str, Any] = {}
    version = as_str(tls.get("version"))
    if version is not None:
        protocol, _, number = version.partition(" ")
        if number:
            ecs["version_protocol"] = protocol.lower()
            ecs["version"] = number
        else:
            ecs["version"] = version
    sni = as_str(tls.get("sni"))
    if sni is not None:
        branch(ecs, "client")["server_name"] = sni
        branch(event, "destination")["domain"] = sni
    ja3 = tls.get("ja3")
    if isinstance(ja3, dict) and as_str(ja3.get("hash")):
        branch(ecs, "client")["ja3"] = ja3["hash"]
    ja3s = tls.get("ja3s")
    if isinstance(ja3s, dict) and as_str(ja3s.get("hash")):
        branch(ecs, "server")["ja3s"] = ja3s["hash"]
    ja4 = as_str(tls.get("ja4"))
    if ja4 is not None:
        branch(ecs, "client")["ja4"] = ja4
    _tls_certificate(ecs, tls)
    if ecs:
        event["tls"] = ecs


def _tls_certificate(ecs: dict[str, Any], tls: dict[str, Any]) -> None:
    pairs = (("subject", "subject"), ("issuerdn", "issuer"))
    for key, target in pairs:
        value = as_str(tls.get(key))
        if value is not None:
            branch(ecs, "server")[target] = value
    fingerprint = as_str(tls.get("fingerprint"))
    if fingerprint is not None:
        branch(ecs, "server", "hash")["sha1"] = fingerprint.replace(":", "").upper()
    for key, target in (("notbefore", "not_before"), ("notafter", "not_after")):
        moment = iso_time(tls.get(key))
        if moment is not None:
            branch(ecs, "server")[target] = moment


def _fileinfo(event: Event, info: dict[str, Any], document: dict[str, Any]) -> None:
    _categorize(event, ["file"], ["info"])
    file: dict[str, Any] = {}
    name = as_str(info.get("filename"))
    if name is not None:
        file["name"] = name.rpartition("/")[2] or name
        file["path"] = name
    size = as_int(info.get("size"))
    if size is not None:
        file["size"] = size
    hashes = {key: value for key in ("md5", "sha1", "sha256") if (value := as_str(info.get(key)))}
    if hashes:
        file["hash"] = hashes
    mime = as_str(info.get("magic"))
    if mime is not None:
        file["type"] = mime
    if file:
        event["file"] = file
    http = document.get("http")
    if isinstance(http, dict):
        set_url(event, http.get("url"), http.get("hostname"))


def _anomaly(event: Event, anomaly: dict[str, Any], _document: dict[str, Any]) -> None:
    _categorize(event, ["network"], ["info"])
    name = as_str(anomaly.get("event"))
    if name is not None:
        event["message"] = f"anomaly: {name}"


_HANDLERS: Final[dict[str, Callable[[Event, dict[str, Any], dict[str, Any]], None]]] = {
    "alert": _alert,
    "flow": _flow,
    "netflow": _flow,
    "dns": _dns,
    "http": _http,
    "tls": _tls,
    "fileinfo": _fileinfo,
    "anomaly": _anomaly,
}
