"""Issue 10's judgement through the real daemon pipeline (store, dispatcher, fake vendors):
a flapping signal does not storm pages or Slack, and a second bad deployment that goes live
during an open incident gets its own rollback rather than a silently deduplicated one."""

from __future__ import annotations

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
    default_pack,
    health,
    ingest_each,
    outage,
    settings_for,
    settle,
)
from watchdog.core.rules import RulePack
from watchdog.daemon import Daemon
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock


def pack_with(**flowchart: object) -> RulePack:
    data = default_pack().model_dump(by_alias=True)
    data["flowchart"].update(flowchart)
    return RulePack.model_validate(data)


@pytest.fixture
async def make(world: World, clock: FakeClock) -> AsyncIterator[Any]:
    started: list[Daemon] = []

    async def factory(pack: RulePack | None = None) -> Daemon:
        daemon = build_daemon(settings_for(world), MemoryStore(), clock, pack)
        await daemon.start(loops=False)
        started.append(daemon)
        return daemon

    yield factory
    for daemon in started:
        await daemon.stop()


def triggers(world: World) -> list[dict[str, Any]]:
    return [e for e in world.pagerduty.events if e["event_action"] == "trigger"]


class TestNoStorm:
    async def test_flapping_health_after_a_rollback_pages_once_per_escalation(
        self, make: Any, world: World, clock: FakeClock
    ) -> None:
        """After the rollback, health keeps failing three polls in four for ten minutes:
        one page for the rollback, one when it did not help; Slack stays at its cadence."""
        daemon = await make()
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        assert len(world.rollback_posts()) == 1
        start = clock.now()
        samples = []
        for cycle in range(40):
            t = start + timedelta(seconds=15 * 4 * cycle)
            samples += [health(t + timedelta(seconds=15 * k), k == 0) for k in range(4)]
        await ingest_each(daemon, samples, clock)
        await settle(daemon)
        assert len(world.rollback_posts()) == 1
        sent = [(e["payload"]["severity"], e["payload"]["summary"][:40]) for e in triggers(world)]
        assert len(sent) <= 2, sent
        assert len(set(sent)) == len(sent)  # nothing restated
        # "rollback in progress", "complete", the refusal, and 5-minute updates at most
        assert len(world.slack.messages) <= 3 + 40 * 60 // 300

    async def test_control_each_escalation_does_page(
        self, make: Any, world: World, clock: FakeClock
    ) -> None:
        """Control: the outage alone pages (the count above is not zero by accident)."""
        daemon = await make()
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        assert len(triggers(world)) == 1


class TestNewChapter:
    async def test_second_bad_deployment_in_an_open_incident_rolls_back(
        self, make: Any, world: World, clock: FakeClock
    ) -> None:
        """dpl_bad is rolled back; while the incident resolves, dpl_next goes live and fails
        too: it is its own chapter, so it gets its own rollback POST (not deduplicated as the
        incident's first) once the cooldown allows."""
        daemon = await make(pack_with(cooldown="1m", resolve_period="30m"))
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        assert [p.path.rsplit("/", 1)[-1] for p in world.rollback_posts()] == [GOOD]
        incident = (await daemon.store.list_incidents(open_only=True))[0]

        up = [health(clock.now() + timedelta(seconds=15 * (i + 1)), True) for i in range(8)]
        await ingest_each(daemon, up, clock)
        now_ms = int(clock.now().timestamp() * 1000)
        world.vercel.add_deployment("dpl_next", created_ms=now_ms, production=True)
        world.vercel.set_serving("dpl_next")
        await daemon.production.refresh()
        await ingest_each(daemon, outage(clock.now() + timedelta(seconds=5)), clock)
        await settle(daemon)

        posts = [p.path.rsplit("/", 1)[-1] for p in world.rollback_posts()]
        assert len(posts) == 2, posts
        assert posts[1] != "dpl_next"
        open_now = await daemon.store.list_incidents(open_only=True)
        assert [i.id for i in open_now] == [incident.id]  # the same incident, a new chapter
        rollbacks = await daemon.store.list_rollbacks(target=TARGET)
        assert [r.from_deployment for r in rollbacks] == [BAD, "dpl_next"]
