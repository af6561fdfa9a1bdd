"""Store URLs: one setting picks the backend, and errors never echo credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.store.test_contract import action
from watchdog.store.factory import open_store, store_from_url
from watchdog.store.memory import MemoryStore
from watchdog.store.postgres import PostgresStore
from watchdog.store.sqlite import SqliteStore


class TestStoreFromUrl:
    @pytest.mark.parametrize(
        ("url", "path"),
        [
            ("sqlite:///var/lib/watchdog/w.db", "/var/lib/watchdog/w.db"),
            ("sqlite:////var/lib/watchdog/w.db", "/var/lib/watchdog/w.db"),
            ("sqlite://w.db", "w.db"),
            ("SQLITE:///data/w.db", "/data/w.db"),
        ],
    )
    def test_sqlite_paths(self, url: str, path: str) -> None:
        """Everything after ``sqlite://`` is the file path; three slashes mean absolute."""
        store = store_from_url(url)
        assert isinstance(store, SqliteStore)
        assert store.path == Path(path)

    @pytest.mark.parametrize("url", ["postgresql://u:pw@db/w", "postgres://u:pw@db/w"])
    def test_postgres(self, url: str) -> None:
        """Both PostgreSQL spellings give a PostgresStore."""
        assert isinstance(store_from_url(url), PostgresStore)

    def test_memory(self) -> None:
        """``memory://`` gives the throwaway in-memory store."""
        assert isinstance(store_from_url("memory://"), MemoryStore)

    def test_secret_url_is_accepted(self) -> None:
        """A SecretStr from the settings works without unwrapping by the caller."""
        assert isinstance(store_from_url(SecretStr("memory://")), MemoryStore)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("mysql://root:hunter2@db/w", "unsupported store URL scheme 'mysql'"),
            ("hunter2", "no scheme"),
            ("sqlite://", "no path"),
        ],
    )
    def test_bad_urls_are_explained_without_secrets(self, url: str, message: str) -> None:
        """An unusable URL raises a clear error that never repeats the password."""
        with pytest.raises(ValueError, match=message) as caught:
            store_from_url(url)
        assert "hunter2" not in str(caught.value)


class TestOpenStore:
    async def test_opens_a_ready_sqlite_store(self, tmp_path: Path) -> None:
        """``open_store`` returns a migrated store that accepts writes at once."""
        store = await open_store(f"sqlite://{tmp_path}/w.db")
        try:
            assert await store.ping() is True
            assert await store.record_intent(action()) is True
        finally:
            await store.close()
        assert (tmp_path / "w.db").exists()
