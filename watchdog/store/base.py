"""What the watchdog remembers, and the small interfaces for remembering it.

Records are frozen dataclasses; each store backend (memory, SQLite, PostgreSQL) implements the
same protocols and passes the same contract tests. The split into several small protocols is
deliberate: the dispatcher needs the action journal, the HTTP API needs incidents, and only
the PostgreSQL backend needs leadership.

Write-ahead rule: an action's *intent* is saved before the side effect and its *outcome*
after it. ``record_intent`` returns False when the same idempotency key was already recorded,
which is how a restarted daemon avoids repeating a page or a rollback.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol


class FencedError(Exception):
    """This replica lost its leadership (a newer epoch exists): it must not act."""


class ActionStatus(enum.StrEnum):
    INTENT = "intent"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: shadow mode / kill switch: recorded as "would have done"
    SKIPPED = "skipped"


class RollbackState(enum.StrEnum):
    INTENT = "intent"  # recorded, deployer not called yet (or crashed before it returned)
    REQUESTED = "requested"  # deployer accepted; Vercel job running
    SUCCEEDED = "succeeded"  # production serves the target
    FAILED = "failed"
    VERIFIED = "verified"
    VERIFY_FAILED = "verify_failed"
    SHADOW = "shadow"  # shadow mode: "would roll back"
    #: a crash came between the intent and Vercel, and Vercel shows it never heard of it:
    #: production never moved, so the incident may re-issue it once (DESIGN §5 Write-ahead)
    ABANDONED = "abandoned"

    @property
    def in_flight(self) -> bool:
        # SUCCEEDED is not in flight: a crash during verification must not block rollbacks
        return self in (RollbackState.INTENT, RollbackState.REQUESTED)


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    id: str
    target: str
    opened_at: datetime
    severity: str
    rule: str | None
    reason: str
    dedup_key: str
    deployment: str | None = None
    resolved_at: datetime | None = None
    declared: bool = False
    #: when the incident's first signal crossed a threshold (post-mortem "first error detected")
    first_detected_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    def resolved(self, at: datetime) -> IncidentRecord:
        return replace(self, resolved_at=at)


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One side effect: ``key`` is its idempotency key (e.g. ``inc-1/page/trigger``)."""

    key: str
    kind: str
    target: str
    created_at: datetime
    status: ActionStatus = ActionStatus.INTENT
    incident: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    finished_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RollbackRecord:
    id: str
    incident: str
    target: str
    project: str
    requested_at: datetime
    state: RollbackState = RollbackState.INTENT
    from_deployment: str | None = None
    to_deployment: str | None = None
    automatic: bool = True
    finished_at: datetime | None = None
    verified_at: datetime | None = None
    detail: str = ""


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # not accepted yet: delivered in order, with backoff
    DELIVERED = "delivered"
    #: older than its channel's maximum age and never accepted: given up, and said so
    EXPIRED = "expired"
    #: refused in a way retrying cannot fix (a 4xx): given up, and said so
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One notification (page, resolve, change event, chat) waiting for, or past, delivery.

    ``key`` is its idempotency key (the journal's), ``seq`` its place in the order the store
    assigns on ``enqueue``; messages of one ``(channel, incident)`` are delivered in that
    order, so a resolve never overtakes its trigger.
    """

    key: str
    kind: str  # "page" | "resolve" | "change" | "chat"
    target: str
    created_at: datetime
    payload: dict[str, Any]
    incident: str | None = None
    seq: int = 0
    status: OutboxStatus = OutboxStatus.PENDING
    attempts: int = 0
    next_at: datetime | None = None  # None: due now
    finished_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HumanEvent:
    """hold / release / ack / declare / kill_switch, as received by the control API or CLI."""

    kind: str
    target: str
    at: datetime
    by: str = ""
    reason: str = ""
    until: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision as audited: the engine's Decision flattened to JSON-able data."""

    target: str
    at: datetime
    action: str
    severity: str | None
    rule: str | None
    reason: str
    path: tuple[str, ...]
    incident: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DrillRecord:
    id: str
    target: str
    started_at: datetime
    finished_at: datetime | None
    succeeded: bool
    duration_s: float | None
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str
    epoch: int
    expires_at: datetime


class DecisionLog(Protocol):
    async def append_decision(self, record: DecisionRecord) -> None: ...

    async def list_decisions(
        self, *, target: str | None = None, incident: str | None = None, limit: int = 200
    ) -> list[DecisionRecord]: ...


class IncidentStore(Protocol):
    async def save_incident(self, incident: IncidentRecord) -> None: ...

    async def load_incident(self, incident_id: str) -> IncidentRecord | None: ...

    async def list_incidents(
        self, *, open_only: bool = False, target: str | None = None, limit: int = 100
    ) -> list[IncidentRecord]: ...


class ActionJournal(Protocol):
    async def record_intent(self, action: ActionRecord) -> bool:
        """Save an intent; False if ``action.key`` exists already (do not act again)."""
        ...

    async def record_outcome(
        self,
        key: str,
        status: ActionStatus,
        at: datetime,
        *,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None: ...

    async def list_actions(
        self, *, incident: str | None = None, limit: int = 200
    ) -> list[ActionRecord]: ...

    async def save_rollback(self, rollback: RollbackRecord) -> None: ...

    async def list_rollbacks(
        self, *, target: str | None = None, since: datetime | None = None
    ) -> list[RollbackRecord]: ...

    async def mark_known_bad(self, project: str, deployment: str, at: datetime) -> None: ...

    async def known_bad(self, project: str) -> frozenset[str]: ...


class Outbox(Protocol):
    """Notifications written before they are sent, so a crash or a pager outage loses none."""

    async def enqueue(self, message: OutboxMessage) -> bool:
        """Save a PENDING message; False if ``message.key`` exists already (never twice)."""
        ...

    async def list_outbox(
        self,
        *,
        status: OutboxStatus | None = None,
        incident: str | None = None,
        limit: int = 500,
    ) -> list[OutboxMessage]:
        """Messages in delivery order (oldest first); the newest ``limit`` of them."""
        ...

    async def mark_outbox(
        self,
        key: str,
        status: OutboxStatus,
        *,
        attempts: int,
        next_at: datetime | None = None,
        finished_at: datetime | None = None,
        error: str | None = None,
    ) -> None: ...


class EventLog(Protocol):
    async def append_event(self, event: HumanEvent) -> None: ...

    async def list_events(
        self, *, since: datetime | None = None, target: str | None = None
    ) -> list[HumanEvent]: ...


class DrillLog(Protocol):
    async def save_drill(self, drill: DrillRecord) -> None: ...

    async def list_drills(self, *, limit: int = 20) -> list[DrillRecord]: ...


class Leadership(Protocol):
    async def acquire(self, holder: str, ttl: timedelta, now: datetime) -> Lease | None:
        """Take or renew the lease; None if another holder's lease is still valid."""
        ...

    async def release(self, holder: str) -> None: ...


class Store(DecisionLog, IncidentStore, ActionJournal, Outbox, EventLog, DrillLog, Protocol):
    """Everything the daemon persists. ``prune`` enforces retention."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def prune(self, older_than: datetime) -> int: ...


class LeaderStore(Store, Leadership, Protocol):
    """A store that can also elect the replica allowed to act (every backend is one: SQLite
    and memory grant the lease trivially)."""
