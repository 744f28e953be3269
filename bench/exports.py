"""Incident exports (CSV, STIX 2.1) and the monthly report on large inputs, each against the
plainest work on the same documents (`json.dumps` of them) measured in the same run. Prints
figures and ratios; never fails on a time."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soc.incidents.export import incident_csv, incident_stix  # noqa: E402
from soc.incidents.report import MonthlyInputs, monthly_report, monthly_report_markdown  # noqa: E402
from soc.timeutil import format_ts  # noqa: E402

START = datetime(2026, 11, 3, 2, tzinfo=UTC)


def alert(n: int) -> dict[str, Any]:
    at = format_ts(START + timedelta(seconds=n))
    ip = f"45.95.{n // 250 % 250}.{n % 250 + 1}" if n % 2 else f"10.0.{n // 250 % 250}.{n % 250}"
    event = {
        "@timestamp": at,
        "event": {"id": f"evt-{n}", "dataset": "linux.auth"},
        "host": {"name": "web01.tttt.gov.vn"},
        "source": {"ip": ip},
        "user": {"name": f"user{n % 50}"},
        "message": f"Failed password for user{n % 50} from {ip} port 52000 ssh2",
    }
    return {
        "@timestamp": at,
        "event": {"id": f"alert-{n}", "kind": "alert", "severity": 73},
        "rule": {"id": "soc-ssh-bruteforce", "name": "SSH brute force", "level": "high"},
        "threat": {"technique": {"id": ["T1110", "T1110.001"]}},
        "host": event["host"],
        "source": event["source"],
        "user": event["user"],
        "organization": {"id": "so-tttt"},
        "events": [event],
    }


def incident(n: int, alerts: int) -> dict[str, Any]:
    created = format_ts(START + timedelta(minutes=n))
    return {
        "@timestamp": created,
        "event": {"id": f"inc-{n}", "kind": "incident", "severity": 73},
        "organization": {"id": f"so-{n % 20}"},
        "incident": {
            "id": f"inc-{n}",
            "title": "SSH brute force on web01.tttt.gov.vn",
            "status": ("new", "acknowledged", "investigating", "resolved", "false_positive")[n % 5],
            "severity": ("low", "medium", "high", "critical")[n % 4],
            "alert_count": alerts,
            "first_seen": created,
            "last_seen": created,
            "created": created,
            "updated": created,
            "resolved_at": created if n % 5 >= 3 else None,
            "tta_seconds": float(60 + n % 3600),
            "ttr_seconds": float(600 + n % 86_400) if n % 5 >= 3 else None,
            "tags": ["ssh"],
            "comments": [{"id": "c", "author": "an", "at": created, "text": "Đã chặn IP."}],
            "rule": {"id": "soc-ssh-bruteforce", "name": "SSH brute force", "level": "high"},
            "version": "1",
        },
        "threat": {"technique": {"id": ["T1110", "T1110.001"]}},
        "related": {"hosts": ["web01.tttt.gov.vn"], "user": ["root"], "ip": ["45.95.1.2"]},
    }


def timed(work: Callable[[], object], rounds: int) -> float:
    """Best of `rounds`, in milliseconds: the least disturbed run on a shared machine."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def bench_incident(size: int, now: datetime) -> None:
    alerts = [alert(n) for n in range(size)]
    events = [a["events"][0] for a in alerts]
    doc = incident(0, size)
    rounds = 5 if size <= 1_000 else 2
    baseline = timed(lambda: json.dumps([doc, alerts, events], ensure_ascii=False), rounds)
    csv_ms = timed(lambda: incident_csv(doc, alerts, events), rounds)
    stix_ms = timed(lambda: incident_stix(doc, alerts, events, producer="SOC", now=now), rounds)
    objects = len(incident_stix(doc, alerts, events, producer="SOC", now=now)["objects"])
    print(
        f"incident CSV, {size:>6} alerts   {csv_ms:9.1f}   {baseline:13.1f}   {csv_ms / baseline:5.1f}x"
    )
    print(
        f"incident STIX, {size:>6} alerts  {stix_ms:9.1f}   {baseline:13.1f}   "
        f"{stix_ms / baseline:5.1f}x  ({objects} objects)"
    )


def main() -> int:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    print("what                                   ms   json.dumps ms   ratio")
    for size in (500, 1_000, 10_000):  # 500: the API's timeline cap
        bench_incident(size, now)
    incidents = [incident(n, 5) for n in range(10_000)]
    inputs = MonthlyInputs(
        month="2026-11",
        events_total=1_000_000,
        alerts_total=10_000,
        incidents=incidents,
        alerts_by_level=[("high", 6000), ("medium", 4000)],
        alerts_by_rule=[(f"rule {n}", 100 - n) for n in range(50)],
        alerts_by_host=[(f"host{n}", 200 - n) for n in range(50)],
        alerts_by_agency=[(f"so-{n}", 500) for n in range(20)],
        alerts_by_technique=[(f"T{1000 + n}", 50) for n in range(200)],
        events_by_agency=[(f"so-{n}", 50_000) for n in range(20)],
        sources={f"src-{n}": f"so-{n % 20}" for n in range(100)},
    )
    baseline = timed(lambda: json.dumps(incidents, ensure_ascii=False), 5)
    report_ms = timed(lambda: monthly_report(inputs, generated_at=now), 5)
    report = monthly_report(inputs, generated_at=now)
    markdown_ms = timed(lambda: monthly_report_markdown(report), 5)
    print(
        f"monthly report, 10,000 incidents {report_ms:9.1f}   {baseline:13.1f}   {report_ms / baseline:5.1f}x"
    )
    print(f"  its Markdown                    {markdown_ms:9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
