"""A store that redacts every record before it is written: the store's one choke point.

Records carry text from outside: a decision's reason quotes a rollback's failure, an action's
error quotes a vendor's answer, a human's hold carries a free-text reason. Whatever reached
them, :class:`RedactingStore` replaces every configured secret before the backend (memory,
SQLite, PostgreSQL) sees it, so no table, backup or ``GET /api/incidents`` can hold one.
Reads pass through unchanged. Leadership is not part of it (the lease carries no text): the
daemon keeps the backend itself for that.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watchdog.redact import Redactor
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
    Store,
)


class RedactingStore:
    """Implements :class:`~watchdog.store.base.Store` over ``inner``, redacting every write."""

    def __init__(self, inner: Store, redactor: Redactor) -> None:
        self.inner = inner
        self._redact = redactor

    def __repr__(self) -> str:
        return f"RedactingStore({self.inner!r})"

    # -- writes: every argument redacted -------------------------------------------------

    async def append_decision(self, record: DecisionRecord) -> None:
        await self.inner.append_decision(self._redact.data(record))

    async def save_incident(self, incident: IncidentRecord) -> None:
        await self.inner.save_incident(self._redact.data(incident))

    async def record_intent(self, action: ActionRecord) -> bool:
        return await self.inner.record_intent(self._redact.data(action))

    async def record_outcome(
        self,
        key: str,
        status: ActionStatus,
        at: datetime,
        *,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        await self.inner.record_outcome(
            self._redact.data(key),
            status,
            at,
            error=self._redact.data(error),
            detail=self._redact.data(detail),
        )

    async def save_rollback(self, rollback: RollbackRecord) -> None:
        await self.inner.save_rollback(self._redact.data(rollback))

    async def mark_known_bad(self, project: str, deployment: str, at: datetime) -> None:
        await self.inner.mark_known_bad(project, self._redact.data(deployment), at)

    async def append_event(self, event: HumanEvent) -> None:
        await self.inner.append_event(self._redact.data(event))

    async def save_drill(self, drill: DrillRecord) -> None:
        await self.inner.save_drill(self._redact.data(drill))

    async def enqueue(self, message: OutboxMessage) -> bool:
        # what is stored is what will be sent: the pager and chat redact again on the way out
        return await self.inner.enqueue(self._redact.data(message))

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
        await self.inner.mark_outbox(
            key,
            status,
            attempts=attempts,
            next_at=next_at,
            finished_at=finished_at,
            error=self._redact.data(error),
        )

    # -- reads and lifecycle: as they are ------------------------------------------------

    async def list_decisions(
        self, *, target: str | None = None, incident: str | None = None, limit: int = 200
    ) -> list[DecisionRecord]:
        return await self.inner.list_decisions(target=target, incident=incident, limit=limit)

    async def load_incident(self, incident_id: str) -> IncidentRecord | None:
        return await self.inner.load_incident(incident_id)

    async def list_incidents(
        self, *, open_only: bool = False, target: str | None = None, limit: int = 100
    ) -> list[IncidentRecord]:
        return await self.inner.list_incidents(open_only=open_only, target=target, limit=limit)

    async def list_actions(
        self, *, incident: str | None = None, limit: int = 200
    ) -> list[ActionRecord]:
        return await self.inner.list_actions(incident=incident, limit=limit)

    async def list_rollbacks(
        self, *, target: str | None = None, since: datetime | None = None
    ) -> list[RollbackRecord]:
        return await self.inner.list_rollbacks(target=target, since=since)

    async def known_bad(self, project: str) -> frozenset[str]:
        return await self.inner.known_bad(project)

    async def list_events(
        self, *, since: datetime | None = None, target: str | None = None
    ) -> list[HumanEvent]:
        return await self.inner.list_events(since=since, target=target)

    async def list_drills(self, *, limit: int = 20) -> list[DrillRecord]:
        return await self.inner.list_drills(limit=limit)

    async def list_outbox(
        self,
        *,
        status: OutboxStatus | None = None,
        incident: str | None = None,
        limit: int = 500,
    ) -> list[OutboxMessage]:
        return await self.inner.list_outbox(status=status, incident=incident, limit=limit)

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def prune(self, older_than: datetime) -> int:
        return await self.inner.prune(older_than)
