"""The incident API end to end in-process: queue filters and sorting, 409 on a concurrent
update, the timeline, exports, statistics, sources, rules and hunting."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests.api_world import A, B, world
from tests.test_tenant_isolation import HUNT_RULE


async def test_two_analysts_one_incident_the_second_gets_409(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        ident = w.incidents[A]
        first = await w.as_user("a-analyst")
        second = await w.as_user("a-admin")
        async with first, second:
            seen_1 = (await first.get(f"/api/v1/incidents/{ident}")).json()["incident"]["version"]
            seen_2 = (await second.get(f"/api/v1/incidents/{ident}")).json()["incident"]["version"]
            assert seen_1 == seen_2
            ok = await first.patch(
                f"/api/v1/incidents/{ident}", json={"version": seen_1, "status": "acknowledged"}
            )
            assert ok.status_code == 200
            late = await second.patch(
                f"/api/v1/incidents/{ident}", json={"version": seen_2, "status": "false_positive"}
            )
            assert late.status_code == 409
            assert "changed since you read it" in late.json()["detail"]
            now = (await second.get(f"/api/v1/incidents/{ident}")).json()
            assert now["incident"]["status"] == "acknowledged"
            illegal = await second.patch(
                f"/api/v1/incidents/{ident}",
                json={"version": now["incident"]["version"], "status": "new"},
            )
            assert illegal.status_code == 400
            assert "cannot become new" in illegal.json()["detail"]
            unknown = await second.patch(
                f"/api/v1/incidents/{ident}", json={"version": "1", "status": "done"}
            )
            assert unknown.status_code == 422
            audit = (await second.get(f"/api/v1/incidents/{ident}/audit")).json()
            assert [(e["user"]["name"], e["event"]["action"]) for e in audit] == [
                ("a-analyst", "incident.status")
            ]


async def test_queue_filters_sorts_and_pages(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        root = await w.as_user("root-admin")
        async with root:
            everything = (await root.get("/api/v1/incidents")).json()
            assert everything["total"] == 2
            only_b = (await root.get("/api/v1/incidents", params={"agency": B})).json()
            assert [i["organization"]["id"] for i in only_b["items"]] == [B]
            new = (await root.get("/api/v1/incidents", params={"status": "new"})).json()
            assert new["total"] == 2
            closed = await root.get("/api/v1/incidents", params={"status": "resolved"})
            assert closed.json()["total"] == 0
            page = (await root.get("/api/v1/incidents", params={"limit": 1, "offset": 1})).json()
            assert page["total"] == 2 and len(page["items"]) == 1
            by_count = await root.get(
                "/api/v1/incidents", params={"sort": "alert_count", "order": "asc"}
            )
            assert by_count.status_code == 200
            assert (await root.get("/api/v1/incidents", params={"sort": "nope"})).status_code == 422
            text = await root.get("/api/v1/incidents", params={"q": "web-so-b"})
            assert [i["organization"]["id"] for i in text.json()["items"]] == [B]


async def test_timeline_and_exports(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        ident = w.incidents[A]
        analyst = await w.as_user("a-analyst")
        async with analyst:
            timeline = (await analyst.get(f"/api/v1/incidents/{ident}/timeline")).json()
            assert len(timeline["alerts"]) == 3
            assert [e["event"]["id"] for e in timeline["events"]] == ["ev-0", "ev-1", "ev-2"]
            exported = await analyst.get(
                f"/api/v1/incidents/{ident}/export", params={"format": "csv"}
            )
            assert exported.headers["content-type"].startswith("text/csv")
            rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
            assert any(ident in row for row in rows)
            stix = await analyst.get(f"/api/v1/incidents/{ident}/export", params={"format": "stix"})
            bundle = stix.json()
            assert bundle["type"] == "bundle"
            assert any(o["type"] == "incident" for o in bundle["objects"])


async def test_statistics_sources_report_rules_and_hunting(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        root = await w.as_user("root-admin")
        async with root:
            summary = (
                await root.get("/api/v1/stats/summary", params={"start": "2026-11-28T00:00:00Z"})
            ).json()
            assert summary["alerts_total"] == 6
            assert {r["value"]: r["count"] for r in summary["by_agency"]} == {A: 3, B: 3}
            assert summary["by_technique"] == [{"value": "T1110", "count": 6}]
            assert summary["incidents_by_status"] == [{"value": "new", "count": 2}]
            sources = (await root.get("/api/v1/sources")).json()
            assert {s["id"] for s in sources} == {f"src-{A}", f"src-{B}"}
            assert all(s["silent"] for s in sources)  # their events are from 2026-11-28 08:0x
            report = await root.get("/api/v1/reports/monthly", params={"month": "2026-11"})
            assert report.status_code == 200, report.text
            assert report.json()["totals"]["alerts"] == 6
            markdown = await root.get(
                "/api/v1/reports/monthly", params={"month": "2026-11", "format": "markdown"}
            )
            assert markdown.text.startswith("# ")
            rules = (await root.get("/api/v1/rules")).json()
            ssh = next(r for r in rules if r["title"].lower().startswith("ssh"))
            assert ssh["enabled"] is True
            off = await root.post(f"/api/v1/rules/{ssh['id']}/disable")
            assert off.status_code == 200
            again = {r["id"]: r for r in (await root.get("/api/v1/rules")).json()}
            assert again[ssh["id"]]["enabled"] is False
            assert again[ssh["id"]]["disabled_reason"] == "disabled by id"
            await root.post(f"/api/v1/rules/{ssh['id']}/enable")
            coverage = (await root.get("/api/v1/stats/coverage")).json()
            assert "T1110" in coverage["techniques"]
            tested = await root.post(
                "/api/v1/rules/test",
                json={
                    "rule": HUNT_RULE,
                    "event": "<38>Nov 28 08:00:00 web sshd[1]: Failed password for root",
                },
            )
            assert tested.json()["matched"] is True
            missed = await root.post(
                "/api/v1/rules/test",
                json={"rule": HUNT_RULE, "event": "<38>Nov 28 08:00:00 web sshd[1]: Accepted key"},
            )
            assert missed.json()["matched"] is False
            broken = await root.post(
                "/api/v1/rules/test", json={"rule": "title: x\ndetection: {", "event": {}}
            )
            assert broken.status_code == 400 and "rule not usable" in broken.json()["detail"]
            hunt = (await root.post("/api/v1/hunt", json={"rule": HUNT_RULE})).json()
            assert hunt["total"] == 6 and hunt["scanned"] == 6
