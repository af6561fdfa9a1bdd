"""Schema versions and value encodings shared by the SQL stores (no I/O here).

Each backend keeps an ordered list of migrations; the number of the last one applied is kept
in a ``schema_version`` table. Opening an older database applies the missing migrations in
one transaction each; opening a database written by *newer* code refuses, because this code
cannot know what the newer columns mean and a silent partial read could repeat a rollback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: the one row name of the leader lease (a table, so several leases could exist one day)
LEADER_LEASE = "leader"


class StoreNotOpenError(RuntimeError):
    """A store method was called before ``open()`` or after ``close()``."""


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this version of the watchdog."""


class SchemaTooNewError(SchemaError):
    """The database was migrated by a newer watchdog; refuse rather than misread it."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"database schema version {found} is newer than this watchdog understands "
            f"(latest known: {known}); run the newer watchdog version or restore a backup"
        )
        self.found = found
        self.known = known


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step; ``statements`` run in order inside a single transaction."""

    version: int
    description: str
    statements: tuple[str, ...]


def check_migrations(migrations: Sequence[Migration]) -> int:
    """Validate the list (versions 1..n, in order) and return the latest version."""
    for index, migration in enumerate(migrations, start=1):
        if migration.version != index:
            raise SchemaError(
                f"migration list out of order: position {index} has version {migration.version}"
            )
    return len(migrations)


def pending(migrations: Sequence[Migration], current: int) -> list[Migration]:
    """Migrations still to apply to a database at ``current``; refuses a newer database."""
    latest = check_migrations(migrations)
    if current > latest:
        raise SchemaTooNewError(current, latest)
    return [m for m in migrations if m.version > current]


def require_aware(value: datetime) -> datetime:
    """Naive datetimes are refused: stored as UTC they would silently shift by the host's zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} cannot be stored: use aware UTC")
    return value


def dt_to_text(value: datetime) -> str:
    """ISO-8601 UTC with microseconds: sorts as text and round-trips exactly."""
    return require_aware(value).astimezone(UTC).isoformat(timespec="microseconds")


def dt_to_text_opt(value: datetime | None) -> str | None:
    return None if value is None else dt_to_text(value)


def text_to_dt(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def text_to_dt_opt(value: str | None) -> datetime | None:
    return None if value is None else text_to_dt(value)


def utc(value: datetime) -> datetime:
    """Aware UTC copy (PostgreSQL returns UTC already; this normalises the tzinfo object)."""
    return require_aware(value).astimezone(UTC)


def utc_opt(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def to_json(value: Any) -> str:
    """Compact, deterministic JSON; a value JSON cannot hold fails here, not on read-back."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def from_json(text: str) -> Any:
    return json.loads(text)
