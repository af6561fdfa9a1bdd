"""The page, /api/status and /readyz are never calmer than the store: after a restart, while
restoring, and on a follower."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.daemon.support import (
    API_TOKEN,
    GOOD,
    TARGET,
    World,
    api_client,
    build_daemon,
    default_pack,
    ingest_each,
    outage,
    settings_for,
    settle,
)
from watchdog.clock import SystemClock
from watchdog.daemon.main import start
from watchdog.store.base import IncidentRecord, Lease, RollbackRecord
from watchdog.store.memory import MemoryStore
from watchdog.store.sqlite import SqliteStore
from watchdog.testing.clock import FakeClock

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
async def closing() -> AsyncIterator[list[Callable[[], Awaitable[None]]]]:
    done: list[Callable[[], Awaitable[None]]] = []
    yield done
    for close in reversed(done):
        await close()


class TestAfterARestart:
    async def test_the_first_request_shows_the_restored_rollback_before_any_poll(
        self,
        world: World,
        clock: FakeClock,
        tmp_path: Path,
        closing: list[Callable[[], Awaitable[None]]],
    ) -> None:
        """A rolled-back, still-open P0 incident survives a restart: before the first poll
        /api/status and the page say rolled back and verified, the legacy action is not a
        calm "monitor", and /readyz is not ready."""
        settings = settings_for(world, store_url=f"sqlite:///{tmp_path}/wd.db")
        a = build_daemon(settings, SqliteStore(tmp_path / "wd.db"), clock)
        await a.start(loops=False)
        await ingest_each(a, outage(clock.now()), clock)
        await settle(a)
        await a.stop()

        clock.advance(20)
        b = build_daemon(settings, SqliteStore(tmp_path / "wd.db"), clock)
        await b.start(loops=False)
        closing.append(b.stop)
        client = await api_client(b)
        closing.append(client.close)

        status = await (await client.get("/api/status")).json()
        (target,) = status["targets"]
        assert target["headline"]["label"] == "ROLLED BACK · VERIFIED · P0"
        assert target["headline"]["level"] == "rollback"
        assert target["open_incident"]["severity"] == "P0"
        assert target["action"] != "monitor"
        assert any("verified" in e["text"] for e in target["timeline"])
        page = await (await client.get("/")).text()
        assert "ROLLED BACK · VERIFIED · P0" in page
        assert f"<code>{GOOD}</code>" in page
        ready = await client.get("/readyz")
        assert ready.status == 503


class GatedStore(MemoryStore):
    """Holds the restore's first read (the budget window's rollbacks) until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def list_rollbacks(
        self, *, target: str | None = None, since: datetime | None = None
    ) -> list[RollbackRecord]:
        if since is not None and not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        return await super().list_rollbacks(target=target, since=since)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stored_incident(at: datetime) -> IncidentRecord:
    return IncidentRecord(
        id="web-stored",
        target=TARGET,
        opened_at=at,
        severity="P0",
        rule="system-down",
        reason="health_up == 0 for 3 polls",
        dedup_key=f"watchdog/{TARGET}/web-stored",
        deployment="dpl_bad",
        first_detected_at=at,
    )


class TestWhileRestoring:
    async def test_the_server_answers_restoring_and_refuses_control_calls(
        self, world: World, closing: list[Callable[[], Awaitable[None]]]
    ) -> None:
        """The HTTP server is up before the restore: /healthz is alive, /readyz says
        restoring, the status shows the store's open incident, control calls answer 503;
        once restored the engine holds the incident."""
        store = GatedStore()
        await store.save_incident(stored_incident(datetime.now().astimezone()))
        port = free_port()
        settings = settings_for(world)
        starting = asyncio.create_task(
            start(settings, default_pack(), clock=SystemClock(), store=store, port=port)
        )
        await asyncio.wait_for(store.waiting.wait(), 10)
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                assert (await http.get(f"{url}/healthz")).status == 200
                ready = await http.get(f"{url}/readyz")
                assert ready.status == 503
                assert "restoring state from the store" in (await ready.json())["problems"]
                status = await (await http.get(f"{url}/api/status")).json()
                assert status["phase"] == "restoring"
                (target,) = status["targets"]
                assert target["headline"]["label"] == "INCIDENT OPEN · P0"
                assert "restoring" in target["headline"]["summary"]
                page = await (await http.get(f"{url}/")).text()
                assert 'data-testid="restoring"' in page
                assert "web-stored" in page
                body = {"target": TARGET, "duration": "1h", "reason": "x"}
                held = await http.post(f"{url}/api/hold", json=body, headers=AUTH)
                assert held.status == 503
                store.gate.set()
                running = await asyncio.wait_for(starting, 10)
                closing.append(running.stop)
                status = await (await http.get(f"{url}/api/status")).json()
                assert status["phase"] == "running"
                assert status["targets"][0]["view"]["incident"]["id"] == "web-stored"
                assert "restoring state from the store" not in (
                    await (await http.get(f"{url}/readyz")).json()
                ).get("problems", [])
        finally:
            store.gate.set()
            if not starting.done():
                starting.cancel()


class TestOnAFollower:
    async def test_a_follower_shows_the_leaders_incident_from_the_store(
        self, world: World, clock: FakeClock, closing: list[Callable[[], Awaitable[None]]]
    ) -> None:
        """A follower's own engine saw nothing wrong; its page still shows the incident the
        leader recorded, says it follows, and is not a calm "OK"."""
        store = MemoryStore()
        store.lease = Lease("replica-b", 1, clock.now() + timedelta(days=1))
        await store.save_incident(stored_incident(clock.now()))
        follower = build_daemon(settings_for(world), store, clock)
        await follower.start(loops=False)
        closing.append(follower.stop)
        assert not follower.leader
        client = await api_client(follower)
        closing.append(client.close)
        status = await (await client.get("/api/status")).json()
        headline = status["targets"][0]["headline"]
        assert headline["label"] == "INCIDENT OPEN · P0"
        assert "this replica follows" in headline["summary"]
        page = await (await client.get("/")).text()
        assert 'data-testid="follower"' in page
        assert "OK · MONITORING" not in page
