"""Schema versioning: migrations in order, older databases upgraded, newer ones refused."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.store.conftest import StoreFactory
from tests.store.test_contract import incident, message
from watchdog.store.postgres import MIGRATIONS as PG_MIGRATIONS
from watchdog.store.schema import (
    Migration,
    SchemaError,
    SchemaTooNewError,
    dt_to_text,
    pending,
    text_to_dt,
)
from watchdog.store.sqlite import MIGRATIONS as SQLITE_MIGRATIONS


def migrations_for(backend: str) -> Sequence[Migration]:
    return SQLITE_MIGRATIONS if backend == "sqlite" else PG_MIGRATIONS


def next_version(backend: str) -> int:
    """The version a migration added after the known ones would get."""
    return len(migrations_for(backend)) + 1


def note(backend: str) -> Migration:
    """A made-up next migration, as a future release would add one."""
    return Migration(
        next_version(backend), "incident notes", ("ALTER TABLE incidents ADD COLUMN note TEXT",)
    )


@pytest.fixture(params=["sqlite", "postgres"])
def durable(request: pytest.FixtureRequest) -> tuple[str, StoreFactory]:
    fixture = "sqlite_factory" if request.param == "sqlite" else "pg_factory"
    return str(request.param), request.getfixturevalue(fixture)


class TestPending:
    def test_fresh_database_gets_every_migration(self) -> None:
        """A database at version 0 needs the whole list, in order."""
        steps = [Migration(1, "a", ()), Migration(2, "b", ())]
        assert pending(steps, 0) == steps
        assert pending(steps, 1) == steps[1:]
        assert pending(steps, 2) == []

    def test_newer_database_is_refused_with_both_versions(self) -> None:
        """A version beyond the list raises an error naming both versions."""
        with pytest.raises(SchemaTooNewError, match=r"version 3 is newer.*latest known: 1"):
            pending([Migration(1, "a", ())], 3)

    def test_gaps_in_the_list_are_a_bug(self) -> None:
        """A migration list that skips a version is rejected before touching a database."""
        with pytest.raises(SchemaError, match="out of order"):
            pending([Migration(1, "a", ()), Migration(3, "c", ())], 0)


class TestDatetimeText:
    def test_text_round_trip_is_exact_and_sortable(self) -> None:
        """ISO text keeps microseconds, normalises to UTC, and sorts like the instants."""
        early = datetime(2024, 5, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
        late = datetime(2024, 5, 1, 12, 0, 0, 6, tzinfo=UTC)
        assert text_to_dt(dt_to_text(early)) == early
        assert text_to_dt(dt_to_text(early)).tzinfo is UTC
        assert dt_to_text(early) < dt_to_text(late)


class TestMigrations:
    async def test_fresh_database_is_at_the_latest_version(
        self, durable: tuple[str, StoreFactory]
    ) -> None:
        """Opening a new database applies every known migration."""
        backend, factory = durable
        store = await factory()
        assert await store.schema_version() == len(migrations_for(backend))

    async def test_older_database_is_upgraded_keeping_its_data(
        self, durable: tuple[str, StoreFactory]
    ) -> None:
        """A database written by the previous version is migrated on open, data intact."""
        backend, factory = durable
        old = await factory(migrations_for(backend))
        await old.save_incident(incident())
        await old.close()
        new = await factory((*migrations_for(backend), note(backend)))
        assert await new.schema_version() == next_version(backend)
        assert await new.load_incident("inc-1") == incident()
        # the new column exists
        await new.save_incident(incident("inc-2"))

    async def test_newer_database_is_refused(self, durable: tuple[str, StoreFactory]) -> None:
        """Code that does not know the database's version refuses to open it."""
        backend, factory = durable
        newer = await factory((*migrations_for(backend), note(backend)))
        await newer.close()
        with pytest.raises(SchemaTooNewError, match=f"version {next_version(backend)} is newer"):
            await factory(migrations_for(backend))

    async def test_failed_migration_is_rolled_back_whole(
        self, durable: tuple[str, StoreFactory]
    ) -> None:
        """A migration that fails halfway leaves the database at the previous version."""
        backend, factory = durable
        store = await factory(migrations_for(backend))
        await store.close()
        version = next_version(backend)
        broken = Migration(version, "broken", ("CREATE TABLE extra (x INTEGER)", "NOT VALID SQL"))
        with pytest.raises(Exception, match="syntax"):
            await factory((*migrations_for(backend), broken))
        # reopen with the fix: the half-applied table must not exist, so this succeeds
        fixed = Migration(version, "fixed", ("CREATE TABLE extra (x INTEGER)",))
        store = await factory((*migrations_for(backend), fixed))
        assert await store.schema_version() == version

    async def test_a_version_1_database_gains_the_outbox(
        self, durable: tuple[str, StoreFactory]
    ) -> None:
        """A database from before the outbox (schema 1) opens with its incidents intact and
        an empty outbox that takes messages."""
        backend, factory = durable
        old = await factory(migrations_for(backend)[:1])
        await old.save_incident(incident())
        await old.close()
        new = await factory()
        assert await new.load_incident("inc-1") == incident()
        assert await new.list_outbox() == []
        assert await new.enqueue(message("inc-1/page/page/P0"))
        assert [m.key for m in await new.list_outbox()] == ["inc-1/page/page/P0"]

    async def test_concurrent_first_opens_migrate_once(
        self, durable: tuple[str, StoreFactory]
    ) -> None:
        """Replicas opening a fresh database together both succeed at the latest version."""
        backend, factory = durable
        stores = await asyncio.gather(factory(), factory(), factory())
        versions = {await s.schema_version() for s in stores}
        assert versions == {len(migrations_for(backend))}
