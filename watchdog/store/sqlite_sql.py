"""The SQLite store's SQL: its schema migrations and its fixed statements (no I/O here).

Kept apart from :mod:`watchdog.store.sqlite` so the store's code reads as what it does with the
database, and a migration is reviewed as SQL.
"""

from __future__ import annotations

from watchdog.store.schema import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            """CREATE TABLE decisions (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                target TEXT NOT NULL,
                at TEXT NOT NULL,
                action TEXT NOT NULL,
                severity TEXT,
                rule TEXT,
                reason TEXT NOT NULL,
                path TEXT NOT NULL,
                incident TEXT,
                data TEXT NOT NULL
            )""",
            "CREATE INDEX decisions_target ON decisions (target, seq)",
            "CREATE INDEX decisions_incident ON decisions (incident, seq)",
            "CREATE INDEX decisions_at ON decisions (at)",
            """CREATE TABLE incidents (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                target TEXT NOT NULL,
                opened_at TEXT NOT NULL,
                severity TEXT NOT NULL,
                rule TEXT,
                reason TEXT NOT NULL,
                dedup_key TEXT NOT NULL,
                deployment TEXT,
                resolved_at TEXT,
                declared INTEGER NOT NULL,
                first_detected_at TEXT
            )""",
            "CREATE INDEX incidents_opened ON incidents (opened_at)",
            """CREATE TABLE actions (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                key TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                created_at TEXT NOT NULL,
                status TEXT NOT NULL,
                incident TEXT,
                detail TEXT NOT NULL,
                finished_at TEXT,
                error TEXT
            )""",
            "CREATE INDEX actions_incident ON actions (incident, created_at)",
            "CREATE INDEX actions_created ON actions (created_at)",
            """CREATE TABLE rollbacks (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                incident TEXT NOT NULL,
                target TEXT NOT NULL,
                project TEXT NOT NULL,
                requested_at TEXT NOT NULL,
                state TEXT NOT NULL,
                from_deployment TEXT,
                to_deployment TEXT,
                automatic INTEGER NOT NULL,
                finished_at TEXT,
                verified_at TEXT,
                detail TEXT NOT NULL
            )""",
            "CREATE INDEX rollbacks_requested ON rollbacks (requested_at)",
            """CREATE TABLE known_bad (
                project TEXT NOT NULL,
                deployment TEXT NOT NULL,
                marked_at TEXT NOT NULL,
                PRIMARY KEY (project, deployment)
            )""",
            """CREATE TABLE events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                at TEXT NOT NULL,
                by TEXT NOT NULL,
                reason TEXT NOT NULL,
                until TEXT,
                data TEXT NOT NULL
            )""",
            "CREATE INDEX events_at ON events (at)",
            """CREATE TABLE drills (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                target TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT,
                succeeded INTEGER NOT NULL,
                duration_s REAL,
                report TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "notification outbox",
        (
            """CREATE TABLE outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                key TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                incident TEXT,
                created_at TEXT NOT NULL,
                payload TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                next_at TEXT,
                finished_at TEXT,
                error TEXT
            )""",
            "CREATE INDEX outbox_status ON outbox (status, seq)",
            "CREATE INDEX outbox_incident ON outbox (incident, seq)",
        ),
    ),
)


# Incidents whose history prune keeps: still open, or with a rollback in flight (the last
# parameter of each statement is the JSON list of in-flight rollback states).
PRUNE_DECISIONS = """
DELETE FROM decisions WHERE at < ? AND (incident IS NULL OR incident NOT IN (
    SELECT id FROM incidents WHERE resolved_at IS NULL
    UNION SELECT incident FROM rollbacks WHERE state IN (SELECT value FROM json_each(?))))
"""
PRUNE_ACTIONS = """
DELETE FROM actions WHERE created_at < ? AND status <> ? AND (incident IS NULL OR incident NOT IN (
    SELECT id FROM incidents WHERE resolved_at IS NULL
    UNION SELECT incident FROM rollbacks WHERE state IN (SELECT value FROM json_each(?))))
"""
PRUNE_ROLLBACKS = """
DELETE FROM rollbacks WHERE requested_at < ?
AND state NOT IN (SELECT value FROM json_each(?)) AND incident NOT IN (
    SELECT id FROM incidents WHERE resolved_at IS NULL
    UNION SELECT incident FROM rollbacks WHERE state IN (SELECT value FROM json_each(?)))
"""
PRUNE_INCIDENTS = """
DELETE FROM incidents WHERE resolved_at IS NOT NULL AND resolved_at < ? AND id NOT IN (
    SELECT incident FROM rollbacks WHERE state IN (SELECT value FROM json_each(?)))
"""
PRUNE_EVENTS = "DELETE FROM events WHERE at < ? AND (until IS NULL OR until < ?)"
# delivered or given-up notifications of resolved incidents; pending ones always stay
PRUNE_OUTBOX = """
DELETE FROM outbox WHERE created_at < ? AND status <> ? AND (incident IS NULL OR incident NOT IN (
    SELECT id FROM incidents WHERE resolved_at IS NULL))
"""
