"""Sysmon for Linux -> ECS (module ``sysmon``).

Sysmon for Linux writes each event to syslog under the tag ``sysmon`` as the XML a Windows event
has (``<Event><System>..<EventID>1</EventID>..</System><EventData><Data Name="Image">..``), with
the channel ``Linux-Sysmon/Operational``. The XML is read here into the form of the Windows
normalizer, whose field mapping (the same one the Elasticsearch backend's ECS pipeline uses:
``Image`` -> ``process.executable``, ``TargetFilename`` -> ``file.path``...) fills the ECS fields,
so one mapping serves Windows and Linux Sysmon. The EventID then gives the ECS categorization
that Sigma's Linux log sources are routed by (``process_creation``: process/start,
``file_event``: file, ``network_connection``: network).

The message is untrusted input from the network: a document type (the door to entity
expansion) is refused, as is anything that is not one well-formed ``Event`` element; such a
line keeps its syslog fields and is tagged ``sysmon_parse_failed``.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ElementTree
from typing import Any, Final

from soc.normalize.ecs import Classification, Event, add_related, branch, classify
from soc.normalize.windows import normalize_windows

__all__ = ["parse"]

#: What each Sysmon for Linux event is, in ECS terms (the Windows Sysmon numbering).
_EVENTS: Final[dict[str, Classification]] = {
    "1": Classification("process_started", ("process",), ("start",), "success"),
    "3": Classification("network_connection", ("network",), ("connection", "start"), "success"),
    "4": Classification("sysmon_state_changed", ("configuration",), ("change",), "success"),
    "5": Classification("process_terminated", ("process",), ("end",), "success"),
    "9": Classification("raw_access_read", ("file",), ("access",), "success"),
    "11": Classification("file_created", ("file",), ("creation",), "success"),
    "16": Classification("sysmon_config_changed", ("configuration",), ("change",), "success"),
    "23": Classification("file_deleted", ("file",), ("deletion",), "success"),
}
#: ECS branches the Windows mapping fills that belong in the Linux event.
_BRANCHES: Final = ("process", "file", "source", "destination", "network", "user", "dns")
_MAX_XML: Final = 256 * 1024


def parse(message: str, event: Event) -> None:
    start = message.find("<Event")
    if start < 0:
        return
    node = None if "<!" in message else _read(message[start:])
    if node is None:
        event["tags"].append("sysmon_parse_failed")
        return
    mapped = normalize_windows({"Event": node})
    system = node["System"]
    event_id = str(system.get("EventID") or "")
    data: dict[str, Any] = node["EventData"]
    for name in _BRANCHES:
        found = mapped.get(name)
        if not isinstance(found, dict) or not found:
            continue
        if name == "process":
            # The process Sysmon saw, not the sysmon daemon that logged the line.
            event["process"] = dict(found)
        else:
            branch(event, name).update(found)
    event["event"]["code"] = event_id
    provider = mapped["event"].get("provider")
    if isinstance(provider, str):
        event["event"]["provider"] = provider
    winlog = mapped.get("winlog")
    if isinstance(winlog, dict):
        event["sysmon"] = {
            "channel": winlog.get("channel"),
            "record_id": winlog.get("record_id"),
            "event_data": winlog.get("event_data", {}),
        }
    classification = _EVENTS.get(event_id)
    if classification is not None:
        classify(event, classification)
    _complete(event, data)
    if not mapped.get("tags"):
        # The time of the act as the kernel saw it, not the syslog header's (to the second).
        event["@timestamp"] = mapped["@timestamp"]
    host = event.get("host")
    if isinstance(host, dict):
        host.setdefault("os", {})["type"] = "linux"


def _complete(event: Event, data: dict[str, Any]) -> None:
    """What the Windows mapping leaves to Winlogbeat: process names from their paths, the
    related users and addresses, and `Initiated` as ECS spells a direction (with the text
    SigmaHQ's Linux rules compare, `true`, beside it, as the Windows normalizer does)."""
    process = event.get("process")
    if isinstance(process, dict):
        executable = process.get("executable")
        if isinstance(executable, str) and executable:
            process["name"] = posixpath.basename(executable)
        parent = process.get("parent")
        if isinstance(parent, dict) and isinstance(parent.get("executable"), str):
            parent["name"] = posixpath.basename(parent["executable"])
    logon = data.get("LogonId")
    if isinstance(process, dict) and isinstance(logon, str) and logon.strip().isdigit():
        # Linux Sysmon's LogonId is the login UID (auid), where the rules' pipeline looks.
        process.setdefault("user", {})["id"] = logon.strip()
    user = data.get("User")
    if isinstance(user, str) and user and user != "-":
        branch(event, "user")["name"] = user
        add_related(event, "user", user)
    for side in ("source", "destination"):
        address = event.get(side, {}).get("ip") if isinstance(event.get(side), dict) else None
        if isinstance(address, str):
            add_related(event, "ip", address)
    initiated = str(data.get("Initiated", "")).strip().lower()
    if initiated in {"true", "false"}:
        direction = "egress" if initiated == "true" else "ingress"
        branch(event, "network")["direction"] = [direction, initiated]


def _read(text: str) -> dict[str, Any] | None:
    """The Event element as the evtx package shapes it, or None when it is not one."""
    if len(text) > _MAX_XML:
        return None
    try:
        # No "<!" got here: without a document type there is no entity to expand, and expat
        # fetches nothing external.
        root = ElementTree.fromstring(text.strip())  # noqa: S314
    except ElementTree.ParseError:
        return None
    if _local(root.tag) != "Event":
        return None
    system: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for part in root:
        name = _local(part.tag)
        if name == "System":
            for item in part:
                key = _local(item.tag)
                if item.attrib:
                    system[key] = {"#attributes": dict(item.attrib), "#text": item.text}
                else:
                    system[key] = (item.text or "").strip()
        elif name == "EventData":
            for item in part:
                field = item.attrib.get("Name")
                if field:
                    data[field] = item.text if item.text is not None else ""
    if "EventID" not in system:
        return None
    eid = system["EventID"]
    if isinstance(eid, dict):
        system["EventID"] = eid.get("#text") or ""
    return {"System": system, "EventData": data}


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
