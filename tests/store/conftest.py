"""Store fixtures: every backend, opened on a fresh file / PostgreSQL schema per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from watchdog.store.memory import MemoryStore
from watchdog.store.postgres import MIGRATIONS as PG_MIGRATIONS
from watchdog.store.postgres import PostgresStore
from watchdog.store.schema import Migration
from watchdog.store.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from watchdog.store.sqlite import SqliteStore

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
LEADER = "test-leader"

#: a factory that opens another store on the same database (``migrations`` optional)
StoreFactory = Callable[..., Awaitable[Any]]


@pytest.fixture
async def pg_schema(pg_dsn: str) -> AsyncIterator[str]:
    """A uniquely named schema, dropped after the test (the store creates it on open)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def sqlite_factory(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    opened: list[SqliteStore] = []

    async def make(migrations: Sequence[Migration] = SQLITE_MIGRATIONS) -> SqliteStore:
        store = SqliteStore(tmp_path / "watchdog.db", migrations=migrations)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def pg_factory(pg_dsn: str, pg_schema: str) -> AsyncIterator[StoreFactory]:
    opened: list[PostgresStore] = []

    async def make(
        migrations: Sequence[Migration] = PG_MIGRATIONS,
        *,
        lease_clock: str = "caller",
        holder: str | None = LEADER,
    ) -> PostgresStore:
        store = PostgresStore(
            pg_dsn,
            schema=pg_schema,
            migrations=migrations,
            lease_clock=lease_clock,  # type: ignore[arg-type]
        )
        await store.open()
        opened.append(store)
        if holder is not None:
            # contract tests act as the one leader; leadership tests pass holder=None
            assert await store.acquire(holder, timedelta(days=1), T0) is not None
        return store

    yield make
    for store in opened:
        await store.close()


BACKENDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_factory(backend: str, request: pytest.FixtureRequest) -> StoreFactory:
    """Opens stores of the parametrized backend; memory ones share nothing (no reopen)."""
    if backend == "memory":

        async def make_memory(**_: Any) -> MemoryStore:
            store = MemoryStore()
            await store.open()
            return store

        return make_memory
    fixture = "sqlite_factory" if backend == "sqlite" else "pg_factory"
    factory: StoreFactory = request.getfixturevalue(fixture)
    return factory


@pytest.fixture
async def store(store_factory: StoreFactory) -> Any:
    return await store_factory()
