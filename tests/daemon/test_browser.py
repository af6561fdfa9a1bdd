"""The status page in a real headless Chromium, against a daemon watching the stand-ins
through an incident: pending, rollback in flight, verified, resolved, held, kill switch.

Each stage asserts on the DOM and saves a screenshot under ``.ci-tmp/screenshots/`` (a CI
artefact); no stage may log a console error, a page error or a failed request (a favicon
404 included).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.daemon.browser import PHONE, Watched, chromium, watched
from tests.daemon.support import (
    API_TOKEN,
    BAD,
    GOOD,
    TARGET,
    World,
    build_daemon,
    error_rate,
    health,
    http_served,
    ingest_each,
    settings_for,
    settle,
)
from watchdog.daemon import Daemon
from watchdog.store.base import RollbackState
from watchdog.store.sqlite import SqliteStore
from watchdog.testing.clock import FakeClock

pytestmark = [pytest.mark.tool, pytest.mark.timeout(120)]

#: characters that need an emoji or symbol font (dingbats, misc symbols, emoji planes)
EMOJI = re.compile("[\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001faff]")


#: the elements that stick out of the viewport, to name them when the page is too wide
WIDEST = """
[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 40))
"""


class Served:
    """A daemon (loops off, fake clock) behind its real HTTP server on a loopback port."""

    def __init__(self, daemon: Daemon, url: str) -> None:
        self.daemon = daemon
        self.url = url

    async def post(self, path: str, body: dict[str, Any], user: str) -> None:
        headers = {"Authorization": f"Bearer {API_TOKEN}", "X-Watchdog-User": user}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url + path, json=body, headers=headers) as resp,
        ):
            assert resp.status == 200, await resp.text()


@pytest.fixture
async def served(world: World, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Served]:
    daemon = build_daemon(
        settings_for(world, store_url=f"sqlite:///{tmp_path}/wd.db"),
        SqliteStore(tmp_path / "wd.db"),
        clock,
    )
    await daemon.start(loops=False)
    try:
        async with http_served(daemon) as url:
            yield Served(daemon, url)
    finally:
        await daemon.stop()


def gate_rollback_requests(world: World) -> asyncio.Event:
    """Hold Vercel's answer to the rollback POST until the returned event is set."""
    gate = asyncio.Event()
    answer = world.vercel.answer

    async def held(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and "/rollback/" in request.path:
            await gate.wait()
        return await answer(request, handler)

    world.vercel.answer = held  # type: ignore[method-assign]
    return gate


async def until(check: Callable[[], Awaitable[bool]], what: str, tries: int = 500) -> None:
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def board_text(w: Watched) -> str:
    return await w.text("#board")


async def rule_state(w: Watched, rule: str) -> str:
    row = w.page.locator(f'tr[data-rule="{rule}"]').first
    return str(await row.get_attribute("data-state"))


class TestThroughAnIncident:
    async def test_every_stage_reads_right_in_chromium(
        self, served: Served, world: World, clock: FakeClock, tmp_path: Path
    ) -> None:
        """Pending, rollback in flight, verified, resolved, held and the kill switch each
        show their facts in the DOM, with no console error, at 1280x800 and on a phone."""
        daemon = served.daemon
        base = served.url
        async with chromium(tmp_path) as browser:
            w = await watched(browser)

            # -- pending: one failed probe of a rule that needs three
            start = clock.now()
            await ingest_each(
                daemon,
                [error_rate(start, 0.001), health(start + timedelta(seconds=15), False)],
                clock,
            )
            await w.open(base + "/")
            assert await w.text('[data-testid="state"]') == "OK · MONITORING"
            assert await rule_state(w, "system-down") == "pending"
            row = await w.text('tr[data-rule="system-down"]')
            assert "fires after 2 more samples" in row
            assert "system-down fires after 2 more samples" in await w.text('[data-testid="next"]')
            assert "None." in await w.text('[data-testid="incident"]')
            await w.shot("1-pending")

            # -- rollback in flight: Vercel has not answered the rollback request yet
            gate = gate_rollback_requests(world)
            await ingest_each(
                daemon,
                [health(start + timedelta(seconds=15 * i), False) for i in (2, 3)],
                clock,
            )

            async def intent_recorded() -> bool:
                return any(
                    r.state is RollbackState.INTENT for r in await daemon.store.list_rollbacks()
                )

            await until(intent_recorded, "the rollback's intent in the store")
            await w.open(base + "/")
            assert await w.text('[data-testid="state"]') == "ROLLING BACK · P0"
            phase = w.page.locator('[data-testid="rollback-phase"]')
            assert await phase.get_attribute("data-phase") == "in_flight"
            timeline = await w.text('[data-testid="timeline"]')
            assert f"rollback requested (automatic): {BAD} → {GOOD}" in timeline
            assert "waiting for Vercel to accept the request" in timeline
            assert "paged on-call" in timeline
            assert "decided rollback P0" in timeline
            assert "gives up waiting for Vercel's job" in await w.text('[data-testid="next"]')
            assert await rule_state(w, "system-down") == "firing"
            await w.shot("2-rollback-in-flight")

            # -- verified: production switched, health and version confirm it
            gate.set()
            await settle(daemon)
            # the next poll sees the rolled-back deployment healthy
            await ingest_each(daemon, [health(clock.now() + timedelta(seconds=15), True)], clock)
            await w.open(base + "/")
            assert await w.text('[data-testid="state"]') == "ROLLED BACK · VERIFIED · P0"
            timeline = await w.text('[data-testid="timeline"]')
            assert f"Vercel's job finished: production serves {GOOD}" in timeline
            assert "verified: health, version and error rate as expected" in timeline
            assert 'Slack: "rollback in progress"' in timeline
            guards = await w.text('[data-testid="guards"]')
            assert "1 of 2 automatic rollbacks used" in guards
            assert "cooldown" in guards
            assert "intensive watch" in guards
            deployments = w.page.locator('[data-testid="deployments"]')
            bad = await deployments.locator(f'tr[data-deployment="{BAD}"]').inner_text()
            good = await deployments.locator(f'tr[data-deployment="{GOOD}"]').inner_text()
            assert "known bad" in bad
            assert "live" in good
            assert "promote the fixed deployment" in await deployments.inner_text()
            assert "resolves if nothing fires again" in await w.text('[data-testid="next"]')
            await w.shot("3-verified")

            # -- resolved: clear for the resolve period; the page still shows what happened
            now = clock.now()
            await ingest_each(
                daemon, [health(now + timedelta(seconds=15 * i), True) for i in range(1, 22)], clock
            )
            await settle(daemon)
            assert daemon.engine.open_incident(TARGET) is None
            await w.open(base + "/")
            assert await w.text('[data-testid="state"]') == "OK · MONITORING"
            last = await w.text('[data-testid="last-incident"]')
            assert f"rolled back {BAD} → {GOOD}, verified" in last
            assert "known bad" in await w.text('[data-testid="deployments"]')
            await w.shot("4-resolved")

            await w.open(base + "/incidents")
            history = await w.text('[data-testid="history"]')
            assert f"rolled back {BAD} → {GOOD}, verified" in history
            await w.page.locator('[data-testid="history"] a').first.click()
            await w.page.wait_for_load_state("load")
            assert "Incident Post-Mortem" in await w.text('[data-testid="postmortem"]')
            assert "incident resolved" in await w.text('[data-testid="timeline"]')
            await w.shot("5-incident-detail")

            # -- held: through the control API, as on-call would
            await w.open(base + "/")
            await served.post(
                "/api/hold",
                {"target": TARGET, "duration": "30m", "reason": "deploying <the> fix"},
                "ana",
            )
            # the page's own script picks the change up without a reload
            await w.page.evaluate("window.__sameDocument = true")
            await w.page.evaluate("watchdogRefresh()")
            hold = await w.text('[data-testid="hold"]')
            assert "held by ana, ends in 30 min" in hold
            assert "deploying <the> fix" in hold
            assert await w.page.evaluate("window.__sameDocument") is True
            assert "the hold ends" in await w.text('[data-testid="next"]')
            assert "Live: updated" in await w.text('[data-testid="live"]')
            await w.shot("6-held")

            # -- kill switch
            await served.post("/api/kill-switch", {"on": True, "reason": "incident review"}, "bo")
            await w.open(base + "/")
            banner = await w.text('[data-testid="kill-switch"]')
            assert "Kill switch ON" in banner
            assert "by bo: incident review" in banner
            assert "ON" in await w.text('[data-testid="guards"]')
            await w.shot("7-kill-switch")
            assert not EMOJI.search(await w.page.content())

            phone = await watched(browser, viewport=PHONE)
            await phone.open(base + "/")
            overflow = await phone.page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            wide = await phone.page.evaluate(WIDEST)
            assert overflow <= 0, f"the page is {overflow}px wider than a phone: {wide}"
            await phone.shot("8-kill-switch-phone")
            await phone.shot("8-kill-switch-phone-first-screen", full_page=False)

            assert w.problems == []
            assert phone.problems == []

    async def test_works_with_javascript_off(
        self, served: Served, clock: FakeClock, tmp_path: Path
    ) -> None:
        """Without JavaScript the board renders and the page refreshes itself."""
        await ingest_each(served.daemon, [health(clock.now(), True)], clock)
        async with chromium(tmp_path) as browser:
            w = await watched(browser, javascript=False)
            await w.open(served.url + "/")
            assert await w.text('[data-testid="state"]') == "OK · MONITORING"
            html = await w.page.content()
            assert '<meta http-equiv="refresh"' in html
            assert "Refreshes every" in await w.text('[data-testid="live"]')
            await w.shot("9-no-javascript")
            assert w.problems == []
