"""Every page renders, at a laptop's 1366x768 and on a tablet, without a browser error, with
labelled controls and enough contrast (axe-core), and leaves a screenshot behind."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import AXE, Console, Platform

AXE_RUN = """async () => {
  const result = await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']});
  return result.violations.map(
    (v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}"""
PAGES = [
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
    routes = [("/incidents", "Hàng đợi sự cố"), (f"/incidents/{incident}", None)] + [
        (route, heading) for _, route, heading in PAGES
    ]
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
