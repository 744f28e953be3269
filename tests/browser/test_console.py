"""The console as analysts use it, in Chromium: log in, triage an incident from a syslog line to
its resolution, switch language, and see only one's own agency."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import ADMIN, ADMIN_PASSWORD, AGENCIES, Console, Platform

pytestmark = pytest.mark.e2e

AGENCY_PASSWORD = "Benh-vien-analyst-2026-pw"


def _host(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _invalid_user_line(host: str, user: str = "oracle") -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"<38>1 {now} {host} sshd 4242 - - Invalid user {user} from 198.51.100.9 port 50003"


def _incident_for(platform: Platform, host: str, user: str = ADMIN, **kw: Any) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        page = platform.api("GET", "/incidents", user, params={"q": host}, **kw)
        return next(
            (i for i in page["items"] if host in (i.get("related", {}).get("hosts") or [])), None
        )

    found: dict[str, Any] = platform.wait_for(find, what=f"an incident on {host}")
    return found


def test_login_lands_on_the_queue_in_vietnamese_and_logout_returns_to_login(
    console: Console,
) -> None:
    console.open()
    page = console.page
    page.get_by_role("heading", name="Đăng nhập").wait_for()
    assert page.locator("html").get_attribute("lang") == "vi"
    console.shot("01-login")
    console.login()
    page.get_by_role("heading", name="Hàng đợi sự cố").wait_for()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["soc_session"]["httpOnly"] is True
    assert cookies["soc_session"]["sameSite"] == "Strict"
    page.get_by_role("button", name="Đăng xuất").click()
    page.get_by_role("heading", name="Đăng nhập").wait_for()
    assert "soc_session" not in {c["name"] for c in page.context.cookies()}


def test_triage_an_incident_from_syslog_to_resolved(console: Console, platform: Platform) -> None:
    host = _host("web")
    console.login()
    page = console.page
    page.get_by_role("heading", name="Hàng đợi sự cố").wait_for()
    # Sent after the queue is open: the row must arrive through the live refresh.
    platform.send_udp([_invalid_user_line(host)])
    row = page.locator("[data-testid=incident-row]", has_text=host)
    row.wait_for(timeout=30_000)
    console.shot("02-queue")
    shown = row.locator("time")
    instant = datetime.fromisoformat(shown.get_attribute("datetime").replace("Z", "+00:00"))
    local = instant.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    assert shown.inner_text() == local.strftime("%H:%M:%S %d/%m/%y")

    # Keyboard: filter to this host, then j/k to select and Enter to open.
    search = page.get_by_label("Từ khóa")
    search.fill(host)
    search.press("Enter")
    page.locator("[data-testid=incident-row]").first.wait_for()
    assert page.locator("[data-testid=incident-row]").count() == 1
    page.locator("main").focus()
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"#/incidents/[^?]+$"))
    page.get_by_role("heading", name=re.compile(host)).wait_for()
    page.get_by_text("Invalid user oracle").first.wait_for(state="attached")
    assert page.get_by_text("T1110").count() >= 1 or page.get_by_text("T1078").count() >= 1
    console.shot("03-incident-new")

    page.get_by_role("button", name="Tiếp nhận").click()
    page.get_by_text("Đã tiếp nhận sự cố.").wait_for()
    page.locator(".facts .badge", has_text="Đã tiếp nhận").wait_for()

    comment = f"Đã gọi cán bộ IT của cơ quan về máy {host}"
    page.get_by_label("Ghi chú mới").fill(comment)
    page.get_by_role("button", name="Gửi ghi chú").click()
    page.locator(".comments", has_text=comment).wait_for()

    page.get_by_role("button", name="Đã xử lý xong").click()
    page.get_by_text("Sự cố đã được đóng (đã xử lý).").wait_for()
    page.locator(".facts .badge", has_text="Đã xử lý").wait_for()
    page.get_by_role("button", name="Mở lại").wait_for()
    audit = page.locator("section[aria-labelledby=audit-title] tbody tr")
    platform.wait_for(lambda: audit.count() >= 3, what="three audit entries in the page")
    console.shot("04-incident-resolved")

    stored = _incident_for(platform, host)["incident"]
    assert stored["status"] == "resolved"
    assert stored["acknowledged_at"] and stored["resolved_at"]
    assert stored["tta_seconds"] is not None and stored["ttr_seconds"] is not None
    assert [c["text"] for c in stored["comments"]] == [comment]
    assert stored["comments"][0]["author"] == ADMIN


def test_a_change_made_elsewhere_meanwhile_is_not_overwritten(
    console: Console, platform: Platform
) -> None:
    host = _host("db")
    platform.send_udp([_invalid_user_line(host)])
    ident = _incident_for(platform, host)["incident"]["id"]
    console.login()
    console.open(f"/incidents/{ident}")
    page = console.page
    page.get_by_role("heading", name=re.compile(host)).wait_for()
    # Another analyst assigns it while this page still shows the version it loaded.
    current = platform.api("GET", f"/incidents/{ident}")["incident"]["version"]
    platform.api("PATCH", f"/incidents/{ident}", json={"version": current, "assignee": "lan"})
    console.expected_failures.add(f"/api/v1/incidents/{ident}")  # the 409 itself
    page.get_by_role("button", name="Tiếp nhận").click()
    page.get_by_text("Sự cố vừa được người khác thay đổi").wait_for()
    page.locator(".facts dd", has_text="lan").wait_for()
    assert platform.api("GET", f"/incidents/{ident}")["incident"]["status"] == "new"
    console.shot("07-incident-conflict")


def test_language_switch_changes_every_string_and_is_remembered(console: Console) -> None:
    console.login()
    page = console.page
    page.get_by_role("heading", name="Hàng đợi sự cố").wait_for()
    page.get_by_label("Ngôn ngữ").select_option("en")
    page.get_by_role("heading", name="Incident queue").wait_for()
    # The title follows the page a frame after it renders (an effect): waited for, not raced.
    page.wait_for_function(
        "title => document.title === title", arg="Incidents · Provincial SOC", timeout=10_000
    )
    nav = page.get_by_role("navigation", name="Main navigation")
    for name in ("Incidents", "Dashboard", "Search", "Rules", "Administration"):
        assert nav.get_by_role("link", name=name).count() == 1, name
    assert page.locator("html").get_attribute("lang") == "en"
    console.shot("05-queue-english")
    page.reload()
    page.get_by_role("heading", name="Incident queue").wait_for()
    page.get_by_label("Language").select_option("vi")
    page.get_by_role("heading", name="Hàng đợi sự cố").wait_for()
    assert page.get_by_role("navigation", name="Điều hướng chính").count() == 1


def test_agency_user_sees_only_their_agency(
    console: Console, new_console: Any, platform: Platform
) -> None:
    hospital_host, portal_host = _host("hr"), _host("portal")
    platform.send_udp([_invalid_user_line(hospital_host, "nurse")], source=AGENCIES["benh-vien"])
    platform.send_udp([_invalid_user_line(portal_host, "editor")], source=AGENCIES["so-tttt"])
    hospital = _incident_for(platform, hospital_host)
    portal = _incident_for(platform, portal_host)
    assert hospital["organization"]["id"] == "benh-vien"
    assert portal["organization"]["id"] == "so-tttt"

    existing = {a["id"] for a in platform.api("GET", "/agencies")}
    for agency in set(AGENCIES) - existing:
        platform.api("POST", "/agencies", json={"id": agency, "name": agency})
    username = f"bv-{uuid.uuid4().hex[:6]}"
    platform.api(
        "POST",
        "/users",
        json={
            "username": username,
            "password": AGENCY_PASSWORD,
            "role": "analyst",
            "agencies": ["benh-vien"],
            "display_name": "Cán bộ Bệnh viện",
        },
    )

    user = new_console(locale="vi-VN")
    user.login(username, AGENCY_PASSWORD)
    page = user.page
    page.locator("[data-testid=incident-row]", has_text=hospital_host).wait_for()
    agencies = set(page.locator("[data-testid=incident-row] td:nth-child(3)").all_inner_texts())
    assert agencies == {"benh-vien"}
    assert page.locator("[data-testid=incident-row]", has_text=portal_host).count() == 0
    user.shot("06-agency-queue")

    user.open("/search?kind=alerts&range=all")
    page.locator("tbody tr").first.wait_for()
    assert set(page.locator("tbody tr td:nth-child(4)").all_inner_texts()) == {"benh-vien"}

    elsewhere = f"/api/v1/incidents/{portal['incident']['id']}"
    user.expected_failures.add(elsewhere)
    user.open(elsewhere.removeprefix("/api/v1"))
    page.get_by_role("alert").wait_for()
    assert page.get_by_role("heading", name=re.compile(portal_host)).count() == 0
    assert page.get_by_role("link", name="Quản trị").count() == 0

    seen = platform.api(
        "GET", "/incidents", username, password=AGENCY_PASSWORD, params={"limit": 1000}
    )
    assert {i["organization"]["id"] for i in seen["items"]} == {"benh-vien"}


def test_keyboard_alone_logs_in_and_every_focus_is_visible(console: Console) -> None:
    console.open()
    page = console.page
    page.get_by_role("heading", name="Đăng nhập").wait_for()
    # Focus order: username (focused on arrival), password, the language switch is before them.
    assert page.evaluate("() => document.activeElement.name") == "username"
    page.keyboard.type(ADMIN)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.name") == "password"
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Hàng đợi sự cố").wait_for()

    # First Tab: the skip link, then the brand and the navigation, each with a visible outline.
    seen = []
    for _ in range(4):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => {
              const el = document.activeElement, style = getComputedStyle(el);
              return [el.textContent.trim(), style.outlineStyle, parseFloat(style.outlineWidth)];
            }"""
        )
        assert focused[1] != "none" and focused[2] >= 2, f"no visible focus on {focused[0]!r}"
        seen.append(focused[0])
    assert seen[0] == "Bỏ qua, tới nội dung chính"
    assert seen[2:] == ["Sự cố", "Tổng quan"]
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Tổng quan", exact=True).wait_for()


def test_a_products_own_detection_opens_an_incident_that_says_what_it_found(
    console: Console, platform: Platform
) -> None:
    """An endpoint suite's virus detection over CEF (rules/external/): the incident's timeline
    shows the rule and what the product found, from the rule's details."""
    host = _host("apex")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    platform.send_udp(
        [
            f"<134>1 {now} {host} CEF - - - CEF:0|Trend Micro|Apex One|14|AV|Virus found|9|"
            "act=Quarantine fname=eicar.com filePath=C:\\\\Users\\\\bob\\\\eicar.com duser=bob"
        ]
    )
    incident = _incident_for(platform, host)["incident"]
    assert incident["title"] == f"Security Product Detection Over CEF - High Severity — {host}"
    console.login()
    console.open(f"/incidents/{incident['id']}")
    page = console.page
    page.get_by_role("heading", name=re.compile(host)).wait_for()
    page.locator(".timeline .entry.alert summary").filter(
        has_text="Trend Micro Apex One: Virus found ¦ Quarantine ¦ File: C:\\Users\\bob\\eicar.com"
    ).wait_for()
    page.locator(".facts dd", has_text="Trend Micro Apex One: Virus found").wait_for()
    console.shot("08-incident-external-detection")


def test_times_have_two_digit_days_and_months_in_vietnamese(
    console: Console, platform: Platform
) -> None:
    """An alert of 5 March at 01:02:03 UTC reads 08:02:03 05/03/26 in Hanoi: every field two
    digits, whatever today's date (Vietnamese's short date style alone gives 5/3/26)."""
    host = _host("early")
    platform.send_udp(
        [f"<38>1 2026-03-05T01:02:03.000000Z {host} sshd 4242 - - Invalid user oracle"
         " from 198.51.100.9 port 50003"]
    )  # fmt: skip
    incident = _incident_for(platform, host)["incident"]
    console.login()
    console.open(f"/incidents/{incident['id']}")
    shown = console.page.locator(".timeline .entry.alert summary time").first
    shown.wait_for()
    assert shown.get_attribute("datetime") == "2026-03-05T01:02:03.000000Z"
    assert shown.inner_text() == "08:02:03 05/03/26"


def test_a_viewer_reads_incidents_but_is_offered_no_change(
    new_console: Any, platform: Platform
) -> None:
    host = _host("viewer")
    platform.send_udp([_invalid_user_line(host)])
    ident = _incident_for(platform, host)["incident"]["id"]
    username = f"xem-{uuid.uuid4().hex[:6]}"
    platform.api(
        "POST",
        "/users",
        json={"username": username, "password": AGENCY_PASSWORD, "role": "viewer"},
    )
    viewer = new_console()
    viewer.login(username, AGENCY_PASSWORD)
    viewer.open(f"/incidents/{ident}")
    page = viewer.page
    page.get_by_role("heading", name=re.compile(host)).wait_for()
    page.get_by_role("heading", name="Dòng thời gian").wait_for()
    assert page.get_by_role("button", name="Tiếp nhận").count() == 0
    assert page.get_by_label("Ghi chú mới").count() == 0
    assert page.get_by_role("link", name="Quản trị").count() == 0
