"""The dispatcher: turns the engine's Decisions into pages, chat, rollbacks and flag switches.

This is where side effects are ordered; each job has its own module and the dispatcher only
routes a decision to them:

- :mod:`~watchdog.actions.journal`: fence, write the intent ahead, retry, record the outcome;
- :mod:`~watchdog.actions.outbox`: every notification stored, then delivered in the background;
- :mod:`~watchdog.actions.paging`: the pages (trigger, resolve, the rollback marker) and the
  rule that says which decision is news worth a page (:func:`~watchdog.actions.paging.page_news`);
- :mod:`~watchdog.actions.updates`: chat and the five-minute updates;
- :mod:`~watchdog.actions.rollback`: the rollback state machine, shadow mode and reconcile;
- :mod:`~watchdog.actions.production`: deployments seen healthy, and the rollback's pin.

I/O boundary: none of its own; everything goes through those modules. Outcomes go back to the
engine through ``on_event`` (see :mod:`watchdog.actions.rollback` for which events, in which
order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from watchdog.actions.base import Notifier, Pager
from watchdog.actions.journal import CanAct, Journal, Outcome
from watchdog.actions.outbox import DeliveryPolicy, OutboxWorker
from watchdog.actions.outbox import Store as OutboxStore
from watchdog.actions.paging import (
    Paged,
    Paging,
    after_page,
    level_of,
    page_from_decision,
    page_key,
    page_news,
)
from watchdog.actions.production import ProductionView
from watchdog.actions.reconcile import Classified
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
from watchdog.fields import Timeout, UpdateInterval
from watchdog.metrics import Metrics
from watchdog.retry import Retrier, RetryPolicy
from watchdog.store.base import IncidentRecord, RollbackRecord

__all__ = [
    "Dispatcher",
    "DispatcherConfig",
    "Outcome",
    "TargetActions",
    "error_rate_in",
    "page_from_decision",
]


class DispatcherConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: everything runs, but the deployer call is replaced by a recorded "would roll back"
    shadow: bool = False
    retry_attempts: int = Field(default=4, ge=1, le=20)
    retry_initial: Duration = timedelta(seconds=0.5)
    retry_maximum: Duration = timedelta(seconds=30)
    #: caps a side effect's whole retry loop, waits included
    retry_deadline: Timeout = timedelta(seconds=60)
    #: one delivery pass gives a chat message this long (all retries) before it backs off
    chat_deadline: Timeout = timedelta(seconds=10)
    #: a page, resolve or change event not accepted by the pager within this is given up,
    #: loudly (``watchdog_page_undelivered``, a log line, the status page)
    page_max_age: Duration = timedelta(hours=24)
    #: a chat message this old is no longer worth sending
    chat_max_age: Duration = timedelta(minutes=30)
    #: one delivery attempt to the pager or chat, whatever the vendor's client does
    delivery_timeout: Timeout = timedelta(seconds=15)
    #: the longest wait between delivery passes for a message that keeps failing
    delivery_backoff_max: Duration = timedelta(seconds=60)
    #: the procedure's "update every 5 minutes" while an incident is open
    update_interval: UpdateInterval = timedelta(minutes=5)
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
        store: OutboxStore,
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
        self.outbox = OutboxWorker(
            store=store,
            clock=clock,
            policy=DeliveryPolicy(
                page_max_age=self._config.page_max_age,
                chat_max_age=self._config.chat_max_age,
                attempt_timeout=self._config.delivery_timeout,
                backoff_initial=max(self._config.retry_initial, timedelta(seconds=1)),
                backoff_maximum=self._config.delivery_backoff_max,
            ),
            pager=pager,
            notifier=notifier,
            pager_retrier=retrier,
            chat_retrier=retrier.with_deadline(self._config.chat_deadline.total_seconds()),
            can_act=can_act,
            metrics=metrics,
        )
        self._paging = Paging(self.outbox, metrics)
        self._production = ProductionView()
        self._updates = IncidentUpdates(
            outbox=self.outbox,
            clock=clock,
            settings=ChatSettings(
                update_interval=self._config.update_interval,
                incident_commander=self._config.incident_commander,
                point_of_contact=self._config.point_of_contact,
                rollback_method=self._config.rollback_method,
                rollback_eta=self._config.rollback_eta,
            ),
            notes=self._notes,
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
            commander=self._config.incident_commander,
        )
        #: what each incident chapter was paged about: a page goes out on news only
        self._paged: dict[tuple[str, int], Paged] = {}
        #: incidents told in chat that they only notify
        self._notified: set[str] = set()

    # ----------------------------------------------------------------- public

    async def execute(self, decision: Decision, incident: IncidentRecord | None = None) -> None:
        """Act on one decision: a page that is news is stored (awaited, one store write);
        its delivery, the rollback and chat run in the background."""
        self._production.saw(decision)
        if decision.resolved_incident:
            await self._resolve(decision, decision.resolved_incident)
        if decision.approve_stage is not None:
            # a healthy canary: approve its rolling release's next stage (no incident)
            self._rollbacks.approve(decision)
        if decision.incident is None:
            return
        opened = incident.opened_at if incident is not None else decision.at
        self._updates.opened(decision.target, decision.incident, opened)
        if decision.execute_rollback:
            self._rollbacks.start(decision, incident)
        chapter = (decision.incident, decision.chapter)
        news = page_news(self._paged.get(chapter), decision)
        if news is not None:
            page = page_from_decision(decision, self._notes(decision.target))
            if await self._paging.page(page, page_key(decision)):
                self._paged[chapter] = after_page(self._paged.get(chapter), decision)
            if decision.action is Action.PAGE:
                self._updates.chat_page(decision)
        elif decision.action is Action.NOTIFY and decision.incident not in self._notified:
            self._notified.add(decision.incident)
            self._updates.chat_page(decision, action="Notified here; no page, no automatic action")
        await self.post_updates()

    def restored(self, incidents: Sequence[IncidentRecord]) -> None:
        """On becoming leader: each open incident was paged at its recorded severity (the new
        leader re-asserts that page), so only news beyond it pages again."""
        self._paged = {
            (i.id, 1): Paged(level_of(Action.PAGE, Severity(i.severity))) for i in incidents
        }
        self._notified.clear()

    async def post_updates(self) -> None:
        """Post the procedure's status update for every open incident that is due one."""
        await self._updates.post_due()

    @property
    def background(self) -> set[asyncio.Task[None]]:
        """Rollbacks and chat still running (tests wait for these; shutdown drains them)."""
        return self._rollbacks.tasks | self._updates.tasks | self.outbox.tasks

    async def drain(self) -> None:
        """Wait for background rollbacks and chat (tests, and graceful shutdown)."""
        while self.background:
            await asyncio.gather(*self.background, return_exceptions=True)

    async def aclose(self) -> None:
        """Let rollbacks finish (never abandon one half-way); stop delivering (what is not
        delivered stays in the outbox for the next run)."""
        self._updates.cancel()
        self.outbox.cancel()
        while self._rollbacks.tasks:
            await asyncio.gather(*self._rollbacks.tasks, return_exceptions=True)
        self._updates.cancel()
        self.outbox.cancel()
        await asyncio.gather(*self._updates.tasks, *self.outbox.tasks, return_exceptions=True)

    def rollback_in_flight(self, project: str) -> bool:
        return self._rollbacks.in_flight(project)

    async def reconcile(self) -> list[RollbackRecord]:
        """Settle rollbacks left in INTENT/REQUESTED against Vercel, waiting for running jobs."""
        return await self._rollbacks.reconcile()

    async def prepare_restore(self, incidents: Sequence[str] = ()) -> Classified:
        """On becoming leader, before the engine is re-seeded (see the runner)."""
        return await self._rollbacks.prepare_restore(incidents)

    async def after_restore(self, classified: Classified) -> None:
        """On becoming leader, after the engine is re-seeded (see the runner)."""
        await self._rollbacks.after_restore(classified)

    @property
    def unsettled(self) -> int:
        """Rollbacks the last restore could not settle because Vercel did not answer."""
        return self._rollbacks.postponed

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
        for chapter in [c for c in self._paged if c[0] == incident]:
            del self._paged[chapter]
        self._notified.discard(incident)
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
