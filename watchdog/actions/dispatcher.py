"""The dispatcher: turns the engine's Decisions into pages, chat, rollbacks and flag switches.

This is where side effects are ordered and made safe; the vendor modules only know how to
make one call. For every side effect the dispatcher

1. asks the fencing hook ``can_act()`` (leader election) and skips when it says no;
2. records the intent in the store's ``ActionJournal`` under a stable idempotency key *before*
   acting (``record_intent`` False means it was done already: skip);
3. makes the call through ``watchdog.retry.call_with_retries`` (injected sleep and clock);
4. records the outcome.

Rollbacks run in a background task (one per project, guarded by an asyncio lock and the
store's in-flight records) and are tracked as a ``RollbackRecord`` through INTENT →
REQUESTED → SUCCEEDED/FAILED → VERIFIED/VERIFY_FAILED. Chat runs in the background with a
short deadline so a failing Slack never delays a rollback or a page. Outcomes go back to the
engine through ``on_event`` as ``RollbackResultEvent`` (and a ``DeployEvent(rollback=True)``
when a rollback completed).
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, Field

from watchdog.actions.base import (
    Change,
    Deployer,
    Deployment,
    FeatureFlag,
    Notifier,
    Page,
    Pager,
    RollbackRequest,
    TargetGoneError,
)
from watchdog.actions.slack import (
    describe_impact,
    human_duration,
    render_page,
    render_resolved,
    render_rollback_complete,
    render_rollback_in_progress,
    render_update,
)
from watchdog.actions.verify import ErrorRateProbe, Verifier
from watchdog.clock import Clock
from watchdog.core.model import (
    Action,
    Decision,
    DeployEvent,
    RollbackOutcome,
    RollbackResultEvent,
    Severity,
    Signal,
)
from watchdog.core.rules import Duration
from watchdog.metrics import Metrics
from watchdog.retry import RetryPolicy, call_with_retries
from watchdog.store.base import (
    ActionJournal,
    ActionRecord,
    ActionStatus,
    IncidentRecord,
    RollbackRecord,
    RollbackState,
)
from watchdog.transport import CallError

log = structlog.get_logger(__name__)

T = TypeVar("T")

EventSink = Callable[[RollbackResultEvent | DeployEvent], None]
CanAct = Callable[[], Awaitable[bool]]

#: records in these states mean "a rollback may be running on Vercel right now"
_PENDING_STATES = (RollbackState.INTENT, RollbackState.REQUESTED)


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


@dataclass(frozen=True)
class TargetActions:
    """What the dispatcher can do for one target (app)."""

    deployer: Deployer | None = None
    verifier: Verifier | None = None
    #: the latest error rate for the target, or None when unknown (for verification)
    error_rate: ErrorRateProbe | None = None
    flags: Sequence[FeatureFlag] = ()


class Outcome(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"
    DUPLICATE = "duplicate"  # the journal says it was done already
    FENCED = "fenced"  # not the leader


@dataclass
class _OpenIncident:
    target: str
    incident: str
    opened_at: datetime
    last_update: datetime
    status: Literal["In Progress", "Completed", "Blocked"] = "In Progress"
    progress: str = "incident opened"
    next_step: str = "watching the signals"
    eta: str = "unknown"
    updates: int = 0


@dataclass
class _TargetState:
    last_paged: tuple[str, Action, Severity | None] | None = None
    healthy: set[str] = field(default_factory=set)
    #: the deployment a successful rollback put back: Vercel's auto-assignment is off since
    rolled_back_to: str | None = None


# --------------------------------------------------------------------------- pure helpers


def _as_coroutine_function(call: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """tenacity only awaits what *looks* like a coroutine function (not a lambda or partial
    returning an awaitable), so every attempt is wrapped in a real ``async def``."""

    async def attempt() -> T:
        return await call()

    return attempt


def page_from_decision(decision: Decision, notes: Sequence[str] = ()) -> Page:
    """The page a decision asks for; a refused rollback's page names the guard rail."""
    assert decision.incident is not None
    severity = decision.severity or Severity.P0
    if decision.refused_by:
        summary = (
            f"[{severity}] {decision.target}: automatic rollback refused by "
            f"{decision.refused_by}: {decision.reason}"
        )
    elif decision.action is Action.ROLLBACK:
        summary = f"[{severity}] {decision.target}: rolling back: {decision.reason}"
    else:
        summary = f"[{severity}] {decision.target}: {decision.reason}"
    return Page(
        target=decision.target,
        incident=decision.incident,
        severity=severity,
        summary=summary,
        at=decision.at,
        reason=decision.reason,
        path=decision.path,
        rule=decision.rule,
        deployment=decision.deployment,
        observations=decision.observations,
        refused_by=decision.refused_by,
        notes=tuple(notes),
    )


def error_rate_in(decision: Decision) -> float | None:
    for obs in decision.observations:
        if obs.signal == Signal.ERROR_RATE and obs.value is not None:
            return obs.value
    return None


# --------------------------------------------------------------------------- the dispatcher


class Dispatcher:
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
        self._store = store
        self._clock = clock
        self._config = config or DispatcherConfig()
        self._pager = pager
        self._notifier = notifier
        self._targets = dict(targets or {})
        self._on_event = on_event
        self._can_act = can_act
        self._metrics = metrics
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_flight: dict[str, str] = {}
        self._state: dict[str, _TargetState] = {}
        self._open: dict[str, _OpenIncident] = {}
        self._failed_attempts: dict[str, int] = {}
        self._rollbacks: set[asyncio.Task[None]] = set()
        self._chats: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------------- public

    async def execute(self, decision: Decision, incident: IncidentRecord | None = None) -> None:
        """Act on one decision. Pages are awaited; rollbacks and chat run in the background."""
        state = self._state.setdefault(decision.target, _TargetState())
        self._note_deployment(decision, state)
        if decision.resolved_incident:
            await self._resolve(decision, decision.resolved_incident, state)
        if decision.incident is None:
            return
        if decision.incident not in self._open:
            opened = incident.opened_at if incident is not None else decision.at
            self._open[decision.incident] = _OpenIncident(
                decision.target, decision.incident, opened, self._clock.now()
            )
        if decision.execute_rollback:
            self._start_rollback(decision, incident)
        changed = state.last_paged != (decision.incident, decision.action, decision.severity)
        if changed and decision.action in (Action.PAGE, Action.ROLLBACK):
            page = page_from_decision(decision, self._notes(decision.target))
            if await self._page(page, f"{decision.action}/{decision.severity}"):
                state.last_paged = (decision.incident, decision.action, decision.severity)
            if decision.action is Action.PAGE:
                self._chat_page(decision)
        elif changed and decision.action is Action.NOTIFY:
            state.last_paged = (decision.incident, decision.action, decision.severity)
            self._chat_page(decision, action="Notified here; no page, no automatic action")
        await self.tick()

    async def tick(self) -> None:
        """Post the procedure's status update for every open incident that is due one."""
        now = self._clock.now()
        for item in list(self._open.values()):
            if now - item.last_update < self._config.update_interval:
                continue
            item.last_update = now
            item.updates += 1
            self._chat(
                f"{item.incident}/slack/update/{item.updates}",
                item.target,
                item.incident,
                render_update(
                    at=now,
                    status=item.status,
                    progress=item.progress,
                    next_step=item.next_step,
                    eta=item.eta,
                    notes=self._notes(item.target),
                ),
            )

    async def drain(self) -> None:
        """Wait for background rollbacks and chat (tests, and graceful shutdown)."""
        while self._rollbacks or self._chats:
            await asyncio.gather(*self._rollbacks, *self._chats, return_exceptions=True)

    async def aclose(self) -> None:
        """Let rollbacks finish (never abandon one half-way); drop pending chat."""
        for task in list(self._chats):
            task.cancel()
        await self.drain()

    def _count_rollback(
        self, target: str, result: str, *, verified_from: datetime | None = None
    ) -> None:
        if self._metrics is None:
            return
        self._metrics.rollbacks.labels(target=target, result=result).inc()
        if verified_from is not None:
            elapsed = (self._clock.now() - verified_from).total_seconds()
            self._metrics.verification_duration.observe(max(0.0, elapsed))

    def rollback_in_flight(self, project: str) -> bool:
        lock = self._locks.get(project)
        return lock is not None and lock.locked()

    async def reconcile(self) -> list[RollbackRecord]:
        """After a restart: settle rollbacks left in INTENT/REQUESTED against Vercel."""
        settled: list[RollbackRecord] = []
        for wiring in self._targets.values():
            if wiring.deployer is None:
                continue
            for rb in await reconcile(self._store, wiring.deployer, self._clock):
                settled.append(rb)
                outcome = (
                    RollbackOutcome.SUCCEEDED
                    if rb.state is RollbackState.SUCCEEDED
                    else RollbackOutcome.FAILED
                )
                self._emit(
                    RollbackResultEvent(
                        rb.target, self._clock.now(), outcome, rb.to_deployment or "", rb.detail
                    )
                )
                if outcome is RollbackOutcome.SUCCEEDED and rb.to_deployment:
                    self._state.setdefault(
                        rb.target, _TargetState()
                    ).rolled_back_to = rb.to_deployment
                    self._emit(
                        DeployEvent(rb.target, self._clock.now(), rb.to_deployment, rollback=True)
                    )
        return settled

    # ----------------------------------------------------------------- plumbing

    def _emit(self, event: RollbackResultEvent | DeployEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def _note_deployment(self, decision: Decision, state: _TargetState) -> None:
        if decision.action is Action.MONITOR and decision.incident is None and decision.deployment:
            # a deployment the watchdog watched and found healthy is the best rollback target
            state.healthy.add(decision.deployment)
        if (
            state.rolled_back_to
            and decision.deployment
            and decision.deployment != state.rolled_back_to
        ):
            # someone promoted another deployment: auto-assignment is back on
            state.rolled_back_to = None

    def _notes(self, target: str) -> tuple[str, ...]:
        state = self._state.get(target)
        wiring = self._targets.get(target)
        if state is None or state.rolled_back_to is None or wiring is None:
            return ()
        if wiring.deployer is None:
            return ()
        return (wiring.deployer.undo_hint(),)

    async def _allowed(self) -> bool:
        return self._can_act is None or await self._can_act()

    async def _journaled(
        self,
        key: str,
        kind: str,
        target: str,
        incident: str | None,
        effect: Callable[[], Awaitable[object]],
        *,
        detail: Mapping[str, Any] | None = None,
        policy: RetryPolicy | None = None,
        retry_failed: bool = False,
    ) -> Outcome:
        """Write-ahead one side effect; ``retry_failed`` lets a later call retry a failed one."""
        if not await self._allowed():
            log.info("action_fenced", key=key, kind=kind, target=target)
            return Outcome.FENCED
        attempt = self._failed_attempts.get(key, 0)
        journal_key = key if attempt == 0 else f"{key}#retry{attempt}"
        record = ActionRecord(
            key=journal_key,
            kind=kind,
            target=target,
            created_at=self._clock.now(),
            incident=incident,
            detail=dict(detail or {}),
        )
        if not await self._store.record_intent(record):
            return Outcome.DUPLICATE
        try:
            await call_with_retries(
                _as_coroutine_function(effect),
                policy or self._config.retry_policy,
                sleep=self._clock.sleep,
                monotonic=self._clock.monotonic,
                on_retry=lambda exc, wait: log.info(
                    "action_retry", key=journal_key, error=str(exc), wait_s=wait
                ),
            )
        except CallError as exc:
            log.warning("action_failed", key=journal_key, kind=kind, error=str(exc))
            await self._store.record_outcome(
                journal_key, ActionStatus.FAILED, self._clock.now(), error=str(exc)
            )
            if retry_failed:
                self._failed_attempts[key] = attempt + 1
            return Outcome.FAILED
        await self._store.record_outcome(journal_key, ActionStatus.SUCCEEDED, self._clock.now())
        self._failed_attempts.pop(key, None)
        return Outcome.DONE

    async def _page(self, page: Page, kind: str) -> bool:
        """Trigger (or update: same dedup key) the incident's alert; ``kind`` keys the journal."""
        if self._pager is None:
            return True
        pager = self._pager
        key = f"{page.incident}/page/{kind}"
        outcome = await self._journaled(
            key,
            "page",
            page.target,
            page.incident,
            lambda: pager.trigger(page),
            detail={"severity": str(page.severity), "summary": page.summary},
            retry_failed=True,
        )
        if self._metrics is not None and outcome is not Outcome.FENCED:
            result = {Outcome.DONE: "sent", Outcome.DUPLICATE: "deduplicated"}.get(
                outcome, "failed"
            )
            self._metrics.pages.labels(target=page.target, result=result).inc()
        return outcome in (Outcome.DONE, Outcome.DUPLICATE)

    async def _resolve(self, decision: Decision, incident: str, state: _TargetState) -> None:
        open_item = self._open.pop(incident, None)
        if state.last_paged is not None and state.last_paged[0] == incident:
            state.last_paged = None
        if self._pager is not None:
            pager = self._pager
            await self._journaled(
                f"{incident}/resolve",
                "resolve",
                decision.target,
                incident,
                lambda: pager.resolve(decision.target, incident, decision.at),
                retry_failed=True,
            )
        opened = open_item.opened_at if open_item else decision.at
        self._chat(
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

    def _chat(self, key: str, target: str, incident: str | None, text: str) -> None:
        if self._notifier is None:
            return
        notifier = self._notifier
        deadline = self._config.chat_deadline
        policy = replace(self._config.retry_policy, deadline=deadline.total_seconds())

        async def run() -> None:
            try:
                async with asyncio.timeout(deadline.total_seconds()):
                    outcome = await self._journaled(
                        key, "chat", target, incident, lambda: notifier.send(text), policy=policy
                    )
            except TimeoutError:
                log.warning("chat_dropped", key=key, reason="deadline")
                outcome = Outcome.FAILED
            if self._metrics is not None and outcome in (Outcome.DONE, Outcome.FAILED):
                result = "sent" if outcome is Outcome.DONE else "failed"
                self._metrics.notifications.labels(result=result).inc()

        task = asyncio.create_task(run(), name=f"chat:{key}")
        self._chats.add(task)
        task.add_done_callback(self._chats.discard)

    def _chat_page(self, decision: Decision, action: str | None = None) -> None:
        assert decision.incident is not None
        severity = str(decision.severity or Severity.P0)
        if action is None:
            action = (
                f"Paged on-call. Automatic rollback refused by {decision.refused_by}."
                if decision.refused_by
                else "Paged on-call; no automatic rollback"
            )
        self._chat(
            f"{decision.incident}/slack/page/{decision.action}/{severity}",
            decision.target,
            decision.incident,
            render_page(
                issue=decision.reason,
                severity=severity,
                impact=describe_impact(decision.observations, decision.rule or "see the page"),
                action=action,
                commander=self._config.incident_commander,
                notes=self._notes(decision.target),
            ),
        )

    def _set_status(
        self,
        incident: str,
        status: Literal["In Progress", "Completed", "Blocked"],
        progress: str,
        next_step: str,
        eta: str = "unknown",
    ) -> None:
        item = self._open.get(incident)
        if item is not None:
            item.status, item.progress, item.next_step, item.eta = status, progress, next_step, eta

    # ----------------------------------------------------------------- rollback

    def _start_rollback(self, decision: Decision, incident: IncidentRecord | None) -> None:
        task = asyncio.create_task(
            self._rollback(decision, incident), name=f"rollback:{decision.target}"
        )
        self._rollbacks.add(task)
        task.add_done_callback(self._rollbacks.discard)

    async def _refuse(self, decision: Decision, refused_by: str, reason: str) -> None:
        """Turn a rollback that cannot run into the P0 page that says why (DESIGN §4)."""
        assert decision.incident is not None
        self._count_rollback(decision.target, "refused")
        self._emit(
            RollbackResultEvent(
                decision.target, self._clock.now(), RollbackOutcome.FAILED, "", reason
            )
        )
        self._set_status(decision.incident, "Blocked", reason, "on-call decides what to do")
        await self._page(
            replace(
                page_from_decision(decision, self._notes(decision.target)),
                severity=Severity.P0,
                summary=(
                    f"[P0] {decision.target}: automatic rollback refused by {refused_by}: {reason}"
                ),
                refused_by=refused_by,
            ),
            "refused",
        )

    async def _failed(
        self, decision: Decision, rb: RollbackRecord, key: str, what: str
    ) -> RollbackRecord:
        assert decision.incident is not None
        now = self._clock.now()
        rb = replace(rb, state=RollbackState.FAILED, finished_at=now, detail=what)
        self._count_rollback(rb.target, "failed")
        await self._store.save_rollback(rb)
        await self._store.record_outcome(key, ActionStatus.FAILED, now, error=what)
        self._emit(
            RollbackResultEvent(
                decision.target, now, RollbackOutcome.FAILED, rb.to_deployment or "", what
            )
        )
        self._set_status(decision.incident, "Blocked", what, "on-call rolls back by hand")
        await self._page(
            replace(
                page_from_decision(decision, self._notes(decision.target)),
                severity=Severity.P0,
                summary=f"[P0] {decision.target}: rollback did not take: {what}",
            ),
            "rollback-failed",
        )
        return rb

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        return await call_with_retries(
            _as_coroutine_function(call),
            self._config.retry_policy,
            sleep=self._clock.sleep,
            monotonic=self._clock.monotonic,
        )

    async def _rollback(self, decision: Decision, incident: IncidentRecord | None) -> None:
        assert decision.incident is not None
        bound = log.bind(target=decision.target, incident=decision.incident)
        wiring = self._targets.get(decision.target)
        deployer = wiring.deployer if wiring else None
        if wiring is None or deployer is None:
            await self._refuse(decision, "no_deployer", "no deployer is configured for the target")
            return
        project = deployer.project
        lock = self._locks.setdefault(project, asyncio.Lock())
        key = f"{decision.incident}/rollback"
        if lock.locked():
            if self._in_flight.get(project) == key:
                bound.info("rollback_duplicate", key=key)  # the same decision delivered again
                return
            await self._refuse(decision, "in_flight", f"a rollback of {project} is in flight")
            return
        async with lock:
            self._in_flight[project] = key
            pending = [
                r
                for r in await self._store.list_rollbacks(target=decision.target)
                if r.project == project and r.state in _PENDING_STATES and r.id != key
            ]
            if pending:
                await self._refuse(
                    decision, "in_flight", f"rollback {pending[0].id} of {project} is unsettled"
                )
                return
            if not await self._allowed():
                bound.info("rollback_fenced")
                return
            claimed = await self._store.record_intent(
                ActionRecord(
                    key=key,
                    kind="rollback",
                    target=decision.target,
                    created_at=self._clock.now(),
                    incident=decision.incident,
                    detail={"reason": decision.reason, "rule": decision.rule},
                )
            )
            if not claimed:
                bound.info("rollback_duplicate", key=key)
                return
            await self._run_rollback(decision, incident, wiring, deployer, key, bound)

    async def _run_rollback(
        self,
        decision: Decision,
        incident: IncidentRecord | None,
        wiring: TargetActions,
        deployer: Deployer,
        key: str,
        bound: Any,
    ) -> None:
        assert decision.incident is not None
        started = self._clock.now()
        baseline = wiring.error_rate() if wiring.error_rate else None
        if baseline is None:
            baseline = error_rate_in(decision)
        try:
            current = await self._retry(deployer.current_production)
            candidates = await self._retry(deployer.list_candidates)
        except CallError as exc:
            rb = RollbackRecord(key, decision.incident, decision.target, deployer.project, started)
            await self._failed(decision, rb, key, f"could not read the deployments: {exc}")
            return
        known_bad = await self._store.known_bad(deployer.project)
        state = self._state.setdefault(decision.target, _TargetState())
        healthy = frozenset(state.healthy)
        choice = deployer.choose_target(current, candidates, known_bad, healthy)
        if choice.target is None:
            await self._store.record_outcome(
                key,
                ActionStatus.FAILED,
                self._clock.now(),
                error=choice.reason,
                detail={"refused_by": choice.refused_by},
            )
            await self._refuse(decision, choice.refused_by or "no_target", choice.reason)
            return
        target: Deployment = choice.target
        rb = RollbackRecord(
            id=key,
            incident=decision.incident,
            target=decision.target,
            project=deployer.project,
            requested_at=started,
            from_deployment=current.id,
            to_deployment=target.id,
            detail=choice.reason,
        )
        if self._config.shadow:
            await self._shadow(decision, rb, key, f"would roll back to {target.id}")
            return
        # write-ahead: the record exists before Vercel hears of it
        await self._store.save_rollback(rb)
        request: RollbackRequest | None = None
        excluded: set[str] = set()
        for _ in range(2):
            try:
                request = await self._retry(functools.partial(deployer.request_rollback, target))
                break
            except TargetGoneError as exc:
                # the target vanished between listing and request: choose again, once
                bound.warning("rollback_target_gone", to=target.id, error=str(exc))
                excluded.add(target.id)
                again = deployer.choose_target(
                    current,
                    [c for c in candidates if c.id not in excluded],
                    known_bad,
                    healthy,
                )
                if again.target is None:
                    await self._failed(decision, rb, key, f"{exc}; {again.reason}")
                    return
                target = again.target
                rb = replace(rb, to_deployment=target.id, detail=again.reason)
                await self._store.save_rollback(rb)
            except CallError as exc:
                await self._failed(decision, rb, key, str(exc))
                return
        if request is None:
            await self._failed(decision, rb, key, "the rollback target vanished twice")
            return
        if request.shadow:
            await self._shadow(decision, rb, key, request.detail)
            return
        rb = replace(rb, state=RollbackState.REQUESTED)
        await self._store.save_rollback(rb)
        await self._store.mark_known_bad(deployer.project, current.id, self._clock.now())
        bound.info("rollback_requested", frm=current.id, to=target.id, method=request.method)
        eta = self._clock.now() + self._config.rollback_eta
        self._set_status(
            decision.incident,
            "In Progress",
            f"{request.method} to {target.id} requested",
            "waiting for Vercel, then verifying",
            eta.strftime("%H:%M UTC"),
        )
        self._chat(
            f"{decision.incident}/slack/rollback-in-progress",
            decision.target,
            decision.incident,
            render_rollback_in_progress(
                issue=decision.reason,
                severity=str(decision.severity or Severity.P0),
                impact=describe_impact(decision.observations, decision.rule or "see the page"),
                target_deployment=target.id,
                target_created_at=target.created_at,
                eta=eta,
                commander=self._config.incident_commander,
            ),
        )
        await self._change(decision, current.id, target.id, request.method)
        await self._disable_flags(decision, wiring)
        result = await deployer.await_rollback(target)
        if not result.ok:
            await self._failed(decision, rb, key, result.detail)
            return
        now = self._clock.now()
        rb = replace(rb, state=RollbackState.SUCCEEDED, finished_at=now, detail=result.detail)
        self._count_rollback(rb.target, "succeeded")
        if self._metrics is not None:
            self._metrics.rollback_duration.observe((now - rb.requested_at).total_seconds())
        await self._store.save_rollback(rb)
        await self._store.record_outcome(
            key, ActionStatus.SUCCEEDED, now, detail={"from": current.id, "to": target.id}
        )
        state.rolled_back_to = target.id
        bound.info("rollback_succeeded", to=target.id)
        self._emit(
            RollbackResultEvent(
                decision.target, now, RollbackOutcome.SUCCEEDED, target.id, result.detail
            )
        )
        self._emit(DeployEvent(decision.target, now, target.id, rollback=True))
        await self._verify(decision, incident, wiring, deployer, rb, target, baseline)

    async def _verify(
        self,
        decision: Decision,
        incident: IncidentRecord | None,
        wiring: TargetActions,
        deployer: Deployer,
        rb: RollbackRecord,
        target: Deployment,
        baseline: float | None,
    ) -> None:
        assert decision.incident is not None
        if wiring.verifier is not None:
            self._set_status(
                decision.incident,
                "In Progress",
                f"production serves {target.id}",
                "verifying health, version and error rate",
            )
            res = await wiring.verifier.verify(
                deployer, target, baseline_error_rate=baseline, error_rate=wiring.error_rate
            )
            now = self._clock.now()
            if not res.ok:
                rb = replace(rb, state=RollbackState.VERIFY_FAILED, detail=res.detail)
                self._count_rollback(rb.target, "verify_failed", verified_from=rb.finished_at)
                await self._store.save_rollback(rb)
                self._emit(
                    RollbackResultEvent(
                        decision.target, now, RollbackOutcome.VERIFY_FAILED, target.id, res.detail
                    )
                )
                self._set_status(decision.incident, "Blocked", res.detail, "on-call takes over")
                await self._page(
                    replace(
                        page_from_decision(decision, self._notes(decision.target)),
                        severity=Severity.P0,
                        summary=(
                            f"[P0] {decision.target}: rollback did not take "
                            f"(failed: {', '.join(res.failed)}): {res.detail}"
                        ),
                    ),
                    "verify-failed",
                )
                return
            rb = replace(rb, state=RollbackState.VERIFIED, verified_at=now)
            self._count_rollback(rb.target, "verified", verified_from=rb.finished_at)
            await self._store.save_rollback(rb)
            self._emit(
                RollbackResultEvent(
                    decision.target, now, RollbackOutcome.VERIFIED, target.id, res.detail
                )
            )
        now = self._clock.now()
        opened = incident.opened_at if incident is not None else rb.requested_at
        self._set_status(
            decision.incident,
            "Completed",
            f"rolled back to {target.id} in {human_duration(now - rb.requested_at)}",
            "intensive monitoring for 2 hours",
        )
        self._chat(
            f"{decision.incident}/slack/rollback-complete",
            decision.target,
            decision.incident,
            render_rollback_complete(
                issue=decision.reason,
                method=self._config.rollback_method,
                duration=now - opened,
                impact=describe_impact(decision.observations, decision.rule or "see the page"),
                contact=self._config.point_of_contact,
                notes=self._notes(decision.target),
            ),
        )

    async def _shadow(self, decision: Decision, rb: RollbackRecord, key: str, what: str) -> None:
        assert decision.incident is not None
        now = self._clock.now()
        self._count_rollback(rb.target, "shadow")
        await self._store.save_rollback(
            replace(rb, state=RollbackState.SHADOW, finished_at=now, detail=what)
        )
        await self._store.record_outcome(key, ActionStatus.SKIPPED, now, detail={"would": what})
        log.info("rollback_shadow", target=decision.target, detail=what)
        self._chat(
            f"{decision.incident}/slack/shadow",
            decision.target,
            decision.incident,
            render_page(
                issue=decision.reason,
                severity=str(decision.severity or Severity.P0),
                impact=describe_impact(decision.observations, decision.rule or "see the page"),
                action=f"SHADOW MODE: {what} (no change made)",
                commander=self._config.incident_commander,
            ),
        )

    async def _change(self, decision: Decision, frm: str, to: str, method: str) -> None:
        if self._pager is None:
            return
        pager = self._pager
        assert decision.incident is not None
        change = Change(
            target=decision.target,
            summary=f"rollback-watchdog rolled {decision.target} back from {frm} to {to}",
            at=self._clock.now(),
            deployment=to,
            details={
                "incident": decision.incident,
                "from": frm,
                "to": to,
                "method": method,
                "reason": decision.reason,
            },
        )
        await self._journaled(
            f"{decision.incident}/change/{to}",
            "change",
            decision.target,
            decision.incident,
            lambda: pager.change(change),
        )

    async def _disable_flags(self, decision: Decision, wiring: TargetActions) -> None:
        assert decision.incident is not None
        reason = f"rollback-watchdog: {decision.incident}: {decision.reason}"
        for switch in wiring.flags:
            for flag in switch.flags:
                await self._journaled(
                    f"{decision.incident}/flag/{flag}",
                    "flag",
                    decision.target,
                    decision.incident,
                    functools.partial(switch.disable, flag, reason),
                )


# --------------------------------------------------------------------------- restart


async def reconcile(store: ActionJournal, deployer: Deployer, clock: Clock) -> list[RollbackRecord]:
    """Settle this project's rollbacks left in INTENT/REQUESTED by a crash.

    Never re-issues: production serving the target means the rollback happened (SUCCEEDED);
    a REQUESTED one still running is followed to its end; anything else is FAILED, and the
    engine decides afresh with current data.
    """
    settled: list[RollbackRecord] = []
    for rb in await store.list_rollbacks():
        if rb.project != deployer.project or rb.state not in _PENDING_STATES:
            continue
        bound = log.bind(target=rb.target, incident=rb.incident, rollback=rb.id)
        try:
            serving = await deployer.serving()
        except CallError as exc:
            bound.warning("reconcile_unreachable", error=str(exc))
            continue
        now = clock.now()
        if rb.to_deployment and serving == rb.to_deployment:
            new = replace(
                rb,
                state=RollbackState.SUCCEEDED,
                finished_at=now,
                detail=f"reconciled after restart: production serves {serving}",
            )
        elif rb.to_deployment and (
            rb.state is RollbackState.REQUESTED or await _accepted(deployer, rb)
        ):
            # REQUESTED, or a crash right after Vercel accepted the POST but before REQUESTED
            # was saved: the job runs on Vercel's side, so follow it rather than fail it
            result = await deployer.await_rollback(Deployment(id=rb.to_deployment))
            new = replace(
                rb,
                state=RollbackState.SUCCEEDED if result.ok else RollbackState.FAILED,
                finished_at=clock.now(),
                detail=f"reconciled after restart: {result.detail}",
            )
        else:
            new = replace(
                rb,
                state=RollbackState.FAILED,
                finished_at=now,
                detail=(
                    f"reconciled after restart: production serves {serving}, not "
                    f"{rb.to_deployment}; not re-issued"
                ),
            )
        await store.save_rollback(new)
        status = (
            ActionStatus.SUCCEEDED if new.state is RollbackState.SUCCEEDED else ActionStatus.FAILED
        )
        journaled = {a.key for a in await store.list_actions(incident=rb.incident, limit=1000)}
        if rb.id in journaled:
            await store.record_outcome(
                rb.id, status, now, error=None if status is ActionStatus.SUCCEEDED else new.detail
            )
        bound.info("rollback_reconciled", state=str(new.state), serving=serving)
        settled.append(new)
    return settled


#: our clock and Vercel's may disagree by this much when matching a job to an intent
_JOB_SKEW = timedelta(minutes=2)


async def _accepted(deployer: Deployer, rb: RollbackRecord) -> bool:
    """Did Vercel start a job to ``rb``'s target after ``rb``'s intent was recorded?"""
    try:
        job = await deployer.alias_job()
    except CallError:
        return False
    if not job or job.get("toDeploymentId") != rb.to_deployment:
        return False
    requested = job.get("requestedAt")
    if isinstance(requested, bool) or not isinstance(requested, int | float):
        return False
    started = datetime.fromtimestamp(requested / 1000, UTC)
    return started >= rb.requested_at - _JOB_SKEW
