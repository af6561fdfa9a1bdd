"""Two replicas on one real PostgreSQL: only the leader acts, and a dead leader is replaced.

Real clock and real loops (leases are judged by the database's clock), with a 1 s lease and
sub-second polls, every wait bounded.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.daemon.support import World, build_daemon, crash, settings_for, wait_for
from watchdog.clock import SystemClock
from watchdog.daemon import Daemon
from watchdog.store.base import RollbackState
from watchdog.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres

TTL = timedelta(seconds=1)


@pytest.fixture
async def schema(pg_dsn: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def live_world() -> AsyncIterator[World]:
    w = World(now=lambda: datetime.now(UTC))
    await w.start()
    yield w
    await w.close()


@pytest.fixture
async def replicas(pg_dsn: str, schema: str, live_world: World) -> AsyncIterator[list[Daemon]]:
    daemons = [
        build_daemon(
            settings_for(
                live_world,
                store_url="postgresql://unused",
                holder=f"replica-{name}",
                ttl=TTL,
                tick=timedelta(seconds=0.1),
                health_interval=timedelta(seconds=0.2),
                health_timeout=timedelta(seconds=0.15),
            ),
            PostgresStore(pg_dsn, schema=schema),
            SystemClock(),
        )
        for name in ("a", "b")
    ]
    for daemon in daemons:
        await daemon.start()
    yield daemons
    for daemon in daemons:
        if daemon._tasks:
            await daemon.stop()


def the_leader(daemons: list[Daemon]) -> Daemon:
    leaders = [d for d in daemons if d.leader]
    assert len(leaders) == 1, [d.settings.leader.holder for d in leaders]
    return leaders[0]


class TestTwoReplicas:
    async def test_outage_rolls_back_once_and_failover_does_not_repeat_it(
        self, replicas: list[Daemon], live_world: World
    ) -> None:
        """Both replicas see the outage, exactly one rollback POST reaches Vercel; killing
        the leader (lease not released) hands over within two lease periods, and the new
        leader does not roll back again."""
        world = live_world
        leader = the_leader(replicas)
        follower = next(d for d in replicas if d is not leader)
        world.app.health_status = 500

        finished = (RollbackState.SUCCEEDED, RollbackState.VERIFIED)
        for _ in range(300):
            if any(r.state in finished for r in await leader.store.list_rollbacks()):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the leader did not finish the rollback within 15 s")
        assert len(world.rollback_posts()) == 1
        assert world.vercel.alias == "dpl_good"

        killed = time.monotonic()
        await crash(leader)
        took = await wait_for(lambda: follower.leader, 2 * TTL.total_seconds() + 1, "failover")
        print(f"\nfailover took {took:.2f} s (lease ttl {TTL.total_seconds():.0f} s)")
        assert time.monotonic() - killed <= 2 * TTL.total_seconds()

        await asyncio.sleep(1.5)  # the new leader restores, reconciles, and keeps watching
        assert len(world.rollback_posts()) == 1
        incidents = await follower.store.list_incidents()
        assert len(incidents) == 1, incidents
