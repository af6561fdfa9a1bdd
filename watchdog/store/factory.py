"""Choosing a store from one URL in the settings (no I/O until ``open_store`` opens it).

- ``sqlite:///var/lib/watchdog/watchdog.db`` — everything after ``sqlite://`` is the file
  path, so three slashes give an absolute path (as in ``file:///``) and
  ``sqlite://watchdog.db`` a relative one. SQLAlchemy's four-slash absolute form also works.
- ``postgresql://user:pass@host:5432/db`` (or ``postgres://``) — passed to asyncpg as is;
  unknown query parameters become server settings, e.g. ``?search_path=watchdog``. The
  driver is the optional ``postgres`` extra and is imported only for such a URL, so a plain
  install runs everything else (SQLite, memory, demo, replay).
- ``memory://`` — forgets everything on exit: for the demo, replay and tests only.

Every backend also implements ``Leadership`` (SQLite and memory trivially), hence the
combined ``LeaderStore`` return type.
"""

from __future__ import annotations

from pydantic import SecretStr

from watchdog.store.base import LeaderStore
from watchdog.store.memory import MemoryStore
from watchdog.store.sqlite import SqliteStore

__all__ = ["LeaderStore", "MissingDriverError", "store_from_url"]


SCHEMES = ("sqlite://", "postgresql://", "postgres://", "memory://")

POSTGRES_EXTRA = "rollback-watchdog[postgres]"


class MissingDriverError(ValueError):
    """The URL names a backend whose optional driver is not installed (a config error)."""


def store_from_url(url: str | SecretStr) -> LeaderStore:
    """Build (without opening) the store a URL names; errors never echo the URL's password."""
    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    scheme, sep, rest = raw.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(f"store URL has no scheme: expected one of {', '.join(SCHEMES)}")
    if scheme == "sqlite":
        if not rest:
            raise ValueError("sqlite store URL has no path: use sqlite:///path/to/watchdog.db")
        # SQLAlchemy's sqlite:////abs form leaves "//abs", which POSIX may treat specially
        return SqliteStore("/" + rest.lstrip("/") if rest.startswith("/") else rest)
    if scheme in ("postgresql", "postgres"):
        return _postgres_store(SecretStr(raw))
    if scheme == "memory":
        return MemoryStore()
    # only the scheme is shown: the rest may hold credentials
    raise ValueError(f"unsupported store URL scheme {scheme!r}: use one of {', '.join(SCHEMES)}")


def _postgres_store(dsn: SecretStr) -> LeaderStore:
    try:
        from watchdog.store.postgres import PostgresStore
    except ModuleNotFoundError as exc:
        if exc.name != "asyncpg":
            raise
        raise MissingDriverError(
            "a postgresql:// store needs the asyncpg driver, which is not installed in this "
            f"environment: pip install '{POSTGRES_EXTRA}'"
        ) from None
    return PostgresStore(dsn)


async def open_store(url: str | SecretStr) -> LeaderStore:
    """The store a URL names, opened (schema migrated) and ready to use."""
    store = store_from_url(url)
    await store.open()
    return store
