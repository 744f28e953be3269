"""`make bench`: the console with 10k alerts behind it, in Debian's Chromium.

    first render : from navigation to the first incident row (queue) or the drawn chart and bars
                   (dashboard), cold (new browser context, empty cache) and warm (reload)
    baseline     : the same API calls the page makes, straight over HTTP (httpx), in the same run
    bytes        : what the browser downloaded for a cold load (encoded sizes: gzip on)

The alerts go through the real pipeline (syslog over TCP into `soc run`), so the incidents they
are grouped into are the real ones. Prints figures and ratios; never fails on a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import (  # noqa: E402
    ADMIN,
    ADMIN_PASSWORD,
    CHROMIUM,
    Platform,
    start_platform,
    stop_platform,
)

#: What must be on screen for the page to count as rendered (every selector, in order).
QUEUE_READY = ("[data-testid=incident-row]",)
DASHBOARD_READY = (".chart rect.column", ".bars li", ".heatmap li")


def seed(platform: Platform, alerts: int, hosts: int) -> float:
    """Attack lines over TCP, one alert each, spread over `hosts` hosts (so over many
    incidents); returns the seconds until the store held them all."""
    # Spread over the last hour, so that every dashboard range holds them all.
    base = datetime.now(UTC) - timedelta(hours=1)
    lines = [
        f"<38>1 {(base + timedelta(seconds=i * 3600 / alerts)).isoformat()} "
        f"srv{i % hosts:03d} sshd {1000 + i} - - Invalid user u{i} from 198.51.100.{i % 250} "
        f"port {10000 + i}"
        for i in range(alerts)
    ]
    started = time.perf_counter()
    for start in range(0, len(lines), 2000):
        platform.send_tcp(lines[start : start + 2000])
    platform.wait_for(
        lambda: platform.api("GET", "/alerts", params={"limit": 0})["total"] >= alerts,
        timeout=600,
        what=f"{alerts} alerts stored",
    )
    platform.wait_for(
        lambda: platform.api("GET", "/incidents", params={"limit": 0})["total"] >= hosts,
        timeout=120,
        what="incidents grouped",
    )
    return time.perf_counter() - started


def api_baseline(platform: Platform, calls: list[tuple[str, dict[str, Any]]], runs: int) -> float:
    """Median milliseconds to make the page's API calls one after another, without a browser."""
    headers = {"Authorization": f"Bearer {platform.token()}"}
    times = []
    with httpx.Client(base_url=f"{platform.http}/api/v1", headers=headers, timeout=30) as client:
        for _ in range(runs):
            started = time.perf_counter()
            for path, params in calls:
                client.get(path, params=params).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


#: Installed before the page's own scripts: notes the moment every selector first matches,
#: so the figure is the page's own clock, not Playwright's polling and round trips.
RENDER_PROBE = """
(selectors) => {
  const check = () => {
    if (window.__rendered === undefined && selectors.every((s) => document.querySelector(s))) {
      window.__rendered = performance.now();
    }
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true });
}
"""


def _rendered(page: Any, ready: tuple[str, ...]) -> float:
    """Milliseconds from navigation start until every `ready` selector was in the page."""
    for selector in ready:
        page.wait_for_selector(selector, state="attached", timeout=60_000)
    elapsed: float = page.evaluate("() => window.__rendered")
    return elapsed


def browser_floor(browser: Any, platform: Platform, runs: int) -> float:
    """Median milliseconds for a cold context to load a page of a few bytes (`/healthz`): what
    any page costs before the console's own work starts."""
    times = []
    for _ in range(runs):
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{platform.http}/healthz", wait_until="load")
        times.append(page.evaluate("() => performance.now()"))
        context.close()
    return statistics.median(times)


def first_render(
    browser: Any, platform: Platform, route: str, ready: tuple[str, ...], runs: int
) -> dict[str, Any]:
    cold: list[float] = []
    warm: list[float] = []
    downloaded: dict[str, int] = {}
    for run in range(runs):
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        login = context.request.post(
            f"{platform.http}/api/v1/auth/login",
            data={"username": ADMIN, "password": ADMIN_PASSWORD},
        )
        assert login.ok, login.text()
        page = context.new_page()
        page.add_init_script(f"({RENDER_PROBE})({json.dumps(list(ready))})")
        responses: list[Any] = []

        def keep(response: Any, sink: list[Any] = responses) -> None:
            sink.append(response)

        page.on("response", keep)
        page.goto(f"{platform.http}/#{route}", wait_until="commit")
        cold.append(_rendered(page, ready))
        page.wait_for_load_state("networkidle")
        if run == 0:
            for response in responses:
                sizes = response.request.sizes()
                kind = response.request.resource_type
                downloaded[kind] = (
                    downloaded.get(kind, 0)
                    + sizes["responseBodySize"]
                    + sizes["responseHeadersSize"]
                )
        page.reload(wait_until="commit")
        warm.append(_rendered(page, ready))
        context.close()
    return {
        "cold": statistics.median(cold),
        "cold_max": max(cold),
        "warm": statistics.median(warm),
        "bytes": downloaded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=200, help="hosts, so roughly incidents")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"console bench skipped: {CHROMIUM} is absent (apt-get install chromium)")
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="soc-bench-console-") as tmp:
        platform = start_platform(Path(tmp))
        try:
            seconds = seed(platform, args.alerts, args.hosts)
            incidents = platform.api("GET", "/incidents", params={"limit": 0})["total"]
            alerts = platform.api("GET", "/alerts", params={"limit": 0})["total"]
            print(
                f"console bench: {alerts:,} alerts in {incidents:,} incidents (seeded through soc run in {seconds:.1f} s)"
            )
            queue_calls = [
                ("/incidents", {"sort": "last_seen", "order": "desc", "limit": 50}),
                ("/agencies", {}),
            ]
            dashboard_calls = [
                ("/stats/summary", {"interval": 3600}),
                ("/stats/coverage", {}),
                ("/sources", {}),
            ]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
                floor = browser_floor(browser, platform, args.runs)
                print(
                    f"  browser floor: a cold context loads a 50-byte page in {floor:.0f} ms (median)"
                )
                for name, route, ready, calls in (
                    ("incident queue", "/incidents", QUEUE_READY, queue_calls),
                    ("dashboard", "/dashboard?range=24h", DASHBOARD_READY, dashboard_calls),
                ):
                    result = first_render(browser, platform, route, ready, args.runs)
                    baseline = api_baseline(platform, calls, args.runs)
                    total = sum(result["bytes"].values())
                    parts = ", ".join(f"{k} {v:,}" for k, v in sorted(result["bytes"].items()))
                    print(
                        f"  {name:15s} first render cold {result['cold']:7.0f} ms (max {result['cold_max']:.0f}),"
                        f" warm {result['warm']:7.0f} ms; its API calls alone {baseline:6.0f} ms"
                        f" -> cold/API ratio {result['cold'] / baseline:5.1f}x,"
                        f" cold/browser-floor ratio {result['cold'] / floor:4.1f}x"
                    )
                    print(f"  {'':15s} downloaded (cold, gzip) {total:,} bytes: {parts}")
                browser.close()
        finally:
            stop_platform(platform)


if __name__ == "__main__":
    main()
