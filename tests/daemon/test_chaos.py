"""Chaos: the pager down for minutes, a pager and a heartbeat that hang, the daemon killed with
pages undelivered, the watchdog's own network cut. Each runs the real daemon against the
fakes on an injected clock.

- pages are never lost: stored first, delivered after the pager recovers, resumed after a
  restart, given up only past their maximum age and then said so;
- a hung pager or heartbeat never holds up a poll, a decision, a rollback or the lease;
- blind means blind: a partition of app and canary pages "blind", never "down".
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from tests.daemon.support import (
    GOOD,
    TARGET,
    World,
    build_daemon,
    crash,
    fixed_start,
    ingest_each,
    outage,
    settings_for,
    settle,
)
from watchdog.config import HeartbeatSettings, Settings
from watchdog.daemon import Daemon
from watchdog.sources import HealthSourceConfig, SmokeSourceConfig
from watchdog.sources.smoke import SmokeCheck
from watchdog.store.base import OutboxStatus
from watchdog.store.memory import MemoryStore
from watchdog.store.sqlite import SqliteStore
from watchdog.testing.clock import FakeClock, SteppingClock
from watchdog.testing.server import Fault, closed_port_url


def triggers(world: World) -> list[dict[str, Any]]:
    return [e for e in world.pagerduty.events if e.get("event_action") == "trigger"]


async def deliver_after(daemon: Daemon, clock: FakeClock, seconds: float) -> None:
    """Let ``seconds`` of fake time pass, then run the outbox pass its chore would start."""
    clock.advance(seconds)
    assert daemon.dispatcher is not None
    await daemon.dispatcher.outbox.deliver_due()


def chaos_settings(
    world: World,
    *,
    heartbeat: HeartbeatSettings | None = None,
    store_url: str = "memory://",
    **dispatcher: Any,
) -> Settings:
    """The daemon tests' settings, with the outbox's knobs set for fake minutes."""
    settings = settings_for(world, store_url=store_url)
    update: dict[str, Any] = {"delivery_timeout": timedelta(seconds=2), **dispatcher}
    changes: dict[str, Any] = {"dispatcher": settings.dispatcher.model_copy(update=update)}
    if heartbeat is not None:
        changes["heartbeat"] = heartbeat
    return settings.model_copy(update=changes)


class TestPagerDown:
    async def test_pages_arrive_after_minutes_of_503_then_refused_connections(
        self, world: World, clock: FakeClock
    ) -> None:
        """PagerDuty answers 503 for two minutes of an outage, then refuses connections for
        three more; the rollback goes ahead meanwhile, and once PagerDuty is back the P0
        and the change event arrive, in order, once each."""
        daemon = build_daemon(chaos_settings(world), MemoryStore(), clock)
        await daemon.start(loops=False)
        try:
            world.pagerduty.fail_always(Fault(status=503, body="busy"))
            await ingest_each(daemon, outage(clock.now()), clock)
            await settle(daemon)
            assert len(world.rollback_posts()) == 1  # the pager's outage held nothing up
            assert world.vercel.alias == GOOD
            assert triggers(world) == []
            for _ in range(4):
                await deliver_after(daemon, clock, 30)
            assert triggers(world) == []

            port = urlsplit(world.pagerduty.url).port
            await world.pagerduty.close()  # now the connection is refused
            for _ in range(6):
                await deliver_after(daemon, clock, 30)
            store = daemon.store
            assert isinstance(store, MemoryStore)
            waiting = [m for m in store.outbox.values() if m.status is OutboxStatus.PENDING]
            assert {m.kind for m in waiting} >= {"page", "change"}
            assert all(m.attempts >= 5 for m in waiting if m.kind == "page")
            assert daemon.status()["notifications"]["pending"] == len(waiting)

            world.pagerduty.fail_always(None)
            assert port is not None
            await world.pagerduty.start(port)
            await deliver_after(daemon, clock, 60)

            sent = triggers(world)
            assert sent, "the page never arrived after PagerDuty recovered"
            assert sent[0]["payload"]["severity"] == "critical"
            assert "rolling back" in sent[0]["payload"]["summary"]
            assert len(world.pagerduty.changes) == 1
            assert {m.status for m in store.outbox.values() if m.kind != "chat"} == {
                OutboxStatus.DELIVERED
            }
            await deliver_after(daemon, clock, 60)
            assert triggers(world) == sent  # delivered once, not again
        finally:
            await daemon.stop()

    async def test_past_the_maximum_age_a_page_is_given_up_loudly(
        self, world: World, clock: FakeClock
    ) -> None:
        """A page PagerDuty never takes is tried until ``page_max_age``, then marked expired,
        logged, counted in watchdog_page_undelivered and listed on the status page."""
        settings = chaos_settings(world, page_max_age=timedelta(minutes=10))
        daemon = build_daemon(settings, MemoryStore(), clock)
        await daemon.start(loops=False)
        try:
            world.pagerduty.fail_always(Fault(status=503))
            await ingest_each(daemon, outage(clock.now()), clock)
            await settle(daemon)
            with capture_logs() as logs:
                for _ in range(12):
                    await deliver_after(daemon, clock, 60)
            lost = daemon.status()["notifications"]["undelivered"]
            assert any(m["kind"] == "page" and m["status"] == "expired" for m in lost)
            assert any(e["event"] == "notification_undelivered" for e in logs)
            gauge = daemon.registry.get_sample_value("watchdog_page_undelivered", {"kind": "page"})
            assert gauge is not None
            assert gauge >= 1
        finally:
            await daemon.stop()


class TestRestartResumes:
    async def test_pages_stored_before_a_crash_are_sent_by_the_next_run(
        self, world: World, clock: FakeClock, tmp_path: Path
    ) -> None:
        """A daemon killed while PagerDuty is down leaves its pages in the SQLite outbox;
        the next one sends them (and the incident's alert again) once PagerDuty answers."""
        settings = chaos_settings(world, store_url=f"sqlite:///{tmp_path}/wd.db")
        a = build_daemon(settings, SqliteStore(tmp_path / "wd.db"), clock)
        await a.start(loops=False)
        world.pagerduty.fail_always(Fault(status=503))
        await ingest_each(a, outage(clock.now()), clock)
        await settle(a)
        incident = (await a.store.list_incidents())[0].id
        await crash(a)
        assert triggers(world) == []

        world.pagerduty.fail_always(None)
        clock.advance(30)
        b = build_daemon(settings, SqliteStore(tmp_path / "wd.db"), clock)
        await b.start(loops=False)
        try:
            await settle(b)
            sent = triggers(world)
            assert sent
            assert {e["dedup_key"] for e in sent} == {f"watchdog/{TARGET}/{incident}"}
            assert "rolling back" in sent[0]["payload"]["summary"]
            assert len(world.pagerduty.changes) == 1
        finally:
            await b.stop()


class _CountingStore(MemoryStore):
    """A memory store that remembers when (fake monotonic time) each lease was renewed."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock
        self.renewed: list[float] = []

    async def acquire(self, holder: str, ttl: timedelta, now: Any) -> Any:
        self.renewed.append(self._clock.monotonic())
        return await super().acquire(holder, ttl, now)


@pytest.fixture
def stepping() -> SteppingClock:
    return SteppingClock(fixed_start())


@pytest.fixture
async def stepping_world(stepping: SteppingClock) -> AsyncIterator[World]:
    w = World(now=stepping.now)
    await w.start()
    yield w
    await w.close()


class TestSlowPagerAndHeartbeat:
    async def test_polls_decisions_rollback_and_lease_stay_on_time(
        self, stepping_world: World, stepping: SteppingClock
    ) -> None:
        """PagerDuty and the heartbeat URL both hang (every request, for longer than the
        test runs) through an outage. Over 90 fake seconds of the daemon's own loops the
        health source is polled on its 15 s grid, the lease is renewed every 5 s tick, and the
        rollback is made: nothing waits for the pager or the heartbeat."""
        world, clock = stepping_world, stepping
        world.app.health_status = 500
        world.pagerduty.fail_always(Fault.slow(60))
        polled: list[float] = []
        world.app.on_request(
            lambda r: polled.append(clock.monotonic()) if r.path == "/api/health" else None
        )
        settings = chaos_settings(
            world,
            delivery_timeout=timedelta(seconds=30),
            heartbeat=HeartbeatSettings(
                url=SecretStr(f"{world.pagerduty.url}/heartbeat"), interval=timedelta(seconds=5)
            ),
        )
        store = _CountingStore(clock)
        daemon = build_daemon(settings, store, clock)
        await daemon.start()
        start = clock.monotonic()
        try:
            for _ in range(90):
                clock.advance(1)
                for _ in range(4):  # let the loops that woke do their (real, loopback) I/O
                    await asyncio.sleep(0.005)
        finally:
            await daemon.stop()

        assert world.pagerduty.requests_to("/heartbeat"), "the heartbeat was not tried"
        assert world.pagerduty.requests_for("enqueue"), "the page was not tried"
        assert triggers(world) == []  # it hung throughout
        assert len(world.rollback_posts()) == 1
        polls = [t - start for t in polled if t > start]
        assert len(polls) >= 5, polls
        assert max(b - a for a, b in itertools.pairwise(polls)) <= 16, polls
        renewals = [t - start for t in store.renewed if t > start]
        assert len(renewals) >= 16, renewals
        assert max(b - a for a, b in itertools.pairwise(renewals)) <= 6, renewals


class TestPartition:
    async def test_app_and_canary_unreachable_is_blind_never_p1_never_rollback(
        self, world: World, clock: FakeClock
    ) -> None:
        """The watchdog's network is cut: the app (health and a smoke check) and the target's
        reachability canary give no answer for eight fake minutes. It pages "watchdog blind"
        at warning, never a P1 "feature down" or a P0, and never rolls back."""
        dead = closed_port_url()
        settings = chaos_settings(world)
        target = settings.targets[0].model_copy(
            update={
                "canary_url": closed_port_url(),
                "sources": [
                    HealthSourceConfig(url=f"{dead}/api/health", timeout=timedelta(seconds=2)),
                    SmokeSourceConfig(
                        checks=[SmokeCheck(name="create-opportunity", url=f"{dead}/api/opps")],
                        interval=timedelta(seconds=15),
                        timeout=timedelta(seconds=2),
                    ),
                ],
            }
        )
        daemon = build_daemon(
            settings.model_copy(update={"targets": [target]}), MemoryStore(), clock
        )
        await daemon.start(loops=False)
        try:
            for _ in range(32):
                clock.advance(15)
                for state in daemon.sources.values():
                    await daemon.ingest(await daemon.poller.poll_once(state))
                await daemon.pipeline.redecide([TARGET], clock.now())
                await settle(daemon)
            await daemon.dispatcher.outbox.deliver_due()  # type: ignore[union-attr]
        finally:
            await daemon.stop()

        assert world.rollback_posts() == []
        sent = triggers(world)
        assert sent, "blindness was never paged"
        assert {e["payload"]["severity"] for e in sent} == {"warning"}
        assert all("watchdog blind" in e["payload"]["summary"] for e in sent)
        decisions = [d for d in daemon.store.decisions if d.target == TARGET]  # type: ignore[attr-defined]
        assert {d.severity for d in decisions} <= {None, "investigate"}
        assert not any(d.data["execute_rollback"] for d in decisions)
