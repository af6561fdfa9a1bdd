"""PostgresStore specifics: leader election, fencing, crash durability, secrets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.store.conftest import T0, StoreFactory
from tests.store.crash import write_then_sigkill
from tests.store.test_contract import action, decision, event, incident, rollback
from watchdog.store.base import ActionStatus, FencedError
from watchdog.store.memory import MemoryStore
from watchdog.store.postgres import PostgresStore

TTL = timedelta(seconds=30)


@pytest.fixture(params=["memory", "postgres"])
def lease_backend(request: pytest.FixtureRequest) -> tuple[str, StoreFactory | None]:
    if request.param == "memory":
        return "memory", None
    return "postgres", request.getfixturevalue("pg_factory")


@pytest.fixture
async def pair(lease_backend: tuple[str, StoreFactory | None]) -> tuple[str, Any, Any]:
    """Two replicas' stores sharing one lease (memory: one instance stands for both)."""
    backend, factory = lease_backend
    if factory is None:
        shared = MemoryStore()
        return backend, shared, shared
    return backend, await factory(holder=None), await factory(holder=None)


class TestLeaseElection:
    async def test_one_holder_at_a_time(self, pair: tuple[str, Any, Any]) -> None:
        """The first replica gets the lease at epoch 1; the second gets None while it lasts."""
        _, a, b = pair
        lease = await a.acquire("a", TTL, T0)
        assert lease is not None
        assert (lease.holder, lease.epoch, lease.expires_at) == ("a", 1, T0 + TTL)
        assert await b.acquire("b", TTL, T0 + TTL - timedelta(microseconds=1)) is None

    async def test_renewal_keeps_the_epoch_and_extends(self, pair: tuple[str, Any, Any]) -> None:
        """Renewing before expiry keeps the epoch and moves the expiry forward."""
        _, a, _ = pair
        await a.acquire("a", TTL, T0)
        renewed = await a.acquire("a", TTL, T0 + timedelta(seconds=20))
        assert renewed is not None
        assert (renewed.epoch, renewed.expires_at) == (1, T0 + timedelta(seconds=50))

    async def test_takeover_after_expiry_bumps_the_epoch(self, pair: tuple[str, Any, Any]) -> None:
        """Once the lease expired another replica takes it with a higher epoch."""
        _, a, b = pair
        await a.acquire("a", TTL, T0)
        taken = await b.acquire("b", TTL, T0 + TTL)
        assert taken is not None
        assert (taken.holder, taken.epoch) == ("b", 2)
        # the old leader, back from its pause, cannot simply renew
        assert await a.acquire("a", TTL, T0 + TTL + timedelta(seconds=1)) is None

    async def test_release_hands_over_with_a_higher_epoch(
        self, pair: tuple[str, Any, Any], request: pytest.FixtureRequest
    ) -> None:
        """After release another replica takes over at once, never reusing an epoch."""
        _backend, a, b = pair
        await a.acquire("a", TTL, T0)
        await a.release("a")
        taken = await b.acquire("b", TTL, T0 + timedelta(seconds=1))
        assert taken is not None
        assert taken.epoch == 2

    async def test_release_by_another_holder_does_nothing(self, pair: tuple[str, Any, Any]) -> None:
        """Only the holder can release: a stranger's release leaves the lease in force."""
        _, a, b = pair
        await a.acquire("a", TTL, T0)
        await b.release("b")
        assert await b.acquire("b", TTL, T0 + timedelta(seconds=1)) is None


class TestPostgresLeaseRaces:
    async def test_racing_replicas_elect_exactly_one(self, pg_factory: StoreFactory) -> None:
        """Five replicas acquiring at the same moment: exactly one wins."""
        stores = [await pg_factory(holder=None) for _ in range(5)]
        leases = await asyncio.gather(*(s.acquire(f"r{i}", TTL, T0) for i, s in enumerate(stores)))
        winners = [lease for lease in leases if lease is not None]
        assert len(winners) == 1
        assert winners[0].epoch == 1

    async def test_database_clock_ignores_the_callers_now(self, pg_factory: StoreFactory) -> None:
        """With the database clock, expiry is judged by the server, not a skewed replica."""
        a = await pg_factory(holder=None, lease_clock="database")
        b = await pg_factory(holder=None, lease_clock="database")
        skewed = datetime(2001, 1, 1, tzinfo=UTC)
        lease = await a.acquire("a", timedelta(hours=1), skewed)
        assert lease is not None
        assert abs(lease.expires_at - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(
            minutes=5
        )
        # b's clock runs two hours ahead: with the caller's clock it would steal the lease
        assert await b.acquire("b", TTL, datetime.now(UTC) + timedelta(hours=2)) is None

    async def test_database_clock_expiry_lets_another_take_over(
        self, pg_factory: StoreFactory
    ) -> None:
        """A lease of one microsecond has expired by the server's next statement."""
        a = await pg_factory(holder=None, lease_clock="database")
        b = await pg_factory(holder=None, lease_clock="database")
        await a.acquire("a", timedelta(microseconds=1), T0)
        taken = await b.acquire("b", TTL, T0)
        assert taken is not None
        assert taken.epoch == 2

    async def test_non_positive_ttl_is_refused(self, pg_factory: StoreFactory) -> None:
        """A zero ttl is a configuration error, not a lease that is born expired."""
        a = await pg_factory(holder=None)
        with pytest.raises(ValueError, match="ttl"):
            await a.acquire("a", timedelta(0), T0)


class TestFencing:
    async def deposed(self, pg_factory: StoreFactory) -> tuple[PostgresStore, PostgresStore]:
        old = await pg_factory(holder=None)
        new = await pg_factory(holder=None)
        assert await old.acquire("old", TTL, T0) is not None
        await old.record_intent(action("before"))
        assert await new.acquire("new", TTL, T0 + TTL) is not None
        return old, new

    async def test_deposed_leader_cannot_write_actions(self, pg_factory: StoreFactory) -> None:
        """After a takeover, every action-side write of the old leader raises FencedError."""
        old, new = await self.deposed(pg_factory)
        with pytest.raises(FencedError):
            await old.record_intent(action("after"))
        with pytest.raises(FencedError):
            await old.record_outcome("before", ActionStatus.SUCCEEDED, T0)
        with pytest.raises(FencedError):
            await old.save_rollback(rollback())
        with pytest.raises(FencedError):
            await old.mark_known_bad("prj_1", "dpl_2", T0)
        [only] = await new.list_actions()
        assert (only.key, only.status) == ("before", ActionStatus.INTENT)
        assert await new.list_rollbacks() == []
        assert await new.known_bad("prj_1") == frozenset()

    async def test_new_leader_can_act(self, pg_factory: StoreFactory) -> None:
        """The replica that took over writes actions normally."""
        _, new = await self.deposed(pg_factory)
        await new.record_outcome("before", ActionStatus.FAILED, T0, error="reconciled")
        await new.save_rollback(rollback())
        assert [r.id for r in await new.list_rollbacks()] == ["rb-1"]

    async def test_store_that_never_led_cannot_act(self, pg_factory: StoreFactory) -> None:
        """A replica that never acquired the lease is fenced from action writes."""
        follower = await pg_factory(holder=None)
        with pytest.raises(FencedError, match="does not hold"):
            await follower.record_intent(action())

    async def test_followers_still_write_the_audit_trail(self, pg_factory: StoreFactory) -> None:
        """Decisions, incidents and human events are accepted from any replica."""
        follower = await pg_factory(holder=None)
        await follower.append_decision(decision())
        await follower.save_incident(incident())
        await follower.append_event(event())
        assert len(await follower.list_decisions()) == 1
        assert await follower.load_incident("inc-1") == incident()
        assert len(await follower.list_events()) == 1

    async def test_released_lease_fences_its_former_holder(self, pg_factory: StoreFactory) -> None:
        """After release the store no longer acts, even before anyone else takes over."""
        store = await pg_factory(holder=None)
        await store.acquire("a", TTL, T0)
        await store.release("a")
        with pytest.raises(FencedError):
            await store.record_intent(action())

    async def test_lapsed_but_untaken_lease_still_acts(self, pg_factory: StoreFactory) -> None:
        """An expired lease nobody took keeps its epoch valid: no one else can have acted."""
        store = await pg_factory(holder=None)
        await store.acquire("a", TTL, T0)
        # (no acquire by anyone since T0 + TTL passed)
        assert await store.record_intent(action()) is True


class TestPostgresOperations:
    async def test_intent_survives_sigkill_right_after_return(
        self, pg_dsn: str, pg_schema: str, pg_factory: StoreFactory
    ) -> None:
        """An intent whose call returned is committed even if the process dies at once."""
        await pg_factory(holder=None)  # creates the schema
        await write_then_sigkill("postgres", pg_dsn, pg_schema)
        reader = await pg_factory(holder=None)
        assert [a.key for a in await reader.list_actions()] == ["crash/rollback"]

    async def test_password_never_in_repr_or_errors(self) -> None:
        """The DSN's password appears neither in repr nor in a connection error."""
        store = PostgresStore(
            "postgresql://watchdog:s3cr3t-pw@127.0.0.1:1/db", schema="x", min_size=1
        )
        assert "s3cr3t-pw" not in repr(store)
        with pytest.raises((OSError, asyncpg.PostgresError)) as caught:
            await store.open()
        assert "s3cr3t-pw" not in str(caught.value)
        assert "s3cr3t-pw" not in repr(caught.value)

    async def test_closed_store_pings_false(self, pg_factory: StoreFactory) -> None:
        """A closed store reports not ready instead of raising."""
        store = await pg_factory(holder=None)
        assert await store.ping() is True
        await store.close()
        assert await store.ping() is False

    async def test_invalid_schema_name_is_refused(self, pg_dsn: str) -> None:
        """A schema name that would need quoting is refused (it is interpolated in DDL)."""
        with pytest.raises(ValueError, match="schema"):
            PostgresStore(pg_dsn, schema='x"; DROP TABLE y; --')
