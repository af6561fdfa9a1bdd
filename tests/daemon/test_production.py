"""What the production chore keeps for the status page: the live deployment and candidates."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.daemon.support import BAD, GOOD, OLD, World, build_daemon, settings_for
from watchdog.daemon import Daemon
from watchdog.daemon.production import CANDIDATES_EVERY
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock


@pytest.fixture
async def daemon(world: World, clock: FakeClock) -> AsyncIterator[Daemon]:
    d = build_daemon(settings_for(world), MemoryStore(), clock)
    await d.start(loops=False)
    yield d
    await d.stop()


class TestProductionSeen:
    async def test_start_up_learns_production_and_its_candidates(
        self, daemon: Daemon, world: World
    ) -> None:
        """The start-up look-up keeps the live deployment and the READY candidates."""
        seen = daemon.production.seen["web"]
        assert seen.current is not None
        assert seen.current.id == BAD
        assert [d.id for d in seen.candidates] == [BAD, GOOD, OLD]
        assert seen.error is None

    async def test_candidates_are_listed_again_only_when_due(
        self, daemon: Daemon, world: World, clock: FakeClock
    ) -> None:
        """An unchanged production is not listed on every look-up; after CANDIDATES_EVERY,
        or when production moves, it is."""
        listed = len(world.vercel.requests_for("deployments"))
        await daemon.production.refresh()
        assert len(world.vercel.requests_for("deployments")) == listed
        clock.advance(CANDIDATES_EVERY.total_seconds())
        await daemon.production.refresh()
        assert len(world.vercel.requests_for("deployments")) == listed + 1
        world.vercel.set_serving(GOOD)
        world.vercel.production = GOOD
        await daemon.production.refresh()
        assert len(world.vercel.requests_for("deployments")) == listed + 2
        assert daemon.production.seen["web"].current.id == GOOD  # type: ignore[union-attr]

    async def test_a_failed_look_up_keeps_what_was_known_and_says_why(
        self, daemon: Daemon, world: World
    ) -> None:
        world.vercel.fail("project", 500, "{}", times=10)
        await daemon.production.refresh()
        seen = daemon.production.seen["web"]
        assert seen.current is not None
        assert seen.current.id == BAD
        assert seen.error
