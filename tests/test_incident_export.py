"""Incident exports: the CSV an analyst opens in Excel and the STIX 2.1 bundle for the national
monitoring centre, from documents shaped as the incident contract says."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stix2validator import ValidationOptions, validate_instance

from soc.incidents.export import (
    BOM,
    SCO_NAMESPACE,
    excel_csv,
    incident_csv,
    incident_stix,
    safe_cell,
    stix_time,
)

AGENCY = "so-tttt"
INCIDENT_ID = "7f3c2a9e5b0d4c1e8a6f2b3c4d5e6f70"
NOW = datetime(2026, 11, 28, 23, 59, 30, 123456, tzinfo=UTC)


def ssh_event(n: int, ip: str, user: str, at: str) -> dict[str, Any]:
    return {
        "@timestamp": at,
        "event": {"id": f"evt-{n}", "kind": "event", "dataset": "linux.auth"},
        "organization": {"id": AGENCY},
        "host": {"name": "web01.tttt.gov.vn"},
        "source": {"ip": ip},
        "user": {"name": user},
        "message": f"Failed password for {user} from {ip} port 52{n:03d} ssh2",
        "event.original": f"<38>Nov 28 08:1{n}:00 web01 sshd[811]: Failed password for {user}",
    }


def alert_doc(n: int, ip: str, user: str, at: str, **extra: Any) -> dict[str, Any]:
    event = ssh_event(n, ip, user, at)
    alert: dict[str, Any] = {
        "@timestamp": at,
        "event": {"id": f"alert-{n}", "kind": "alert", "severity": 73, "created": at},
        "rule": {"id": "soc-ssh-bruteforce", "name": "SSH brute force", "level": "high"},
        "message": "SSH brute force",
        "threat": {"technique": {"id": ["T1110", "T1110.001"]}},
        "host": event["host"],
        "source": event["source"],
        "user": event["user"],
        "organization": {"id": AGENCY},
        "incident": {"id": INCIDENT_ID},
        "events": [event],
    }
    alert.update(extra)
    return alert


def incident_doc(**changes: Any) -> dict[str, Any]:
    """A brute force incident on a provincial web server, acknowledged and commented on."""
    incident: dict[str, Any] = {
        "id": INCIDENT_ID,
        "key": "soc-ssh-bruteforce|web01.tttt.gov.vn",
        "title": "SSH brute force on web01.tttt.gov.vn",
        "status": "investigating",
        "severity": "high",
        "alert_count": 3,
        "first_seen": "2026-11-28T08:10:00.000000Z",
        "last_seen": "2026-11-28T08:12:00.000000Z",
        "created": "2026-11-28T08:10:01.250000Z",
        "updated": "2026-11-28T09:00:00.999999Z",
        "acknowledged_at": "2026-11-28T08:25:01.250000Z",
        "resolved_at": None,
        "tta_seconds": 900.0,
        "ttr_seconds": None,
        "assignee": "nguyen.van.an",
        "tags": ["ssh", "cổng-thông-tin"],
        "comments": [
            {
                "id": "c1",
                "author": "nguyen.van.an",
                "at": "2026-11-28T08:30:00.000000Z",
                "text": "Đã chặn IP 45.95.147.12 trên tường lửa, đang kiểm tra nhật ký.",
            },
            {
                "id": "c2",
                "author": "tran.thi.binh",
                "at": "2026-11-28T08:45:00.000000Z",
                "text": '=HYPERLINK("http://evil.example","Bấm vào đây")',
            },
        ],
        "rule": {"id": "soc-ssh-bruteforce", "name": "SSH brute force", "level": "high"},
        "version": "v7",
    }
    incident.update(changes)
    return {
        "@timestamp": incident["last_seen"],
        "event": {"id": INCIDENT_ID, "kind": "incident", "severity": 73},
        "organization": {"id": AGENCY},
        "incident": incident,
        "threat": {"technique": {"id": ["T1110", "T1110.001"]}},
        "related": {
            "hosts": ["web01.tttt.gov.vn"],
            "user": ["root", "quản.trị"],
            "ip": ["45.95.147.12", "10.20.30.40"],
        },
    }


def fixture_alerts() -> list[dict[str, Any]]:
    # Given out of order on purpose: the exports sort by time.
    return [
        alert_doc(2, "10.20.30.40", "quản.trị", "2026-11-28T08:12:00.000000Z"),
        alert_doc(0, "45.95.147.12", "root", "2026-11-28T08:10:00.000000Z"),
        alert_doc(1, "45.95.147.12", "@admin", "2026-11-28T08:11:00.000000Z"),
    ]


def parse_csv(text: str) -> list[list[str]]:
    assert text.startswith(BOM)
    return list(csv.reader(io.StringIO(text[len(BOM) :], newline="")))


def blocks(rows: list[list[str]]) -> list[list[list[str]]]:
    """The CSV's blocks, split at the empty rows."""
    out: list[list[list[str]]] = [[]]
    for row in rows:
        if row:
            out[-1].append(row)
        else:
            out.append([])
    return out


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_is_excel_ready_utf8_with_bom_and_crlf() -> None:
    text = incident_csv(incident_doc(), fixture_alerts(), [])
    data = text.encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")
    body = text[len(BOM) :]
    assert "\r\n" in body
    assert "\n" not in body.replace("\r\n", "")
    assert "quản.trị" in data.decode("utf-8-sig")


def test_csv_header_block_holds_every_incident_field() -> None:
    header = blocks(parse_csv(incident_csv(incident_doc(), fixture_alerts(), [])))[0]
    assert header[0] == ["Incident"]
    assert header[1] == ["Field", "Value"]
    fields = {row[0]: row[1] for row in header[2:]}
    assert fields == {
        "Incident ID": INCIDENT_ID,
        "Title": "SSH brute force on web01.tttt.gov.vn",
        "Status": "investigating",
        "Severity": "high",
        "Agency": AGENCY,
        "Rule ID": "soc-ssh-bruteforce",
        "Rule": "SSH brute force",
        "Level": "high",
        "Alerts": "3",
        "First seen (UTC)": "2026-11-28T08:10:00.000000Z",
        "Last seen (UTC)": "2026-11-28T08:12:00.000000Z",
        "Created (UTC)": "2026-11-28T08:10:01.250000Z",
        "Updated (UTC)": "2026-11-28T09:00:00.999999Z",
        "Acknowledged (UTC)": "2026-11-28T08:25:01.250000Z",
        "Resolved (UTC)": "",
        "Time to acknowledge (s)": "900",
        "Time to resolve (s)": "",
        "Assignee": "nguyen.van.an",
        "Tags": "ssh; cổng-thông-tin",
        "ATT&CK techniques": "T1110; T1110.001",
        "Hosts": "web01.tttt.gov.vn",
        "Users": "root; quản.trị",
        "IP addresses": "45.95.147.12; 10.20.30.40",
    }


def test_csv_lists_comments_then_alerts_oldest_first_then_events() -> None:
    alerts = fixture_alerts()
    events = [a["events"][0] for a in alerts]
    _, comments, alert_rows, event_rows = blocks(
        parse_csv(incident_csv(incident_doc(), alerts, events))
    )
    assert comments == [
        ["Comments"],
        ["Time (UTC)", "Author", "Text"],
        [
            "2026-11-28T08:30:00.000000Z",
            "nguyen.van.an",
            "Đã chặn IP 45.95.147.12 trên tường lửa, đang kiểm tra nhật ký.",
        ],
        [
            "2026-11-28T08:45:00.000000Z",
            "tran.thi.binh",
            '\'=HYPERLINK("http://evil.example","Bấm vào đây")',
        ],
    ]
    assert alert_rows[0] == ["Alerts"]
    assert alert_rows[1] == [
        "Time (UTC)",
        "Alert ID",
        "Rule ID",
        "Rule",
        "Level",
        "Severity",
        "Host",
        "User",
        "Source IP",
        "Message",
        "ATT&CK techniques",
    ]
    assert [row[1] for row in alert_rows[2:]] == ["alert-0", "alert-1", "alert-2"]
    assert alert_rows[2] == [
        "2026-11-28T08:10:00.000000Z",
        "alert-0",
        "soc-ssh-bruteforce",
        "SSH brute force",
        "high",
        "73",
        "web01.tttt.gov.vn",
        "root",
        "45.95.147.12",
        "Failed password for root from 45.95.147.12 port 52000 ssh2",
        "T1110; T1110.001",
    ]
    assert alert_rows[3][7] == "'@admin"
    assert event_rows[0] == ["Events"]
    assert [row[1] for row in event_rows[2:]] == ["evt-0", "evt-1", "evt-2"]
    assert event_rows[4][4] == "quản.trị"


def test_csv_says_when_it_holds_only_some_of_the_alerts() -> None:
    alerts = fixture_alerts()[:2]
    rows = blocks(parse_csv(incident_csv(incident_doc(alert_count=1200), alerts, [])))[2]
    assert rows[0] == ["Alerts", "2 of 1200"]
    assert len(rows) == 2 + 2
    rows = blocks(
        parse_csv(incident_csv(incident_doc(alert_count=1200), alerts, [], language="vi"))
    )
    assert rows[2][0] == ["Cảnh báo", "2 trên 1200"]


def test_csv_in_vietnamese_labels_the_blocks_in_vietnamese() -> None:
    rows = parse_csv(incident_csv(incident_doc(), [], [], language="vi"))
    assert rows[0] == ["Sự cố"]
    assert rows[2] == ["Mã sự cố", INCIDENT_ID]
    with pytest.raises(ValueError, match="language"):
        incident_csv(incident_doc(), [], [], language="fr")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+33 1 23", "'+33 1 23"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("a=1", "a=1"),
        ("Máy chủ", "Máy chủ"),
        (None, ""),
        (900.0, "900"),
        (0.25, "0.25"),
        (["=cmd", "b"], "'=cmd; b"),
    ],
)
def test_cells_that_would_run_as_formulas_are_neutralised(value: Any, expected: str) -> None:
    assert safe_cell(value) == expected


def test_hostile_values_everywhere_stay_text_and_quoting_survives_a_round_trip() -> None:
    hostile = '=cmd|" /C calc"!A0'
    incident = incident_doc(title=hostile, assignee="-1+1", tags=["+x", 'a,"b"\nc'])
    alert = alert_doc(0, "45.95.147.12", "root", "2026-11-28T08:10:00.000000Z")
    alert["host"] = {"name": "@evil"}
    rows = parse_csv(incident_csv(incident, [alert], []))
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    fields = {row[0]: row[1] for row in blocks(rows)[0][2:]}
    assert fields["Title"] == "'" + hostile
    assert fields["Assignee"] == "'-1+1"
    assert fields["Tags"] == '\'+x; a,"b"\nc'
    assert blocks(rows)[2][2][6] == "'@evil"


def test_excel_csv_quotes_per_rfc_4180() -> None:
    text = excel_csv([["a,b", 'say "hi"', "line1\nline2", "plain"]])
    assert text == BOM + '"a,b","say ""hi""","line1\nline2",plain\r\n'


def test_csv_refuses_a_document_that_is_not_an_incident() -> None:
    with pytest.raises(ValueError, match=r"incident\.id"):
        incident_csv({"event": {"id": "x"}}, [], [])


# --- STIX 2.1 ----------------------------------------------------------------------------------

STIX_ID = re.compile(
    r"^[a-z0-9][a-z0-9-]+[a-z0-9]--[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)
STIX_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def export() -> dict[str, Any]:
    alerts = fixture_alerts()
    return incident_stix(
        incident_doc(),
        alerts,
        [a["events"][0] for a in alerts],
        producer="SOC tỉnh Thái Bình",
        now=NOW,
        agency_name="Sở Thông tin và Truyền thông",
    )


def by_type(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in bundle["objects"] if obj["type"] == kind]


def test_stix_bundle_passes_the_oasis_validator_in_strict_mode() -> None:
    bundle = export()
    options = ValidationOptions(version="2.1", strict=True)
    result = validate_instance(json.loads(json.dumps(bundle)), options)
    problems = [str(e) for e in result.errors] + [str(w) for w in result.warnings]
    assert result.is_valid, problems
    assert problems == []


def test_stix_common_properties_ids_and_timestamps_follow_the_spec() -> None:
    bundle = export()
    assert bundle["type"] == "bundle"
    assert STIX_ID.match(bundle["id"])
    ids = [obj["id"] for obj in bundle["objects"]]
    assert len(ids) == len(set(ids))
    for obj in bundle["objects"]:
        assert obj["spec_version"] == "2.1"
        assert STIX_ID.match(obj["id"]), obj["id"]
        assert obj["id"].startswith(obj["type"] + "--")
        for name in ("created", "modified"):
            if name in obj:
                assert STIX_MS.match(obj[name]), (obj["id"], obj[name])
        if "created" in obj:
            assert obj["modified"] >= obj["created"]
            assert uuid.UUID(obj["id"].split("--")[1]).version == 4  # the spec's SHOULD
        for extension in obj.get("extensions", {}):
            assert extension in ids
        for name, value in obj.items():
            refs = value if name.endswith("_refs") else [value] if name.endswith("_ref") else []
            for ref in refs:
                assert ref in ids, (obj["id"], name, ref)


def test_stix_incident_carries_the_platform_fields_as_custom_properties() -> None:
    (incident,) = by_type(export(), "incident")
    assert incident["name"] == "SSH brute force on web01.tttt.gov.vn"
    assert incident["created"] == "2026-11-28T08:10:01.250Z"
    assert incident["modified"] == "2026-11-28T09:00:00.999Z"
    assert incident["x_soc_status"] == "investigating"
    assert incident["x_soc_severity"] == "high"
    assert incident["x_soc_alert_count"] == 3
    assert incident["x_soc_acknowledged_at"] == "2026-11-28T08:25:01.250Z"
    assert incident["x_soc_tta_seconds"] == 900.0
    assert "x_soc_resolved_at" not in incident  # null: STIX has no null properties
    assert incident["labels"] == ["ssh", "cổng-thông-tin"]
    assert incident["external_references"] == [
        {"source_name": "soc-platform", "external_id": INCIDENT_ID}
    ]
    producer, agency = by_type(export(), "identity")
    assert producer["name"] == "SOC tỉnh Thái Bình"
    assert agency["name"] == "Sở Thông tin và Truyền thông"
    assert incident["created_by_ref"] == producer["id"]


def test_stix_techniques_become_attack_patterns_related_to_the_incident() -> None:
    bundle = export()
    patterns = {p["name"]: p for p in by_type(bundle, "attack-pattern")}
    assert set(patterns) == {"T1110", "T1110.001"}
    assert patterns["T1110.001"]["external_references"] == [
        {"source_name": "mitre-attack", "external_id": "T1110.001"}
    ]
    (incident,) = by_type(bundle, "incident")
    related = {
        r["target_ref"]
        for r in by_type(bundle, "relationship")
        if r["source_ref"] == incident["id"] and r["relationship_type"] == "related-to"
    }
    assert {p["id"] for p in patterns.values()} <= related
    sightings = {s["sighting_of_ref"]: s for s in by_type(bundle, "sighting")}
    brute = sightings[patterns["T1110"]["id"]]
    assert brute["count"] == 3
    assert brute["first_seen"] == "2026-11-28T08:10:00.000Z"
    assert brute["last_seen"] == "2026-11-28T08:12:00.000Z"
    assert len(brute["observed_data_refs"]) == 3
    agency = by_type(bundle, "identity")[1]
    assert brute["where_sighted_refs"] == [agency["id"]]


def test_stix_indicators_only_for_publicly_routable_sources() -> None:
    bundle = export()
    indicators = by_type(bundle, "indicator")
    assert [i["pattern"] for i in indicators] == ["[ipv4-addr:value = '45.95.147.12']"]
    assert indicators[0]["valid_from"] == "2026-11-28T08:10:00.000Z"
    kinds = {
        (r["relationship_type"], r["target_ref"].split("--")[0])
        for r in by_type(bundle, "relationship")
        if r["source_ref"] == indicators[0]["id"]
    }
    assert kinds == {("indicates", "attack-pattern"), ("based-on", "observed-data")}
    addresses = {o["value"] for o in by_type(bundle, "ipv4-addr")}
    assert addresses == {"45.95.147.12", "10.20.30.40"}


def test_stix_observables_use_the_spec_deterministic_ids() -> None:
    bundle = export()
    (ip,) = [o for o in by_type(bundle, "ipv4-addr") if o["value"] == "45.95.147.12"]
    expected = uuid.uuid5(SCO_NAMESPACE, '{"value":"45.95.147.12"}')
    assert ip["id"] == f"ipv4-addr--{expected}"
    users = {o["user_id"]: o["id"] for o in by_type(bundle, "user-account")}
    assert set(users) == {"root", "@admin", "quản.trị"}
    expected_user = uuid.uuid5(SCO_NAMESPACE, '{"user_id":"quản.trị"}')
    assert users["quản.trị"] == f"user-account--{expected_user}"


def test_stix_export_is_deterministic_and_ids_survive_a_later_export() -> None:
    assert json.dumps(export(), sort_keys=True) == json.dumps(export(), sort_keys=True)
    alerts = fixture_alerts()
    later = incident_stix(
        incident_doc(status="resolved", updated="2026-11-29T01:00:00Z", version="v8"),
        alerts,
        [],
        producer="SOC tỉnh Thái Bình",
        now=datetime(2026, 11, 29, 2, 0, tzinfo=UTC),
        agency_name="Sở Thông tin và Truyền thông",
    )
    first = export()
    stable = {o["id"] for o in first["objects"] if o["type"] != "report"}
    assert stable == {o["id"] for o in later["objects"] if o["type"] != "report"}
    assert later["id"] != first["id"]
    (old,) = by_type(first, "incident")
    (new,) = by_type(later, "incident")
    assert new["created"] == old["created"]
    assert new["modified"] > old["modified"]
    assert new["x_soc_status"] == "resolved"


def test_stix_report_publishes_every_object_at_now() -> None:
    bundle = export()
    (report,) = by_type(bundle, "report")
    assert report["published"] == "2026-11-28T23:59:30.123Z"
    others = {o["id"] for o in bundle["objects"] if o["type"] != "report"}
    assert set(report["object_refs"]) == others


def test_stix_does_not_copy_raw_event_records() -> None:
    text = json.dumps(export(), ensure_ascii=False)
    assert "Failed password" not in text
    assert "sshd[811]" not in text


def test_stix_alerts_without_addresses_or_accounts_add_no_observed_data() -> None:
    quiet = alert_doc(5, "45.95.147.12", "root", "2026-11-28T08:13:00Z")
    for name in ("source", "user"):
        quiet.pop(name)
        quiet["events"][0].pop(name)
    incident = copy.deepcopy(incident_doc())
    bundle = incident_stix(incident, [quiet], [], producer="SOC", now=NOW)
    assert by_type(bundle, "observed-data") == []
    assert by_type(bundle, "indicator") == []
    assert validate_instance(bundle, ValidationOptions(version="2.1", strict=True)).is_valid


def test_stix_refuses_missing_producer_or_alert_times() -> None:
    with pytest.raises(ValueError, match="producer"):
        incident_stix(incident_doc(), [], [], producer="", now=NOW)
    broken = alert_doc(0, "45.95.147.12", "root", "2026-11-28T08:10:00Z")
    del broken["@timestamp"]
    with pytest.raises(ValueError, match="alert-0"):
        incident_stix(incident_doc(), [broken], [], producer="SOC", now=NOW)


def test_stix_refuses_an_incident_without_usable_times() -> None:
    undated = incident_doc(created=None)
    del undated["@timestamp"]
    with pytest.raises(ValueError, match=r"none of incident\.created, @timestamp is set"):
        incident_stix(undated, [], [], producer="SOC", now=NOW)
    with pytest.raises(ValueError, match=r"incident\.updated: 'hôm qua'"):
        incident_stix(incident_doc(updated="hôm qua"), [], [], producer="SOC", now=NOW)


def test_stix_time_truncates_to_milliseconds_in_utc() -> None:
    assert stix_time("2026-11-28T15:10:00.987654+07:00") == "2026-11-28T08:10:00.987Z"
    assert stix_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"


@given(st.lists(st.lists(st.text(), min_size=1, max_size=5), min_size=1, max_size=5))
def test_any_cells_survive_the_csv_round_trip_neutralised(rows: list[list[str]]) -> None:
    parsed = parse_csv(excel_csv(rows))
    assert parsed == [[safe_cell(cell) for cell in row] for row in rows]
    for row in parsed:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_stix_ipv6_sources_become_ipv6_observables_and_indicators() -> None:
    alert = alert_doc(0, "2001:4860:4860::8888", "root", "2026-11-28T08:10:00Z")
    bundle = incident_stix(incident_doc(), [alert], [], producer="SOC", now=NOW)
    (address,) = by_type(bundle, "ipv6-addr")
    assert address["value"] == "2001:4860:4860::8888"
    (indicator,) = by_type(bundle, "indicator")
    assert indicator["pattern"] == "[ipv6-addr:value = '2001:4860:4860::8888']"
    result = validate_instance(bundle, ValidationOptions(version="2.1", strict=True))
    assert result.is_valid, [str(e) for e in result.errors]
