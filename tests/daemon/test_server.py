"""The daemon's HTTP surface through aiohttp's test client, against a real Daemon and fakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient

from tests.daemon.support import (
    API_TOKEN,
    ROUTING_KEY,
    TARGET,
    VERCEL_TOKEN,
    World,
    api_client,
    build_daemon,
    ingest_each,
    outage,
    settings_for,
    settle,
)
from tests.tools import require_tool
from watchdog.daemon import Daemon
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CONTROL = [
    ("/api/hold", {"target": TARGET, "duration": "1h", "reason": "x"}),
    ("/api/ack", {"target": TARGET, "decision": "fix_forward"}),
    ("/api/declare", {"target": TARGET, "reason": "security hole"}),
    ("/api/kill-switch", {"on": True, "reason": "x"}),
]


@pytest.fixture
async def daemon(world: World, clock: FakeClock) -> AsyncIterator[Daemon]:
    d = build_daemon(settings_for(world), MemoryStore(), clock)
    await d.start(loops=False)
    yield d
    await d.stop()


_client = api_client


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[TestClient[Any, Any]]:
    c = await _client(daemon, API_TOKEN)
    yield c
    await c.close()


async def poll_once(daemon: Daemon) -> None:
    state = next(iter(daemon.sources.values()))
    await daemon.ingest(await daemon.poller.poll_once(state))


async def snapshot(daemon: Daemon) -> dict[str, Any]:
    store = daemon.store
    return {
        "status": daemon.status(),
        "kill_switch": daemon.engine.kill_switch,
        "events": [asdict(e) for e in await store.list_events()],
        "decisions": [asdict(d) for d in await store.list_decisions()],
        "incidents": [asdict(i) for i in await store.list_incidents()],
        "actions": [asdict(a) for a in await store.list_actions()],
    }


class TestProbes:
    async def test_healthz_is_always_alive(self, client: TestClient[Any, Any]) -> None:
        """/healthz answers 200 whatever the daemon's state."""
        resp = await client.get("/healthz")
        assert resp.status == 200
        assert await resp.json() == {"status": "alive"}

    async def test_readyz_503_before_the_first_poll_200_after(
        self, client: TestClient[Any, Any], daemon: Daemon
    ) -> None:
        """/readyz says "no poll completed yet" with 503 until a poll has run, then 200."""
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["problems"] == ["no poll completed yet"]
        await poll_once(daemon)
        resp = await client.get("/readyz")
        assert resp.status == 200


class TestReadApi:
    async def test_status_shape(self, client: TestClient[Any, Any], daemon: Daemon) -> None:
        """/api/status names the leader, switches, per target its decision and sources, and
        the notifications not delivered yet."""
        await poll_once(daemon)
        body = await (await client.get("/api/status")).json()
        assert {"now", "leader", "kill_switch", "shadow", "targets", "notifications"} <= set(body)
        assert body["notifications"] == {"pending": 0, "undelivered": []}
        assert body["leader"] is True
        (target,) = body["targets"]
        assert target["name"] == TARGET
        assert target["action"] == "monitor"
        assert target["deployment"] == "dpl_bad"
        assert target["sources"][0]["name"] == "web/health"
        assert target["sources"][0]["last_ok"] is not None

    async def test_incidents_list_and_detail(
        self, client: TestClient[Any, Any], daemon: Daemon, clock: FakeClock
    ) -> None:
        """/api/incidents lists the incident; /api/incidents/{id} adds its decisions and
        actions; an unknown id is 404."""
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        listed = (await (await client.get("/api/incidents?open=1")).json())["incidents"]
        assert len(listed) == 1
        incident_id = listed[0]["id"]
        detail = await (await client.get(f"/api/incidents/{incident_id}")).json()
        assert detail["id"] == incident_id
        assert any(d["action"] == "rollback" for d in detail["decisions"])
        assert any(a["kind"] == "rollback" for a in detail["actions"])
        assert (await client.get("/api/incidents/nope")).status == 404


class TestControlApi:
    @pytest.mark.parametrize(("path", "body"), CONTROL)
    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}],
        ids=["missing", "wrong", "no-scheme"],
    )
    async def test_bad_token_is_401_and_changes_nothing(
        self,
        client: TestClient[Any, Any],
        daemon: Daemon,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> None:
        """Without the right bearer token a control call is 401 and neither the engine nor
        the store changes."""
        before = await snapshot(daemon)
        resp = await client.post(path, json=body, headers=headers)
        assert resp.status == 401
        assert await snapshot(daemon) == before

    @pytest.mark.parametrize(("path", "body"), CONTROL)
    async def test_no_token_configured_is_403(
        self, daemon: Daemon, path: str, body: dict[str, Any]
    ) -> None:
        """With no API token configured the control API is disabled (403), not open."""
        client = await _client(daemon, None)
        try:
            before = await snapshot(daemon)
            resp = await client.post(path, json=body, headers=AUTH)
            assert resp.status == 403
            assert await snapshot(daemon) == before
        finally:
            await client.close()

    async def test_good_token_hold_ack_declare_kill_switch_take_effect(
        self, client: TestClient[Any, Any], daemon: Daemon, world: World
    ) -> None:
        """With the token, hold sets the target's hold, declare opens an incident and rolls
        back, ack is recorded, and the kill switch flips."""
        resp = await client.post("/api/hold", json=CONTROL[0][1], headers=AUTH)
        assert resp.status == 200
        assert daemon.status()["targets"][0]["hold_until"] == (await resp.json())["hold_until"]

        resp = await client.post("/api/declare", json=CONTROL[2][1], headers=AUTH)
        assert resp.status == 200
        declared = await resp.json()
        assert declared["action"] == "rollback"  # a human's declare is not held
        await settle(daemon)
        assert len(world.rollback_posts()) == 1

        resp = await client.post("/api/ack", json=CONTROL[1][1], headers=AUTH)
        assert resp.status == 200
        kinds = [e.kind for e in await daemon.store.list_events()]
        assert kinds.count("hold") == kinds.count("declare") == kinds.count("ack") == 1

        resp = await client.post("/api/kill-switch", json=CONTROL[3][1], headers=AUTH)
        assert resp.status == 200
        assert daemon.status()["kill_switch"] is True

    async def test_bad_bodies_are_400(self, client: TestClient[Any, Any]) -> None:
        """Malformed control bodies are rejected with 400, unknown targets too."""
        for path, body in [
            ("/api/hold", {"target": "nope"}),
            ("/api/hold", {"target": TARGET, "duration": "soon"}),
            ("/api/ack", {"target": TARGET, "decision": "maybe"}),
            ("/api/kill-switch", {"on": "yes"}),
        ]:
            assert (await client.post(path, json=body, headers=AUTH)).status == 400
        resp = await client.post("/api/declare", data="not json", headers=AUTH)
        assert resp.status == 400


class TestMetricsAndPage:
    async def test_metrics_pass_promtool_after_a_decision_and_a_poll(
        self, client: TestClient[Any, Any], daemon: Daemon, clock: FakeClock
    ) -> None:
        """/metrics after a poll, a rollback decision and its outcome passes the real
        ``promtool check metrics``."""
        promtool = require_tool("PROMTOOL", "promtool")
        await poll_once(daemon)
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        text = await (await client.get("/metrics")).text()
        assert "watchdog_" in text
        proc = await asyncio.create_subprocess_exec(
            promtool,
            "check",
            "metrics",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(text.encode()), 20)
        assert proc.returncode == 0, out.decode()

    async def test_status_page_lists_targets_and_escapes_reasons(
        self, client: TestClient[Any, Any], daemon: Daemon
    ) -> None:
        """The status page shows each target and escapes HTML that reached a reason."""
        await daemon.declare(TARGET, "<script>alert('x')</script>", "mallory")
        page = await (await client.get("/")).text()
        assert f'data-target="{TARGET}"' in page
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


class TestSecrets:
    async def test_canary_secrets_never_leak(
        self, client: TestClient[Any, Any], daemon: Daemon, clock: FakeClock
    ) -> None:
        """The API token, Vercel token and PagerDuty routing key appear in no log line, and
        not in /api/status, /metrics or the status page, across a poll, an outage with its
        rollback, refused control calls and accepted ones."""
        with structlog.testing.capture_logs() as logs:
            await poll_once(daemon)
            await ingest_each(daemon, outage(clock.now()), clock)
            await settle(daemon)
            await client.post("/api/hold", json=CONTROL[0][1], headers={"Authorization": "x"})
            await client.post("/api/kill-switch", json=CONTROL[3][1], headers=AUTH)
            bodies = [
                await (await client.get(path)).text() for path in ("/api/status", "/metrics", "/")
            ]
        assert logs, "nothing was logged: the capture is not working"
        for secret in (API_TOKEN, VERCEL_TOKEN, ROUTING_KEY):
            for line in logs:
                assert secret not in repr(line)
            for body in bodies:
                assert secret not in body
