"""Windows events (evtx JSON, Winlogbeat documents) -> ECS as the ecs_windows pipeline reads it."""

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from evtx import PyEvtxParser
from sigma.pipelines.elasticsearch.windows import ecs_windows, ecs_windows_variable_mappings
from sigma.processing.transformations import (
    FieldMappingTransformation,
    FieldPrefixMappingTransformation,
)

from soc.ids import stable_id
from soc.normalize.windows import is_windows_event, normalize_windows
from tests.ecs_fields import ABSENT, assert_fields, field

SIGMA = Path(
    os.environ.get("SOC_SIGMA_PATH", Path(__file__).resolve().parents[1] / "../shared/sigma")
)
REGRESSION = SIGMA / "regression_data"
needs_regression_data = pytest.mark.skipif(
    not REGRESSION.is_dir(),
    reason=f"SigmaHQ regression_data not found at {REGRESSION} (set SOC_SIGMA_PATH to run)",
)
SYSTEM_FIELDS = {"EventID", "Channel", "Provider_Name", "ComputerName"}
NUMBER_FIELDS = {
    "process.pid",
    "process.parent.pid",
    "process.thread.id",
    "source.port",
    "destination.port",
    "event.sequence",
    "powershell.sequence",
    "powershell.total",
}
IP_FIELDS = {"source.ip", "destination.ip"}


def evtx_event(
    event_data: Any = ABSENT,
    *,
    user_data: Any = ABSENT,
    event_id: Any = 1,
    channel: Any = "Microsoft-Windows-Sysmon/Operational",
    provider: str = "Microsoft-Windows-Sysmon",
    keywords: str = "0x8000000000000000",
    record_id: Any = 4242,
    **system: Any,
) -> dict[str, Any]:
    """An event as the evtx package renders it, with the System block real files carry."""
    body: dict[str, Any] = {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {
            "Provider": {"#attributes": {"Name": provider, "Guid": "5770385F-C22A-43E0"}},
            "EventID": event_id,
            "Version": 5,
            "Level": 4,
            "Task": 1,
            "Opcode": 0,
            "Keywords": keywords,
            "TimeCreated": {"#attributes": {"SystemTime": "2026-11-28T03:12:45.123456Z"}},
            "EventRecordID": record_id,
            "Correlation": None,
            "Execution": {"#attributes": {"ProcessID": 3208, "ThreadID": 1724}},
            "Channel": channel,
            "Computer": "dc01.tinh.gov.vn",
            "Security": {"#attributes": {"UserID": "S-1-5-18"}},
            **system,
        },
    }
    if event_data is not ABSENT:
        body["EventData"] = event_data
    if user_data is not ABSENT:
        body["UserData"] = user_data
    return {"Event": body}


def security_event(event_id: Any, data: dict[str, Any], keywords: str) -> dict[str, Any]:
    return evtx_event(
        data,
        event_id=event_id,
        channel="Security",
        provider="Microsoft-Windows-Security-Auditing",
        keywords=keywords,
    )


# --- regression_data: every real record -------------------------------------------------------


def json_documents(path: Path) -> list[Any]:
    """The sample's JSON: one event, or several pretty-printed events back to back."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    documents, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return documents
        document, position = decoder.raw_decode(text, position)
        documents.append(document)


def evtx_documents(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(record["data"]) for record in PyEvtxParser(str(path)).records_json()]


def regression_evtx_files() -> list[Path]:
    return sorted(REGRESSION.rglob("*.evtx")) if REGRESSION.is_dir() else []


def regression_records() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in regression_evtx_files():
        for document in evtx_documents(path):
            yield path, document


@needs_regression_data
def test_every_regression_evtx_record_normalizes_with_its_core_fields() -> None:
    problems, count = [], 0
    for path, document in regression_records():
        count += 1
        event = normalize_windows(document)
        system = document["Event"]["System"]
        missing = [
            name
            for name in ("event.code", "host.name", "@timestamp", "event.id", "event.original")
            if field(event, name) is ABSENT
        ]
        if system.get("Channel") is not None and field(event, "winlog.channel") is ABSENT:
            missing.append("winlog.channel")
        if missing or "error" in event or "tags" in event:
            problems.append((path.name, missing, event.get("error"), event.get("tags")))
    assert count >= 200, f"only {count} records in {REGRESSION}"
    assert problems == []


@needs_regression_data
def test_core_fields_come_from_the_system_block() -> None:
    for _path, document in regression_records():
        event = normalize_windows(document)
        system = document["Event"]["System"]
        assert event["event"]["code"] == str(system["EventID"])
        assert event["winlog"]["event_id"] == str(system["EventID"])
        assert event["winlog"]["channel"] == system["Channel"]
        assert event["host"]["name"] == system["Computer"]
        assert event["winlog"]["record_id"] == str(system["EventRecordID"])
        assert event["@timestamp"] == system["TimeCreated"]["#attributes"]["SystemTime"]
        assert orjson.loads(event["event"]["original"]) == document


def without_exporter_whitespace(value: Any) -> Any:
    """The JSON exporter trimmed surrounding whitespace from strings (a ParentCommandLine's
    trailing space) and wrote nanoseconds; the EVTX keeps both. Compare modulo that."""
    if isinstance(value, dict):
        return {key: without_exporter_whitespace(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_exporter_whitespace(item) for item in value]
    return value.strip() if isinstance(value, str) else value


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["event"].pop("original")
    return without_exporter_whitespace(event)


def same_event_data(evtx_document: dict[str, Any], json_document: dict[str, Any]) -> bool:
    def data(document: dict[str, Any]) -> Any:
        body = document["Event"]
        return without_exporter_whitespace([body.get("EventData"), body.get("UserData")])

    return bool(data(evtx_document) == data(json_document))


@needs_regression_data
def test_json_and_evtx_of_each_sample_normalize_to_the_same_events() -> None:
    compared, differing, edited = 0, [], []
    for path in regression_evtx_files():
        evtx_docs, json_docs = evtx_documents(path), json_documents(path.with_suffix(".json"))
        if not all(map(same_event_data, evtx_docs, json_docs)):
            edited.append(path.name)  # the sample's JSON itself says something else
            continue
        compared += 1
        from_evtx = [comparable(normalize_windows(document)) for document in evtx_docs]
        from_json = [comparable(normalize_windows(document)) for document in json_docs]
        if from_evtx != from_json:
            differing.append(path.name)
    assert differing == []
    assert compared >= 200
    # One sample's JSON spells "Explorer.exe" where its EVTX has "Explorer.EXE".
    assert len(edited) <= 1, edited


@needs_regression_data
def test_json_samples_with_several_events_yield_each_event() -> None:
    several = [
        path
        for path in sorted(REGRESSION.rglob("*.json"))
        if len(json_documents(path)) > 1 and path.with_suffix(".evtx").exists()
    ]
    assert len(several) == 13
    for path in several:
        events = [normalize_windows(d) for d in json_documents(path)]
        assert len({event["event"]["id"] for event in events}) == len(events)


def regression_sample(rule_folder: str) -> list[dict[str, Any]]:
    paths = sorted(REGRESSION.rglob(f"{rule_folder}/*.evtx"))
    if not paths:
        pytest.skip(f"regression sample {rule_folder} not in {REGRESSION}")
    return [normalize_windows(d) for d in evtx_documents(paths[0])]


@needs_regression_data
def test_sysmon_process_creation_sample_fills_process_fields() -> None:
    (event,) = regression_sample("proc_creation_win_amsi_registry_tampering")
    data = event["winlog"]["event_data"]
    assert_fields(
        event,
        {
            "event.code": "1",
            "event.dataset": "windows.sysmon_operational",
            "event.provider": "Microsoft-Windows-Sysmon",
            "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
            "process.executable": data["Image"],
            "process.command_line": data["CommandLine"],
            "process.parent.executable": data["ParentImage"],
            "process.parent.command_line": data["ParentCommandLine"],
            "process.pid": data["ProcessId"],
            "process.parent.pid": data["ParentProcessId"],
            "process.entity_id": data["ProcessGuid"],
            "process.working_directory": data["CurrentDirectory"],
            "process.pe.original_file_name": data["OriginalFileName"],
            "user.name": data["User"],
        },
    )
    assert data["Image"].endswith("reg.exe")
    assert isinstance(event["process"]["pid"], int)


@needs_regression_data
def test_security_4648_sample_maps_subject_not_target_to_user() -> None:
    (event,) = regression_sample("win_security_explicit_credential_local_logon")
    data = event["winlog"]["event_data"]
    assert_fields(
        event,
        {
            "event.code": "4648",
            "event.dataset": "windows.security",
            "event.outcome": "success",
            "winlog.keywords": ["Audit Success"],
            "user.name": data["SubjectUserName"],
            "user.id": data["SubjectUserSid"],
            "winlog.logon.id": data["SubjectLogonId"],
            "process.executable": data["ProcessName"],
            "process.pid": int(data["ProcessId"], 16),
            "source.ip": ABSENT,  # IpAddress is "-": not an IP, kept in event_data only
            "source.port": ABSENT,
        },
    )
    assert data["TargetUserName"] not in json.dumps(event.get("user"))
    # SubjectDomainName and TargetDomainName both map to user.domain: both are kept.
    assert event["user"]["domain"] == [data["SubjectDomainName"], data["TargetDomainName"]]


@needs_regression_data
def test_userdata_sample_is_flattened_into_event_data_and_kept_as_user_data() -> None:
    (event,) = regression_sample("win_wmi_activity_nteventlogfile_cleareventlog")
    assert event["winlog"]["user_data"]["xml_name"] == "Operation_ClientFailure"
    assert_fields(
        event,
        {
            "event.code": "5858",
            "winlog.event_data.ClientProcessId": 25920,
            "winlog.event_data.ResultCode": "0x80041003",
            "winlog.user_data.ClientMachine": "SWACHCHHANDA",
            "user.name": "swachchhanda\\xodih",
        },
    )
    assert "cleareventlog" in event["winlog"]["event_data"]["Operation"]


@needs_regression_data
def test_defender_keys_with_spaces_get_the_spaceless_name_rules_use() -> None:
    (event,) = regression_sample("win_defender_exploit_redsun_tiering_engine_detected_as_eicar")
    data = event["winlog"]["event_data"]
    assert data["Source Name"] == data["SourceName"] == "Real-Time Protection"
    assert data["ThreatName"] == "Tool:Win32/EICAR_Test_File"
    assert event["process"]["executable"] == data["Process Name"]
    assert event["event"]["dataset"] == "windows.windows_defender_operational"


# --- Security logon and process events ----------------------------------------------------


def test_security_4688_maps_new_process_and_parent_name() -> None:
    event = normalize_windows(
        security_event(
            4688,
            {
                "SubjectUserSid": "S-1-5-21-1-2-3-1001",
                "SubjectUserName": "nguyenvana",
                "SubjectDomainName": "TINH",
                "SubjectLogonId": "0x3e7",
                "NewProcessId": "0x1a2c",
                "NewProcessName": "C:\\Windows\\System32\\whoami.exe",
                "TokenElevationType": "%%1936",
                "ProcessId": "0x9f0",
                "CommandLine": "whoami /all",
                "TargetUserSid": "S-1-0-0",
                "TargetUserName": "-",
                "TargetDomainName": "-",
                "TargetLogonId": "0x0",
                "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
                "MandatoryLabel": "S-1-16-12288",
            },
            "0x8020000000000000",
        )
    )
    assert_fields(
        event,
        {
            "event.code": "4688",
            "event.outcome": "success",
            "process.executable": "C:\\Windows\\System32\\whoami.exe",
            "process.command_line": "whoami /all",
            "process.parent.name": "C:\\Windows\\System32\\cmd.exe",
            "process.parent.executable": "C:\\Windows\\System32\\cmd.exe",
            "user.name": "nguyenvana",
            "user.id": "S-1-5-21-1-2-3-1001",
            # ProcessId is the creator's (as Winlogbeat reads it): the parent's pid.
            "process.pid": 0x1A2C,
            "process.parent.pid": 0x9F0,
            "winlog.event_data.NewProcessId": "0x1a2c",
            "winlog.event_data.TargetUserName": "-",
        },
    )


def test_security_4624_maps_source_address_and_keeps_target_user_in_event_data() -> None:
    event = normalize_windows(
        security_event(
            4624,
            {
                "SubjectUserSid": "S-1-5-18",
                "SubjectUserName": "DC01$",
                "SubjectDomainName": "TINH",
                "TargetUserSid": "S-1-5-21-1-2-3-500",
                "TargetUserName": "Administrator",
                "TargetDomainName": "TINH",
                "TargetLogonId": "0x8d2f3",
                "LogonType": 10,
                "LogonProcessName": "User32 ",
                "AuthenticationPackageName": "Negotiate",
                "WorkstationName": "KT-PC07",
                "ProcessId": "0x2b8",
                "ProcessName": "C:\\Windows\\System32\\svchost.exe",
                "IpAddress": "10.20.30.40",
                "IpPort": "52011",
            },
            "0x8020000000000000",
        )
    )
    assert_fields(
        event,
        {
            "source.ip": "10.20.30.40",
            "source.port": 52011,
            "source.domain": "KT-PC07",
            "user.name": "DC01$",
            "process.executable": "C:\\Windows\\System32\\svchost.exe",
            "winlog.event_data.TargetUserName": "Administrator",
            "winlog.event_data.LogonType": 10,
            "winlog.event_data.LogonProcessName": "User32 ",
            "winlog.logon.id": "0x8d2f3",
        },
    )


def test_security_4625_with_eventid_object_and_string_system_values() -> None:
    document = security_event(
        {"#attributes": {"Qualifiers": ""}, "#text": "4625"},
        {
            "SubjectUserSid": "S-1-0-0",
            "SubjectUserName": "-",
            "TargetUserName": "admin",
            "Status": "0xc000006d",
            "SubStatus": "0xc000006a",
            "LogonType": "3",
            "IpAddress": "::ffff:203.0.113.9",
            "IpPort": "0",
        },
        "0x8010000000000000",
    )
    system = document["Event"]["System"]
    system.update({"EventRecordID": "99", "Level": "0", "Task": "12544", "Opcode": "0"})
    system["Execution"] = {"#attributes": {"ProcessID": "640", "ThreadID": "7000"}}
    event = normalize_windows(document)
    assert_fields(
        event,
        {
            "event.code": "4625",
            "winlog.event_id": "4625",
            "winlog.record_id": "99",
            "winlog.process.pid": 640,
            "winlog.process.thread.id": 7000,
            "winlog.keywords": ["Audit Failure"],
            "event.outcome": "failure",
            "log.level": "information",
            "source.ip": "::ffff:203.0.113.9",
            "source.port": 0,
            "user.name": "-",
            "winlog.event_data.TargetUserName": "admin",
            "winlog.event_data.LogonType": "3",
        },
    )
    assert event["event"]["id"] == stable_id("winlog", "dc01.tinh.gov.vn", "Security", "99")


# --- the shapes real exporters produce -------------------------------------------------------


def log_cleared_104() -> dict[str, Any]:
    return evtx_event(
        user_data={
            "LogFileCleared": {
                "#attributes": {
                    "xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"
                },
                "SubjectUserSid": "S-1-5-21-1-2-3-1001",
                "SubjectUserName": "attacker",
                "SubjectDomainName": "TINH",
                "Channel": "Security",
                "BackupPath": None,
            }
        },
        event_id=104,
        channel="System",
        provider="Microsoft-Windows-Eventlog",
    )


def test_userdata_channel_never_replaces_the_system_channel() -> None:
    event = normalize_windows(log_cleared_104())
    assert_fields(
        event,
        {
            "winlog.channel": "System",
            "event.dataset": "windows.system",
            "event.code": "104",
            "winlog.provider_name": "Microsoft-Windows-Eventlog",
            "winlog.event_data.Channel": "Security",
            "winlog.event_data.SubjectUserName": "attacker",
            "winlog.event_data.BackupPath": None,
            "winlog.user_data.xml_name": "LogFileCleared",
            "winlog.user_data.Channel": "Security",
            "user.name": "attacker",
        },
    )
    assert "#attributes" not in event["winlog"]["user_data"]


@pytest.mark.parametrize(
    ("event_data", "expected"),
    [
        pytest.param(
            {"Data": {"#text": ["Windows Update", "running"]}, "Binary": "770075006100"},
            {
                "param1": "Windows Update",
                "param2": "running",
                "Binary": "770075006100",
                "Data": ["Windows Update", "running"],
            },
            id="unnamed-text-list",
        ),
        pytest.param(
            {"Data": {"#text": "Service started"}},
            {"param1": "Service started", "Data": "Service started"},
            id="unnamed-text",
        ),
        pytest.param(
            {"Data": "bare value"},
            {"param1": "bare value", "Data": "bare value"},
            id="unnamed-bare",
        ),
        pytest.param(
            {
                "Data": [
                    {"#attributes": {"Name": "ServiceName"}, "#text": "PSEXESVC"},
                    {"#attributes": {"Name": "ImagePath"}, "#text": "%SystemRoot%\\PSEXESVC.exe"},
                    {"#attributes": {"Name": "StartType"}, "#text": None},
                    {"#text": "extra"},
                ]
            },
            {
                "ServiceName": "PSEXESVC",
                "ImagePath": "%SystemRoot%\\PSEXESVC.exe",
                "StartType": None,
                "param1": "extra",
                "Data": "extra",
            },
            id="named-list",
        ),
        pytest.param(
            {"#attributes": {"Name": "TaskDisabled"}, "TaskName": "\\SR"},
            {"TaskName": "\\SR"},
            id="eventdata-attributes",
        ),
        pytest.param(None, {}, id="eventdata-null"),
    ],
)
def test_event_data_shapes_flatten_as_winlogbeat_does(
    event_data: Any, expected: dict[str, Any]
) -> None:
    event = normalize_windows(evtx_event(event_data, event_id=7045, channel="System"))
    assert event["winlog"]["event_data"] == expected
    assert "error" not in event


def test_event_data_keeps_json_types() -> None:
    data = {
        "Initiated": True,
        "SourceIsIpv6": False,
        "DestinationPort": 443,
        "Signed": "true",
        "StartModule": "",
        "RuleName": None,
        "Ratio": 0.5,
    }
    event = normalize_windows(evtx_event(dict(data), event_id=3))
    assert event["winlog"]["event_data"] == data
    assert event["destination"]["port"] == 443
    # A boolean Initiated stays a boolean; network.direction also gets the value the pipeline
    # writes into queries for `Initiated: true`.
    assert event["network"]["direction"] == [True, "egress"]


def test_initiated_as_text_gives_both_spellings_of_the_direction() -> None:
    event = normalize_windows(evtx_event({"Initiated": "false"}, event_id=3))
    assert event["network"]["direction"] == ["false", "ingress"]


def test_channel_null_infers_nothing() -> None:
    event = normalize_windows(evtx_event({"Image": "C:\\x.exe"}, channel=None))
    assert "channel" not in event["winlog"]
    assert event["event"]["dataset"] == "windows.unknown"
    assert event["process"]["executable"] == "C:\\x.exe"


def test_values_that_do_not_fit_an_ecs_type_stay_out_of_ecs_fields() -> None:
    data = {"SourceIp": "-", "SourcePort": "", "DestinationIp": "fe80::1%12", "ProcessId": "x"}
    event = normalize_windows(evtx_event(data, event_id=3))
    assert event["winlog"]["event_data"] == data
    assert "source" not in event
    assert "pid" not in event.get("process", {})
    assert event["destination"] == {"ip": "fe80::1"}  # Elasticsearch refuses the zone index


@pytest.mark.parametrize(
    ("system_time", "expected"),
    [
        ("2026-11-28T03:12:45.123456Z", "2026-11-28T03:12:45.123456Z"),
        ("2026-11-28T03:12:45.1234567Z", "2026-11-28T03:12:45.123456Z"),
        ("2026-11-28T03:12:45.751156500Z", "2026-11-28T03:12:45.751156Z"),
        ("2026-11-28 03:12:45.5", "2026-11-28T03:12:45.500000Z"),
        ("2026-11-28T10:12:45+07:00", "2026-11-28T03:12:45.000000Z"),
    ],
)
def test_system_time_becomes_utc_with_microseconds(system_time: str, expected: str) -> None:
    document = evtx_event({})
    document["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"] = system_time
    assert normalize_windows(document)["@timestamp"] == expected


def test_unreadable_time_is_replaced_by_now_and_tagged() -> None:
    document = evtx_event({})
    document["Event"]["System"]["TimeCreated"] = {"#attributes": {"SystemTime": "yesterday"}}
    event = normalize_windows(document)
    assert event["tags"] == ["windows_timestamp_missing"]
    assert event["@timestamp"].endswith("Z")


# --- ids ----------------------------------------------------------------------------------


def test_event_id_is_the_record_id_when_given_else_stable() -> None:
    document = evtx_event({"Image": "C:\\a.exe"})
    first, again = normalize_windows(document), normalize_windows(copy.deepcopy(document))
    assert first["event"]["id"] == again["event"]["id"]
    assert normalize_windows(document, record_id="r-1")["event"]["id"] == "r-1"
    other = evtx_event({"Image": "C:\\a.exe"}, record_id=4243)
    assert normalize_windows(other)["event"]["id"] != first["event"]["id"]


def test_event_without_record_id_gets_a_content_hash() -> None:
    one = normalize_windows(evtx_event({"Image": "a"}, record_id=None))
    two = normalize_windows(evtx_event({"Image": "b"}, record_id=None))
    assert one["event"]["id"] != two["event"]["id"]
    assert one["event"]["id"] == stable_id("winlog-content", one["event"]["original"])


# --- the reverse of the pipeline ------------------------------------------------------------


def pipeline_pairs() -> list[tuple[str, str]]:
    pairs = []
    for item in ecs_windows().items:
        transformation = item.transformation
        if isinstance(transformation, FieldMappingTransformation) and not isinstance(
            transformation, FieldPrefixMappingTransformation
        ):
            for sigma_field, mapped in transformation.mapping.items():
                for name in [mapped] if isinstance(mapped, str) else mapped:
                    pairs.append((sigma_field, name.removesuffix(".caseless")))
    for sigma_field, candidates in ecs_windows_variable_mappings.items():
        pairs.extend((sigma_field, name) for _kind, _source, name in candidates)
    return sorted(set(pairs))


def sample_value(ecs_field: str) -> Any:
    if ecs_field in NUMBER_FIELDS:
        return 4321
    if ecs_field in IP_FIELDS:
        return "192.0.2.10"
    return "sample value"


@pytest.mark.parametrize(
    ("sigma_field", "ecs_field"),
    [
        pair
        for pair in pipeline_pairs()
        if pair[0] not in SYSTEM_FIELDS and not pair[1].startswith("winlog.event_data.")
    ],
)
def test_every_pipeline_mapping_is_filled_from_event_data(sigma_field: str, ecs_field: str) -> None:
    value = sample_value(ecs_field)
    event = normalize_windows(evtx_event({sigma_field: value}))
    assert event["winlog"]["event_data"][sigma_field] == value
    found = field(event, ecs_field)
    assert found == value or (isinstance(found, list) and value in found)


@pytest.mark.parametrize("sigma_field", sorted(SYSTEM_FIELDS))
def test_event_data_never_overrides_system_fields(sigma_field: str) -> None:
    event = normalize_windows(evtx_event({sigma_field: "spoofed"}))
    assert "spoofed" not in (
        event["event"]["code"],
        event["winlog"]["channel"],
        event["winlog"]["provider_name"],
        event["winlog"]["computer_name"],
    )
    assert event["winlog"]["event_data"][sigma_field] == "spoofed"


# --- Winlogbeat documents and odd input -----------------------------------------------------


def test_winlogbeat_document_keeps_its_fields_and_gains_the_mapped_ones() -> None:
    document = {
        "@timestamp": "2026-11-28T03:12:45.123Z",
        "event": {"code": "1", "provider": "Microsoft-Windows-Sysmon", "created": "x"},
        "host": {"name": "pc07.tinh.gov.vn"},
        "winlog": {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "provider_name": "Microsoft-Windows-Sysmon",
            "computer_name": "pc07.tinh.gov.vn",
            "event_id": "1",
            "record_id": 77,
            "keywords": ["Audit Success"],
            "process": {"pid": 3208, "thread": {"id": 1724}},
            "event_data": {
                "Image": "C:\\Windows\\System32\\rundll32.exe",
                "CommandLine": "rundll32.exe comsvcs.dll MiniDump",
                "Source Name": "x",
            },
        },
    }
    assert is_windows_event(document)
    event = normalize_windows(document)
    assert_fields(
        event,
        {
            "@timestamp": "2026-11-28T03:12:45.123Z",
            "event.created": "x",
            "event.dataset": "windows.sysmon_operational",
            "event.module": "windows",
            "host.name": "pc07.tinh.gov.vn",
            "process.executable": "C:\\Windows\\System32\\rundll32.exe",
            "process.command_line": "rundll32.exe comsvcs.dll MiniDump",
            "winlog.event_data.SourceName": "x",
            "winlog.record_id": 77,
            "event.outcome": "success",
        },
    )
    assert event["event"]["id"] == stable_id(
        "winlog", "pc07.tinh.gov.vn", "Microsoft-Windows-Sysmon/Operational", "77"
    )
    assert orjson.loads(event["event"]["original"]) == document


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"Event": {}},
        {"Event": {"System": "not a mapping", "EventData": [1, 2]}},
        {"Event": {"System": {"EventID": [], "TimeCreated": 5}, "EventData": {"Data": [None]}}},
        {"Event": {"System": {"Provider": "x"}, "UserData": {"A": "leaf"}}},
        {"winlog": {"event_data": "text", "process": 5}},
        {"Event": {"System": {"EventID": 1}, "EventData": {"Big": 2**70}}},
        {"Event": {"System": {"Keywords": "zz", "Level": "Warning"}}},
    ],
)
def test_odd_input_never_raises_and_keeps_the_original(record: dict[str, Any]) -> None:
    event = normalize_windows(record)
    assert event["event"]["kind"] == "event"
    assert event["event"]["original"]
    assert event["event"]["id"]
    assert event["@timestamp"].endswith("Z")


def test_a_non_mapping_record_becomes_a_failure_event() -> None:
    event = normalize_windows(["not", "a", "mapping"], record_id="r9")  # type: ignore[arg-type]
    assert event["tags"] == ["windows_normalize_failed"]
    assert event["event"]["id"] == "r9"
    assert event["event"]["original"] == '["not","a","mapping"]'
    assert "AttributeError" in event["error"]["message"]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (evtx_event({}), True),
        ({"System": {"EventID": 1}, "EventData": {}}, True),
        ({"winlog": {"channel": "Security"}}, True),
        ({"@timestamp": "2026-01-01T00:00:00Z", "event": {"kind": "event"}}, False),
        ({"Event": "text"}, False),
        ({"message": "hello"}, False),
    ],
)
def test_is_windows_event(record: dict[str, Any], expected: bool) -> None:
    assert is_windows_event(record) is expected


def test_events_of_one_shape_fill_from_their_own_values() -> None:
    """The ECS fields an event fills are worked out once per set of event-data keys: a second
    event with the same keys fills from its own values, and a value that does not fit (null,
    "-" for a port, a bad address) leaves the field to the other sources or absent."""
    keys = ("SourceIp", "SourcePort", "SubjectDomainName", "TargetDomainName", "Image")
    first = normalize_windows(
        evtx_event(dict(zip(keys, ["10.0.0.5", "445", "TINH", "SO", r"C:\a.exe"], strict=True)))
    )
    second = normalize_windows(
        evtx_event(dict(zip(keys, ["-", "-", None, "SO2", None], strict=True)))
    )
    assert_fields(
        first,
        {
            "source.ip": "10.0.0.5",
            "source.port": 445,
            "user.domain": ["TINH", "SO"],
            "process.executable": r"C:\a.exe",
        },
    )
    assert_fields(
        second,
        {
            "source.ip": ABSENT,
            "source.port": ABSENT,
            "user.domain": "SO2",
            "process.executable": ABSENT,
        },
    )


def test_more_event_shapes_than_the_plans_kept_still_normalize() -> None:
    """Agents send event data of any keys: plans are bounded, and an event whose plan was
    dropped is planned again, with the same result."""
    from soc.normalize import windows

    shapes = windows._PLANS_KEPT + 50
    events = [
        normalize_windows(evtx_event({f"Extra{n}": "x", "Image": f"C:\\{n}.exe"}))
        for n in range(shapes)
    ]
    assert len(windows._PLANS) <= windows._PLANS_KEPT
    assert [event["process"]["executable"] for event in events] == [
        f"C:\\{n}.exe" for n in range(shapes)
    ]
    again = normalize_windows(evtx_event({"Extra0": "x", "Image": "C:\\0.exe"}))
    assert again["process"]["executable"] == "C:\\0.exe"


# --- log sources that name fields otherwise (SigmaHQ tests/thor.yml fieldmappings) -------------

SIGMA_RULES = SIGMA / "rules"
needs_sigma_rules = pytest.mark.skipif(
    not SIGMA_RULES.is_dir(), reason=f"SigmaHQ rules not found at {SIGMA_RULES}"
)
OFFICE_CHILD = "windows/process_creation/proc_creation_win_office_susp_child_processes.yml"
WINWORD = r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE"


def process_4688(new_process: str, parent: str) -> dict[str, Any]:
    return security_event(
        4688,
        {
            "SubjectUserName": "bob",
            "NewProcessId": "0x1234",
            "NewProcessName": new_process,
            "CommandLine": f'"{new_process}" /c whoami',
            "ProcessId": "0x99",
            "ParentProcessName": parent,
        },
        "0x8020000000000000",
    )


def defender_detection(event_id: int, threat: str, path: str) -> dict[str, Any]:
    """A Defender event as real ones name their fields (with spaces)."""
    return evtx_event(
        {"Threat Name": threat, "Path": path, "Severity Name": "High", "Detection User": "bob"},
        event_id=event_id,
        channel="Microsoft-Windows-Windows Defender/Operational",
        provider="Microsoft-Windows-Windows Defender",
    )


def test_security_4688_fills_the_process_fields_rules_name_image_and_parent_image() -> None:
    event = normalize_windows(process_4688(r"C:\Windows\System32\cmd.exe", WINWORD))
    assert_fields(
        event,
        {
            "process.executable": r"C:\Windows\System32\cmd.exe",
            "process.parent.executable": WINWORD,
            # ProcessId is the creator's: the parent's pid, not the new process's.
            "process.pid": 0x1234,
            "process.parent.pid": 0x99,
            "winlog.event_data.ParentProcessName": WINWORD,
            "winlog.event_data.ProcessId": "0x99",
            "winlog.event_data.ParentImage": ABSENT,  # the event data stays as the event has it
        },
    )


@needs_sigma_rules
def test_process_creation_rules_fire_on_security_4688_as_on_sysmon_1() -> None:
    from soc.detect.rules import load_rules

    ruleset = load_rules([SIGMA_RULES / OFFICE_CHILD])
    sysmon = evtx_event(
        {"Image": r"C:\Windows\System32\cmd.exe", "ParentImage": WINWORD, "CommandLine": "cmd"}
    )
    for record in (sysmon, process_4688(r"C:\Windows\System32\cmd.exe", WINWORD)):
        assert [rule.title for rule in ruleset.match(normalize_windows(record))] == [
            "Suspicious Microsoft Office Child Process"
        ]
    benign = process_4688(r"C:\Windows\System32\cmd.exe", r"C:\Windows\explorer.exe")
    assert ruleset.match(normalize_windows(benign)) == []


SPOOLER_CHILD = "windows/process_creation/proc_creation_win_spoolsv_susp_child_processes.yml"
SPOOLSV = r"C:\Windows\System32\spoolsv.exe"
SYSTEM_LOGON_RULE = """
title: Process started in the SYSTEM logon session
id: 3b8f6a0e-5d1c-4e27-9f43-8a6c2d1e7b90
status: test
logsource: {product: windows, category: process_creation}
detection:
  selection: {LogonId: '0x3e7', Image|endswith: '\\whoami.exe'}
  condition: selection
level: low
"""


@needs_sigma_rules
def test_process_creation_rules_on_integrity_level_and_logon_id_fire_on_security_4688(
    tmp_path: Path,
) -> None:
    """A 4688 names the integrity level MandatoryLabel (a SID) and the creator's logon
    SubjectLogonId (rules/pipelines/windows_security.yml): the rules' IntegrityLevel and
    LogonId read them, and Sysmon's own fields as before."""
    from soc.detect.rules import load_rules

    (tmp_path / "system_logon.yml").write_text(SYSTEM_LOGON_RULE)
    ruleset = load_rules([SIGMA_RULES / SPOOLER_CHILD, tmp_path / "system_logon.yml"])
    whoami = r"C:\Windows\System32\whoami.exe"

    def security(label: str, logon: str) -> dict[str, Any]:
        record = process_4688(whoami, SPOOLSV)
        data = record["Event"]["EventData"]
        data.update(MandatoryLabel=label, SubjectLogonId=logon)
        return record

    def titles(record: dict[str, Any]) -> set[str]:
        return {rule.title for rule in ruleset.match(normalize_windows(record))}

    both = {"Suspicious Spool Service Child Process", "Process started in the SYSTEM logon session"}
    assert titles(security("S-1-16-16384", "0x3e7")) == both
    assert titles(security("S-1-16-8192", "0x3e7")) == {
        "Process started in the SYSTEM logon session"
    }
    assert titles(security("S-1-16-8192", "0x5a1f2")) == set()
    sysmon = {"Image": whoami, "ParentImage": SPOOLSV, "CommandLine": "whoami", "LogonId": "0x3e7"}
    assert titles(evtx_event({**sysmon, "IntegrityLevel": "System"})) == both
    assert titles(evtx_event({**sysmon, "IntegrityLevel": "Medium", "LogonId": "0x1"})) == set()


@needs_sigma_rules
def test_a_null_test_on_a_field_read_under_two_names_keeps_sysmons_meaning() -> None:
    """SigmaHQ's WmiPrvSE rule filters out `LogonId: null`. Read under both names (LogonId,
    SubjectLogonId), the test would be "either is null", true of every Sysmon event (no
    SubjectLogonId), and the rule would never fire; a null test reads Sysmon's name alone."""
    from soc.detect.rules import load_rules

    rule = "windows/process_creation/proc_creation_win_wmiprvse_spawning_process.yml"
    ruleset = load_rules([SIGMA_RULES / rule])
    spawned = {
        "Image": r"C:\Windows\System32\cmd.exe",
        "ParentImage": r"C:\Windows\System32\wbem\WmiPrvSE.exe",
        "CommandLine": "cmd /c whoami",
        "User": r"SO-TTTT\bob",
    }
    titles = [
        r.title
        for r in ruleset.match(normalize_windows(evtx_event({**spawned, "LogonId": "0x5a1f2"})))
    ]
    assert titles == ["WmiPrvSE Spawned A Process"]
    # Its own filters still apply: the SYSTEM logon, and no logon at all.
    assert ruleset.match(normalize_windows(evtx_event({**spawned, "LogonId": "0x3e7"}))) == []
    assert ruleset.match(normalize_windows(evtx_event(spawned))) == []


@needs_sigma_rules
def test_antivirus_rules_fire_on_defender_detections() -> None:
    from soc.detect.rules import load_rules

    # SigmaHQ's folder alone: the platform's own pipelines apply without rules/ being given.
    ruleset = load_rules([SIGMA_RULES / "category/antivirus"])
    titles = {
        rule.title
        for rule in ruleset.match(
            normalize_windows(defender_detection(1116, "HackTool:Win32/Mimikatz", r"C:\t\m.exe"))
        )
    }
    assert "Antivirus - Hacktool Signature" in titles
    clean = normalize_windows(defender_detection(1116, "Trojan:Win32/Nothing", r"D:\x.txt"))
    assert "Antivirus - Hacktool Signature" not in {r.title for r in ruleset.match(clean)}
    # A file in a place the relevant-files rule names, through Defender's Path.
    relevant = normalize_windows(defender_detection(1116, "Trojan:Win32/X", r"C:\PerfLogs\x.exe"))
    assert "Antivirus - Relevant File Paths Alerts Signature" in {
        r.title for r in ruleset.match(relevant)
    }
    # Defender events that are not detections are not antivirus events.
    status = normalize_windows(defender_detection(5007, "HackTool:Win32/Mimikatz", r"C:\t\m.exe"))
    assert ruleset.match(status) == []


def wfp_connection(
    event_id: int, application: str, direction: str, local_port: str, remote_port: str
) -> dict[str, Any]:
    """A Windows Filtering Platform connection as the Security log writes it: the local end
    is always the source, whatever the direction."""
    return security_event(
        event_id,
        {
            "ProcessID": 4556,
            "Application": application,
            "Direction": direction,
            "SourceAddress": "10.0.0.10",
            "SourcePort": local_port,
            "DestAddress": "203.0.113.7",
            "DestPort": remote_port,
            "Protocol": 6,
            "FilterRTID": 70201,
            "LayerName": "%%14611",
            "LayerRTID": 48,
        },
        "0x8020000000000000",
    )


FINGER = r"\device\harddiskvolume2\Windows\System32\finger.exe"
ANYDESK = r"\device\harddiskvolume3\Program Files (x86)\AnyDesk\AnyDesk.exe"


def test_wfp_connection_fills_the_fields_network_connection_rules_name() -> None:
    """5156/5157: Direction is read as Sysmon's Initiated (network.direction carries both the
    rules' "true" and the pipeline's egress), the protocol number as Sysmon's transport name,
    ProcessID as the pid; the addresses stay as the event gives them."""
    outbound = normalize_windows(wfp_connection(5156, FINGER, "%%14593", "50123", "79"))
    assert_fields(
        outbound,
        {
            "process.executable": FINGER,
            "process.pid": 4556,
            "network.direction": ["true", "egress"],
            "network.transport": "tcp",
            "network.iana_number": "6",
            "event.category": ["network"],
            "event.type": ["connection", "allowed"],
            "source.ip": "10.0.0.10",
            "source.port": 50123,
            "destination.ip": "203.0.113.7",
            "destination.port": 79,
            "winlog.event_data.Direction": "%%14593",  # the event data stays as it came
            "winlog.event_data.Protocol": 6,
            "winlog.event_data.Initiated": ABSENT,
        },
    )
    inbound = wfp_connection(5157, ANYDESK, "Inbound", "7070", "50999")  # rendered, blocked
    inbound["Event"]["EventData"]["Protocol"] = "17"
    assert_fields(
        normalize_windows(inbound),
        {
            "network.direction": ["false", "ingress"],
            "network.transport": "udp",
            "event.type": ["connection", "denied"],
        },
    )
    odd = wfp_connection(5156, FINGER, "%%99999", "1", "2")
    odd["Event"]["EventData"]["Protocol"] = 253  # experimental: a number without a name
    assert_fields(
        normalize_windows(odd),
        {"network.direction": ABSENT, "network.transport": ABSENT, "network.iana_number": "253"},
    )
    # Another Security event with a Direction and a Protocol is not read as a connection.
    other = security_event(5031, {"Application": FINGER, "Direction": "%%14593"}, "0x0")
    assert_fields(normalize_windows(other), {"network.direction": ABSENT, "event.type": ABSENT})


@needs_sigma_rules
def test_network_connection_rules_fire_on_security_5156_as_on_sysmon_3() -> None:
    """A host without Sysmon: its Security log's allowed connections (5156) are
    network_connection events, as Hayabusa converts them; blocked ones (5157) are not."""
    from soc.detect.rules import load_rules

    ruleset = load_rules(
        [
            SIGMA_RULES / "windows/network_connection/net_connection_win_finger.yml",
            SIGMA_RULES
            / "windows/network_connection"
            / "net_connection_win_remote_access_tools_anydesk_incoming_connection.yml",
        ]
    )

    def titles(record: dict[str, Any]) -> list[str]:
        return [rule.title for rule in ruleset.match(normalize_windows(record))]

    finger = "Network Connection Initiated via Finger.EXE"
    anydesk = "Remote Access Tool - AnyDesk Incoming Connection"
    sysmon = {"Image": r"C:\Windows\System32\finger.exe", "Initiated": "true", "Protocol": "tcp"}
    assert titles(evtx_event(sysmon, event_id=3)) == [finger]
    assert titles(wfp_connection(5156, FINGER, "%%14593", "50123", "79")) == [finger]
    assert titles(wfp_connection(5156, FINGER, "%%14592", "79", "50123")) == []  # inbound
    assert titles(wfp_connection(5157, FINGER, "%%14593", "50123", "79")) == []  # blocked
    assert titles(wfp_connection(5156, ANYDESK, "%%14592", "7070", "50999")) == [anydesk]
    assert titles(wfp_connection(5156, ANYDESK, "%%14593", "50999", "443")) == []


def registry_4657(key: str, value: str, new: str, operation: str = "%%1905") -> dict[str, Any]:
    """A registry value change audited by a SACL, as the Security log writes it."""
    return security_event(
        4657,
        {
            "SubjectUserSid": "S-1-5-21-1-2-3-1105",
            "SubjectUserName": "bob",
            "SubjectDomainName": "SO-TTTT",
            "SubjectLogonId": "0x5a1f2",
            "ObjectName": key,
            "ObjectValueName": value,
            "HandleId": "0x1f4",
            "OperationType": operation,
            "OldValueType": "%%1873",
            "OldValue": "",
            "NewValueType": "%%1873",
            "NewValue": new,
            "ProcessId": "0x1a2c",
            "ProcessName": r"C:\Windows\System32\reg.exe",
        },
        "0x8020000000000000",
    )


RUN_KEY = r"\REGISTRY\MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Run"


def test_registry_4657_fills_the_target_object_registry_rules_name() -> None:
    """ObjectName and ObjectValueName are Sysmon's TargetObject, the hive abbreviated as Sysmon
    does; the operation is the action; the event data stays as it came."""
    event = normalize_windows(registry_4657(RUN_KEY, "updater", r"C:\Users\Public\u.exe", "%%1904"))
    assert_fields(
        event,
        {
            "registry.path": r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run\updater",
            "process.executable": r"C:\Windows\System32\reg.exe",
            "process.pid": 0x1A2C,
            "event.category": ["registry"],
            "event.type": ["change"],
            "event.action": "value_created",
            "winlog.event_data.TargetObject": ABSENT,
            "winlog.event_data.NewValue": r"C:\Users\Public\u.exe",
        },
    )
    user_key = r"\REGISTRY\USER\S-1-5-21-1-2-3-1105\Software\Classes\ms-settings\Shell\Open\command"
    assert_fields(
        normalize_windows(registry_4657(user_key, "-", "cmd.exe", "Registry value deleted")),
        {
            "registry.path": "HKU" + user_key.removeprefix(r"\REGISTRY\USER"),
            "event.action": "value_deleted",
        },
    )
    # A path under no hive Sysmon abbreviates, and a hive's name inside a longer one.
    for key in (r"\REGISTRY\A\{5d1c}\Root", r"\REGISTRY\MACHINEX\Key"):
        assert normalize_windows(registry_4657(key, "v", "1"))["registry"]["path"] == f"{key}\\v"


@needs_sigma_rules
def test_registry_rules_fire_on_security_4657_as_on_sysmon_13() -> None:
    """A host without Sysmon, with a SACL on the keys attackers use: its 4657 are registry
    events (TargetObject from the key and value, Details from NewValue), as Hayabusa converts
    them; a deleted value is no value set."""
    from soc.detect.rules import load_rules

    registry = SIGMA_RULES / "windows/registry/registry_set"
    ruleset = load_rules(
        [
            registry / "registry_set_susp_run_key_img_folder.yml",
            registry / "registry_set_defender_exclusions.yml",
        ]
    )

    def titles(record: dict[str, Any]) -> list[str]:
        return [rule.title for rule in ruleset.match(normalize_windows(record))]

    run = "New RUN Key Pointing to Suspicious Folder"
    exclusion = "Windows Defender Exclusions Added - Registry"
    public = r"C:\Users\Public\u.exe"
    assert titles(registry_4657(RUN_KEY, "updater", public, "%%1904")) == [run]
    assert titles(registry_4657(RUN_KEY, "updater", r"C:\Program Files\u.exe")) == []
    assert titles(registry_4657(RUN_KEY, "updater", public, "%%1906")) == []  # deleted
    exclusions = r"\REGISTRY\MACHINE\SOFTWARE\Microsoft\Windows Defender\Exclusions\Paths"
    assert titles(registry_4657(exclusions, r"C:\Temp", "0")) == [exclusion]
    sysmon = {
        "EventType": "SetValue",
        "Image": r"C:\Windows\System32\reg.exe",
        "TargetObject": r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run\updater",
        "Details": public,
    }
    assert titles(evtx_event(sysmon, event_id=13)) == [run]


ENGINE_STATE = (
    "\tNewEngineState=Available\r\n\tPreviousEngineState=None\r\n\r\n\tSequenceNumber=13\r\n\r\n"
    "\tHostName=ConsoleHost\r\n\tHostVersion=5.1.19041.1\r\n\tHostId=1b4a5f2e\r\n"
    "\tHostApplication=powershell.exe -version 2 -nop -w hidden -enc SQBFAFgA\r\n"
    "\tEngineVersion={engine}\r\n\tRunspaceId=0d6b\r\n\tPipelineId=\r\n\tCommandName=\r\n"
)


def classic_powershell_400(engine: str) -> dict[str, Any]:
    """Event 400 of the classic "Windows PowerShell" log: its three values carry no names."""
    return evtx_event(
        {"Data": {"#text": ["Available", "None", ENGINE_STATE.format(engine=engine)]}},
        event_id=400,
        channel="Windows PowerShell",
        provider="PowerShell",
    )


def test_unnamed_values_of_a_winlogbeat_document_are_data_too() -> None:
    document = {
        "@timestamp": "2026-11-28T03:00:00Z",
        "winlog": {
            "channel": "Windows PowerShell",
            "event_id": "400",
            "event_data": {"param1": "Available", "param2": "None", "param3": "EngineVersion=2.0"},
        },
    }
    data = normalize_windows(document)["winlog"]["event_data"]
    assert data["Data"] == ["Available", "None", "EngineVersion=2.0"]
    assert data["param3"] == "EngineVersion=2.0"


@needs_sigma_rules
def test_classic_powershell_rules_read_the_unnamed_values_as_data() -> None:
    from soc.detect.rules import load_rules

    ruleset = load_rules([SIGMA_RULES / "windows/powershell/powershell_classic"])
    downgrade = normalize_windows(classic_powershell_400("2.0"))
    assert "PowerShell Downgrade Attack - PowerShell" in {r.title for r in ruleset.match(downgrade)}
    current = normalize_windows(classic_powershell_400("5.1.19041.1"))
    assert "PowerShell Downgrade Attack - PowerShell" not in {
        r.title for r in ruleset.match(current)
    }
