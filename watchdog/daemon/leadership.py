"""Leadership: who may act, and what a new leader restores before it does.

I/O boundary: the store, through the typed :class:`~watchdog.store.base.LeaderStore`
(``acquire``/``release``; SQLite and memory always grant the lease, PostgreSQL elects one
replica with a fencing epoch). On becoming leader the daemon re-seeds the engine from the
store (:func:`load_snapshot`): incidents keep their ids (and pager dedup keys), a rollback
already made is never made again, cooldowns, budgets, holds and the kill switch survive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from watchdog.clock import Clock
from watchdog.config import Settings
from watchdog.core.engine import RollbackPhase
from watchdog.core.model import EngineSnapshot, RestoredHold, RestoredIncident, Severity
from watchdog.metrics import Metrics
from watchdog.store.base import IncidentRecord, LeaderStore, RollbackState, Store

log = structlog.get_logger(__name__)

_PHASES = {
    RollbackState.INTENT: RollbackPhase.IN_FLIGHT,
    RollbackState.REQUESTED: RollbackPhase.IN_FLIGHT,
    RollbackState.SHADOW: RollbackPhase.SHADOW,
    RollbackState.SUCCEEDED: RollbackPhase.SUCCEEDED,
    RollbackState.VERIFIED: RollbackPhase.VERIFIED,
    RollbackState.FAILED: RollbackPhase.FAILED,
    RollbackState.VERIFY_FAILED: RollbackPhase.VERIFY_FAILED,
    # production never moved: the chapter has not rolled back, and may (once more)
    RollbackState.ABANDONED: RollbackPhase.NONE,
}

OnGained = Callable[[], Awaitable[None]]


class Leadership:
    """Holds this replica's lease; ``leader`` is the one flag every action is fenced by."""

    def __init__(
        self,
        store: LeaderStore,
        *,
        holder: str,
        ttl: timedelta,
        clock: Clock,
        metrics: Metrics,
        stopping: asyncio.Event,
    ) -> None:
        self._store = store
        self._holder = holder
        self._ttl = ttl
        self._clock = clock
        self._metrics = metrics
        self._stopping = stopping
        self.leader = False
        #: True while a new leader restores (re-asserts, reconciles, re-seeds): decisions
        #: of the engine it had as a follower must not be acted on meanwhile
        self.restoring = False
        self.epoch = 0
        #: run once each time this replica becomes leader (restore, then reconcile)
        self.on_gained: OnGained | None = None

    @property
    def acting(self) -> bool:
        """Leader and done restoring: the pipeline records and dispatches decisions only then."""
        return self.leader and not self.restoring

    async def can_act(self) -> bool:
        return self.leader and not self._stopping.is_set()

    async def elect(self) -> None:
        """Take or renew the lease; a new leader restores state and reconciles rollbacks.

        Only the lease request is bounded (by half the TTL). Restoring runs to its end: it
        may follow a Vercel job a crash left running, and a half-restored engine would act on
        state the store contradicts.
        """
        was = self.leader
        try:
            # a renewal that hangs past half the lease is a lost lease: stop acting in time
            async with asyncio.timeout(self._ttl.total_seconds() / 2):
                lease = await self._store.acquire(self._holder, self._ttl, self._clock.now())
        except Exception as exc:  # the store is down: not leader until proven otherwise
            log.error("leader_election_failed", error=str(exc) or type(exc).__name__)
            lease = None
        self.leader = lease is not None
        if lease is not None:
            self.epoch = lease.epoch
        self._metrics.set_flag(self._metrics.is_leader, self.leader)
        if self.leader and not was:
            log.info("leadership_gained", holder=self._holder, epoch=self.epoch)
            if self.on_gained is not None:
                self.restoring = True
                try:
                    await self.on_gained()
                finally:
                    self.restoring = False
        elif was and not self.leader:
            log.warning("leadership_lost", holder=self._holder)

    def fenced(self) -> None:
        """The store refused a write: a newer epoch exists, so stop acting at once."""
        self.leader = False
        self._metrics.set_flag(self._metrics.is_leader, False)

    async def release(self) -> None:
        if self.leader:
            try:
                await self._store.release(self._holder)
            except Exception as exc:  # shutting down anyway: the lease will expire
                log.warning("leadership_release_failed", error=str(exc))


async def load_snapshot(
    store: Store,
    settings: Settings,
    budget_window: timedelta,
    now: datetime,
) -> tuple[EngineSnapshot, list[IncidentRecord]]:
    """What the engine should hold, read from the store: the store is the truth.

    An incident this replica opened while following was never acted on (its engine may even
    believe a rollback in flight that nobody made), so every target's incident is replaced.
    """
    names = tuple(t.name for t in settings.targets)
    automatic = []
    for name in names:
        rollbacks = await store.list_rollbacks(target=name, since=now - budget_window)
        # an abandoned rollback never moved production: it spends no cooldown or budget
        spent = [r for r in rollbacks if r.automatic and r.state is not RollbackState.ABANDONED]
        automatic.append((name, tuple(r.requested_at for r in spent)))
    open_incidents = await store.list_incidents(open_only=True)
    restored = []
    for incident in open_incidents:
        mine = [
            r
            for r in await store.list_rollbacks(target=incident.target)
            if r.incident == incident.id
        ]
        # a rollback of another deployment belongs to an earlier chapter of the incident
        earlier = [
            r for r in mine if r.from_deployment and r.from_deployment != incident.deployment
        ]
        chapter = 2 if earlier and incident.deployment else 1
        mine = [r for r in mine if r not in earlier]
        latest = mine[-1] if mine else None
        phase = _PHASES[latest.state] if latest else RollbackPhase.NONE
        if latest is not None and latest.state is RollbackState.ABANDONED:
            latest = None  # never reached Vercel: nothing to remember about when it ran
        # the standing level it reached: the last decision at the incident's own severity
        decisions = await store.list_decisions(incident=incident.id, limit=50)
        standing = next(
            (d.action for d in reversed(decisions) if d.severity == incident.severity), None
        )
        restored.append(
            RestoredIncident(
                target=incident.target,
                id=incident.id,
                opened_at=incident.opened_at,
                severity=Severity(incident.severity),
                rule=incident.rule or "",
                first_detected=incident.first_detected_at or incident.opened_at,
                deployment=incident.deployment,
                declared=incident.declared,
                rollback=phase,
                rollback_at=latest.requested_at if latest else None,
                rollback_done_at=latest.finished_at if latest else None,
                chapter=chapter,
                rollback_to=latest.to_deployment if latest else None,
                standing=standing,
            )
        )
    holds = []
    kill_switch: bool | None = None
    for event in await store.list_events():
        if event.kind == "hold" and event.until is not None and event.until > now:
            holds.append(RestoredHold(event.target, event.until, event.reason))
        elif event.kind == "release":
            holds.append(RestoredHold(event.target, event.at, "released"))
        elif event.kind == "kill_switch":
            kill_switch = bool(event.data.get("on"))
    snapshot = EngineSnapshot(
        targets=names,
        automatic_rollbacks=tuple(automatic),
        incidents=tuple(restored),
        holds=tuple(holds),
        kill_switch=kill_switch,
    )
    return snapshot, open_incidents
