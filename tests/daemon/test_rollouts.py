"""watchdog/daemon/rollouts.py: the one reader of each project's rolling release tells the
engine what changed and keeps the board release-scoped sources read, against fake Vercel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.daemon.support import BAD, TARGET, World, build_daemon, settings_for
from watchdog.actions.vercel import VercelConfig, VercelDeployer
from watchdog.actions.vercel_rolling import VercelRollingReleases
from watchdog.core.model import Decision, Event, RolloutEvent, RolloutState
from watchdog.daemon.rollouts import RolloutWatcher
from watchdog.sources import ReleaseBoard, ScopedDeployment
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_vercel_rolling import FakeStage

CANARY, CANARY_COMMIT = "dpl_canary", "c0ffee1"
STAGES = [FakeStage(10, approval=True), FakeStage(50, approval=True), FakeStage(100)]


class Watched:
    def __init__(self, watcher: RolloutWatcher, board: ReleaseBoard) -> None:
        self.watcher = watcher
        self.board = board
        self.told: list[RolloutEvent] = []


@pytest.fixture
async def watched(world: World, clock: FakeClock) -> AsyncIterator[Watched]:
    config = settings_for(world).targets[0].deployer
    assert isinstance(config, VercelConfig)
    async with aiohttp.ClientSession() as session:
        rollouts = VercelRollingReleases(VercelDeployer(config, session, clock), clock)
        board = ReleaseBoard()
        told: list[RolloutEvent] = []

        async def apply(event: Event) -> list[Decision]:
            assert isinstance(event, RolloutEvent)
            told.append(event)
            return []

        w = Watched(
            RolloutWatcher({TARGET: rollouts}, {TARGET: board}, clock=clock, apply=apply), board
        )
        w.told = told
        yield w


def start_canary(world: World) -> None:
    now_ms = int(world.now().timestamp() * 1000)
    world.vercel.add_deployment(CANARY, created_ms=now_ms, meta={"githubCommitSha": CANARY_COMMIT})
    world.vercel.start_rolling_release(CANARY, STAGES)


class TestRolloutWatcher:
    async def test_no_rolling_release_is_said_once_and_measures_nothing_apart(
        self, watched: Watched
    ) -> None:
        await watched.watcher.refresh()
        await watched.watcher.refresh()
        assert [e.state for e in watched.told] == [RolloutState.NONE]
        assert watched.board.scoped() == ()

    async def test_an_active_rollout_is_told_and_its_deployments_measured_apart(
        self, watched: Watched, world: World
    ) -> None:
        """The engine hears canary, base, stage and share; the board names both deployments
        with their commits (the canary's looked up once from its meta, the base has none)."""
        start_canary(world)
        await watched.watcher.refresh()
        event = watched.told[-1]
        assert (event.state, event.canary, event.base) == (RolloutState.ACTIVE, CANARY, BAD)
        assert (event.stage, event.percent, event.next_stage) == (0, 10, 1)
        assert event.requires_approval
        assert watched.board.scoped() == (
            ScopedDeployment(BAD, None, "base"),
            ScopedDeployment(CANARY, CANARY_COMMIT, "canary"),
        )
        lookups = len(world.vercel.requests_for("deployment"))
        await watched.watcher.refresh()
        assert len(watched.told) == 1  # nothing changed: nothing told
        assert len(world.vercel.requests_for("deployment")) == lookups  # commit kept

    async def test_a_new_stage_and_then_the_abort_are_each_told(
        self, watched: Watched, world: World
    ) -> None:
        start_canary(world)
        await watched.watcher.refresh()
        world.vercel.rolling.advance()
        await watched.watcher.refresh()
        assert (watched.told[-1].stage, watched.told[-1].percent) == (1, 50)
        world.vercel.rolling.aborted()
        await watched.watcher.refresh()
        assert watched.told[-1].state is RolloutState.ABORTED
        assert watched.board.scoped() == ()

    async def test_a_failed_read_changes_nothing_and_says_why(
        self, watched: Watched, world: World
    ) -> None:
        """Vercel answering 500 (or 429): the engine keeps the rollout it knew, the board
        keeps measuring it, and the status says why the read failed."""
        start_canary(world)
        await watched.watcher.refresh()
        scoped = watched.board.scoped()
        world.vercel.fail("rolling_release", 500, '{"error": {"code": "internal"}}', times=10)
        await watched.watcher.refresh()
        assert len(watched.told) == 1
        assert watched.board.scoped() == scoped
        seen = watched.watcher.seen[TARGET]
        assert seen.error
        assert seen.release is not None
        assert seen.release.canary is not None
        assert seen.release.canary.id == CANARY

    async def test_an_unreadable_commit_is_unknown_and_asked_again(
        self, watched: Watched, world: World
    ) -> None:
        start_canary(world)
        world.vercel.fail("deployment", 500, "{}", times=50)
        await watched.watcher.refresh()
        assert watched.board.scoped()[1] == ScopedDeployment(CANARY, None, "canary")
        world.vercel.clear_faults()
        await watched.watcher.refresh()
        assert watched.board.scoped()[1] == ScopedDeployment(CANARY, CANARY_COMMIT, "canary")


class TestWiring:
    async def test_the_daemon_reads_the_rollout_and_the_engine_judges_the_canary(
        self, world: World, clock: FakeClock
    ) -> None:
        daemon = build_daemon(settings_for(world), MemoryStore(), clock)
        await daemon.start(loops=False)
        try:
            start_canary(world)
            await daemon.rollouts.refresh()
            rollout = daemon.engine.targets[TARGET].rollout
            assert rollout is not None
            assert (rollout.canary, rollout.base) == (CANARY, BAD)
        finally:
            await daemon.stop()

    async def test_rolling_releases_off_makes_no_call(self, world: World, clock: FakeClock) -> None:
        settings = settings_for(world)
        target = settings.targets[0]
        assert target.deployer is not None
        off = target.model_copy(
            update={"deployer": target.deployer.model_copy(update={"rolling_releases": False})}
        )
        settings = settings.model_copy(update={"targets": [off]})
        daemon = build_daemon(settings, MemoryStore(), clock)
        await daemon.start(loops=False)
        try:
            start_canary(world)
            await daemon.rollouts.refresh()
            assert world.vercel.requests_for("rolling_release") == []
            assert daemon.engine.targets[TARGET].rollout is None
        finally:
            await daemon.stop()


class TestManyProjects:
    async def test_one_failing_project_does_not_keep_the_others_unread(
        self, world: World, clock: FakeClock
    ) -> None:
        """Two projects: the first's reads fail (Vercel answers 500), the second's rolling
        release is still read and told, in the same refresh."""
        config = settings_for(world).targets[0].deployer
        assert isinstance(config, VercelConfig)
        broken = config.model_copy(update={"project_id": "prj_gone"})
        told: list[RolloutEvent] = []

        async def apply(event: Event) -> list[Decision]:
            assert isinstance(event, RolloutEvent)
            told.append(event)
            return []

        async with aiohttp.ClientSession() as session:
            watcher = RolloutWatcher(
                {
                    "first": VercelRollingReleases(VercelDeployer(broken, session, clock), clock),
                    TARGET: VercelRollingReleases(VercelDeployer(config, session, clock), clock),
                },
                {TARGET: ReleaseBoard()},
                clock=clock,
                apply=apply,
            )
            start_canary(world)
            await watcher.refresh()
        assert [(e.target, e.canary) for e in told] == [(TARGET, CANARY)]
        assert watcher.seen["first"].error
