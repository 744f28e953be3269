"""Browser tests of the console: Debian's Chromium, driven by Playwright, against a real
`soc run` subprocess (free ports, a temporary data dir, syslog sent over real sockets)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"
ADMIN = "admin"
ADMIN_PASSWORD = "Quan-tri-SOC-2026-browser-test"
#: Two agencies, told apart by the address their syslog comes from.
AGENCIES = {"so-tttt": "127.0.0.1", "benh-vien": "127.0.0.2"}
CONFIG = """\
sources:
  - id: portal
    agency: so-tttt
    name: Cổng thông tin điện tử
    networks: ["127.0.0.1/32"]
  - id: hospital
    agency: benh-vien
    name: Bệnh viện tỉnh
    networks: ["127.0.0.2/32"]
"""
#: Optional parts of the API the console probes for; a 404 from them is the console learning
#: that a part is not deployed, not an error.
OPTIONAL = re.compile(r"/api/v1/notifications/channels$")


@dataclass
class Platform:
    process: subprocess.Popen[bytes]
    http: str
    tcp: int
    udp: int
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def send_udp(self, lines: list[str], source: str = "127.0.0.1") -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((source, 0))
            for line in lines:
                udp.sendto(line.encode(), ("127.0.0.1", self.udp))

    def send_tcp(self, lines: list[str], source: str = "127.0.0.1") -> None:
        payload = "".join(f"{line}\n" for line in lines).encode()
        with socket.create_connection(("127.0.0.1", self.tcp), source_address=(source, 0)) as tcp:
            tcp.sendall(payload)

    def token(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> str:
        """A bearer session for API calls made by the test itself (`POST /auth/token`)."""
        if username not in self.tokens:
            response = httpx.post(
                f"{self.http}/api/v1/auth/token",
                data={"username": username, "password": password},
                timeout=10,
            )
            response.raise_for_status()
            self.tokens[username] = response.json()["access_token"]
        return self.tokens[username]

    def api(self, method: str, path: str, user: str = ADMIN, **kwargs: Any) -> Any:
        password = kwargs.pop("password", ADMIN_PASSWORD)
        response = httpx.request(
            method,
            f"{self.http}/api/v1{path}",
            headers={"Authorization": f"Bearer {self.token(user, password)}"},
            timeout=10,
            **kwargs,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def wait_for(self, check: Any, timeout: float = 60.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not met in {timeout} s; soc log:\n{self.log.read_text()}")
            time.sleep(0.2)


def start_platform(workdir: Path, extra_env: dict[str, str] | None = None) -> Platform:
    """`soc run` as an operator starts it, on free ports, with the first admin's password."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "soc.yaml").write_text(CONFIG, encoding="utf-8")
    log = workdir / "soc.log"
    env = {**os.environ, "SOC_ADMIN_PASSWORD": ADMIN_PASSWORD, **(extra_env or {})}
    env.pop("SOC_CONFIG", None)
    command = [
        sys.executable, "-m", "soc", "run",
        "--config", str(workdir / "soc.yaml"),
        "--data-dir", str(workdir / "data"),
        "--http", "127.0.0.1:0",
        "--syslog", "127.0.0.1:0",
        "--rules", str(ROOT / "rules"),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=workdir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        ready = re.search(r" ready .*", text)
        if ready:
            line = ready[0]
            http = re.search(r"\bhttp=(\S+)", line)
            tcp = re.search(r"\bsyslog_tcp=\S+:(\d+)", line)
            udp = re.search(r"\bsyslog_udp=\S+:(\d+)", line)
            assert http and tcp and udp, f"unexpected ready line: {line}"
            return Platform(process, f"http://{http[1]}", int(tcp[1]), int(udp[1]), log)
        if process.poll() is not None:
            pytest.fail(f"soc run exited early with {process.returncode}:\n{text}")
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"soc run did not become ready:\n{log.read_text(errors='replace')}")


def stop_platform(platform: Platform) -> None:
    if platform.process.poll() is None:
        platform.process.send_signal(signal.SIGTERM)
        try:
            platform.process.wait(30)
        except subprocess.TimeoutExpired:
            platform.process.kill()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = start_platform(tmp_path_factory.mktemp("console"))
    yield running
    stop_platform(running)


# Per module, not per session: Playwright's sync API keeps an event loop running while it is
# started, and the asyncio tests collected after these would find it and fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@dataclass
class Console:
    """One browser context on the console, recording every error the page reports."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)
    #: URLs whose failure a test provokes on purpose (another agency's incident: 404).
    expected_failures: set[str] = field(default_factory=set)

    def open(self, route: str = "") -> None:
        self.page.goto(f"{self.base}/{'#' + route if route else ''}")

    def login(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
        self.open()
        page = self.page
        page.get_by_label(re.compile("Tên đăng nhập|Username")).fill(username)
        page.get_by_label(re.compile("Mật khẩu|Password")).fill(password)
        page.get_by_role("button", name=re.compile("^(Đăng nhập|Log in)$")).click()
        page.locator("header.top").wait_for()

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _watch(console: Console) -> None:
    def on_console(message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        path = url.split("?")[0]
        if "status of 404" in message.text and OPTIONAL.search(path):
            return
        if path.removeprefix(console.base) in console.expected_failures:
            return
        console.errors.append(f"console: {message.text} ({url})")

    console.page.on("console", on_console)
    console.page.on("pageerror", lambda error: console.errors.append(f"page error: {error}"))


@pytest.fixture
def console(browser: Any, platform: Platform) -> Iterator[Console]:
    # The browser's own zone is UTC: times on screen must follow the user's (Asia/Ho_Chi_Minh).
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="vi-VN", timezone_id="UTC"
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    console = Console(page, platform.http)
    _watch(console)
    yield console
    context.close()
    assert console.errors == [], "the browser reported errors:\n" + "\n".join(console.errors)


@pytest.fixture
def new_console(browser: Any, platform: Platform) -> Iterator[Any]:
    """Factory for further contexts (another user, a tablet, axe with CSP bypassed)."""
    made: list[tuple[Any, Console]] = []

    def make(**options: Any) -> Console:
        context = browser.new_context(**{"viewport": {"width": 1366, "height": 768}, **options})
        page = context.new_page()
        page.set_default_timeout(30_000)
        made_console = Console(page, platform.http)
        _watch(made_console)
        made.append((context, made_console))
        return made_console

    yield make
    problems = [e for _, c in made for e in c.errors]
    for context, _ in made:
        context.close()
    assert problems == [], "the browser reported errors:\n" + "\n".join(problems)
