"""The status and incident pages as HTML: facts per state, escaping, headers, assets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.daemon.support import (
    API_TOKEN,
    BAD,
    GOOD,
    TARGET,
    World,
    api_client,
    build_daemon,
    health,
    ingest_each,
    outage,
    settings_for,
    settle,
)
from watchdog.daemon import Daemon
from watchdog.daemon.control import Phase
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_vercel_rolling import FakeStage

AUTH = {"Authorization": f"Bearer {API_TOKEN}", "X-Watchdog-User": "<b>mallory</b>"}
EMOJI = re.compile("[\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001faff]")


@pytest.fixture
async def daemon(world: World, clock: FakeClock) -> AsyncIterator[Daemon]:
    settings = settings_for(world)
    target = settings.targets[0].model_copy(
        update={"dashboard_url": "javascript:alert(1)", "runbook_url": "https://runbook/<x>"}
    )
    d = build_daemon(settings.model_copy(update={"targets": [target]}), MemoryStore(), clock)
    await d.start(loops=False)
    yield d
    await d.stop()


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[TestClient[Any, Any]]:
    c = await api_client(daemon)
    yield c
    await c.close()


async def page(client: TestClient[Any, Any], path: str = "/") -> str:
    resp = await client.get(path)
    assert resp.status == 200, path
    return await resp.text()


class TestFactsPerState:
    async def test_a_pending_rule_is_pending_with_what_it_needs(
        self, client: TestClient[Any, Any], daemon: Daemon, clock: FakeClock
    ) -> None:
        """One failed probe of a three-poll rule is pending, not ok, and says how many more."""
        await ingest_each(daemon, [health(clock.now(), False)], clock)
        html = await page(client)
        assert 'data-rule="system-down" data-signal="health_up" data-state="pending"' in html
        assert "fires after 2 more samples" in html
        assert "OK · MONITORING" in html

    async def test_a_verified_rollback_shows_its_facts_and_survives_the_resolve(
        self, client: TestClient[Any, Any], daemon: Daemon, clock: FakeClock
    ) -> None:
        """Rolled back and verified: the state, the timeline, the known-bad deployment, the
        budget and the undo note; after the resolve the last incident still says so, and the
        history lists it with its post-mortem draft."""
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        html = await page(client)
        assert "ROLLED BACK · VERIFIED · P0" in html
        assert f"rollback requested (automatic): {BAD} → {GOOD}" in html
        assert '<span class="role role-known-bad">known bad</span>' in html
        assert "1 of 2 automatic rollbacks used" in html
        assert "promote the fixed deployment" in html
        incident = (await daemon.store.list_incidents())[0].id

        start = clock.now()
        await ingest_each(daemon, [health(start, True)], clock)
        clock.advance(301)
        await daemon.pipeline.redecide([TARGET], clock.now())
        await settle(daemon)
        html = await page(client)
        assert "OK · MONITORING" in html
        assert 'data-testid="last-incident"' in html
        assert f"rolled back {BAD} → {GOOD}, verified" in html

        history = await page(client, "/incidents")
        assert f'href="/incidents/{incident}"' in history
        detail = await page(client, f"/incidents/{incident}")
        assert "incident resolved" in detail
        assert "# Incident Post-Mortem" in detail
        md = await client.get(f"/incidents/{incident}/postmortem.md")
        assert md.content_type == "text/markdown"
        assert (await md.text()).startswith("# Incident Post-Mortem")

    async def test_a_rolling_release_shows_who_serves_what(
        self, client: TestClient[Any, Any], daemon: Daemon, world: World
    ) -> None:
        """While Vercel rolls a canary out, the deployments card says which deployment
        serves what share, at which stage, and that it waits for approval; once it is
        over, the line goes."""
        world.vercel.add_deployment("dpl_canary", created_ms=0)
        world.vercel.start_rolling_release(
            "dpl_canary", [FakeStage(10, approval=True), FakeStage(100)]
        )
        await daemon.rollouts.refresh()
        html = await page(client)
        assert (
            f"Rolling release: dpl_canary serves 10%, {BAD} the rest "
            "(stage 1 of 2, waiting for approval)."
        ) in html
        status = await (await client.get("/api/status")).json()
        assert "dpl_canary serves 10%" in str(status)
        world.vercel.rolling.aborted()
        await daemon.rollouts.refresh()
        assert 'data-testid="rollout"' not in await page(client)

    async def test_unknown_incident_pages_are_404(self, client: TestClient[Any, Any]) -> None:
        assert (await client.get("/incidents/nope")).status == 404
        assert (await client.get("/incidents/nope/postmortem.md")).status == 404


class TestEscapingAndAuth:
    async def test_every_human_and_config_string_is_escaped(
        self, client: TestClient[Any, Any], daemon: Daemon
    ) -> None:
        """A hold reason, a declare reason and a user name with markup are escaped on every
        page; a javascript: URL from the config is never linked."""
        evil = "<script>alert('x')</script>"
        assert (
            await client.post("/api/hold", json={"target": TARGET, "reason": evil}, headers=AUTH)
        ).status == 200
        await daemon.declare(TARGET, evil, "<i>eve</i>")
        await settle(daemon)
        incident = (await daemon.store.list_incidents())[0].id
        for path in ("/", "/incidents", f"/incidents/{incident}"):
            html = await page(client, path)
            assert "<script>alert" not in html, path
            assert "<b>mallory" not in html
            assert "<i>eve" not in html
            assert "javascript:" not in html
        html = await page(client)
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
        assert "&lt;b&gt;mallory&lt;/b&gt;" in html
        assert 'href="https://runbook/&lt;x&gt;"' in html

    async def test_pages_carry_a_strict_csp_and_offer_no_buttons(
        self, client: TestClient[Any, Any]
    ) -> None:
        resp = await client.get("/")
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        html = await resp.text()
        assert "<button" not in html
        assert "<form" not in html
        assert "<script>" not in html  # only the external, same-origin page.js
        assert "watchdog hold web 30m --reason &quot;&lt;why&gt;&quot;" in html
        assert "POST" in html
        assert "/api/kill-switch" in html

    async def test_control_calls_wait_for_the_restore(
        self, client: TestClient[Any, Any], daemon: Daemon
    ) -> None:
        """While restoring, a control call is 503 and changes nothing; /readyz says why."""
        daemon.phase = Phase.RESTORING
        resp = await client.post("/api/kill-switch", json={"on": True}, headers=AUTH)
        assert resp.status == 503
        assert daemon.engine.kill_switch is False
        ready = await (await client.get("/readyz")).json()
        assert "restoring state from the store" in ready["problems"]
        assert 'data-testid="restoring"' in await page(client)


class TestAssets:
    @pytest.mark.parametrize(
        ("path", "kind"),
        [
            ("/favicon.ico", "image/svg+xml"),
            ("/favicon.svg", "image/svg+xml"),
            ("/static/page.css", "text/css"),
            ("/static/page.js", "text/javascript"),
        ],
    )
    async def test_assets_are_served(
        self, client: TestClient[Any, Any], path: str, kind: str
    ) -> None:
        """The favicon (no 404 on every load), the stylesheet and the script."""
        resp = await client.get(path)
        assert resp.status == 200
        assert resp.content_type == kind
        assert await resp.read()

    async def test_no_glyph_needs_an_emoji_font(
        self, client: TestClient[Any, Any], daemon: Daemon, clock: FakeClock
    ) -> None:
        """A firing rule is the word "firing" in a box, not a symbol."""
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        html = await page(client)
        assert '<span class="state state-firing">firing</span>' in html or "state-ok" in html
        assert not EMOJI.search(html)
        assert not EMOJI.search(await (await client.get("/static/page.css")).text())
