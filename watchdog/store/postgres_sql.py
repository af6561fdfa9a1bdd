"""The PostgreSQL store's SQL: its schema migrations, how they are applied, its fixed statements.

Kept apart from :mod:`watchdog.store.postgres` so the store's code reads as what it does with
the database, and a migration is reviewed as SQL. I/O boundary: :func:`migrate` runs on the
connection (inside the transaction) the store hands it; nothing else here touches a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchdog.store.schema import Migration, pending

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            """CREATE TABLE decisions (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                target TEXT NOT NULL,
                at TIMESTAMPTZ NOT NULL,
                action TEXT NOT NULL,
                severity TEXT,
                rule TEXT,
                reason TEXT NOT NULL,
                path JSONB NOT NULL,
                incident TEXT,
                data JSONB NOT NULL
            )""",
            "CREATE INDEX decisions_target ON decisions (target, seq)",
            "CREATE INDEX decisions_incident ON decisions (incident, seq)",
            "CREATE INDEX decisions_at ON decisions (at)",
            """CREATE TABLE incidents (
                seq BIGINT GENERATED ALWAYS AS IDENTITY,
                id TEXT PRIMARY KEY,
                target TEXT NOT NULL,
                opened_at TIMESTAMPTZ NOT NULL,
                severity TEXT NOT NULL,
                rule TEXT,
                reason TEXT NOT NULL,
                dedup_key TEXT NOT NULL,
                deployment TEXT,
                resolved_at TIMESTAMPTZ,
                declared BOOLEAN NOT NULL,
                first_detected_at TIMESTAMPTZ
            )""",
            "CREATE INDEX incidents_opened ON incidents (opened_at)",
            """CREATE TABLE actions (
                seq BIGINT GENERATED ALWAYS AS IDENTITY,
                key TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                status TEXT NOT NULL,
                incident TEXT,
                detail JSONB NOT NULL,
                finished_at TIMESTAMPTZ,
                error TEXT
            )""",
            "CREATE INDEX actions_incident ON actions (incident, created_at)",
            "CREATE INDEX actions_created ON actions (created_at)",
            """CREATE TABLE rollbacks (
                seq BIGINT GENERATED ALWAYS AS IDENTITY,
                id TEXT PRIMARY KEY,
                incident TEXT NOT NULL,
                target TEXT NOT NULL,
                project TEXT NOT NULL,
                requested_at TIMESTAMPTZ NOT NULL,
                state TEXT NOT NULL,
                from_deployment TEXT,
                to_deployment TEXT,
                automatic BOOLEAN NOT NULL,
                finished_at TIMESTAMPTZ,
                verified_at TIMESTAMPTZ,
                detail TEXT NOT NULL
            )""",
            "CREATE INDEX rollbacks_requested ON rollbacks (requested_at)",
            """CREATE TABLE known_bad (
                project TEXT NOT NULL,
                deployment TEXT NOT NULL,
                marked_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (project, deployment)
            )""",
            """CREATE TABLE events (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                at TIMESTAMPTZ NOT NULL,
                by TEXT NOT NULL,
                reason TEXT NOT NULL,
                until TIMESTAMPTZ,
                data JSONB NOT NULL
            )""",
            "CREATE INDEX events_at ON events (at)",
            """CREATE TABLE drills (
                seq BIGINT GENERATED ALWAYS AS IDENTITY,
                id TEXT PRIMARY KEY,
                target TEXT NOT NULL,
                started_at TIMESTAMPTZ NOT NULL,
                finished_at TIMESTAMPTZ,
                succeeded BOOLEAN NOT NULL,
                duration_s DOUBLE PRECISION,
                report JSONB NOT NULL
            )""",
            """CREATE TABLE leases (
                name TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                epoch BIGINT NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "notification outbox",
        (
            """CREATE TABLE outbox (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                key TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                incident TEXT,
                created_at TIMESTAMPTZ NOT NULL,
                payload JSONB NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                next_at TIMESTAMPTZ,
                finished_at TIMESTAMPTZ,
                error TEXT
            )""",
            "CREATE INDEX outbox_status ON outbox (status, seq)",
            "CREATE INDEX outbox_incident ON outbox (incident, seq)",
        ),
    ),
)

# One statement decides take / renew / refuse, so two replicas racing cannot both win.
ACQUIRE = """
INSERT INTO leases AS l (name, holder, epoch, expires_at)
VALUES ($1, $2, 1, COALESCE($3::timestamptz, now()) + $4::interval)
ON CONFLICT (name) DO UPDATE SET
    holder = EXCLUDED.holder,
    epoch = CASE
        WHEN l.holder = EXCLUDED.holder AND l.expires_at > COALESCE($3::timestamptz, now())
        THEN l.epoch ELSE l.epoch + 1 END,
    expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at <= COALESCE($3::timestamptz, now())
RETURNING holder, epoch, expires_at
"""

# Incidents whose history prune keeps: still open, or with a rollback in flight ($2).
PRUNE_DECISIONS = """
DELETE FROM decisions WHERE at < $1 AND (incident IS NULL OR incident NOT IN (
    SELECT id FROM incidents WHERE resolved_at IS NULL
    UNION SELECT incident FROM rollbacks WHERE state = ANY($2::text[])))
"""
PRUNE_ACTIONS = """
DELETE FROM actions WHERE created_at < $1 AND status <> $3
AND (incident IS NULL OR incident NOT IN (
    SELECT id FROM incidents WHERE resolved_at IS NULL
    UNION SELECT incident FROM rollbacks WHERE state = ANY($2::text[])))
"""
PRUNE_ROLLBACKS = """
DELETE FROM rollbacks WHERE requested_at < $1 AND NOT (state = ANY($2::text[]))
AND incident NOT IN (
    SELECT id FROM incidents WHERE resolved_at IS NULL
    UNION SELECT incident FROM rollbacks WHERE state = ANY($2::text[]))
"""
PRUNE_INCIDENTS = """
DELETE FROM incidents WHERE resolved_at IS NOT NULL AND resolved_at < $1 AND id NOT IN (
    SELECT incident FROM rollbacks WHERE state = ANY($2::text[]))
"""
PRUNE_EVENTS = "DELETE FROM events WHERE at < $1 AND (until IS NULL OR until < $1)"
# delivered or given-up notifications of resolved incidents; pending ones always stay
PRUNE_OUTBOX = """
DELETE FROM outbox WHERE created_at < $1 AND status <> $2 AND (incident IS NULL OR incident NOT IN (
    SELECT id FROM incidents WHERE resolved_at IS NULL))
"""


async def migrate(
    conn: Any, schema: str | None, migrations: Sequence[Migration]
) -> tuple[int, list[Migration]]:
    """Bring the schema to the newest migration; returns the version found and what ran."""
    # replicas starting together: the first creates and migrates, the others wait for its
    # commit and find nothing to do (IF NOT EXISTS alone still races on catalogs)
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('rollback-watchdog.migrate'),"
        " hashtext(COALESCE($1::text, current_schema(), '')))",
        schema,
    )
    if schema:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
        " description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
    todo = list(pending(migrations, current))
    for migration in todo:
        for statement in migration.statements:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_version (version, description) VALUES ($1, $2)",
            migration.version,
            migration.description,
        )
    return current, todo
