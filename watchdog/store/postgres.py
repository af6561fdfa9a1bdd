"""The shared store for several replicas: PostgreSQL through an asyncpg pool (I/O boundary).

Leader election is a lease row ``(holder, epoch, expires_at)`` taken or renewed by one atomic
``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement: it succeeds when the lease is free,
expired, or already ours; a *new* holder (or a holder whose lease lapsed) bumps the epoch.

Fencing: the store remembers the ``(holder, epoch)`` it was granted. Every action-side write
(``record_intent``, ``record_outcome``, ``save_rollback``, ``mark_known_bad``) runs in a
transaction that first locks the lease row ``FOR SHARE`` and checks it still carries that
holder and epoch, else raises ``FencedError``. The share lock makes the check and the write
one step against a concurrent takeover (whose update waits for our commit), so a leader that
was paused past its lease and replaced cannot act afterwards. A store that never acquired the
lease cannot write actions at all. A lapsed lease nobody else took is still ours: no other
replica can have acted meanwhile, because taking it bumps the epoch.

Decisions, incidents, human events and drills are not fenced: any replica may write its
audit trail and a human's hold must never be lost because it reached a follower.

Lease clock: by default the *database's* clock judges expiry (``lease_clock="database"``), so
replicas with skewed clocks cannot steal a lease early; the ``now`` passed to ``acquire`` is
then ignored and ``Lease.expires_at`` is in database time. ``lease_clock="caller"`` uses the
passed ``now`` instead, which keeps tests with a fake clock deterministic.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
import structlog
from pydantic import SecretStr

from watchdog.store import rows
from watchdog.store.base import (
    ActionRecord,
    ActionStatus,
    DecisionRecord,
    DrillRecord,
    FencedError,
    HumanEvent,
    IncidentRecord,
    Lease,
    OutboxMessage,
    OutboxStatus,
    RollbackRecord,
    RollbackState,
)
from watchdog.store.postgres_sql import (
    ACQUIRE,
    MIGRATIONS,
    PRUNE_ACTIONS,
    PRUNE_DECISIONS,
    PRUNE_EVENTS,
    PRUNE_INCIDENTS,
    PRUNE_OUTBOX,
    PRUNE_ROLLBACKS,
    migrate,
)
from watchdog.store.rows import Codec
from watchdog.store.schema import (
    LEADER_LEASE,
    Migration,
    StoreNotOpenError,
    check_migrations,
    from_json,
    require_aware,
    to_json,
    utc,
)

log = structlog.get_logger(__name__)

LeaseClock = Literal["database", "caller"]

_IN_FLIGHT = [s.value for s in RollbackState if s.in_flight]
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


#: connecting and logging in; a healthy server on the same network answers in milliseconds
CONNECT_TIMEOUT_S = 3.0


class StoreUnavailableError(ConnectionError):
    """The database could not be reached or did not answer (start-up fails with this)."""


def _where(dsn: SecretStr) -> str:
    """``host:port`` of a DSN, never its user or password."""
    try:
        parts = urlsplit(dsn.get_secret_value())
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    except ValueError:
        return "the configured host"


class PostgresStore:
    def __init__(
        self,
        dsn: str | SecretStr,
        *,
        schema: str | None = None,
        lease_clock: LeaseClock = "database",
        migrations: Sequence[Migration] = MIGRATIONS,
        min_size: int = 1,
        max_size: int = 5,
        timeout_s: float = 10.0,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        # the DSN may carry a password: keep it out of repr, logs and exceptions
        self._dsn = dsn if isinstance(dsn, SecretStr) else SecretStr(dsn)
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid PostgreSQL schema name {schema!r}")
        if lease_clock not in ("database", "caller"):
            raise ValueError(f"lease_clock must be 'database' or 'caller', not {lease_clock!r}")
        self.schema = schema
        self.lease_clock: LeaseClock = lease_clock
        self._migrations = tuple(migrations)
        check_migrations(self._migrations)
        self._min_size = min_size
        self._max_size = max_size
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._pool: asyncpg.Pool | None = None
        #: the lease this store was last granted: the fencing token for action-side writes
        self._lease: Lease | None = None
        self._log = log.bind(store="postgres", schema=schema)

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r}, lease_clock={self.lease_clock!r})"

    @property
    def lease(self) -> Lease | None:
        """The lease this store believes it holds (the database has the final word)."""
        return self._lease

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        settings = {"search_path": self.schema} if self.schema else None
        try:
            pool = await asyncpg.create_pool(
                self._dsn.get_secret_value(),
                min_size=self._min_size,
                max_size=self._max_size,
                # a server that accepts the connection and never answers must fail start-up
                # in seconds, not hang it: the connect (and login) has its own short bound
                timeout=self._connect_timeout_s,
                command_timeout=self._timeout_s,
                server_settings=settings,
                init=_init_connection,
            )
        except TimeoutError:
            raise StoreUnavailableError(
                f"PostgreSQL at {_where(self._dsn)} did not answer within "
                f"{self._connect_timeout_s:g}s: check store.url and that the server is up"
            ) from None
        try:
            self._pool = pool
            await self._migrate()
        except BaseException:
            self._pool = None
            await pool.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        self._lease = None
        if pool is not None:
            await pool.close()

    async def ping(self) -> bool:
        try:
            async with self._get_pool().acquire(timeout=self._timeout_s) as conn:
                return bool(await conn.fetchval("SELECT 1") == 1)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        except StoreNotOpenError:
            return False

    async def schema_version(self) -> int:
        async with self._get_pool().acquire() as conn:
            return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    async def _migrate(self) -> None:
        async with self._get_pool().acquire() as conn, conn.transaction():
            current, todo = await migrate(conn, self.schema, self._migrations)
        if todo:
            self._log.info("store_migrated", from_version=current, to_version=todo[-1].version)

    # -- plumbing ----------------------------------------------------------------------------

    def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreNotOpenError("PostgresStore is not open: call open() first")
        return self._pool

    @asynccontextmanager
    async def _fenced(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction that proves this store still holds the lease before writing."""
        lease = self._lease
        if lease is None:
            raise FencedError("this replica does not hold the leader lease: it must not act")
        async with self._get_pool().acquire() as conn, conn.transaction():
            held = await conn.fetchval(
                "SELECT epoch FROM leases WHERE name = $1 AND holder = $2 AND epoch = $3 FOR SHARE",
                LEADER_LEASE,
                lease.holder,
                lease.epoch,
            )
            if held is None:
                self._lease = None
                self._log.warning("store_write_fenced", holder=lease.holder, epoch=lease.epoch)
                raise FencedError(
                    f"leader lease lost (held epoch {lease.epoch} as {lease.holder!r}):"
                    " another replica took over; this one must not act"
                )
            yield conn

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._get_pool().acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def _execute(self, sql: str, *args: Any) -> None:
        async with self._get_pool().acquire() as conn:
            await conn.execute(sql, *args)

    # -- leadership --------------------------------------------------------------------------

    async def acquire(self, holder: str, ttl: timedelta, now: datetime) -> Lease | None:
        if ttl <= timedelta(0):
            raise ValueError("lease ttl must be positive")
        caller_now = require_aware(now) if self.lease_clock == "caller" else None
        async with self._get_pool().acquire() as conn:
            row = await conn.fetchrow(ACQUIRE, LEADER_LEASE, holder, caller_now, ttl)
        previous = self._lease
        if row is None:
            self._lease = None
            if previous is not None:
                self._log.warning("lease_lost", holder=holder, epoch=previous.epoch)
            return None
        lease = Lease(row["holder"], int(row["epoch"]), utc(row["expires_at"]))
        self._lease = lease
        if previous is None or previous.epoch != lease.epoch:
            self._log.info("lease_acquired", holder=holder, epoch=lease.epoch)
        return lease

    async def release(self, holder: str) -> None:
        """Give the lease up now (on shutdown) so a follower need not wait for expiry.

        The row stays with its epoch and an expiry in the past: the next holder bumps the
        epoch, so this replica's token can never become valid again.
        """
        epoch = self._lease.epoch if self._lease is not None else None
        self._lease = None
        await self._execute(
            "UPDATE leases SET expires_at = '-infinity' WHERE name = $1 AND holder = $2"
            " AND ($3::bigint IS NULL OR epoch = $3)",
            LEADER_LEASE,
            holder,
            epoch,
        )

    # -- decisions ---------------------------------------------------------------------------

    async def append_decision(self, record: DecisionRecord) -> None:
        await self._execute(
            "INSERT INTO decisions (target, at, action, severity, rule, reason, path, incident,"
            " data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            record.target,
            require_aware(record.at),
            record.action,
            record.severity,
            record.rule,
            record.reason,
            list(record.path),
            record.incident,
            record.data,
        )

    async def list_decisions(
        self, *, target: str | None = None, incident: str | None = None, limit: int = 200
    ) -> list[DecisionRecord]:
        rows = await self._fetch(
            "SELECT * FROM decisions WHERE ($1::text IS NULL OR target = $1)"
            " AND ($2::text IS NULL OR incident = $2) ORDER BY seq DESC LIMIT $3",
            target,
            incident,
            max(limit, 0),
        )
        return [_ROWS.decision(r) for r in reversed(rows)]

    # -- incidents ---------------------------------------------------------------------------

    async def save_incident(self, incident: IncidentRecord) -> None:
        await self._execute(
            "INSERT INTO incidents (id, target, opened_at, severity, rule, reason, dedup_key,"
            " deployment, resolved_at, declared, first_detected_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            " ON CONFLICT (id) DO UPDATE SET target = EXCLUDED.target,"
            " opened_at = EXCLUDED.opened_at, severity = EXCLUDED.severity,"
            " rule = EXCLUDED.rule, reason = EXCLUDED.reason, dedup_key = EXCLUDED.dedup_key,"
            " deployment = EXCLUDED.deployment, resolved_at = EXCLUDED.resolved_at,"
            " declared = EXCLUDED.declared, first_detected_at = EXCLUDED.first_detected_at",
            incident.id,
            incident.target,
            require_aware(incident.opened_at),
            incident.severity,
            incident.rule,
            incident.reason,
            incident.dedup_key,
            incident.deployment,
            _aware_opt(incident.resolved_at),
            incident.declared,
            _aware_opt(incident.first_detected_at),
        )

    async def load_incident(self, incident_id: str) -> IncidentRecord | None:
        rows = await self._fetch("SELECT * FROM incidents WHERE id = $1", incident_id)
        return _ROWS.incident(rows[0]) if rows else None

    async def list_incidents(
        self, *, open_only: bool = False, target: str | None = None, limit: int = 100
    ) -> list[IncidentRecord]:
        rows = await self._fetch(
            "SELECT * FROM incidents WHERE (NOT $1::boolean OR resolved_at IS NULL)"
            " AND ($2::text IS NULL OR target = $2) ORDER BY opened_at DESC, seq ASC LIMIT $3",
            open_only,
            target,
            max(limit, 0),
        )
        return [_ROWS.incident(r) for r in rows]

    # -- actions (fenced) --------------------------------------------------------------------

    async def record_intent(self, action: ActionRecord) -> bool:
        async with self._fenced() as conn:
            key = await conn.fetchval(
                "INSERT INTO actions (key, kind, target, created_at, status, incident, detail,"
                " finished_at, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (key) DO NOTHING RETURNING key",
                action.key,
                action.kind,
                action.target,
                require_aware(action.created_at),
                ActionStatus(action.status).value,
                action.incident,
                action.detail,
                _aware_opt(action.finished_at),
                action.error,
            )
        return key is not None

    async def record_outcome(
        self,
        key: str,
        status: ActionStatus,
        at: datetime,
        *,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        async with self._fenced() as conn:
            # jsonb || is a shallow merge where new keys win, as in the other stores
            found = await conn.fetchval(
                "UPDATE actions SET status = $2, finished_at = $3, error = $4,"
                " detail = detail || $5::jsonb WHERE key = $1 RETURNING key",
                key,
                ActionStatus(status).value,
                require_aware(at),
                error,
                detail or {},
            )
            if found is None:
                # an outcome without its intent means the write-ahead order was broken
                raise KeyError(key)

    async def list_actions(
        self, *, incident: str | None = None, limit: int = 200
    ) -> list[ActionRecord]:
        rows = await self._fetch(
            "SELECT * FROM actions WHERE ($1::text IS NULL OR incident = $1)"
            " ORDER BY created_at DESC, seq DESC LIMIT $2",
            incident,
            max(limit, 0),
        )
        return [_ROWS.action(r) for r in reversed(rows)]

    # -- outbox (fenced: only the leader notifies) -------------------------------------------

    async def enqueue(self, message: OutboxMessage) -> bool:
        async with self._fenced() as conn:
            key = await conn.fetchval(
                "INSERT INTO outbox (key, kind, target, incident, created_at, payload, status,"
                " attempts, next_at, finished_at, error)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                " ON CONFLICT (key) DO NOTHING RETURNING key",
                message.key,
                message.kind,
                message.target,
                message.incident,
                require_aware(message.created_at),
                message.payload,
                OutboxStatus(message.status).value,
                message.attempts,
                _aware_opt(message.next_at),
                _aware_opt(message.finished_at),
                message.error,
            )
        return key is not None

    async def list_outbox(
        self,
        *,
        status: OutboxStatus | None = None,
        incident: str | None = None,
        limit: int = 500,
    ) -> list[OutboxMessage]:
        rows = await self._fetch(
            "SELECT * FROM outbox WHERE ($1::text IS NULL OR status = $1)"
            " AND ($2::text IS NULL OR incident = $2) ORDER BY seq DESC LIMIT $3",
            None if status is None else OutboxStatus(status).value,
            incident,
            max(limit, 0),
        )
        return [_ROWS.outbox(r) for r in reversed(rows)]

    async def mark_outbox(
        self,
        key: str,
        status: OutboxStatus,
        *,
        attempts: int,
        next_at: datetime | None = None,
        finished_at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        async with self._fenced() as conn:
            found = await conn.fetchval(
                "UPDATE outbox SET status = $2, attempts = $3, next_at = $4, finished_at = $5,"
                " error = $6 WHERE key = $1 RETURNING key",
                key,
                OutboxStatus(status).value,
                attempts,
                _aware_opt(next_at),
                _aware_opt(finished_at),
                error,
            )
        if found is None:
            raise KeyError(key)

    async def save_rollback(self, rollback: RollbackRecord) -> None:
        async with self._fenced() as conn:
            await conn.execute(
                "INSERT INTO rollbacks (id, incident, target, project, requested_at, state,"
                " from_deployment, to_deployment, automatic, finished_at, verified_at, detail)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                " ON CONFLICT (id) DO UPDATE SET incident = EXCLUDED.incident,"
                " target = EXCLUDED.target, project = EXCLUDED.project,"
                " requested_at = EXCLUDED.requested_at, state = EXCLUDED.state,"
                " from_deployment = EXCLUDED.from_deployment,"
                " to_deployment = EXCLUDED.to_deployment, automatic = EXCLUDED.automatic,"
                " finished_at = EXCLUDED.finished_at, verified_at = EXCLUDED.verified_at,"
                " detail = EXCLUDED.detail",
                rollback.id,
                rollback.incident,
                rollback.target,
                rollback.project,
                require_aware(rollback.requested_at),
                RollbackState(rollback.state).value,
                rollback.from_deployment,
                rollback.to_deployment,
                rollback.automatic,
                _aware_opt(rollback.finished_at),
                _aware_opt(rollback.verified_at),
                rollback.detail,
            )

    async def list_rollbacks(
        self, *, target: str | None = None, since: datetime | None = None
    ) -> list[RollbackRecord]:
        rows = await self._fetch(
            "SELECT * FROM rollbacks WHERE ($1::text IS NULL OR target = $1)"
            " AND ($2::timestamptz IS NULL OR requested_at >= $2) ORDER BY requested_at, seq",
            target,
            _aware_opt(since),
        )
        return [_ROWS.rollback(r) for r in rows]

    async def mark_known_bad(self, project: str, deployment: str, at: datetime) -> None:
        async with self._fenced() as conn:
            await conn.execute(
                "INSERT INTO known_bad (project, deployment, marked_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (project, deployment) DO NOTHING",
                project,
                deployment,
                require_aware(at),
            )

    async def known_bad(self, project: str) -> frozenset[str]:
        rows = await self._fetch("SELECT deployment FROM known_bad WHERE project = $1", project)
        return frozenset(str(r["deployment"]) for r in rows)

    # -- human events ------------------------------------------------------------------------

    async def append_event(self, event: HumanEvent) -> None:
        await self._execute(
            "INSERT INTO events (kind, target, at, by, reason, until, data)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            event.kind,
            event.target,
            require_aware(event.at),
            event.by,
            event.reason,
            _aware_opt(event.until),
            event.data,
        )

    async def list_events(
        self, *, since: datetime | None = None, target: str | None = None
    ) -> list[HumanEvent]:
        rows = await self._fetch(
            "SELECT * FROM events WHERE ($1::timestamptz IS NULL OR at >= $1)"
            " AND ($2::text IS NULL OR target = $2) ORDER BY seq",
            _aware_opt(since),
            target,
        )
        return [_ROWS.event(r) for r in rows]

    # -- drills ------------------------------------------------------------------------------

    async def save_drill(self, drill: DrillRecord) -> None:
        await self._execute(
            "INSERT INTO drills (id, target, started_at, finished_at, succeeded, duration_s,"
            " report) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (id) DO UPDATE SET target = EXCLUDED.target,"
            " started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,"
            " succeeded = EXCLUDED.succeeded, duration_s = EXCLUDED.duration_s,"
            " report = EXCLUDED.report",
            drill.id,
            drill.target,
            require_aware(drill.started_at),
            _aware_opt(drill.finished_at),
            drill.succeeded,
            drill.duration_s,
            drill.report,
        )

    async def list_drills(self, *, limit: int = 20) -> list[DrillRecord]:
        rows = await self._fetch(
            "SELECT * FROM drills ORDER BY started_at DESC, seq ASC LIMIT $1", max(limit, 0)
        )
        return [_ROWS.drill(r) for r in rows]

    # -- retention ---------------------------------------------------------------------------

    async def prune(self, older_than: datetime) -> int:
        """Delete history older than the cutoff, keeping what the daemon still needs.

        Same rules as the SQLite store: never open incidents or anything attached to them,
        in-flight rollbacks, intents without an outcome, holds still in force, known-bad
        deployments or drills. Not fenced: retention is housekeeping, not an action.
        """
        cutoff = require_aware(older_than)
        deleted = 0
        async with self._get_pool().acquire() as conn, conn.transaction():
            for sql in (PRUNE_DECISIONS, PRUNE_ROLLBACKS, PRUNE_INCIDENTS):
                deleted += _rowcount(await conn.execute(sql, cutoff, _IN_FLIGHT))
            deleted += _rowcount(
                await conn.execute(PRUNE_ACTIONS, cutoff, _IN_FLIGHT, ActionStatus.INTENT.value)
            )
            deleted += _rowcount(await conn.execute(PRUNE_EVENTS, cutoff))
            deleted += _rowcount(
                await conn.execute(PRUNE_OUTBOX, cutoff, OutboxStatus.PENDING.value)
            )
        if deleted:
            self._log.info("store_pruned", older_than=cutoff.isoformat(), rows=deleted)
        return deleted


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSON columns take and return Python dicts/lists; encoding refuses NaN like SQLite's
    await conn.set_type_codec("jsonb", encoder=to_json, decoder=from_json, schema="pg_catalog")


def _rowcount(status: str) -> int:
    """``DELETE 3`` -> 3 (asyncpg returns the command tag)."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


def _aware_opt(value: datetime | None) -> datetime | None:
    return None if value is None else require_aware(value)


_ROWS = rows.Reader(Codec(time=utc, json=lambda value: value))


__all__ = ["MIGRATIONS", "LeaseClock", "PostgresStore"]
