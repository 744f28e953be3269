"""Windows events -> ECS, shaped as Winlogbeat 7+ ships them.

Why this shape: the detection engine maps Sigma rule fields to ECS with pysigma-backend-
elasticsearch's ``ecs_windows`` pipeline. A rule field named in the pipeline's mappings becomes
that ECS field (``Image`` -> ``process.executable``), every other field becomes
``winlog.event_data.<Field>``. So an event carries both: every EventData/UserData value under
``winlog.event_data`` and, filled from those same values, every ECS field the pipeline maps a
Sigma field to. The reverse mapping is read from the installed pipeline at import time, so it
follows the backend when the backend changes.

Input: the ``evtx`` package's JSON (``{"Event": {"System": ..., "EventData": ...}}``, and the
variations real exporters produce), a Winlogbeat/agent document (top-level ``winlog``), or NXLog's
JSON (im_msvistalog's ``to_json()``: System values under NXLog's names, event data beside them).

Conventions:

- ``event.code`` and ``winlog.event_id`` are strings ("4688"), as Winlogbeat stores them.
- ``event.dataset`` is ``windows.<channel>``: the channel without its ``Microsoft-Windows-``
  prefix, lowercased, with every run of other characters turned into ``_``
  (``windows.security``, ``windows.sysmon_operational``, ``windows.powershell_operational``,
  ``windows.windows_powershell``); ``windows.unknown`` when the event names no channel.
- ``event.id``: the caller's ``record_id``, else a hash of computer, channel and EventRecordID
  (the same event read twice gets the same id), else a hash of the event's JSON.
- Event data keeps its JSON types: a boolean stays a boolean, null stays null, a number stays a
  number (the matcher compares numbers both as numbers and as text).
- When two event-data fields map to one ECS field with different values (``SubjectDomainName``
  and ``TargetDomainName`` both map to ``user.domain``), the ECS field holds both, as a list in
  pipeline order: a list matches when any element does, so a rule on either field still fires.
- Unnamed event-data values are ``param1``, ``param2``... (Winlogbeat) and also ``Data`` (a list
  when several), the name Sigma rules give them (classic PowerShell events).
- A log source that names a field otherwise than its category's rules fills the ECS fields of
  the rules' names (SigmaHQ's ``tests/thor.yml``): a Security 4688's NewProcessName and
  ParentProcessName are Image and ParentImage, its NewProcessId and ProcessId the new process's
  and the parent's pids.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Final, NamedTuple, TypeGuard

import orjson
from sigma.pipelines.elasticsearch.windows import ecs_windows, ecs_windows_variable_mappings
from sigma.processing.conditions import IncludeFieldCondition, MatchValueCondition
from sigma.processing.transformations import (
    FieldMappingTransformation,
    FieldPrefixMappingTransformation,
    SetValueTransformation,
)

from soc.ids import stable_id
from soc.normalize.ecs import format_utc
from soc.normalize.network import IANA_TRANSPORTS

__all__ = ["is_windows_event", "normalize_windows"]

_log = logging.getLogger(__name__)

_MODULE: Final = "windows"
_CASELESS: Final = ".caseless"  # an Elasticsearch multi-field, not part of the stored name
_EVENT_DATA_PREFIX: Final = "winlog.event_data."
# ECS fields filled from System: an event-data value of the same Sigma name (the ``Channel``
# inside UserData.LogFileCleared, for one) must never overwrite them.
_SYSTEM_SIGMA_FIELDS: Final = ("EventID", "Channel", "Provider_Name", "ComputerName")
# ECS types that Elasticsearch enforces: a "-" in an ip or long field rejects the whole document.
_IP_FIELDS: Final = frozenset({"source.ip", "destination.ip"})
_NUMBER_FIELDS: Final = frozenset(
    {
        "process.pid",
        "process.parent.pid",
        "process.thread.id",
        "source.port",
        "destination.port",
        "event.sequence",
        "powershell.sequence",
        "powershell.total",
    }
)
_LEVELS: Final = {
    0: "information",  # LogAlways: Winlogbeat renders it as Information
    1: "critical",
    2: "error",
    3: "warning",
    4: "information",
    5: "verbose",
}
# Standard keyword bits (winmeta.xml), named as Winlogbeat renders them.
_KEYWORDS: Final = (
    (0x0001_0000_0000_0000, "Response Time"),
    (0x0002_0000_0000_0000, "WDI Context"),
    (0x0004_0000_0000_0000, "WDI Diag"),
    (0x0008_0000_0000_0000, "SQM"),
    (0x0010_0000_0000_0000, "Audit Failure"),
    (0x0020_0000_0000_0000, "Audit Success"),
    (0x0040_0000_0000_0000, "Correlation Hint"),
    (0x0080_0000_0000_0000, "Classic"),
)
_OUTCOMES: Final = {"Audit Success": "success", "Audit Failure": "failure"}
_TIME_RE: Final = re.compile(
    r"\s*([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]+))?\s*(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?\s*\Z"
)
_MAX_LONG: Final = 2**63 - 1


# --- the reverse of the ecs_windows pipeline, built once ------------------------------------


class _Target(NamedTuple):
    """One ECS field a Sigma field is mapped to; rank orders competing sources, kind says which
    values the field's Elasticsearch type accepts."""

    path: tuple[str, ...]
    name: str
    rank: int
    kind: str  # "number", "ip" or "any"
    aliases: Mapping[str, str]  # value as text -> the value the pipeline puts in queries


def _mapping_items() -> Iterator[tuple[str, str]]:
    """(Sigma field, ECS field) pairs in pipeline order: the pipeline's field mappings, then the
    category/service-dependent ones (already among the items today; read again in case a later
    backend builds them differently)."""
    for item in ecs_windows().items:
        transformation = item.transformation
        is_plain = not isinstance(transformation, FieldPrefixMappingTransformation)
        if isinstance(transformation, FieldMappingTransformation) and is_plain:
            for sigma_field, mapped in transformation.mapping.items():
                if isinstance(sigma_field, str):
                    for name in [mapped] if isinstance(mapped, str) else mapped:
                        yield sigma_field, name
    for sigma_field, candidates in ecs_windows_variable_mappings.items():
        for _kind, _logsource, name in candidates:
            yield sigma_field, name


def _reverse_mapping(
    pairs: Iterable[tuple[str, str]], aliases: Mapping[str, Mapping[str, str]]
) -> dict[str, tuple[_Target, ...]]:
    """Sigma field -> the ECS fields to fill from it. Targets under winlog.event_data are
    already there, and the System ones are filled from System, never from event data."""
    pairs = list(pairs)
    system = {name for sigma_field, name in pairs if sigma_field in _SYSTEM_SIGMA_FIELDS}
    ranks: dict[str, int] = {}
    reverse: dict[str, list[_Target]] = {}
    for sigma_field, mapped in pairs:
        name = mapped.removesuffix(_CASELESS)
        if sigma_field in _SYSTEM_SIGMA_FIELDS or name in system:
            continue
        if name.startswith(_EVENT_DATA_PREFIX):
            continue
        rank = ranks.setdefault(f"{sigma_field}\0{name}", len(ranks))
        targets = reverse.setdefault(sigma_field, [])
        if all(target.name != name for target in targets):
            kind = "number" if name in _NUMBER_FIELDS else "ip" if name in _IP_FIELDS else "any"
            path = tuple(name.split("."))
            targets.append(_Target(path, name, rank, kind, aliases.get(name, {})))
    return {sigma_field: tuple(targets) for sigma_field, targets in reverse.items()}


def _value_aliases() -> dict[str, dict[str, str]]:
    """ECS field -> {event value as text -> the value the pipeline writes into queries}.

    The pipeline rewrites ``Initiated: true`` into ``network.direction: egress`` while a quoted
    ``'true'`` stays ``true``; the event carries both spellings so either rule matches.
    """
    aliases: dict[str, dict[str, str]] = {}
    for item in ecs_windows().items:
        if not isinstance(item.transformation, SetValueTransformation):
            continue
        replacement = str(item.transformation.sigma_value)
        values = [
            condition.value
            for condition in item.detection_item_conditions
            if isinstance(condition, MatchValueCondition)
        ]
        for condition in item.field_name_conditions:
            if isinstance(condition, IncludeFieldCondition) and condition.mode == "plain":
                for name in condition.fields:
                    for value in values:
                        aliases.setdefault(name, {})[_as_text(value).casefold()] = replacement
    return aliases


_PLAIN_JSON: Final = (str, int, float, list, type(None))


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """isinstance against the Mapping ABC is slow, and this runs for every value of every
    event: parsed JSON holds dicts and plain values, which are answered first."""
    if isinstance(value, dict):
        return True
    if isinstance(value, _PLAIN_JSON):
        return False
    return isinstance(value, Mapping)


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_REVERSE: Final = _reverse_mapping(_mapping_items(), _value_aliases())


# --- public API -------------------------------------------------------------------------------


def is_windows_event(record: Mapping[str, Any]) -> bool:
    """True for the evtx JSON form (``Event.System``, or a bare ``System`` with an EventID), for
    Winlogbeat/agent documents (a ``winlog`` object) and for NXLog's (``to_json()`` of
    im_msvistalog: ``EventID`` beside ``SourceName`` or ``Channel``, and ``Hostname`` or
    ``EventTime``, all at the top)."""
    event = record.get("Event")
    if _is_mapping(event) and _is_mapping(event.get("System")):
        return True
    system = record.get("System")
    if _is_mapping(system) and "EventID" in system:
        return True
    return _is_mapping(record.get("winlog")) or _is_nxlog(record)


def _is_nxlog(record: Mapping[str, Any]) -> bool:
    return (
        "EventID" in record
        and ("SourceName" in record or "Channel" in record)
        and ("Hostname" in record or "EventTime" in record)
    )


def normalize_windows(
    record: Mapping[str, Any], *, record_id: str | None = None, zone: tzinfo | None = None
) -> dict[str, Any]:
    """One Windows event, as the evtx package's JSON ({"Event": {"System": ..., "EventData":
    ...}}), as Winlogbeat/agent JSON (top-level "winlog") or as NXLog's JSON, -> ECS event.
    `zone`: the site's, for NXLog's EventTime, which is the shipping host's local time without
    an offset unless NXLog is told to write one (UTC when not given). Never raises: an event
    that defeats normalization still comes back, with its original and an error."""
    try:
        return _normalize(record, record_id, zone)
    except Exception as exc:  # one odd event must not stop a stream or a scan
        _log.exception("windows event normalization failed")
        return _failure_event(record, record_id, exc)


# --- extraction: both input forms to one set of parts ---------------------------------------


@dataclass(slots=True)
class _Parts:
    """What an event says, whichever form it came in."""

    timestamp: object = None
    event_id: object = None
    provider_name: object = None
    provider_guid: object = None
    channel: object = None
    computer: object = None
    record_id: object = None
    task: object = None
    opcode: object = None
    level: object = None
    keywords: object = None
    pid: object = None
    tid: object = None
    user_sid: object = None
    event_data: dict[str, Any] = field(default_factory=dict)
    user_data: dict[str, Any] | None = None


def _normalize(
    record: Mapping[str, Any], record_id: str | None, zone: tzinfo | None
) -> dict[str, Any]:
    winlog = record.get("winlog")
    if _is_mapping(winlog) and not _is_mapping(record.get("Event")):
        parts = _from_winlogbeat(record, winlog)
        event = _build(parts, record, record_id)
        return _merge(event, record)
    if _is_nxlog(record) and not _is_mapping(record.get("Event")):
        event = _build(_from_nxlog(record, zone), record, record_id)
        message = record.get("Message")
        if isinstance(message, str) and message:
            event["message"] = message  # the event's text as Windows renders it
        return event
    event_node = record.get("Event")
    node = event_node if _is_mapping(event_node) else record
    return _build(_from_evtx(node), record, record_id)


def _from_evtx(node: Mapping[str, Any]) -> _Parts:
    system = node.get("System")
    system = system if _is_mapping(system) else {}
    execution = system.get("Execution")
    data = _event_data(node.get("EventData"))
    user_data = _user_data(node.get("UserData"))
    if user_data is not None:
        for key, value in _leaves(user_data):
            data.setdefault(key, value)
    return _Parts(
        timestamp=_attribute(system.get("TimeCreated"), "SystemTime"),
        event_id=_text_of(system.get("EventID")),
        provider_name=_attribute(system.get("Provider"), "Name"),
        provider_guid=_attribute(system.get("Provider"), "Guid"),
        channel=_text_of(system.get("Channel")),
        computer=_text_of(system.get("Computer")),
        record_id=_text_of(system.get("EventRecordID")),
        task=_text_of(system.get("Task")),
        opcode=_text_of(system.get("Opcode")),
        level=_text_of(system.get("Level")),
        keywords=_text_of(system.get("Keywords")),
        pid=_attribute(execution, "ProcessID"),
        tid=_attribute(execution, "ThreadID"),
        user_sid=_attribute(system.get("Security"), "UserID"),
        event_data=_with_aliases(data),
        user_data=user_data,
    )


def _from_winlogbeat(record: Mapping[str, Any], winlog: Mapping[str, Any]) -> _Parts:
    process = _mapping(winlog.get("process"))
    data_node = winlog.get("event_data")
    data = dict(data_node) if _is_mapping(data_node) else {}
    # Winlogbeat's names for unnamed values: param1, param2... in order, without a gap.
    unnamed: list[Any] = []
    while f"param{len(unnamed) + 1}" in data:
        unnamed.append(data[f"param{len(unnamed) + 1}"])
    _unnamed_as_data(data, unnamed)
    user_data = winlog.get("user_data")
    if _is_mapping(user_data):
        for key, value in _leaves(user_data):
            data.setdefault(key, value)
    return _Parts(
        timestamp=record.get("@timestamp"),
        event_id=winlog.get("event_id"),
        provider_name=winlog.get("provider_name"),
        provider_guid=winlog.get("provider_guid"),
        channel=winlog.get("channel"),
        computer=winlog.get("computer_name"),
        record_id=winlog.get("record_id"),
        task=winlog.get("task"),
        opcode=winlog.get("opcode"),
        level=winlog.get("level"),
        keywords=winlog.get("keywords"),
        pid=process.get("pid"),
        tid=_mapping(process.get("thread")).get("id"),
        user_sid=_mapping(winlog.get("user")).get("identifier"),
        event_data=_with_aliases(data),
    )


#: NXLog's own fields in its JSON of a Windows event (im_msvistalog): the System values it
#: renames and what it adds; every other top-level field is the event's data.
_NXLOG_FIELDS: Final = frozenset(
    {
        "EventTime", "EventReceivedTime", "Hostname", "Keywords", "EventType", "SeverityValue",
        "Severity", "EventID", "SourceName", "ProviderGuid", "Version", "Task", "OpcodeValue",
        "Opcode", "RecordNumber", "ActivityID", "RelatedActivityID", "ProcessID", "ThreadID",
        "Channel", "Message", "Category", "Domain", "AccountName", "UserID", "AccountType",
        "SourceModuleName", "SourceModuleType", "ERRORLEVEL", "MessageSourceAddress",
    }
)  # fmt: skip
#: NXLog's SeverityValue -> the Windows level it was made from (1 critical ... 4 information).
_NXLOG_LEVELS: Final = {1: "4", 2: "4", 3: "3", 4: "2", 5: "1"}
_NAIVE_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?")


def _from_nxlog(record: Mapping[str, Any], zone: tzinfo | None) -> _Parts:
    """NXLog's JSON: the System values under its own names, the event data beside them. Its
    Keywords is the mask as a signed 64-bit number; its EventTime local time (`zone`)."""
    data = {key: value for key, value in record.items() if key not in _NXLOG_FIELDS}
    keywords = record.get("Keywords")
    if isinstance(keywords, int) and not isinstance(keywords, bool):
        keywords = hex(keywords & 0xFFFF_FFFF_FFFF_FFFF)
    severity = record.get("SeverityValue")
    level = _NXLOG_LEVELS.get(severity) if isinstance(severity, int) else None
    return _Parts(
        timestamp=_zoned(record.get("EventTime"), zone),
        event_id=record.get("EventID"),
        provider_name=record.get("SourceName"),
        provider_guid=record.get("ProviderGuid"),
        channel=record.get("Channel"),
        computer=record.get("Hostname"),
        record_id=record.get("RecordNumber"),
        task=record.get("Task"),
        opcode=record.get("OpcodeValue"),
        level=level,
        keywords=keywords,
        pid=record.get("ProcessID"),
        tid=record.get("ThreadID"),
        user_sid=record.get("UserID"),
        event_data=_with_aliases(data),
    )


def _zoned(value: object, zone: tzinfo | None) -> object:
    """A time without an offset, read in `zone` and given the offset; other values as they are."""
    if zone is None or not isinstance(value, str) or _NAIVE_TIME.fullmatch(value.strip()) is None:
        return value
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return value
    return moment.replace(tzinfo=zone).isoformat()


def _mapping(value: object) -> Mapping[str, Any]:
    return value if _is_mapping(value) else {}


def _text_of(value: object) -> object:
    """An XML element's value: exporters give ``4688`` or ``{"#attributes": .., "#text": 4688}``."""
    if _is_mapping(value):
        return value.get("#text")
    return value


def _attribute(node: object, name: str) -> object:
    """An XML attribute as the evtx package (``#attributes``), xmltodict (``@Name``) or a flat
    exporter (``Name``) spells it."""
    if not _is_mapping(node):
        return None
    attributes = node.get("#attributes")
    if _is_mapping(attributes) and name in attributes:
        return attributes[name]
    return node.get(name, node.get(f"@{name}"))


def _event_data(node: object) -> dict[str, Any]:
    """EventData -> {name: value}. Unnamed values become param1, param2... as in Winlogbeat,
    and `Data` too (`_unnamed_as_data`)."""
    data: dict[str, Any] = {}
    unnamed: list[Any] = []
    if _is_mapping(node):
        for key, value in node.items():
            if key == "Data" or key == "#text":
                _data_elements(value, data, unnamed)
            elif key != "#attributes":
                data[key] = _text_of(value) if _is_element(value) else value
    elif node is not None:
        _data_elements(node, data, unnamed)
    for index, value in enumerate(unnamed, start=1):
        data.setdefault(f"param{index}", value)
    return _unnamed_as_data(data, unnamed)


def _unnamed_as_data(data: dict[str, Any], unnamed: list[Any]) -> dict[str, Any]:
    """The unnamed values also as `Data` (a list when there are several), the name Sigma rules
    give them: every classic PowerShell rule (events 400, 600, 800 of "Windows PowerShell",
    whose values carry no names) reads `Data|contains`, as Hayabusa and Chainsaw read the
    record's Data element. Winlogbeat's param1, param2... alone left those rules blind."""
    if unnamed and "Data" not in data:
        data["Data"] = unnamed[0] if len(unnamed) == 1 else list(unnamed)
    return data


def _is_element(value: object) -> bool:
    return _is_mapping(value) and ("#text" in value or "#attributes" in value)


def _data_elements(value: object, data: dict[str, Any], unnamed: list[Any]) -> None:
    """``Data`` as one element or a list of them, each named (``{"#attributes": {"Name": ..},
    "#text": ..}``) or not (a bare value, or ``#text`` holding a value or a list)."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        name = _attribute(item, "Name") if _is_mapping(item) else None
        text = _text_of(item)
        if isinstance(name, str):
            data[name] = text
        elif isinstance(text, list):
            unnamed.extend(text)
        elif text is not None or not _is_mapping(item):
            unnamed.append(text)


def _user_data(node: object) -> dict[str, Any] | None:
    """UserData holds one element named after the event's template (``LogFileCleared``); its
    content becomes winlog.user_data with that name as xml_name, as Winlogbeat does."""
    if not _is_mapping(node):
        return None
    for name, content in node.items():
        if name != "#attributes" and _is_mapping(content):
            user_data = {key: value for key, value in content.items() if key != "#attributes"}
            user_data["xml_name"] = name
            return user_data
    return None


def _leaves(node: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(leaf name, value) of a nested element: the name of the innermost key, without its
    path, because rules name UserData fields by leaf name."""
    for key, value in node.items():
        if key in {"#attributes", "xml_name"}:
            continue
        if _is_mapping(value) and not _is_element(value):
            yield from _leaves(value)
        else:
            yield key, _text_of(value) if _is_element(value) else value


def _with_aliases(data: dict[str, Any]) -> dict[str, Any]:
    """Defender writes ``Source Name`` where rules say ``SourceName``: add the spaceless key."""
    for key in [key for key in data if " " in key]:
        data.setdefault(key.replace(" ", ""), data[key])
    return data


def _initiated(value: object) -> str | None:
    """A WFP Direction as Sysmon's Initiated: the message number (%%14593 outbound, %%14592
    inbound) or the rendered word; None for anything else."""
    return _WFP_DIRECTIONS.get(_as_text(value).strip().casefold())


def _transport(value: object) -> str | None:
    """An IANA protocol number as Sysmon names the transport (6: "tcp"); None when unknown."""
    number = _integer(value, allow_hex=False)
    return None if number is None else IANA_TRANSPORTS.get(str(number))


_WFP_DIRECTIONS: Final = {
    "%%14593": "true",
    "outbound": "true",
    "%%14592": "false",
    "inbound": "false",
}
#: How a field is read from the event data as the log source writes it.
_Reader = Callable[[Mapping[str, Any]], object]
#: A field as the rules name it, and its reader.
_Rename = tuple[str, _Reader]


def _own(name: str, convert: Callable[[object], object] | None = None) -> _Reader:
    """The event's own field, converted where the log source writes it otherwise."""

    def read(data: Mapping[str, Any]) -> object:
        value = data.get(name)
        return value if convert is None or value is None else convert(value)

    return read


def _registry_target(data: Mapping[str, Any]) -> str | None:
    """A 4657's key and value as Sysmon's TargetObject: the native key path with its hive as
    Sysmon abbreviates it (\\REGISTRY\\MACHINE: HKLM, \\REGISTRY\\USER: HKU), then the value's
    name."""
    key, value = data.get("ObjectName"), data.get("ObjectValueName")
    if not isinstance(key, str) or not key or key == "-":
        return None
    upper = key.upper()
    for native, short in _HIVES:
        if upper.startswith(native) and upper[len(native) : len(native) + 1] in {"", "\\"}:
            key = short + key[len(native) :]
            break
    return f"{key}\\{value}" if isinstance(value, str) and value and value != "-" else key


_HIVES: Final = (("\\REGISTRY\\MACHINE", "HKLM"), ("\\REGISTRY\\USER", "HKU"))
_WFP_CONNECTION: Final[tuple[_Rename, ...]] = (
    ("Initiated", _own("Direction", _initiated)),
    ("Protocol", _own("Protocol", _transport)),
    ("ProcessId", _own("ProcessID")),
)
#: A 4657's OperationType (message number, or the text a forwarder rendered) -> event.action.
_REGISTRY_OPERATIONS: Final = {
    "%%1904": "value_created",
    "new registry value created": "value_created",
    "%%1905": "value_modified",
    "existing registry value modified": "value_modified",
    "%%1906": "value_deleted",
    "registry value deleted": "value_deleted",
}


#: Log sources that name a field otherwise than the generic category their events are routed
#: to, as SigmaHQ's tests/thor.yml and Hayabusa map them: a Security 4688 is a process_creation
#: event whose Image is NewProcessName and whose ParentImage is ParentProcessName. Its ProcessId
#: is the creator's: the new process's is NewProcessId (what Winlogbeat puts in process.pid and
#: process.parent.pid). A Windows Filtering Platform connection (5156 allowed, 5157 blocked) is
#: a network_connection event whose Image is Application (already mapped), whose Initiated is its
#: Direction (%%14593 outbound: "true") and whose Protocol is a number where Sysmon names it. A
#: registry value audited by a SACL (4657) is a registry event whose TargetObject is its
#: ObjectName and ObjectValueName, its hive abbreviated as Sysmon does. All are names the
#: pipeline maps to ECS fields: the renamed values fill those fields, and the event data stays as
#: the event has it. (Defender's Signature and Filename, the other mapping in thor.yml, are rule
#: fields of no product: rules/pipelines/antivirus.yml maps them; a 4657's NewValue is read as
#: the registry rules' Details by rules/pipelines/windows_security.yml.)
#: (channel folded, event id) -> (the rules' name, how the event's data gives it).
_LOGSOURCE_FIELDS: Final[dict[tuple[str, str], tuple[_Rename, ...]]] = {
    ("security", "4688"): (
        ("Image", _own("NewProcessName")),
        ("ParentImage", _own("ParentProcessName")),
        ("ProcessId", _own("NewProcessId")),
        ("ParentProcessId", _own("ProcessId")),
    ),
    ("security", "5156"): _WFP_CONNECTION,
    ("security", "5157"): _WFP_CONNECTION,
    ("security", "4657"): (("TargetObject", _registry_target),),
}
#: WFP events by id: ECS categorization (the connection allowed or blocked).
_WFP_TYPES: Final = {"5156": "allowed", "5157": "denied"}


def _with_logsource_fields(
    data: dict[str, Any], channel: str | None, event_id: str | None
) -> dict[str, Any]:
    """The event data as the reverse mapping reads it: named as the rules name this log
    source's fields (`_LOGSOURCE_FIELDS`), each renamed value read from the event as it came,
    converted where the log source writes it otherwise (a name the event lacks, or a value
    that does not convert, reads as absent)."""
    renamed = _LOGSOURCE_FIELDS.get(((channel or "").casefold(), event_id or ""))
    if renamed is None:
        return data
    fields = dict(data)
    for sigma, read in renamed:
        fields[sigma] = read(data)
    return fields


def _categorize(event: dict[str, Any], channel: str | None, event_id: str | None) -> None:
    """ECS categorization of the events the platform knows by id: a WFP connection is a
    network connection, allowed (5156) or denied (5157), with its protocol's number; a 4657 a
    registry change, its operation the action."""
    if (channel or "").casefold() != "security":
        return
    if event_id == "4657":
        event["event"]["category"] = ["registry"]
        event["event"]["type"] = ["change"]
        operation = _as_text(event["winlog"]["event_data"].get("OperationType")).strip()
        action = _REGISTRY_OPERATIONS.get(operation.casefold())
        if action is not None:
            event["event"]["action"] = action
        return
    if event_id not in _WFP_TYPES:
        return
    event["event"]["category"] = ["network"]
    event["event"]["type"] = ["connection", _WFP_TYPES[event_id]]
    protocol = _integer(event["winlog"]["event_data"].get("Protocol"), allow_hex=False)
    if protocol is not None:
        _fill(event, ("network", "iana_number"), str(protocol))


# --- building the ECS event -----------------------------------------------------------------


def _build(parts: _Parts, record: Mapping[str, Any], record_id: str | None) -> dict[str, Any]:
    original = _compact_json(record)
    event_id = _string(parts.event_id)
    channel = _string(parts.channel)
    computer = _string(parts.computer)
    tags: list[str] = []
    event: dict[str, Any] = {
        "@timestamp": _timestamp(parts.timestamp, tags),
        "event": _event_fields(parts, event_id, channel, original),
        "winlog": _winlog(parts, event_id, channel, computer),
    }
    event["event"]["id"] = record_id or _default_id(computer, channel, parts.record_id, original)
    if computer is not None:
        event["host"] = {"name": computer}
    level = _log_level(parts.level)
    if level is not None:
        event["log"] = {"level": level}
    _set_outcome(event)
    _apply_reverse_mapping(event, _with_logsource_fields(parts.event_data, channel, event_id))
    _categorize(event, channel, event_id)
    if tags:
        event["tags"] = tags
    return event


def _event_fields(
    parts: _Parts, event_id: str | None, channel: str | None, original: str
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kind": "event",
        "module": _MODULE,
        "dataset": _dataset(channel),
        "original": original,
    }
    if event_id is not None:
        fields["code"] = event_id
    provider = _string(parts.provider_name)
    if provider is not None:
        fields["provider"] = provider
    return fields


def _winlog(
    parts: _Parts, event_id: str | None, channel: str | None, computer: str | None
) -> dict[str, Any]:
    winlog: dict[str, Any] = {
        "channel": channel,
        "provider_name": _string(parts.provider_name),
        "provider_guid": _string(parts.provider_guid),
        "computer_name": computer,
        "event_id": event_id,
        "record_id": _string(parts.record_id),
        "task": _string(parts.task),
        "opcode": _string(parts.opcode),
        "level": _string(parts.level),
        "keywords": _keywords(parts.keywords),
    }
    winlog = {key: value for key, value in winlog.items() if value is not None}
    process = _process(parts.pid, parts.tid)
    if process:
        winlog["process"] = process
    sid = _string(parts.user_sid)
    if sid is not None:
        winlog["user"] = {"identifier": sid}
    winlog["event_data"] = parts.event_data
    if parts.user_data is not None:
        winlog["user_data"] = parts.user_data
    return winlog


def _process(pid: object, tid: object) -> dict[str, Any]:
    process: dict[str, Any] = {}
    pid_number = _integer(pid, allow_hex=False)
    if pid_number is not None:
        process["pid"] = pid_number
    tid_number = _integer(tid, allow_hex=False)
    if tid_number is not None:
        process["thread"] = {"id": tid_number}
    return process


def _log_level(value: object) -> str | None:
    """log.level as Winlogbeat renders it: a level number becomes its name."""
    number = _integer(value, allow_hex=False)
    if number is not None:
        return _LEVELS.get(number)
    text = _string(value)
    return text.lower() if text is not None else None


def _string(value: object) -> str | None:
    """System values come as numbers or as text depending on the exporter; ECS keeps these
    keyword fields as text. Empty means absent."""
    if value is None or isinstance(value, list) or _is_mapping(value):
        return None
    text = _as_text(value)
    return text or None


def _integer(value: object, *, allow_hex: bool) -> int | None:
    """An integer from a number, decimal text or (Security log pids) ``0x`` hex text; None for
    anything else ("-", "") or beyond Elasticsearch's long."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            number = int(text)
        elif allow_hex and text[:2].lower() == "0x":
            try:
                number = int(text[2:], 16)
            except ValueError:
                return None
    if number is None or not 0 <= number <= _MAX_LONG:
        return None
    return number


@lru_cache(maxsize=256)
def _dataset(channel: str | None) -> str:
    if not channel:
        return f"{_MODULE}.unknown"
    name = channel.removeprefix("Microsoft-Windows-")
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return f"{_MODULE}.{slug or 'unknown'}"


def _keywords(value: object) -> list[str] | None:
    """Winlogbeat's rendered keyword names; the evtx form has the bit mask (``0x8020...``)."""
    if isinstance(value, list):
        return [_as_text(item) for item in value]
    mask = _mask(value)
    names = [name for bit, name in _KEYWORDS if mask & bit]
    return names or None


def _mask(value: object) -> int:
    """A keyword mask from a number or hex text; 0 (no names) when it is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            return 0
    return 0


def _set_outcome(event: dict[str, Any]) -> None:
    """Security audit events say success or failure in their keywords."""
    for keyword in event["winlog"].get("keywords", ()):
        outcome = _OUTCOMES.get(keyword)
        if outcome is not None:
            event["event"]["outcome"] = outcome
            return


def _timestamp(value: object, tags: list[str]) -> str:
    """SystemTime in UTC; an event without a readable time is stamped now and tagged, because
    a document without @timestamp is invisible to every time-bounded search."""
    moment = _parse_time(value) if isinstance(value, str) else None
    if moment is None:
        tags.append("windows_timestamp_missing")
        moment = datetime.now(UTC)
    return format_utc(moment)


def _parse_time(text: str) -> datetime | None:
    """ISO-like times with any number of fraction digits (.NET writes seven) and with "Z", an
    offset or nothing (SystemTime is UTC). Not cached: every event has its own time."""
    match = _TIME_RE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, UTC
        )
    except ValueError:
        return None
    if sign is not None and zulu is None:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        moment -= offset if sign == "+" else -offset
    return moment


def _default_id(computer: str | None, channel: str | None, record: object, original: str) -> str:
    record_text = _string(record)
    if record_text is None:
        return stable_id("winlog-content", original)
    return stable_id("winlog", computer or "", channel or "", record_text)


def _compact_json(value: object) -> str:
    try:
        return orjson.dumps(value, default=_plain).decode()
    except TypeError:  # orjson refuses integers beyond 64 bits; the stdlib does not
        return json.dumps(value, default=_plain, ensure_ascii=False, separators=(",", ":"))


def _plain(value: object) -> object:
    """What JSON encoders cannot take: other mappings as dicts, anything else as its text."""
    if _is_mapping(value):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


# --- the reverse mapping, applied -----------------------------------------------------------


class _Source(NamedTuple):
    """One event-data key feeding one ECS field. `plain`: a field whose type takes any text and
    whose values the pipeline never rewrites, so a string goes in as it is."""

    key: str
    target: _Target
    plain: bool


#: The ECS fields an event of a given set of event-data keys fills, each with its sources in
#: key order, the fields in the order their first source comes: worked out once per set of keys
#: (events of one provider and id share one), not per event and key. Bounded: cleared when full.
_PLANS: dict[tuple[str, ...], tuple[tuple[tuple[str, ...], tuple[_Source, ...]], ...]] = {}
_PLANS_KEPT: Final = 4096


def _plan(keys: tuple[str, ...]) -> tuple[tuple[tuple[str, ...], tuple[_Source, ...]], ...]:
    fields: dict[str, list[_Source]] = {}
    for key in keys:
        for target in _REVERSE.get(key, ()):
            plain = target.kind == "any" and not target.aliases
            fields.setdefault(target.name, []).append(_Source(key, target, plain))
    return tuple((sources[0].target.path, tuple(sources)) for sources in fields.values())


def _apply_reverse_mapping(event: dict[str, Any], data: Mapping[str, Any]) -> None:
    """Fill the ECS fields the pipeline maps Sigma fields to; never overwrite a field the event
    already has (from System, or from a Winlogbeat document)."""
    keys = tuple(data)
    plan = _PLANS.get(keys)
    if plan is None:
        if len(_PLANS) >= _PLANS_KEPT:
            _PLANS.clear()
        plan = _PLANS[keys] = _plan(keys)
    for path, sources in plan:
        first = sources[0]
        if first.plain and len(sources) == 1 and type(value := data[first.key]) is str:
            _fill(event, path, value)  # most fields: one source, a string taken as it is
            continue
        entries = [
            (target, converted)
            for key, target, _plain in sources
            if (value := data[key]) is not None
            for converted in _ecs_values(target, value)
        ]
        if entries:
            _fill(event, path, entries[0][1] if len(entries) == 1 else _combined(entries))


def _ecs_values(target: _Target, value: object) -> tuple[Any, ...]:
    """The value(s) one event-data value contributes to an ECS field: none when it does not
    fit the field's Elasticsearch type, two when the pipeline rewrites query values."""
    if target.kind == "number":
        number = _integer(value, allow_hex=True)
        return () if number is None else (number,)
    if target.kind == "ip":
        ip = _ip(value) if isinstance(value, str) else None
        return () if ip is None else (ip,)
    if _is_mapping(value):
        return ()
    alias = target.aliases.get(_as_text(value).casefold()) if target.aliases else None
    return (value,) if alias is None else (value, alias)


def _combined(entries: list[tuple[_Target, Any]]) -> Any:
    """Several sources for one ECS field: their distinct values in pipeline order."""
    ordered = sorted(entries, key=lambda entry: entry[0].rank)
    values: list[Any] = []
    for _target, value in ordered:
        if not any(value == seen and type(value) is type(seen) for seen in values):
            values.append(value)
    return values[0] if len(values) == 1 else values


@lru_cache(maxsize=4096)
def _ip(text: str) -> str | None:
    """The address as logged, without an IPv6 zone index (Elasticsearch's ip type rejects
    one); None when it is no address ("-")."""
    address = text.partition("%")[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None
    return address


def _fill(event: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set a nested field unless the event has a value there (null is none); a scalar in the
    way (an odd Winlogbeat document) keeps its place, and so does the field."""
    node = event
    for part in path[:-1]:
        if part in node:
            child = node[part]
            if not isinstance(child, dict):
                return
        else:
            child = node[part] = {}
        node = child
    if node.get(path[-1]) is None:
        node[path[-1]] = value


def _merge(ours: dict[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """A Winlogbeat document is already ECS: its own values win, ours fill the gaps."""
    merged = dict(ours)
    for key, value in theirs.items():
        mine = merged.get(key)
        if isinstance(mine, dict) and _is_mapping(value):
            merged[key] = _merge(mine, value)
        else:
            merged[key] = value
    return merged


def _failure_event(
    record: Mapping[str, Any], record_id: str | None, exc: Exception
) -> dict[str, Any]:
    """Last resort: the original, an id and the error, so the event is still stored and seen."""
    try:
        original = _compact_json(record)
    except Exception:  # a record that cannot even be serialized still leaves a trace
        original = repr(record)
    return {
        "@timestamp": format_utc(datetime.now(UTC)),
        "event": {
            "kind": "event",
            "module": _MODULE,
            "dataset": _dataset(None),
            "original": original,
            "id": record_id or stable_id("winlog-content", original),
        },
        "tags": ["windows_normalize_failed"],
        "error": {"message": f"windows normalization failed: {type(exc).__name__}: {exc}"},
    }
