"""The daemon's pipeline end to end: samples → engine → store → dispatcher → fake vendors.

The poll and tick loops are off (``start(loops=False)``): the tests feed samples and events
with a fake clock, so every decision happens at a known time.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from tests.daemon.support import (
    BAD,
    GOOD,
    TARGET,
    World,
    build_daemon,
    ingest_each,
    outage,
    settings_for,
    settle,
)
from watchdog.core.model import Action
from watchdog.daemon import Daemon
from watchdog.store.base import ActionStatus, RollbackState
from watchdog.store.memory import MemoryStore
from watchdog.store.sqlite import SqliteStore
from watchdog.testing.clock import FakeClock
from watchdog.testing.server import RecordedRequest


@pytest.fixture(params=["memory", "sqlite"])
async def daemon_factory(
    request: pytest.FixtureRequest, world: World, clock: FakeClock, tmp_path: Any
) -> AsyncIterator[Any]:
    started: list[Daemon] = []

    async def make(**overrides: Any) -> Daemon:
        store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "wd.db")
        daemon = build_daemon(settings_for(world, **overrides), store, clock)
        await daemon.start(loops=False)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        await daemon.stop()


class TestRollbackPath:
    async def test_p0_outage_rolls_back_once_pages_and_announces(
        self, daemon_factory: Any, world: World, clock: FakeClock
    ) -> None:
        """A P0 outage gives exactly one rollback POST, a P0 page with the incident's dedup
        key, a "ROLLBACK IN PROGRESS" Slack message, and a stored, audited incident."""
        daemon = await daemon_factory()
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)

        posts = world.rollback_posts()
        assert [p.path for p in posts] == [f"/v1/projects/prj_1/rollback/{GOOD}"]
        assert world.vercel.alias == GOOD

        incidents = await daemon.store.list_incidents()
        assert len(incidents) == 1
        incident = incidents[0]
        assert incident.target == TARGET
        assert incident.rule == "system-down"
        assert incident.deployment == BAD
        assert incident.dedup_key == f"watchdog/{TARGET}/{incident.id}"

        triggers = [e for e in world.pagerduty.events if e["event_action"] == "trigger"]
        assert triggers, "no page was sent"
        assert {e["dedup_key"] for e in triggers} == {f"watchdog/{TARGET}/{incident.id}"}
        assert triggers[0]["payload"]["severity"] == "critical"

        assert any("ROLLBACK IN PROGRESS" in m for m in world.slack.messages)

        decisions = await daemon.store.list_decisions(incident=incident.id)
        rollback = [d for d in decisions if d.action == Action.ROLLBACK.value]
        assert rollback, "the rollback decision was not audited"
        assert "guards:passed" in rollback[-1].path
        assert rollback[-1].data["execute_rollback"] is True
        assert rollback[-1].data["observations"][0]["rule"] == "system-down"

        rollbacks = await daemon.store.list_rollbacks(target=TARGET)
        assert [(r.from_deployment, r.to_deployment) for r in rollbacks] == [(BAD, GOOD)]
        assert rollbacks[0].state is RollbackState.VERIFIED

    async def test_intent_is_recorded_before_the_rollback_post(
        self, daemon_factory: Any, world: World, clock: FakeClock
    ) -> None:
        """When Vercel receives the rollback POST, the store already holds the intent: the
        journal entry and an INTENT rollback record naming the target (read from the file
        by another connection, for SQLite)."""
        daemon = await daemon_factory()
        seen: list[tuple[list[str], list[tuple[str, str | None]]]] = []

        def on_request(req: RecordedRequest) -> None:
            if req.method == "POST":
                seen.append(peek(daemon.store))

        world.vercel.on_request(on_request)
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        assert len(seen) == 1
        journal, rollbacks = seen[0]
        assert any(key.endswith("/rollback") for key in journal)
        assert rollbacks == [("intent", GOOD)]


def peek(store: Any) -> tuple[list[str], list[tuple[str, str | None]]]:
    """The journal keys and rollback (state, to) rows, read synchronously at this instant."""
    if isinstance(store, MemoryStore):
        return list(store.actions), [
            (r.state.value, r.to_deployment) for r in store.rollbacks.values()
        ]
    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        keys = [row[0] for row in conn.execute("SELECT key FROM actions")]
        rows = [(s, t) for s, t in conn.execute("SELECT state, to_deployment FROM rollbacks")]
    return keys, rows


class TestRefusedAndShadow:
    async def test_hold_refuses_the_rollback_and_pages_p0_naming_it(
        self, daemon_factory: Any, world: World, clock: FakeClock
    ) -> None:
        """Under a hold the outage pages P0 "refused by hold" and Vercel gets no POST."""
        daemon = await daemon_factory()
        await daemon.hold(TARGET, timedelta(hours=1), "migration running", "alice")
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)

        assert world.rollback_posts() == []
        triggers = [e for e in world.pagerduty.events if e["event_action"] == "trigger"]
        assert triggers
        assert triggers[-1]["payload"]["severity"] == "critical"
        assert "refused by hold" in triggers[-1]["payload"]["summary"]
        assert "migration running" in triggers[-1]["payload"]["summary"]
        assert await daemon.store.list_rollbacks() == []
        decisions = await daemon.store.list_decisions(target=TARGET)
        refused = [d for d in decisions if d.data["refused_by"]]
        assert {d.data["refused_by"] for d in refused} == {"hold"}
        assert refused[0].action == Action.PAGE.value
        assert "guard:hold:refused" in refused[0].path

    async def test_kill_switch_refuses_the_rollback(
        self, daemon_factory: Any, world: World, clock: FakeClock
    ) -> None:
        """With the kill switch on, the outage pages P0 naming it and nothing is rolled back."""
        daemon = await daemon_factory()
        await daemon.kill_switch(True, "drill", "bob")
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        assert world.rollback_posts() == []
        summaries = [e["payload"]["summary"] for e in world.pagerduty.events if "payload" in e]
        assert any("refused by kill_switch" in s for s in summaries)

    async def test_shadow_mode_records_would_roll_back_and_never_posts(
        self, daemon_factory: Any, world: World, clock: FakeClock
    ) -> None:
        """In shadow mode the rollback is recorded as SHADOW "would roll back to dpl_good",
        the journal says skipped, Slack says SHADOW MODE, and Vercel gets no POST."""
        daemon = await daemon_factory(shadow=True)
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)

        assert world.rollback_posts() == []
        assert world.vercel.alias == BAD
        rollbacks = await daemon.store.list_rollbacks(target=TARGET)
        assert [(r.state, r.detail) for r in rollbacks] == [
            (RollbackState.SHADOW, f"would roll back to {GOOD}")
        ]
        actions = [a for a in await daemon.store.list_actions() if a.kind == "rollback"]
        assert [a.status for a in actions] == [ActionStatus.SKIPPED]
        assert any("SHADOW MODE" in m for m in world.slack.messages)
        assert daemon.status()["shadow"] is True


class TestWiring:
    async def test_verification_only_waits_for_a_measured_error_rate(
        self, world: World, clock: FakeClock
    ) -> None:
        """A target watched by health alone verifies without an error-rate check."""
        daemon = build_daemon(settings_for(world), MemoryStore(), clock)
        await daemon.start(loops=False)
        try:
            assert daemon.dispatcher is not None
            wiring = daemon.dispatcher.targets[TARGET]
            assert wiring.error_rate is None
        finally:
            await daemon.stop()

    async def test_last_drill_is_exported_at_start(self, world: World, clock: FakeClock) -> None:
        """The last recorded drill's result and duration are metrics from start-up on."""
        from watchdog.store.base import DrillRecord

        store = MemoryStore()
        await store.save_drill(DrillRecord("d1", TARGET, clock.now(), clock.now(), True, 95.0, {}))
        daemon = build_daemon(settings_for(world), store, clock)
        await daemon.start(loops=False)
        try:
            labels = {"target": TARGET}
            assert daemon.registry.get_sample_value("watchdog_drill_success", labels) == 1
            assert daemon.registry.get_sample_value("watchdog_drill_duration_seconds", labels) == (
                95.0
            )
        finally:
            await daemon.stop()
