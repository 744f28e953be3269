"""Every page renders, at a laptop's 1366x768 and on a tablet, without a browser error, with
labelled controls and enough contrast (axe-core), and leaves a screenshot behind."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import AXE, Console, Platform

pytestmark = pytest.mark.e2e

AXE_RUN = """async () => {
  const result = await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']});
  return result.violations.map(
    (v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}"""
#: A rule an analyst might paste: root's failed passwords over SSH.
ROOT_PASSWORD_RULE = """\
title: Root password guessing over SSH
id: 3f1c2b7a-0d4e-4c8f-9a61-5b2e7d9c0a13
status: experimental
logsource:
    product: linux
    service: sshd
detection:
    selection:
        event.action: ssh_login
        event.outcome: failure
        user.name: root
    condition: selection
level: medium
"""
FAILED_ROOT_LINE = (
    "<38>Nov 28 10:00:00 web9 sshd[1]: Failed password for root from 203.0.113.7 port 5 ssh2"
)
PAGES = [
    ("queue", "/incidents", "Hàng đợi sự cố"),
    ("dashboard", "/dashboard", "Tổng quan"),
    ("search-alerts", "/search?kind=alerts", "Tìm kiếm"),
    ("search-events", "/search?kind=events", "Tìm kiếm"),
    ("hunt", "/search?kind=hunt", "Tìm kiếm"),
    ("rules", "/rules", "Luật phát hiện"),
    ("admin-users", "/admin?tab=users", "Quản trị"),
    ("admin-agencies", "/admin?tab=agencies", "Quản trị"),
    ("admin-apikeys", "/admin?tab=apikeys", "Quản trị"),
    ("admin-sources", "/admin?tab=sources", "Quản trị"),
    ("admin-audit", "/admin?tab=audit", "Quản trị"),
]


def _seed(platform: Platform) -> None:
    platform.send_udp(
        [
            "<38>Nov 28 10:00:00 seed01 sshd[7]: Failed password for root from 203.0.113.7 "
            "port 50001 ssh2"
        ]
    )
    platform.wait_for(
        lambda: platform.api("GET", "/incidents")["total"] > 0, what="a first incident"
    )


@pytest.mark.parametrize(
    ("size", "viewport"),
    [("laptop", {"width": 1366, "height": 768}), ("tablet", {"width": 768, "height": 1024})],
)
def test_every_page_renders_without_errors(
    new_console: Any, platform: Platform, size: str, viewport: dict[str, int]
) -> None:
    _seed(platform)
    console: Console = new_console(viewport=viewport)
    console.login()
    page = console.page
    for name, route, heading in PAGES:
        console.open(route)
        page.get_by_role("heading", name=heading, exact=True).first.wait_for()
        page.wait_for_load_state("networkidle")
        shown = page.locator(".error").all_inner_texts()
        assert shown == [], f"{route}: {shown}"
        # Nothing wider than the screen but tables, which scroll inside their own box.
        overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 1, f"{route} overflows the {size} viewport by {overflow}px"
        console.shot(f"{size}-{name}")
    incident = platform.api("GET", "/incidents")["items"][0]["incident"]
    console.open(f"/incidents/{incident['id']}")
    page.get_by_role("heading", name="Dòng thời gian").wait_for()
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth - innerWidth") <= 1
    console.shot(f"{size}-incident")
    if page.get_by_role("link", name="Thông báo").count():
        console.open("/notifications")
        page.get_by_role("heading", name="Thông báo", exact=True).wait_for()
        console.shot(f"{size}-notifications")


def test_pages_pass_axe_accessibility_checks(new_console: Any, platform: Platform) -> None:
    """WCAG 2 A/AA rules (labels, names, contrast, landmarks) on each page, through axe-core
    loaded from npm (the CSP keeps injected scripts out, so this one context bypasses it)."""
    if not AXE.exists():
        pytest.skip(f"{AXE} missing: run `make console` (npm ci) first")
    _seed(platform)
    console: Console = new_console(bypass_csp=True)
    console.login()
    page = console.page
    problems: dict[str, list[str]] = {}
    incident = platform.api("GET", "/incidents")["items"][0]["incident"]["id"]
    routes = [(f"/incidents/{incident}", None)] + [(route, heading) for _, route, heading in PAGES]
    for route, heading in routes:
        console.open(route)
        if heading:
            page.get_by_role("heading", name=heading, exact=True).first.wait_for()
        page.wait_for_load_state("networkidle")
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate(AXE_RUN)
        if violations:
            problems[route] = violations
    assert problems == {}


def test_hunt_rule_test_and_switching_rules_from_the_rules_page(
    new_console: Any, platform: Platform
) -> None:
    _seed(platform)
    console: Console = new_console()
    console.login()
    page = console.page
    console.open("/search?kind=hunt&range=all")
    page.get_by_label("Luật Sigma (YAML)").fill(ROOT_PASSWORD_RULE)
    page.get_by_role("button", name="Săn tìm").click()
    page.get_by_text(re.compile(r"đã quét \d+ sự kiện, [1-9]\d* khớp")).wait_for()
    page.locator("tbody tr", has_text="seed01").first.wait_for()
    console.shot("laptop-hunt-result")

    console.open("/rules")
    page.get_by_role("heading", name="Luật phát hiện", exact=True).wait_for()
    page.get_by_label("Luật Sigma (YAML)").fill(ROOT_PASSWORD_RULE)
    page.get_by_label("Sự kiện (JSON) hoặc một dòng syslog").fill(FAILED_ROOT_LINE)
    page.get_by_role("button", name="Chạy thử").click()
    page.get_by_text("Luật khớp với sự kiện.").wait_for()
    page.get_by_role("heading", name="Cảnh báo sẽ được tạo").wait_for()
    page.get_by_label("Sự kiện (JSON) hoặc một dòng syslog").fill(
        FAILED_ROOT_LINE.replace("for root", "for deploy")
    )
    page.get_by_role("button", name="Chạy thử").click()
    page.get_by_text("Luật không khớp với sự kiện.").wait_for()
    console.shot("laptop-rule-test")

    # An administrator switches a rule off and on again; the list says so each time.
    page.get_by_role("button", name="Tắt luật Crontab Replaced").click()
    page.get_by_role("button", name="Bật luật Crontab Replaced").click()
    page.get_by_role("button", name="Tắt luật Crontab Replaced").wait_for()
    enabled = {r["title"]: r["enabled"] for r in platform.api("GET", "/rules")}
    assert enabled["Crontab Replaced"] is True
