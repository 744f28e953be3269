"""The monthly report: figures computed by hand for a small month of a province, month bounds in
the province's time zone, and the Markdown and CSV renderings."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from soc.incidents.export import BOM
from soc.incidents.report import (
    MonthlyInputs,
    month_bounds,
    monthly_report,
    monthly_report_csv,
    monthly_report_markdown,
    monthly_report_rows,
)

GENERATED = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)  # 08:30 on 1 December in Hà Nội
NAMES = {"so-tttt": "Sở Thông tin và Truyền thông", "so-yte": "Sở Y tế", "so-gd": "Sở Giáo dục"}


def incident(
    ident: str,
    agency: str,
    created: str,
    status: str,
    severity: str,
    *,
    tta: float | None = None,
    ttr: float | None = None,
    resolved_at: str | None = None,
    alerts: int = 1,
    title: str = "SSH brute force — web01",
) -> dict[str, Any]:
    return {
        "@timestamp": created,
        "event": {"id": ident, "kind": "incident", "severity": 47},
        "organization": {"id": agency},
        "incident": {
            "id": ident,
            "title": title,
            "status": status,
            "severity": severity,
            "alert_count": alerts,
            "first_seen": created,
            "last_seen": created,
            "created": created,
            "updated": created,
            "acknowledged_at": None,
            "resolved_at": resolved_at,
            "tta_seconds": tta,
            "ttr_seconds": ttr,
            "assignee": None,
            "tags": [],
            "comments": [],
            "rule": {"id": "r", "name": "SSH brute force", "level": severity},
            "version": "1",
        },
    }


def november() -> list[dict[str, Any]]:
    """Four incidents opened in November (Hà Nội time), one just after, one just before that
    was resolved in November."""
    return [
        incident(
            "A",
            "so-tttt",
            "2026-11-03T02:00:00Z",
            "resolved",
            "high",
            tta=600,
            ttr=7200,
            resolved_at="2026-11-03T04:00:00Z",
            alerts=12,
        ),
        incident(
            "B", "so-tttt", "2026-11-10T10:00:00Z", "investigating", "critical", tta=1800, alerts=3
        ),
        incident(
            "C",
            "so-yte",
            "2026-11-20T08:00:00Z",
            "false_positive",
            "medium",
            tta=300,
            ttr=900,
            resolved_at="2026-11-20T08:15:00Z",
        ),
        # 00:30 on 1 December in Hà Nội: December's.
        incident("D", "so-yte", "2026-11-30T17:30:00Z", "new", "low"),
        # 23:30 on 31 October in Hà Nội: October's, but resolved in November.
        incident(
            "E",
            "so-yte",
            "2026-10-31T16:30:00Z",
            "resolved",
            "high",
            tta=100,
            ttr=5000,
            resolved_at="2026-11-02T01:00:00Z",
        ),
        # Midnight on 1 November in Hà Nội: the first instant of November.
        incident(
            "F",
            "so-tttt",
            "2026-10-31T17:00:00Z",
            "new",
            "low",
            alerts=2,
            title="Đăng nhập thất bại nhiều lần — máy-chủ-kế-toán",
        ),
    ]


def province_inputs(**changes: Any) -> MonthlyInputs:
    values: dict[str, Any] = {
        "month": "2026-11",
        "events_total": 1_545_678,
        "alerts_total": 60,
        "incidents": november(),
        "alerts_by_level": [("high", 30), ("medium", 20), ("low", 9), ("critical", 1)],
        "alerts_by_rule": [
            ("SSH brute force", 30),
            ("Web shell upload", 1),
            ("Sudo to root", 20),
            ("Port scan", 9),
        ],
        "alerts_by_host": [("web01", 40), ("his-db", 15), ("máy-chủ-kế-toán", 5)],
        "alerts_by_agency": [("so-tttt", 45), ("so-yte", 15)],
        "alerts_by_technique": [("T1110", 30), ("T1505.003", 1), ("T1548.003", 20)],
        "events_by_agency": [("so-tttt", 1_200_000), ("so-yte", 345_678)],
        "events_by_source": [
            ("fw-tttt", 1_000_000),
            ("syslog-tttt", 200_000),
            ("his-yte", 345_678),
        ],
        "sources": {
            "fw-tttt": "so-tttt",
            "syslog-tttt": "so-tttt",
            "his-yte": "so-yte",
            "fw-gd": "so-gd",
        },
        "agency_names": NAMES,
        "province": "Thái Bình",
    }
    values.update(changes)
    return MonthlyInputs(**values)


# --- month bounds ------------------------------------------------------------------------------


def test_month_bounds_are_local_midnights_in_utc() -> None:
    assert month_bounds("2026-11", "Asia/Ho_Chi_Minh") == (
        datetime(2026, 10, 31, 17, tzinfo=UTC),
        datetime(2026, 11, 30, 17, tzinfo=UTC),
    )


def test_month_bounds_wrap_the_year_and_accept_a_tzinfo() -> None:
    assert month_bounds("2026-12", ZoneInfo("Asia/Ho_Chi_Minh")) == (
        datetime(2026, 11, 30, 17, tzinfo=UTC),
        datetime(2026, 12, 31, 17, tzinfo=UTC),
    )
    assert month_bounds("2027-01", "UTC") == (
        datetime(2027, 1, 1, tzinfo=UTC),
        datetime(2027, 2, 1, tzinfo=UTC),
    )


def test_month_bounds_follow_a_daylight_saving_change() -> None:
    # Berlin goes from UTC+1 to UTC+2 on 29 March 2026: the month is an hour short.
    start, end = month_bounds("2026-03", "Europe/Berlin")
    assert start == datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert end == datetime(2026, 3, 31, 22, tzinfo=UTC)


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "2026-1", "11/2026", "", "2026-11-01"])
def test_month_bounds_refuse_what_is_not_a_month(month: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds(month)


def test_month_bounds_refuse_an_unknown_time_zone() -> None:
    with pytest.raises(ValueError, match="Asia/Hanoi_City"):
        month_bounds("2026-11", "Asia/Hanoi_City")


# --- figures -----------------------------------------------------------------------------------


def test_province_report_totals_statuses_and_severities() -> None:
    report = monthly_report(province_inputs(), generated_at=GENERATED)
    assert report["start"] == "2026-10-31T17:00:00.000000Z"
    assert report["end"] == "2026-11-30T17:00:00.000000Z"
    assert report["agency"] is None
    assert report["totals"] == {
        "events": 1_545_678,
        "alerts": 60,
        "incidents": 4,  # A, B, C, F
        "incidents_open": 2,  # B investigating, F new
        "incidents_resolved_in_month": 3,  # A, C and October's E
        "sources": 4,
        "sources_silent": 1,
    }
    assert report["incidents_by_status"] == {
        "new": 1,
        "acknowledged": 0,
        "investigating": 1,
        "resolved": 1,
        "false_positive": 1,
    }
    assert report["incidents_by_severity"] == {
        "informational": 0,
        "low": 1,
        "medium": 1,
        "high": 1,
        "critical": 1,
    }
    assert report["alerts_by_severity"] == {
        "informational": 0,
        "low": 9,
        "medium": 20,
        "high": 30,
        "critical": 1,
    }


def test_mtta_and_mttr_over_the_months_incidents_only() -> None:
    report = monthly_report(province_inputs(), generated_at=GENERATED)
    # A 600, B 1800, C 300 (E is October's); MTTR: A 7200, C 900.
    assert report["mtta"] == {"count": 3, "mean_seconds": 900.0, "median_seconds": 600.0}
    assert report["mttr"] == {"count": 2, "mean_seconds": 4050.0, "median_seconds": 4050.0}


def test_top_lists_rank_by_count_then_name() -> None:
    report = monthly_report(province_inputs(), generated_at=GENERATED, top=3)
    assert report["top_rules"] == [
        {"value": "SSH brute force", "count": 30},
        {"value": "Sudo to root", "count": 20},
        {"value": "Port scan", "count": 9},
    ]
    assert [row["value"] for row in report["top_hosts"]] == ["web01", "his-db", "máy-chủ-kế-toán"]
    assert report["techniques"] == [
        {"value": "T1110", "count": 30},
        {"value": "T1548.003", "count": 20},
        {"value": "T1505.003", "count": 1},
    ]
    # B critical, A high (12 alerts), then the two lows/mediums by level: C medium.
    assert [i["id"] for i in report["top_incidents"]] == ["B", "A", "C"]


def test_province_report_has_a_row_per_agency() -> None:
    report = monthly_report(province_inputs(), generated_at=GENERATED)
    assert report["agencies"] == [
        {
            "agency": "so-gd",
            "name": "Sở Giáo dục",
            "events": 0,
            "alerts": 0,
            "incidents": 0,
            "incidents_open": 0,
            "incidents_high_or_critical": 0,
            "incidents_resolved_in_month": 0,
            "mtta_mean_seconds": None,
            "mttr_mean_seconds": None,
            "sources": 1,
            "sources_silent": 1,
        },
        {
            "agency": "so-tttt",
            "name": "Sở Thông tin và Truyền thông",
            "events": 1_200_000,
            "alerts": 45,
            "incidents": 3,
            "incidents_open": 2,
            "incidents_high_or_critical": 2,
            "incidents_resolved_in_month": 1,
            "mtta_mean_seconds": 1200.0,
            "mttr_mean_seconds": 7200.0,
            "sources": 2,
            "sources_silent": 0,
        },
        {
            "agency": "so-yte",
            "name": "Sở Y tế",
            "events": 345_678,
            "alerts": 15,
            "incidents": 1,
            "incidents_open": 0,
            "incidents_high_or_critical": 0,
            "incidents_resolved_in_month": 2,
            "mtta_mean_seconds": 300.0,
            "mttr_mean_seconds": 900.0,
            "sources": 1,
            "sources_silent": 0,
        },
    ]
    assert report["silent_sources"] == [{"id": "fw-gd", "agency": "so-gd"}]


def test_an_incident_listed_twice_counts_once() -> None:
    twice = november() + november()[:2]
    report = monthly_report(province_inputs(incidents=twice), generated_at=GENERATED)
    assert report == monthly_report(province_inputs(), generated_at=GENERATED)


def test_agency_report_keeps_to_its_agency() -> None:
    yte = [i for i in november() if i["organization"]["id"] == "so-yte"]
    report = monthly_report(
        province_inputs(
            agency="so-yte",
            incidents=yte,
            events_total=345_678,
            alerts_total=15,
            alerts_by_agency=[("so-yte", 15)],
            events_by_agency=[("so-yte", 345_678)],
        ),
        generated_at=GENERATED,
    )
    assert report["agency_name"] == "Sở Y tế"
    assert report["totals"]["incidents"] == 1
    assert report["totals"]["incidents_resolved_in_month"] == 2
    assert report["totals"]["sources"] == 1
    assert report["silent_sources"] == []
    assert [row["agency"] for row in report["agencies"]] == ["so-yte"]
    assert report["mtta"] == {"count": 1, "mean_seconds": 300.0, "median_seconds": 300.0}


def test_agency_report_refuses_another_agencys_incident() -> None:
    with pytest.raises(ValueError, match="incident A belongs to 'so-tttt', not to 'so-yte'"):
        monthly_report(province_inputs(agency="so-yte"), generated_at=GENERATED)


def test_a_month_without_data_reports_zeros_and_no_means() -> None:
    empty = MonthlyInputs(month="2026-02", events_total=0, alerts_total=0, incidents=[])
    report = monthly_report(empty, generated_at=GENERATED)
    assert report["totals"]["incidents"] == 0
    assert report["mtta"] == {"count": 0, "mean_seconds": None, "median_seconds": None}
    assert report["agencies"] == []
    assert "Không có." in monthly_report_markdown(report)


def test_report_is_json_serialisable() -> None:
    report = monthly_report(province_inputs(), generated_at=GENERATED)
    assert json.loads(json.dumps(report, ensure_ascii=False)) == report


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alerts_by_rule": [("SSH", -1)]}, r"alerts_by_rule\[0\]"),
        ({"events_by_agency": [("so-yte",)]}, r"events_by_agency\[0\]"),
        ({"alerts_total": -5}, "alerts_total"),
        ({"month": "2026-11-01"}, "YYYY-MM"),
        ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ],
)
def test_bad_inputs_are_refused_with_the_field_named(changes: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        monthly_report(province_inputs(**changes), generated_at=GENERATED)


def test_incidents_of_no_agency_get_a_row_that_says_so() -> None:
    orphan = incident("G", "", "2026-11-05T00:00:00Z", "new", "medium")
    del orphan["organization"]
    report = monthly_report(
        province_inputs(incidents=[*november(), orphan]), generated_at=GENERATED
    )
    assert report["agencies"][0]["agency"] == ""
    assert report["agencies"][0]["incidents"] == 1
    lines = monthly_report_markdown(report).splitlines()
    assert "| Chưa xác định cơ quan | 0 | 0 | 1 | 1 | 0 | 0 | — | — | 0 | 0 |" in lines


def test_top_must_be_positive() -> None:
    with pytest.raises(ValueError, match="top"):
        monthly_report(province_inputs(), generated_at=GENERATED, top=0)


def test_bad_incidents_are_refused_with_the_incident_named() -> None:
    broken = november()
    broken[1]["incident"]["status"] = "closed"
    with pytest.raises(ValueError, match="incident B: unknown status 'closed'"):
        monthly_report(province_inputs(incidents=broken), generated_at=GENERATED)
    broken = november()
    broken[2]["incident"]["created"] = "hôm qua"
    with pytest.raises(ValueError, match="incident C: created"):
        monthly_report(province_inputs(incidents=broken), generated_at=GENERATED)
    broken = november()
    broken[0]["incident"]["tta_seconds"] = -3
    with pytest.raises(ValueError, match="incident A: tta_seconds"):
        monthly_report(province_inputs(incidents=broken), generated_at=GENERATED)


# --- renderings --------------------------------------------------------------------------------


def test_markdown_in_vietnamese_for_the_leadership() -> None:
    text = monthly_report_markdown(monthly_report(province_inputs(), generated_at=GENERATED))
    lines = text.splitlines()
    assert lines[0] == "# Báo cáo giám sát an toàn thông tin tháng 11/2026"
    assert "**Phạm vi:** Toàn tỉnh (Thái Bình)  " in lines
    assert "**Thời gian:** 01/11/2026 đến 30/11/2026 (Asia/Ho\\_Chi\\_Minh)  " in lines
    assert "**Lập lúc:** 01/12/2026 08:30  " in lines
    assert "## 1. Tổng quan" in lines
    assert "| Sự kiện đã thu thập | 1.545.678 |" in lines
    assert "| Thời gian tiếp nhận (MTTA), trung bình | 15 phút |" in lines
    assert "| Thời gian tiếp nhận (MTTA), trung vị | 10 phút |" in lines
    assert "| Thời gian xử lý (MTTR), trung bình | 1 giờ 7 phút |" in lines
    assert "| Cảnh báo nhầm | 1 |" in lines
    assert "| Nghiêm trọng | 1 |" in lines
    tttt = "| Sở Thông tin và Truyền thông | 1.200.000 | 45 | 3 | 2 | 2 | 1 | 20 phút | 2 giờ |"
    assert tttt + " 2 | 0 |" in lines
    assert "## 9. Theo cơ quan, đơn vị" in lines
    assert "## 10. Nguồn nhật ký không gửi dữ liệu trong tháng" in lines
    assert "| fw-gd | Sở Giáo dục |" in lines
    assert "| B | SSH brute force — web01 | Sở Thông tin và Truyền thông | Nghiêm trọng |" in text


def test_markdown_in_english_and_for_one_agency_has_no_agency_section() -> None:
    yte = [i for i in november() if i["organization"]["id"] == "so-yte"]
    report = monthly_report(province_inputs(agency="so-yte", incidents=yte), generated_at=GENERATED)
    text = monthly_report_markdown(report, language="en")
    assert text.startswith("# Security monitoring report for 2026-11\n")
    assert "**Scope:** Sở Y tế  " in text
    assert "| Events collected | 1,545,678 |" in text
    assert "By agency" not in text
    assert "## 9. Log sources that sent nothing in the month" in text
    with pytest.raises(ValueError, match="language"):
        monthly_report_markdown(report, language="fr")


def test_markdown_escapes_names_that_would_inject_markup() -> None:
    hostile = "<img src=x onerror=alert(1)> | *bold* [link](http://x)\nnew line"
    report = monthly_report(province_inputs(alerts_by_rule=[(hostile, 5)]), generated_at=GENERATED)
    text = monthly_report_markdown(report)
    assert "<img" not in text.replace("\\<img", "")
    expected = (
        "| \\<img src=x onerror=alert(1)\\> \\| \\*bold\\* \\[link\\](http://x) new line | 5 |"
    )
    assert expected in text.splitlines()


def test_csv_rows_hold_plain_numbers_for_a_spreadsheet() -> None:
    report = monthly_report(province_inputs(), generated_at=GENERATED)
    rows = monthly_report_rows(report)
    assert rows[0] == ["Báo cáo giám sát an toàn thông tin tháng 11/2026"]
    assert ["Sự kiện đã thu thập", 1_545_678] in rows
    assert ["Thời gian tiếp nhận (MTTA) (giây), trung bình", 900.0] in rows
    assert ["Sở Y tế", 345_678, 15, 1, 0, 0, 2, 300.0, 900.0, 1, 0] in rows


def test_csv_of_the_report_parses_back_and_neutralises_formulas() -> None:
    report = monthly_report(
        province_inputs(alerts_by_host=[("=cmd|' /C calc'!A0", 3)]), generated_at=GENERATED
    )
    text = monthly_report_csv(report, language="en")
    assert text.startswith(BOM)
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text[len(BOM) :], newline="")))
    assert ["Events collected", "1545678"] in rows
    assert ["Time to acknowledge (MTTA) (seconds), median", "600"] in rows
    assert ["'=cmd|' /C calc'!A0", "3"] in rows
    header = rows.index(["By agency"]) + 1
    assert rows[header][:4] == ["Agency", "Events collected", "Alerts", "New incidents"]
    assert rows[header + 2][0] == "Sở Thông tin và Truyền thông"
