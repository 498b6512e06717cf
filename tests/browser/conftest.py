"""Browser tests: headless Chromium (Debian's ``chromium``, driven by Playwright)
against the real broker, a running ``stream-wfm run``, a running ``stream-wfm
console`` and a receiver on 127.0.0.1.

One stack per module (topics, service, console, receiver, browser); each test
gets its own browser context (cookies) and its own accounts. Every page a test
visits is recorded, and after the test no recorded page may contain a saved
header value (:data:`SECRETS`).

Without ``/usr/bin/chromium`` the tests are skipped, or fail when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from stream_wfm.bench.service_proc import free_port
from stream_wfm.kafka.admin import create_topics
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.settings import Settings
from tests.helpers.receiver import Receiver
from tests.helpers.service import ServiceUnderTest
from tests.helpers.settings import settings_env, unique_settings
from tests.helpers.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
USERNAME = "admin"
PASSWORD = "wfm-console-test-password"
#: Saved header values used by the browser tests: no page may ever contain them.
SECRETS = ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Basic c3VwZXI6c2VjcmV0LXRva2Vu", "tk_live_5f2c9a71")
DOCS = Path(__file__).resolve().parents[2] / "docs"


def require_chromium() -> str:
    """The browser's path; skips (or fails in CI) when it is not installed."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    reason = (
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
        "Playwright cannot download its own browser here"
    )
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


def _settings(broker: EmbeddedBroker) -> Settings:
    name = f"b-{uuid.uuid4().hex[:8]}"
    settings = unique_settings(
        broker.bootstrap_servers,
        topic_partitions=2,
        health_topic=f"{name}-health",
        notices_topic=f"{name}-notices",
        console_host="127.0.0.1",
        console_port=free_port(),
        console_username=USERNAME,
        console_password=PASSWORD,
    )
    create_topics(settings)
    return settings


class ConsoleProcess:
    """``stream-wfm console`` as a real subprocess."""

    def __init__(self, settings: Settings) -> None:
        self.url = f"http://127.0.0.1:{settings.console_port}"
        self.env = {**os.environ, **settings_env(settings), "STREAM_WFM_LOG_FORMAT": "text"}
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix="stream-wfm-console-", suffix=".log"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream_wfm", "console"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def logs(self) -> str:
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await wait_until(
            lambda: self.proc.poll() is not None or self._ready(), timeout, "console ready"
        )
        assert self.proc.poll() is None, f"console exited: {self.logs()[-2000:]}"

    def stop(self) -> int:
        """SIGTERM, then the exit code (the console must stop cleanly and quickly)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()


@dataclass
class Stack:
    settings: Settings
    service: ServiceUnderTest
    console: ConsoleProcess
    receiver: Receiver
    browser: Browser


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_chromium()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(chromium: str, broker: EmbeddedBroker) -> AsyncIterator[Stack]:
    settings = _settings(broker)
    service = ServiceUnderTest(settings).start()
    console = ConsoleProcess(settings)
    receiver = await Receiver().start()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            await asyncio.gather(service.wait_ready(), console.wait_ready())
            try:
                yield Stack(settings, service, console, receiver, browser)
            finally:
                await browser.close()
    finally:
        console_logs = console.logs()
        console_exit = console.stop()
        service.close()
        await receiver.close()
    assert console_exit == 0, f"console did not stop cleanly on SIGTERM: {console_logs[-2000:]}"


@dataclass
class Visits:
    """Every page a test saw, as HTML."""

    pages: list[tuple[str, str]] = field(default_factory=list)

    async def snap(self, page: Page) -> str:
        html = await page.content()
        self.pages.append((page.url, html))
        return html


@pytest_asyncio.fixture(loop_scope="module")
async def visits() -> AsyncIterator[Visits]:
    seen = Visits()
    yield seen
    assert seen.pages, "the test visited no page"
    for url, html in seen.pages:
        for secret in SECRETS:
            assert secret not in html, f"a saved header value is in the HTML of {url}"


@pytest_asyncio.fixture(loop_scope="module")
async def context(stack: Stack) -> AsyncIterator[BrowserContext]:
    ctx = await stack.browser.new_context(viewport=VIEWPORT, base_url=stack.console.url)
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        await ctx.close()


def screenshots_wanted() -> bool:
    return os.environ.get("STREAM_WFM_SCREENSHOTS") == "1"


async def save_screenshot(page: Page, name: str, **kwargs: Any) -> None:
    """Writes ``docs/<name>.png`` when STREAM_WFM_SCREENSHOTS=1 (so CI never rewrites them)."""
    if screenshots_wanted():
        DOCS.mkdir(exist_ok=True)
        await page.screenshot(path=str(DOCS / f"{name}.png"), **kwargs)
