"""Restart safety: a daemon that dies mid-incident is replaced by one that carries on.

Daemon A works on a SQLite file and is abandoned without ``stop()`` (its tasks cancelled
mid-await, nothing flushed or released); daemon B opens the same file. The SIGKILL tests
below do the same with a real process and ``kill -9``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.daemon.support import (
    BAD,
    GOOD,
    TARGET,
    World,
    build_daemon,
    crash,
    health,
    ingest_each,
    outage,
    settings_for,
    settle,
    wait_for,
)
from watchdog.daemon import Daemon
from watchdog.store.base import RollbackState
from watchdog.store.sqlite import SqliteStore
from watchdog.testing.clock import FakeClock
from watchdog.testing.server import RecordedRequest

Factory = Callable[[], Awaitable[Daemon]]


@pytest.fixture
async def make_daemon(world: World, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Factory]:
    started: list[Daemon] = []

    async def make() -> Daemon:
        daemon = build_daemon(
            settings_for(world, store_url=f"sqlite:///{tmp_path}/wd.db"),
            SqliteStore(tmp_path / "wd.db"),
            clock,
        )
        await daemon.start(loops=False)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        if daemon.store._db is not None:  # type: ignore[attr-defined]
            await daemon.stop()


def triggers(world: World) -> list[dict[str, object]]:
    return [e for e in world.pagerduty.events if e["event_action"] == "trigger"]


async def restart_into_the_outage(make_daemon: Factory, clock: FakeClock) -> Daemon:
    """A new daemon on the same file 20 s later, seeing the outage go on: a fresh engine
    needs the rule's three consecutive failures again."""
    clock.advance(20)
    b = await make_daemon()
    await settle(b)
    await ingest_each(b, outage(clock.now())[1:], clock)
    await settle(b)
    return b


def hang_at_the_post(daemon: Daemon) -> asyncio.Event:
    """Make the rollback request hang before any byte leaves (the crash comes first): the
    intent is journaled, Vercel hears nothing. Returns the event set when it is reached."""
    assert daemon.dispatcher is not None
    deployer = daemon.dispatcher.targets[TARGET].deployer
    assert deployer is not None
    asked = asyncio.Event()

    async def hang(target: object) -> object:
        asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    deployer.request_rollback = hang  # type: ignore[method-assign,assignment]
    return asked


class TestCrashMidRollback:
    async def test_restart_keeps_incident_and_reconciles_without_a_second_post(
        self, make_daemon: Factory, world: World, clock: FakeClock
    ) -> None:
        """A dies while Vercel's rollback job runs; B keeps the incident id and dedup key,
        follows the job to its end instead of re-posting, and never rolls back twice."""
        world.vercel.job_polls = 1000  # the job outlives A
        posted = asyncio.Event()
        world.vercel.on_request(lambda r: posted.set() if r.method == "POST" else None)
        a = await make_daemon()
        await ingest_each(a, outage(clock.now()), clock)
        await asyncio.wait_for(posted.wait(), 10)
        for _ in range(200):  # until A has recorded that Vercel accepted the request
            rbs = await a.store.list_rollbacks()
            if rbs and rbs[0].state is RollbackState.REQUESTED:
                break
            await asyncio.sleep(0.01)
        incident = (await a.store.list_incidents())[0]
        await crash(a)
        assert len(world.rollback_posts()) == 1

        world.vercel.job_polls = 2
        clock.advance(20)
        b = await make_daemon()
        await settle(b)
        await ingest_each(b, [health(clock.now() + timedelta(seconds=1), False)], clock)
        await settle(b)

        assert len(world.rollback_posts()) == 1
        assert world.vercel.alias == GOOD
        assert b.status()["targets"][0]["incident"] == incident.id
        assert [i.id for i in await b.store.list_incidents()] == [incident.id]
        rollbacks = await b.store.list_rollbacks()
        assert [(r.state, r.to_deployment) for r in rollbacks] == [(RollbackState.SUCCEEDED, GOOD)]
        assert {e["dedup_key"] for e in triggers(world)} == {f"watchdog/web/{incident.id}"}

    async def test_crash_between_intent_and_post_completes_the_rollback_once(
        self, make_daemon: Factory, world: World, clock: FakeClock
    ) -> None:
        """A dies after journaling the rollback intent but before Vercel heard of it. B proves
        it never arrived (production still serves the bad deployment, no job on Vercel),
        restores the chapter as not rolled back, and once fresh samples still call for it
        completes the rollback: exactly one POST ever, same incident, production good.

        (This replaced "page P0, never re-issue": an abandoned rollback left production
        broken; DESIGN §5 requires the one re-issue after checking.)"""
        a = await make_daemon()
        asked = hang_at_the_post(a)
        await ingest_each(a, outage(clock.now()), clock)
        await asyncio.wait_for(asked.wait(), 10)
        incident = (await a.store.list_incidents())[0]
        [intent] = await a.store.list_rollbacks()
        assert (intent.state, intent.to_deployment) == (RollbackState.INTENT, GOOD)
        await crash(a)
        assert world.rollback_posts() == []

        b = await restart_into_the_outage(make_daemon, clock)
        assert len(world.rollback_posts()) == 1
        assert world.vercel.alias == GOOD
        assert b.status()["targets"][0]["incident"] == incident.id
        states = [(r.id, r.state) for r in await b.store.list_rollbacks()]
        assert states == [
            (f"{incident.id}/rollback", RollbackState.ABANDONED),
            (f"{incident.id}/rollback#reissue", RollbackState.VERIFIED),
        ]
        # more samples, ticks and a third daemon never post again
        await ingest_each(b, outage(clock.now() + timedelta(seconds=1))[1:], clock)
        await settle(b)
        await crash(b)
        c = await make_daemon()
        await settle(c)
        await ingest_each(c, outage(clock.now() + timedelta(seconds=1))[1:], clock)
        await settle(c)
        assert len(world.rollback_posts()) == 1

    async def test_vercel_down_at_restart_postpones_then_completes_once(
        self, make_daemon: Factory, world: World, clock: FakeClock
    ) -> None:
        """B restarts while Vercel does not answer: nothing is guessed (the rollback stays in
        flight, on-call gets a P0 saying nobody can tell yet); once Vercel answers, B's
        reconcile chore proves it never arrived and the rollback is completed, once."""
        a = await make_daemon()
        asked = hang_at_the_post(a)
        await ingest_each(a, outage(clock.now()), clock)
        await asyncio.wait_for(asked.wait(), 10)
        await crash(a)

        world.vercel.fail("alias", 503, "{}", times=1000)
        clock.advance(20)
        b = await make_daemon()
        await settle(b)
        assert b.dispatcher is not None
        assert b.dispatcher.unsettled == 1
        [rb] = await b.store.list_rollbacks()
        assert rb.state is RollbackState.INTENT
        await ingest_each(b, outage(clock.now())[1:], clock)
        await settle(b)
        assert world.rollback_posts() == []
        assert "cannot reach Vercel" in str(triggers(world)[-1]["payload"]["summary"])  # type: ignore[index]

        world.vercel.clear_faults()  # Vercel answers again
        await b._settle_postponed()  # the reconcile chore's next tick
        await settle(b)
        assert b.dispatcher.unsettled == 0
        await ingest_each(b, outage(clock.now() + timedelta(seconds=1))[1:], clock)
        await settle(b)
        assert len(world.rollback_posts()) == 1
        assert world.vercel.alias == GOOD

    async def test_crash_during_the_lookups_leaves_nothing_to_undo(
        self, make_daemon: Factory, world: World, clock: FakeClock
    ) -> None:
        """A dies while listing candidates (which may retry for a minute): nothing was
        journaled yet, so B's fresh decision rolls back as if A had never tried."""
        listing = asyncio.Event()

        def hook(req: RecordedRequest) -> None:
            if req.route == "deployments":
                listing.set()

        a = await make_daemon()
        await settle(a)  # its start-up look-ups (the status page lists candidates too) done
        world.vercel.on_request(hook)
        world.vercel.fail("deployments", 500, "{}", delay=5.0)  # A hangs listing candidates
        await ingest_each(a, outage(clock.now()), clock)
        await asyncio.wait_for(listing.wait(), 10)
        assert await a.store.list_rollbacks() == []
        assert [x for x in await a.store.list_actions() if x.kind == "rollback"] == []
        await crash(a)

        await restart_into_the_outage(make_daemon, clock)
        assert len(world.rollback_posts()) == 1
        assert world.vercel.alias == GOOD


class TestBecomingLeader:
    async def test_nothing_is_acted_on_until_the_new_leader_restored(
        self, make_daemon: Factory, world: World, clock: FakeClock
    ) -> None:
        """Samples that arrive while a replica becomes leader (its engine still a
        follower's) are neither recorded nor acted on; once it restored, the outage is
        judged afresh and rolled back once."""
        daemon = await make_daemon()
        restore = daemon.leadership.on_gained
        assert restore is not None

        async def polls_arrive_meanwhile() -> None:
            await ingest_each(daemon, outage(clock.now()), clock)
            await restore()

        daemon.leadership.on_gained = polls_arrive_meanwhile
        daemon.leadership.leader = False  # the lease was another replica's
        await daemon.leadership.elect()
        await settle(daemon)
        assert world.rollback_posts() == []
        assert triggers(world) == []
        assert await daemon.store.list_incidents() == []

        await ingest_each(daemon, outage(clock.now() + timedelta(seconds=1))[1:], clock)
        await settle(daemon)
        assert len(world.rollback_posts()) == 1


class TestHumanStateSurvives:
    async def test_hold_and_kill_switch_set_on_a_are_in_force_on_b(
        self, make_daemon: Factory, world: World, clock: FakeClock
    ) -> None:
        """A hold and the kill switch set through A still refuse B's rollbacks after a crash:
        first the kill switch, then (switched off on B) the hold."""
        a = await make_daemon()
        await a.hold(TARGET, timedelta(hours=2), "db migration", "alice")
        await a.kill_switch(True, "incident review", "bob")
        await crash(a)

        clock.advance(60)
        b = await make_daemon()
        assert b.status()["kill_switch"] is True
        assert b.status()["targets"][0]["hold_until"] is not None
        await ingest_each(b, outage(clock.now()), clock)
        await settle(b)
        assert world.rollback_posts() == []
        assert "refused by kill_switch" in str(triggers(world)[-1]["payload"])

        await b.kill_switch(False, "review done", "bob")
        await ingest_each(b, [health(clock.now() + timedelta(seconds=15), False)], clock)
        await settle(b)
        assert world.rollback_posts() == []
        refused = {d.data["refused_by"] for d in await b.store.list_decisions(target=TARGET)}
        refused.discard(None)
        assert refused == {"kill_switch", "hold"}
        assert "guard:hold:refused" in b.status()["targets"][0]["path"]

    async def test_cooldown_survives_a_restart(
        self, make_daemon: Factory, world: World, clock: FakeClock
    ) -> None:
        """After A's rollback and a crash, a fix deployed and broken soon after is refused by
        the cooldown on B: B remembers A's automatic rollback."""
        a = await make_daemon()
        await ingest_each(a, outage(clock.now()), clock)
        await settle(a)
        assert len(world.rollback_posts()) == 1
        first = (await a.store.list_incidents())[0].id
        await crash(a)

        b = await make_daemon()
        t = clock.now()
        healthy = [health(t + timedelta(seconds=15 * i), True) for i in range(1, 30)]
        await ingest_each(b, healthy, clock)
        await settle(b)
        resolved = await b.store.load_incident(first)
        assert resolved is not None
        assert resolved.resolved_at is not None
        # on-call ships a fix ten minutes after the rollback; it breaks too
        world.vercel.add_deployment("dpl_fix", created_ms=int(clock.now().timestamp() * 1000))
        world.vercel.set_serving("dpl_fix")
        await b.production.refresh()
        await ingest_each(b, outage(clock.now() + timedelta(seconds=1)), clock)
        await settle(b)

        assert len(world.rollback_posts()) == 1
        second = [i for i in await b.store.list_incidents() if i.id != first]
        assert len(second) == 1
        assert "refused by cooldown" in str(triggers(world)[-1]["payload"])
        assert BAD in await b.store.known_bad(world.vercel.project_id)


ROOT = Path(__file__).resolve().parents[2]


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the daemon's SQLite file from outside, as an operator's sqlite3 would."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        try:
            return list(conn.execute(sql))
        except sqlite3.OperationalError:  # tables not created yet
            return []


class Child:
    """One ``crash_child`` process running the real daemon on ``db``."""

    def __init__(self, world: World, db: Path, log: Path, point: str = "") -> None:
        self.world, self.db, self.log, self.point = world, db, log, point
        self.proc: asyncio.subprocess.Process | None = None

    async def spawn(self) -> asyncio.subprocess.Process:
        w = self.world
        with self.log.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.daemon.crash_child",
                str(self.db),
                w.app.url,
                w.vercel.url,
                w.pagerduty.url,
                w.slack.webhook_url,
                self.point,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
            )
        return self.proc

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    async def reap(self) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), 10)
        assert code == -signal.SIGKILL, self.log.read_text()[-3000:]
        return code


@pytest.fixture
async def live_world() -> AsyncIterator[World]:
    """Fakes on the real clock (the child process runs the real clock)."""
    w = World(now=lambda: datetime.now(UTC))
    w.app.health_status = 500  # dpl_bad is down from the start
    await w.start()
    yield w
    await w.close()


async def _until(predicate: Callable[[], bool], what: str) -> None:
    await wait_for(predicate, 15.0, what)


class TestKillMinus9:
    @pytest.mark.parametrize(
        "point", ["during_lookups", "before_post", "after_post", "after_success"]
    )
    async def test_sigkill_then_restart_rolls_back_exactly_once(
        self, point: str, live_world: World, tmp_path: Path
    ) -> None:
        """``kill -9`` of the real daemon process while it looks up the deployments, between
        the journaled intent and the POST, the moment Vercel receives the POST, or after
        success, then a restart on the same file: the rollback is completed, exactly one
        POST ever reaches Vercel, and the incident keeps its id and dedup key."""
        world = live_world
        db = tmp_path / "wd.db"
        child = Child(world, db, tmp_path / "child.log", point)

        def at_the_rollbacks_listing(r: RecordedRequest) -> None:
            # the production chore lists the candidates too (for the status page), before any
            # incident: the rollback's own listing is the one once the incident is recorded
            if r.route == "deployments" and _rows(db, "SELECT 1 FROM incidents"):
                child.kill()

        if point == "during_lookups":
            world.vercel.on_request(at_the_rollbacks_listing)
        elif point == "after_post":
            world.vercel.on_request(lambda r: child.kill() if r.method == "POST" else None)
        await child.spawn()
        if point == "after_success":
            await _until(
                lambda: bool(
                    _rows(db, "SELECT 1 FROM rollbacks WHERE state IN ('succeeded','verified')")
                ),
                "the rollback to succeed",
            )
            child.kill()
        await child.reap()
        incidents = _rows(db, "SELECT id FROM incidents")
        assert len(incidents) == 1
        assert len(world.rollback_posts()) == (
            0 if point in ("during_lookups", "before_post") else 1
        )
        if point == "before_post":  # the write-ahead is on disk, Vercel heard nothing
            assert _rows(db, "SELECT state, to_deployment FROM rollbacks") == [("intent", GOOD)]

        restarted = Child(world, db, tmp_path / "child2.log")
        await restarted.spawn()
        try:
            await _until(
                lambda: (
                    bool(
                        _rows(db, "SELECT 1 FROM rollbacks WHERE state IN ('succeeded','verified')")
                    )
                    and not _rows(
                        db, "SELECT 1 FROM rollbacks WHERE state IN ('intent','requested')"
                    )
                ),
                "the rollback to be completed",
            )
            await asyncio.sleep(1.0)  # long enough for several polls and ticks to repeat it
        finally:
            restarted.kill()
            await restarted.reap()

        assert len(world.rollback_posts()) == 1
        assert world.vercel.alias == GOOD
        assert _rows(db, "SELECT id FROM incidents") == incidents
        dedups = {e["dedup_key"] for e in world.pagerduty.events if "dedup_key" in e}
        assert dedups == {f"watchdog/{TARGET}/{incidents[0][0]}"}
