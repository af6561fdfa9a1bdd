"""The default durable store: one SQLite file, through aiosqlite (the I/O boundary is here).

Durability choices, since a lost intent can mean a repeated rollback:
- WAL journal, one transaction (and commit) per write, so a write that returned survives a
  ``kill -9`` of the daemon: the commit is in the WAL before the call returns.
- ``synchronous=FULL`` for the action side (intents, outcomes, rollbacks, known-bad,
  incidents, human events): the WAL is fsynced at each such commit, so they also survive
  a power cut or kernel crash. Decisions (the high-volume audit, one per target per cycle)
  and drills use ``synchronous=NORMAL``: they survive a process crash, and losing the last
  few on power loss costs an audit line, never a repeated action.
- ``busy_timeout`` so the CLI (``watchdog hold``) can write while the daemon runs;
  writes start with ``BEGIN IMMEDIATE`` so two writers queue rather than deadlock.

A single-process store is always the leader (epoch 1): there is nobody to fence. Two daemons
pointed at one file by mistake still cannot both act on one idempotency key, because
``record_intent`` is an atomic insert in the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from watchdog.store import rows
from watchdog.store.base import (
    ActionRecord,
    ActionStatus,
    DecisionRecord,
    DrillRecord,
    HumanEvent,
    IncidentRecord,
    Lease,
    OutboxMessage,
    OutboxStatus,
    RollbackRecord,
    RollbackState,
)
from watchdog.store.rows import Codec
from watchdog.store.schema import (
    Migration,
    StoreNotOpenError,
    check_migrations,
    dt_to_text,
    dt_to_text_opt,
    from_json,
    pending,
    require_aware,
    text_to_dt,
    to_json,
)
from watchdog.store.sqlite_sql import (
    MIGRATIONS,
    PRUNE_ACTIONS,
    PRUNE_DECISIONS,
    PRUNE_EVENTS,
    PRUNE_INCIDENTS,
    PRUNE_OUTBOX,
    PRUNE_ROLLBACKS,
)

log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS = 5000
_WAL_RETRY_MS = 20

_IN_FLIGHT = tuple(s.value for s in RollbackState if s.in_flight)


class SqliteStore:
    def __init__(self, path: str | Path, *, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        self.path = Path(path)
        self._migrations = tuple(migrations)
        check_migrations(self._migrations)
        self._db: aiosqlite.Connection | None = None
        # one connection: transactions from concurrent coroutines must not interleave on it
        self._lock = asyncio.Lock()
        self._synchronous: str | None = None
        self._log = log.bind(store="sqlite", path=str(self.path))

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        db = await aiosqlite.connect(self.path, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await _enable_wal(db, self.path)
            self._db = db
            await self._set_synchronous("FULL")
            await self._migrate()
        except BaseException:
            self._db = None
            await db.close()
            raise

    async def close(self) -> None:
        db, self._db = self._db, None
        self._synchronous = None
        if db is not None:
            await db.close()

    async def ping(self) -> bool:
        try:
            rows = await self._fetch("SELECT 1")
            return bool(rows and rows[0][0] == 1)
        except (sqlite3.Error, StoreNotOpenError, ValueError):
            return False

    async def schema_version(self) -> int:
        """The version the open database is at (after ``open()``, the latest known)."""
        rows = await self._fetch("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(rows[0][0]) if rows else 0

    async def _migrate(self) -> None:
        async with self._write(durable=True) as db:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            async with db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as c:
                row = await c.fetchone()
            current = int(row[0]) if row else 0
            # inside BEGIN IMMEDIATE: a second process opening the same file waits, then sees
            # the migrations applied and has nothing to do
            todo = pending(self._migrations, current)
            for migration in todo:
                for statement in migration.statements:
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    (migration.version, migration.description),
                )
        if todo:
            self._log.info("store_migrated", from_version=current, to_version=todo[-1].version)

    # -- plumbing ----------------------------------------------------------------------------

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreNotOpenError("SqliteStore is not open: call open() first")
        return self._db

    async def _set_synchronous(self, level: str) -> None:
        if self._synchronous != level:
            await self._conn().execute(f"PRAGMA synchronous = {level}")
            self._synchronous = level

    @asynccontextmanager
    async def _write(self, *, durable: bool) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction, committed before the caller's await returns."""
        async with self._lock:
            db = self._conn()
            # PRAGMA synchronous cannot change inside a transaction: set it first
            await self._set_synchronous("FULL" if durable else "NORMAL")
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                await db.execute("COMMIT")
            except BaseException:
                # also covers a failed COMMIT (disk full): never leave the connection mid-txn
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise

    async def _fetch(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self._lock, self._conn().execute(sql, tuple(params)) as cursor:
            rows = await cursor.fetchall()
        return list(rows)

    # -- decisions ---------------------------------------------------------------------------

    async def append_decision(self, record: DecisionRecord) -> None:
        async with self._write(durable=False) as db:
            await db.execute(
                "INSERT INTO decisions (target, at, action, severity, rule, reason, path,"
                " incident, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.target,
                    dt_to_text(record.at),
                    record.action,
                    record.severity,
                    record.rule,
                    record.reason,
                    to_json(list(record.path)),
                    record.incident,
                    to_json(record.data),
                ),
            )

    async def list_decisions(
        self, *, target: str | None = None, incident: str | None = None, limit: int = 200
    ) -> list[DecisionRecord]:
        # the newest ``limit`` rows, returned oldest first (an audit trail reads forwards)
        rows = await self._fetch(
            "SELECT * FROM decisions WHERE (? IS NULL OR target = ?)"
            " AND (? IS NULL OR incident = ?) ORDER BY seq DESC LIMIT ?",
            (target, target, incident, incident, max(limit, 0)),
        )
        return [_ROWS.decision(r) for r in reversed(rows)]

    # -- incidents ---------------------------------------------------------------------------

    async def save_incident(self, incident: IncidentRecord) -> None:
        async with self._write(durable=True) as db:
            await db.execute(
                "INSERT INTO incidents (id, target, opened_at, severity, rule, reason, dedup_key,"
                " deployment, resolved_at, declared, first_detected_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET target = excluded.target,"
                " opened_at = excluded.opened_at, severity = excluded.severity,"
                " rule = excluded.rule, reason = excluded.reason,"
                " dedup_key = excluded.dedup_key, deployment = excluded.deployment,"
                " resolved_at = excluded.resolved_at, declared = excluded.declared,"
                " first_detected_at = excluded.first_detected_at",
                (
                    incident.id,
                    incident.target,
                    dt_to_text(incident.opened_at),
                    incident.severity,
                    incident.rule,
                    incident.reason,
                    incident.dedup_key,
                    incident.deployment,
                    dt_to_text_opt(incident.resolved_at),
                    int(incident.declared),
                    dt_to_text_opt(incident.first_detected_at),
                ),
            )

    async def load_incident(self, incident_id: str) -> IncidentRecord | None:
        rows = await self._fetch("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        return _ROWS.incident(rows[0]) if rows else None

    async def list_incidents(
        self, *, open_only: bool = False, target: str | None = None, limit: int = 100
    ) -> list[IncidentRecord]:
        rows = await self._fetch(
            "SELECT * FROM incidents WHERE (? = 0 OR resolved_at IS NULL)"
            " AND (? IS NULL OR target = ?) ORDER BY opened_at DESC, seq ASC LIMIT ?",
            (int(open_only), target, target, max(limit, 0)),
        )
        return [_ROWS.incident(r) for r in rows]

    # -- actions -----------------------------------------------------------------------------

    async def record_intent(self, action: ActionRecord) -> bool:
        async with self._write(durable=True) as db:
            cursor = await db.execute(
                "INSERT INTO actions (key, kind, target, created_at, status, incident, detail,"
                " finished_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (key) DO NOTHING",
                (
                    action.key,
                    action.kind,
                    action.target,
                    dt_to_text(action.created_at),
                    ActionStatus(action.status).value,
                    action.incident,
                    to_json(action.detail),
                    dt_to_text_opt(action.finished_at),
                    action.error,
                ),
            )
            inserted = cursor.rowcount == 1
            await cursor.close()
        return inserted

    async def record_outcome(
        self,
        key: str,
        status: ActionStatus,
        at: datetime,
        *,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        finished = dt_to_text(at)
        new_detail = to_json(detail or {})
        async with self._write(durable=True) as db:
            async with db.execute("SELECT detail FROM actions WHERE key = ?", (key,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                # an outcome without its intent means the write-ahead order was broken
                raise KeyError(key)
            # shallow merge, new keys win (as the memory store does); json_patch would recurse
            merged = {**from_json(row[0]), **from_json(new_detail)}
            await db.execute(
                "UPDATE actions SET status = ?, finished_at = ?, error = ?, detail = ?"
                " WHERE key = ?",
                (ActionStatus(status).value, finished, error, to_json(merged), key),
            )

    async def list_actions(
        self, *, incident: str | None = None, limit: int = 200
    ) -> list[ActionRecord]:
        rows = await self._fetch(
            "SELECT * FROM actions WHERE (? IS NULL OR incident = ?)"
            " ORDER BY created_at DESC, seq DESC LIMIT ?",
            (incident, incident, max(limit, 0)),
        )
        return [_ROWS.action(r) for r in reversed(rows)]

    async def save_rollback(self, rollback: RollbackRecord) -> None:
        async with self._write(durable=True) as db:
            await db.execute(
                "INSERT INTO rollbacks (id, incident, target, project, requested_at, state,"
                " from_deployment, to_deployment, automatic, finished_at, verified_at, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET incident = excluded.incident,"
                " target = excluded.target, project = excluded.project,"
                " requested_at = excluded.requested_at, state = excluded.state,"
                " from_deployment = excluded.from_deployment,"
                " to_deployment = excluded.to_deployment, automatic = excluded.automatic,"
                " finished_at = excluded.finished_at, verified_at = excluded.verified_at,"
                " detail = excluded.detail",
                (
                    rollback.id,
                    rollback.incident,
                    rollback.target,
                    rollback.project,
                    dt_to_text(rollback.requested_at),
                    RollbackState(rollback.state).value,
                    rollback.from_deployment,
                    rollback.to_deployment,
                    int(rollback.automatic),
                    dt_to_text_opt(rollback.finished_at),
                    dt_to_text_opt(rollback.verified_at),
                    rollback.detail,
                ),
            )

    async def list_rollbacks(
        self, *, target: str | None = None, since: datetime | None = None
    ) -> list[RollbackRecord]:
        rows = await self._fetch(
            "SELECT * FROM rollbacks WHERE (? IS NULL OR target = ?)"
            " AND (? IS NULL OR requested_at >= ?) ORDER BY requested_at, seq",
            (target, target, dt_to_text_opt(since), dt_to_text_opt(since)),
        )
        return [_ROWS.rollback(r) for r in rows]

    async def mark_known_bad(self, project: str, deployment: str, at: datetime) -> None:
        async with self._write(durable=True) as db:
            await db.execute(
                "INSERT INTO known_bad (project, deployment, marked_at) VALUES (?, ?, ?)"
                " ON CONFLICT (project, deployment) DO NOTHING",
                (project, deployment, dt_to_text(at)),
            )

    async def known_bad(self, project: str) -> frozenset[str]:
        rows = await self._fetch("SELECT deployment FROM known_bad WHERE project = ?", (project,))
        return frozenset(str(r["deployment"]) for r in rows)

    # -- outbox ------------------------------------------------------------------------------

    async def enqueue(self, message: OutboxMessage) -> bool:
        # durable: a page the daemon decided must survive a power cut before it is sent
        async with self._write(durable=True) as db:
            cursor = await db.execute(
                "INSERT INTO outbox (key, kind, target, incident, created_at, payload, status,"
                " attempts, next_at, finished_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (key) DO NOTHING",
                (
                    message.key,
                    message.kind,
                    message.target,
                    message.incident,
                    dt_to_text(message.created_at),
                    to_json(message.payload),
                    OutboxStatus(message.status).value,
                    message.attempts,
                    dt_to_text_opt(message.next_at),
                    dt_to_text_opt(message.finished_at),
                    message.error,
                ),
            )
            inserted = cursor.rowcount == 1
            await cursor.close()
        return inserted

    async def list_outbox(
        self,
        *,
        status: OutboxStatus | None = None,
        incident: str | None = None,
        limit: int = 500,
    ) -> list[OutboxMessage]:
        state = None if status is None else OutboxStatus(status).value
        rows = await self._fetch(
            "SELECT * FROM outbox WHERE (? IS NULL OR status = ?) AND (? IS NULL OR incident = ?)"
            " ORDER BY seq DESC LIMIT ?",
            (state, state, incident, incident, max(limit, 0)),
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
        async with self._write(durable=True) as db:
            cursor = await db.execute(
                "UPDATE outbox SET status = ?, attempts = ?, next_at = ?, finished_at = ?,"
                " error = ? WHERE key = ?",
                (
                    OutboxStatus(status).value,
                    attempts,
                    dt_to_text_opt(next_at),
                    dt_to_text_opt(finished_at),
                    error,
                    key,
                ),
            )
            found = cursor.rowcount == 1
            await cursor.close()
        if not found:
            raise KeyError(key)

    # -- human events ------------------------------------------------------------------------

    async def append_event(self, event: HumanEvent) -> None:
        # durable: a hold lost on power loss could let through a rollback a human suppressed
        async with self._write(durable=True) as db:
            await db.execute(
                "INSERT INTO events (kind, target, at, by, reason, until, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    event.kind,
                    event.target,
                    dt_to_text(event.at),
                    event.by,
                    event.reason,
                    dt_to_text_opt(event.until),
                    to_json(event.data),
                ),
            )

    async def list_events(
        self, *, since: datetime | None = None, target: str | None = None
    ) -> list[HumanEvent]:
        rows = await self._fetch(
            "SELECT * FROM events WHERE (? IS NULL OR at >= ?) AND (? IS NULL OR target = ?)"
            " ORDER BY seq",
            (dt_to_text_opt(since), dt_to_text_opt(since), target, target),
        )
        return [_ROWS.event(r) for r in rows]

    # -- drills ------------------------------------------------------------------------------

    async def save_drill(self, drill: DrillRecord) -> None:
        async with self._write(durable=False) as db:
            await db.execute(
                "INSERT INTO drills (id, target, started_at, finished_at, succeeded, duration_s,"
                " report) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET target = excluded.target,"
                " started_at = excluded.started_at, finished_at = excluded.finished_at,"
                " succeeded = excluded.succeeded, duration_s = excluded.duration_s,"
                " report = excluded.report",
                (
                    drill.id,
                    drill.target,
                    dt_to_text(drill.started_at),
                    dt_to_text_opt(drill.finished_at),
                    int(drill.succeeded),
                    drill.duration_s,
                    to_json(drill.report),
                ),
            )

    async def list_drills(self, *, limit: int = 20) -> list[DrillRecord]:
        rows = await self._fetch(
            "SELECT * FROM drills ORDER BY started_at DESC, seq ASC LIMIT ?", (max(limit, 0),)
        )
        return [_ROWS.drill(r) for r in rows]

    # -- leadership (trivial) ----------------------------------------------------------------

    async def acquire(self, holder: str, ttl: timedelta, now: datetime) -> Lease | None:
        """Always granted: one process owns the file, so there is no one to fence."""
        return Lease(holder, 1, require_aware(now) + ttl)

    async def release(self, holder: str) -> None:
        return None

    # -- retention ---------------------------------------------------------------------------

    async def prune(self, older_than: datetime) -> int:
        """Delete history older than the cutoff, keeping what the daemon still needs.

        Never deleted: open incidents and everything attached to them, rollbacks in flight
        (reconciliation needs them), action intents without an outcome (same), notifications
        not delivered yet, human events
        whose ``until`` is still ahead of the cutoff, known-bad deployments and drills.
        """
        cutoff = dt_to_text(older_than)
        flying = to_json(list(_IN_FLIGHT))
        deleted = 0
        async with self._write(durable=True) as db:
            statements: list[tuple[str, tuple[Any, ...]]] = [
                (PRUNE_DECISIONS, (cutoff, flying)),
                (PRUNE_ACTIONS, (cutoff, ActionStatus.INTENT.value, flying)),
                (PRUNE_ROLLBACKS, (cutoff, flying, flying)),
                (PRUNE_INCIDENTS, (cutoff, flying)),
                (PRUNE_EVENTS, (cutoff, cutoff)),
                (PRUNE_OUTBOX, (cutoff, OutboxStatus.PENDING.value)),
            ]
            for sql, params in statements:
                cursor = await db.execute(sql, params)
                deleted += max(cursor.rowcount, 0)
                await cursor.close()
        if deleted:
            self._log.info("store_pruned", older_than=cutoff, rows=deleted)
        return deleted


async def _enable_wal(db: aiosqlite.Connection, path: Path) -> None:
    """Switch the file to WAL (persistent, so usually a no-op read).

    SQLite answers "database is locked" at once, without its busy handler, when another
    connection holds the file while we change the journal mode (several processes opening a
    brand-new file together): retry for as long as the busy timeout would have waited.
    """
    attempts = BUSY_TIMEOUT_MS // _WAL_RETRY_MS
    for attempt in range(attempts + 1):
        try:
            async with db.execute("PRAGMA journal_mode = WAL") as cursor:
                row = await cursor.fetchone()
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts:
                raise
            await asyncio.sleep(_WAL_RETRY_MS / 1000)
    if row is None or str(row[0]).lower() != "wal":
        raise RuntimeError(f"SQLite refused WAL mode for {path} (got {row!r})")


_ROWS = rows.Reader(Codec(time=text_to_dt, json=from_json))
