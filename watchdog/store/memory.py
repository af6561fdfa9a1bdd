"""An in-memory store: for replay, the demo's throwaway runs, and tests of the layers above.

It keeps the same contract as the durable stores (idempotent intents, upserts by id) but
forgets everything when the process ends, so ``watchdog run`` never uses it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

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


class MemoryStore:
    def __init__(self) -> None:
        self.decisions: list[DecisionRecord] = []
        self.incidents: dict[str, IncidentRecord] = {}
        self.actions: dict[str, ActionRecord] = {}
        self.rollbacks: dict[str, RollbackRecord] = {}
        self.events: list[HumanEvent] = []
        self.drills: dict[str, DrillRecord] = {}
        self.bad: dict[str, set[str]] = {}
        self.outbox: dict[str, OutboxMessage] = {}
        self._outbox_seq = 0
        self.lease: Lease | None = None
        self.available = True

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        return self.available

    async def append_decision(self, record: DecisionRecord) -> None:
        self.decisions.append(record)

    async def list_decisions(
        self, *, target: str | None = None, incident: str | None = None, limit: int = 200
    ) -> list[DecisionRecord]:
        rows = [
            d
            for d in self.decisions
            if (target is None or d.target == target)
            and (incident is None or d.incident == incident)
        ]
        return rows[-limit:]

    async def save_incident(self, incident: IncidentRecord) -> None:
        self.incidents[incident.id] = incident

    async def load_incident(self, incident_id: str) -> IncidentRecord | None:
        return self.incidents.get(incident_id)

    async def list_incidents(
        self, *, open_only: bool = False, target: str | None = None, limit: int = 100
    ) -> list[IncidentRecord]:
        rows = [
            i
            for i in self.incidents.values()
            if (not open_only or i.open) and (target is None or i.target == target)
        ]
        rows.sort(key=lambda i: i.opened_at, reverse=True)
        return rows[:limit]

    async def record_intent(self, action: ActionRecord) -> bool:
        if action.key in self.actions:
            return False
        self.actions[action.key] = action
        return True

    async def record_outcome(
        self,
        key: str,
        status: ActionStatus,
        at: datetime,
        *,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        old = self.actions[key]
        merged = {**old.detail, **(detail or {})}
        self.actions[key] = replace(old, status=status, finished_at=at, error=error, detail=merged)

    async def list_actions(
        self, *, incident: str | None = None, limit: int = 200
    ) -> list[ActionRecord]:
        rows = [a for a in self.actions.values() if incident is None or a.incident == incident]
        rows.sort(key=lambda a: a.created_at)
        return rows[-limit:]

    async def save_rollback(self, rollback: RollbackRecord) -> None:
        self.rollbacks[rollback.id] = rollback

    async def list_rollbacks(
        self, *, target: str | None = None, since: datetime | None = None
    ) -> list[RollbackRecord]:
        rows = [
            r
            for r in self.rollbacks.values()
            if (target is None or r.target == target) and (since is None or r.requested_at >= since)
        ]
        rows.sort(key=lambda r: r.requested_at)
        return rows

    async def mark_known_bad(self, project: str, deployment: str, at: datetime) -> None:
        self.bad.setdefault(project, set()).add(deployment)

    async def known_bad(self, project: str) -> frozenset[str]:
        return frozenset(self.bad.get(project, set()))

    async def enqueue(self, message: OutboxMessage) -> bool:
        if message.key in self.outbox:
            return False
        self._outbox_seq += 1
        self.outbox[message.key] = replace(message, seq=self._outbox_seq)
        return True

    async def list_outbox(
        self,
        *,
        status: OutboxStatus | None = None,
        incident: str | None = None,
        limit: int = 500,
    ) -> list[OutboxMessage]:
        rows = [
            m
            for m in self.outbox.values()
            if (status is None or m.status is status)
            and (incident is None or m.incident == incident)
        ]
        rows.sort(key=lambda m: m.seq)
        return rows[-limit:] if limit > 0 else []

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
        old = self.outbox[key]
        self.outbox[key] = replace(
            old,
            status=status,
            attempts=attempts,
            next_at=next_at,
            finished_at=finished_at,
            error=error,
        )

    async def append_event(self, event: HumanEvent) -> None:
        self.events.append(event)

    async def list_events(
        self, *, since: datetime | None = None, target: str | None = None
    ) -> list[HumanEvent]:
        return [
            e
            for e in self.events
            if (since is None or e.at >= since) and (target is None or e.target == target)
        ]

    async def save_drill(self, drill: DrillRecord) -> None:
        self.drills[drill.id] = drill

    async def list_drills(self, *, limit: int = 20) -> list[DrillRecord]:
        rows = sorted(self.drills.values(), key=lambda d: d.started_at, reverse=True)
        return rows[:limit]

    async def acquire(self, holder: str, ttl: timedelta, now: datetime) -> Lease | None:
        current = self.lease
        if current is not None and current.holder != holder and current.expires_at > now:
            return None
        # a renewal keeps the epoch; a new holder (or a lapsed lease) bumps it, fencing the old
        renew = current is not None and current.holder == holder and current.expires_at > now
        epoch = current.epoch if (renew and current) else (current.epoch + 1 if current else 1)
        self.lease = Lease(holder, epoch, now + ttl)
        return self.lease

    async def release(self, holder: str) -> None:
        if self.lease is not None and self.lease.holder == holder:
            # expire, but keep the epoch: an epoch is never handed out twice
            self.lease = Lease(holder, self.lease.epoch, datetime.min.replace(tzinfo=UTC))

    async def prune(self, older_than: datetime) -> int:
        """Same rules as the durable stores: history goes, live state stays."""
        flying = {r.incident for r in self.rollbacks.values() if RollbackState(r.state).in_flight}
        live = {i.id for i in self.incidents.values() if i.open} | flying

        def keep(incident: str | None) -> bool:
            return incident is not None and incident in live

        before = (
            len(self.decisions)
            + len(self.actions)
            + len(self.rollbacks)
            + len(self.incidents)
            + len(self.events)
        )
        self.decisions = [d for d in self.decisions if d.at >= older_than or keep(d.incident)]
        self.actions = {
            k: a
            for k, a in self.actions.items()
            if a.created_at >= older_than or a.status is ActionStatus.INTENT or keep(a.incident)
        }
        self.rollbacks = {
            k: r
            for k, r in self.rollbacks.items()
            if r.requested_at >= older_than or RollbackState(r.state).in_flight or keep(r.incident)
        }
        self.incidents = {
            k: i
            for k, i in self.incidents.items()
            if i.open or i.resolved_at is None or i.resolved_at >= older_than or i.id in flying
        }
        self.events = [
            e
            for e in self.events
            if e.at >= older_than or (e.until is not None and e.until >= older_than)
        ]
        open_ids = {i.id for i in self.incidents.values() if i.open}
        gone = [
            k
            for k, m in self.outbox.items()
            if m.created_at < older_than
            and m.status is not OutboxStatus.PENDING
            and (m.incident is None or m.incident not in open_ids)
        ]
        for k in gone:
            del self.outbox[k]
        after = (
            len(self.decisions)
            + len(self.actions)
            + len(self.rollbacks)
            + len(self.incidents)
            + len(self.events)
        )
        return before - after + len(gone)
