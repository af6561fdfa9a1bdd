"""The dispatcher: turns the engine's Decisions into pages, chat, rollbacks and flag switches.

This is where side effects are ordered; each job has its own module and the dispatcher only
routes a decision to them:

- :mod:`~watchdog.actions.journal`: fence, write the intent ahead, retry, record the outcome;
- :mod:`~watchdog.actions.paging`: the pages (trigger, resolve, the rollback marker);
- :mod:`~watchdog.actions.updates`: chat in the background and the five-minute updates;
- :mod:`~watchdog.actions.rollback`: the rollback state machine, shadow mode and reconcile;
- :mod:`~watchdog.actions.production`: deployments seen healthy, and the rollback's pin.

I/O boundary: none of its own; everything goes through those modules. Outcomes go back to the
engine through ``on_event`` (see :mod:`watchdog.actions.rollback` for which events, in which
order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from watchdog.actions.base import Notifier, Pager
from watchdog.actions.journal import CanAct, Journal, Outcome
from watchdog.actions.paging import Paging, page_from_decision
from watchdog.actions.production import ProductionView
from watchdog.actions.reconcile import reconcile
from watchdog.actions.rollback import (
    EventSink,
    RollbackRunner,
    TargetActions,
    error_rate_in,
)
from watchdog.actions.slack import render_resolved
from watchdog.actions.updates import ChatSettings, IncidentUpdates
from watchdog.clock import Clock
from watchdog.core.model import Action, Decision, Severity
from watchdog.core.rules import Duration
from watchdog.metrics import Metrics
from watchdog.retry import Retrier, RetryPolicy
from watchdog.store.base import ActionJournal, IncidentRecord, RollbackRecord

__all__ = [
    "Dispatcher",
    "DispatcherConfig",
    "Outcome",
    "TargetActions",
    "error_rate_in",
    "page_from_decision",
    "reconcile",
]


class DispatcherConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: everything runs, but the deployer call is replaced by a recorded "would roll back"
    shadow: bool = False
    retry_attempts: int = Field(default=4, ge=1, le=20)
    retry_initial: Duration = timedelta(seconds=0.5)
    retry_maximum: Duration = timedelta(seconds=30)
    #: caps a side effect's whole retry loop, waits included
    retry_deadline: Duration = timedelta(seconds=60)
    #: a chat message gets this long (all retries) before it is dropped
    chat_deadline: Duration = timedelta(seconds=10)
    #: the procedure's "update every 5 minutes" while an incident is open
    update_interval: Duration = timedelta(minutes=5)
    rollback_method: str = "Vercel Instant Rollback (Method 1)"
    #: ETA quoted in "rollback in progress" (the procedure's target for Method 1)
    rollback_eta: Duration = timedelta(minutes=3)
    incident_commander: str = "rollback-watchdog (automatic); on-call takes over when paged"
    point_of_contact: str = "the on-call engineer (see the page)"

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.retry_attempts,
            initial=self.retry_initial.total_seconds(),
            maximum=self.retry_maximum.total_seconds(),
            deadline=self.retry_deadline.total_seconds(),
        )


class Dispatcher:
    """Routes each decision to paging, chat and the rollback runner; owns their lifecycles."""

    def __init__(
        self,
        *,
        store: ActionJournal,
        clock: Clock,
        config: DispatcherConfig | None = None,
        pager: Pager | None = None,
        notifier: Notifier | None = None,
        targets: Mapping[str, TargetActions] | None = None,
        on_event: EventSink | None = None,
        can_act: CanAct | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._config = config or DispatcherConfig()
        self.targets: dict[str, TargetActions] = dict(targets or {})
        retrier = Retrier(self._config.retry_policy, clock)
        journal = Journal(store, clock, retrier, can_act)
        self._paging = Paging(pager, journal, metrics)
        self._production = ProductionView()
        self._updates = IncidentUpdates(
            notifier=notifier,
            journal=journal,
            retrier=retrier,
            clock=clock,
            settings=ChatSettings(
                update_interval=self._config.update_interval,
                chat_deadline=self._config.chat_deadline,
                incident_commander=self._config.incident_commander,
                point_of_contact=self._config.point_of_contact,
                rollback_method=self._config.rollback_method,
                rollback_eta=self._config.rollback_eta,
            ),
            notes=self._notes,
            metrics=metrics,
        )
        self._rollbacks = RollbackRunner(
            store=store,
            clock=clock,
            retrier=retrier,
            journal=journal,
            paging=self._paging,
            updates=self._updates,
            production=self._production,
            targets=self.targets,
            shadow=self._config.shadow,
            emit=on_event or (lambda _event: None),
            metrics=metrics,
        )
        #: (incident, action, severity) last paged per target: a page goes out on a change only
        self._last_paged: dict[str, tuple[str, Action, Severity | None]] = {}

    # ----------------------------------------------------------------- public

    async def execute(self, decision: Decision, incident: IncidentRecord | None = None) -> None:
        """Act on one decision. Pages are awaited; rollbacks and chat run in the background."""
        self._production.saw(decision)
        if decision.resolved_incident:
            await self._resolve(decision, decision.resolved_incident)
        if decision.incident is None:
            return
        opened = incident.opened_at if incident is not None else decision.at
        self._updates.opened(decision.target, decision.incident, opened)
        if decision.execute_rollback:
            self._rollbacks.start(decision, incident)
        paged = (decision.incident, decision.action, decision.severity)
        changed = self._last_paged.get(decision.target) != paged
        if changed and decision.action in (Action.PAGE, Action.ROLLBACK):
            page = page_from_decision(decision, self._notes(decision.target))
            if await self._paging.page(page, f"{decision.action}/{decision.severity}"):
                self._last_paged[decision.target] = paged
            if decision.action is Action.PAGE:
                self._updates.chat_page(decision)
        elif changed and decision.action is Action.NOTIFY:
            self._last_paged[decision.target] = paged
            self._updates.chat_page(decision, action="Notified here; no page, no automatic action")
        await self.post_updates()

    async def post_updates(self) -> None:
        """Post the procedure's status update for every open incident that is due one."""
        await self._updates.post_due()

    @property
    def background(self) -> set[asyncio.Task[None]]:
        """Rollbacks and chat still running (tests wait for these; shutdown drains them)."""
        return self._rollbacks.tasks | self._updates.tasks

    async def drain(self) -> None:
        """Wait for background rollbacks and chat (tests, and graceful shutdown)."""
        while self.background:
            await asyncio.gather(*self.background, return_exceptions=True)

    async def aclose(self) -> None:
        """Let rollbacks finish (never abandon one half-way); drop pending chat."""
        self._updates.cancel()
        await self.drain()

    def rollback_in_flight(self, project: str) -> bool:
        return self._rollbacks.in_flight(project)

    async def reconcile(self) -> list[RollbackRecord]:
        """After a restart: settle rollbacks left in INTENT/REQUESTED against Vercel."""
        return await self._rollbacks.reconcile()

    async def settle_orphan(self, incident: str) -> bool:
        """Fail a rollback whose intent was journaled but never recorded (see the runner)."""
        return await self._rollbacks.settle_orphan(incident)

    def seen_healthy(self, target: str) -> frozenset[str]:
        """Deployments the watchdog watched and found healthy (the status page lists them)."""
        return self._production.healthy(target)

    def notes(self, target: str) -> tuple[str, ...]:
        """The undo note while a rollback pins production (every message, and the page)."""
        return self._notes(target)

    # ----------------------------------------------------------------- plumbing

    def _notes(self, target: str) -> tuple[str, ...]:
        return self._rollbacks.notes(target)

    async def _resolve(self, decision: Decision, incident: str) -> None:
        open_item = self._updates.closed(incident)
        last = self._last_paged.get(decision.target)
        if last is not None and last[0] == incident:
            del self._last_paged[decision.target]
        await self._paging.resolve(decision.target, incident, decision.at)
        opened = open_item.opened_at if open_item else decision.at
        self._updates.chat(
            f"{incident}/slack/resolved",
            decision.target,
            incident,
            render_resolved(
                issue=f"{decision.target}: incident {incident}",
                duration=decision.at - opened,
                contact=self._config.point_of_contact,
                notes=self._notes(decision.target),
            ),
        )
