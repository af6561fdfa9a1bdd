"""SqliteStore specifics: pragmas, crash durability, cross-connection atomicity, refusals."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.store.conftest import T0, StoreFactory
from tests.store.crash import write_then_sigkill
from tests.store.test_contract import action, decision
from watchdog.store.base import ActionStatus
from watchdog.store.schema import StoreNotOpenError
from watchdog.store.sqlite import BUSY_TIMEOUT_MS, SqliteStore


async def pragma(store: SqliteStore, name: str) -> object:
    rows = await store._fetch(f"PRAGMA {name}")
    return rows[0][0]


class TestSqliteSettings:
    async def test_wal_and_busy_timeout(self, sqlite_factory: StoreFactory) -> None:
        """The file is in WAL mode and waits for a busy writer instead of failing."""
        store = await sqlite_factory()
        assert await pragma(store, "journal_mode") == "wal"
        assert await pragma(store, "busy_timeout") == BUSY_TIMEOUT_MS

    async def test_action_writes_are_fsynced_decisions_are_not(
        self, sqlite_factory: StoreFactory
    ) -> None:
        """Intents commit with synchronous=FULL (2), decisions with NORMAL (1)."""
        store = await sqlite_factory()
        await store.append_decision(decision())
        assert await pragma(store, "synchronous") == 1
        await store.record_intent(action())
        assert await pragma(store, "synchronous") == 2

    async def test_leadership_is_trivial(self, sqlite_factory: StoreFactory) -> None:
        """A single-process store is always the leader, at epoch 1."""
        store = await sqlite_factory()
        lease = await store.acquire("a", timedelta(seconds=30), T0)
        other = await store.acquire("b", timedelta(seconds=30), T0)
        assert lease is not None
        assert other is not None
        assert (lease.epoch, other.epoch) == (1, 1)
        assert lease.expires_at == T0 + timedelta(seconds=30)


class TestSqliteRefusals:
    async def test_naive_datetime_is_refused_and_nothing_written(
        self, sqlite_factory: StoreFactory
    ) -> None:
        """A naive datetime raises ValueError rather than being stored in a guessed zone."""
        store = await sqlite_factory()
        with pytest.raises(ValueError, match="naive datetime"):
            await store.record_intent(action(created_at=datetime(2024, 5, 1, 12)))
        assert await store.list_actions() == []

    async def test_failed_write_leaves_the_store_usable(self, sqlite_factory: StoreFactory) -> None:
        """A write that fails inside its transaction is rolled back and the next one works."""
        store = await sqlite_factory()
        with pytest.raises(KeyError):
            await store.record_outcome("missing", ActionStatus.SUCCEEDED, T0)
        assert await store.record_intent(action()) is True
        reopened = SqliteStore(store.path)
        await reopened.open()
        try:
            assert len(await reopened.list_actions()) == 1
        finally:
            await reopened.close()

    async def test_non_json_values_are_refused(self, sqlite_factory: StoreFactory) -> None:
        """A NaN in a JSON column is refused up front (PostgreSQL could not store it either)."""
        store = await sqlite_factory()
        with pytest.raises(ValueError, match="JSON compliant"):
            await store.append_decision(decision(data={"x": float("nan")}))
        assert await store.list_decisions() == []

    async def test_closed_store_refuses_and_pings_false(self, tmp_path: Path) -> None:
        """Before open() (or after close()) calls raise and ping reports not ready."""
        store = SqliteStore(tmp_path / "x.db")
        assert await store.ping() is False
        with pytest.raises(StoreNotOpenError):
            await store.list_actions()
        await store.open()
        await store.close()
        assert await store.ping() is False


class TestSqliteDurability:
    async def test_intent_survives_sigkill_right_after_return(self, tmp_path: Path) -> None:
        """An intent whose call returned is on disk even if the process is killed at once."""
        path = tmp_path / "crash.db"
        await write_then_sigkill("sqlite", f"sqlite://{path}")
        store = SqliteStore(path)
        await store.open()
        try:
            assert [a.key for a in await store.list_actions()] == ["crash/rollback"]
            assert await store.record_intent(action("crash/rollback")) is False
        finally:
            await store.close()

    async def test_two_connections_race_one_key(self, tmp_path: Path) -> None:
        """Two store instances on one file racing an intent: exactly one wins."""
        stores = [SqliteStore(tmp_path / "shared.db") for _ in range(2)]
        for store in stores:
            await store.open()
        try:
            results = await asyncio.gather(
                *(s.record_intent(action("shared")) for s in stores for _ in range(4))
            )
            assert sorted(results) == [False] * 7 + [True]
        finally:
            for store in stores:
                await store.close()
