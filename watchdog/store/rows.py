"""Database rows to records, once for every backend.

SQLite and PostgreSQL hold the same columns; they differ only in how a timestamp and a JSON
value come back (ISO text and JSON text from SQLite, ``timestamptz`` and decoded JSON from
asyncpg). A :class:`Codec` carries that difference, so the mapping itself is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watchdog.store.base import (
    ActionRecord,
    ActionStatus,
    DecisionRecord,
    DrillRecord,
    HumanEvent,
    IncidentRecord,
    OutboxMessage,
    OutboxStatus,
    RollbackRecord,
    RollbackState,
)

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Codec:
    """How one backend returns a timestamp column and a JSON column."""

    time: Callable[[Any], datetime]
    json: Callable[[Any], Any]

    def time_opt(self, value: Any) -> datetime | None:
        return None if value is None else self.time(value)


def decision(r: Row, c: Codec) -> DecisionRecord:
    return DecisionRecord(
        target=r["target"],
        at=c.time(r["at"]),
        action=r["action"],
        severity=r["severity"],
        rule=r["rule"],
        reason=r["reason"],
        path=tuple(c.json(r["path"])),
        incident=r["incident"],
        data=c.json(r["data"]),
    )


def incident(r: Row, c: Codec) -> IncidentRecord:
    return IncidentRecord(
        id=r["id"],
        target=r["target"],
        opened_at=c.time(r["opened_at"]),
        severity=r["severity"],
        rule=r["rule"],
        reason=r["reason"],
        dedup_key=r["dedup_key"],
        deployment=r["deployment"],
        resolved_at=c.time_opt(r["resolved_at"]),
        declared=bool(r["declared"]),
        first_detected_at=c.time_opt(r["first_detected_at"]),
    )


def action(r: Row, c: Codec) -> ActionRecord:
    return ActionRecord(
        key=r["key"],
        kind=r["kind"],
        target=r["target"],
        created_at=c.time(r["created_at"]),
        status=ActionStatus(r["status"]),
        incident=r["incident"],
        detail=c.json(r["detail"]),
        finished_at=c.time_opt(r["finished_at"]),
        error=r["error"],
    )


def rollback(r: Row, c: Codec) -> RollbackRecord:
    return RollbackRecord(
        id=r["id"],
        incident=r["incident"],
        target=r["target"],
        project=r["project"],
        requested_at=c.time(r["requested_at"]),
        state=RollbackState(r["state"]),
        from_deployment=r["from_deployment"],
        to_deployment=r["to_deployment"],
        automatic=bool(r["automatic"]),
        finished_at=c.time_opt(r["finished_at"]),
        verified_at=c.time_opt(r["verified_at"]),
        detail=r["detail"],
    )


def outbox(r: Row, c: Codec) -> OutboxMessage:
    return OutboxMessage(
        key=r["key"],
        kind=r["kind"],
        target=r["target"],
        created_at=c.time(r["created_at"]),
        payload=c.json(r["payload"]),
        incident=r["incident"],
        seq=int(r["seq"]),
        status=OutboxStatus(r["status"]),
        attempts=int(r["attempts"]),
        next_at=c.time_opt(r["next_at"]),
        finished_at=c.time_opt(r["finished_at"]),
        error=r["error"],
    )


def event(r: Row, c: Codec) -> HumanEvent:
    return HumanEvent(
        kind=r["kind"],
        target=r["target"],
        at=c.time(r["at"]),
        by=r["by"],
        reason=r["reason"],
        until=c.time_opt(r["until"]),
        data=c.json(r["data"]),
    )


def drill(r: Row, c: Codec) -> DrillRecord:
    return DrillRecord(
        id=r["id"],
        target=r["target"],
        started_at=c.time(r["started_at"]),
        finished_at=c.time_opt(r["finished_at"]),
        succeeded=bool(r["succeeded"]),
        duration_s=r["duration_s"],
        report=c.json(r["report"]),
    )


class Reader:
    """The mappings above bound to one backend's codec: ``reader.incident(row)``.

    Rows are ``Any``: asyncpg's Record and sqlite3's Row index by name but are not typed as
    mappings.
    """

    def __init__(self, codec: Codec) -> None:
        self._codec = codec

    def decision(self, r: Any) -> DecisionRecord:
        return decision(r, self._codec)

    def incident(self, r: Any) -> IncidentRecord:
        return incident(r, self._codec)

    def action(self, r: Any) -> ActionRecord:
        return action(r, self._codec)

    def rollback(self, r: Any) -> RollbackRecord:
        return rollback(r, self._codec)

    def outbox(self, r: Any) -> OutboxMessage:
        return outbox(r, self._codec)

    def event(self, r: Any) -> HumanEvent:
        return event(r, self._codec)

    def drill(self, r: Any) -> DrillRecord:
        return drill(r, self._codec)
