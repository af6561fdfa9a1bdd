"""A real headless Chromium for the status page tests (Debian's ``chromium``, driven by
Playwright; never ``playwright install``, which downloads a browser).

Locally a missing browser or Playwright skips; under CI (WATCHDOG_REQUIRE_TOOLS=1) it fails,
like every real tool (``tests/tools.py``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.tools import require_tool

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / ".ci-tmp" / "screenshots"
#: TOOLING.md: the flags this machine's Chromium needs to start quietly and offline
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def require_playwright() -> None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        if os.environ.get("WATCHDOG_REQUIRE_TOOLS") == "1":
            pytest.fail("playwright is not installed: scripts/tools.sh should have installed it")
        pytest.skip("playwright not installed (run scripts/test.sh to install it)")


@asynccontextmanager
async def chromium(home: Path) -> AsyncIterator[Browser]:
    """Debian's Chromium, with HOME in an existing temp dir (it writes its profile there)."""
    executable = require_tool("CHROMIUM", "chromium")
    require_playwright()
    from playwright.async_api import async_playwright

    env = {**os.environ, "HOME": str(home)}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=executable, args=FLAGS, headless=True, env=env
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Watched:
    """A page with every console error, page error and failed request it produced."""

    page: Page
    problems: list[str] = field(default_factory=list)

    async def open(self, url: str) -> None:
        resp = await self.page.goto(url, wait_until="load")
        assert resp is not None
        assert resp.status == 200, f"{url}: {resp.status}"

    async def shot(self, name: str, *, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path

    async def text(self, selector: str) -> str:
        return str(await self.page.locator(selector).first.inner_text())


async def watched(browser: Browser, *, javascript: bool = True, viewport: Any = None) -> Watched:
    context = await browser.new_context(
        viewport=viewport or DESKTOP, java_script_enabled=javascript
    )
    page = await context.new_page()
    w = Watched(page)
    page.on(
        "console", lambda m: w.problems.append(f"console: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: w.problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: w.problems.append(f"failed: {r.url}"))
    page.on(
        "response",
        lambda r: w.problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None,
    )
    return w
