"""The rollback state machine: the one owner of a rollback's state in the shell.

I/O boundary: the target's :class:`~watchdog.actions.base.Deployer` (look-ups, the request,
waiting for the job), its :class:`~watchdog.actions.verify.Verifier`, and the store's rollback
records. Only this module writes a :class:`~watchdog.store.base.RollbackRecord` and only this
module tells the engine how a rollback went. It does so through the event sink, always in this
order when production moved:

1. ``DeployEvent(rollback=True)``: production now serves the target (the engine marks the old
   deployment known-bad and starts intensive watch);
2. ``RollbackResultEvent``: ``succeeded``, then ``verified`` or ``verify_failed``; or
   ``failed`` when nothing moved.

Deploy first, so every decision the result produces already names the deployment production
serves, and the "auto-assignment is off; promote to undo" note is not mistaken for a promote.

A record moves INTENT → REQUESTED → SUCCEEDED/FAILED → VERIFIED/VERIFY_FAILED (or SHADOW, or
ABANDONED). The intent (journal key and record) is saved *immediately* before the deployer
call that changes production, after the look-ups that may retry for a minute, and the outcome
after it. On becoming leader :meth:`RollbackRunner.prepare_restore` settles what a crash left
against what Vercel shows (:mod:`watchdog.actions.reconcile`); a rollback that provably never
reached Vercel is ABANDONED and re-issued once, under its own key, if the engine still asks
for it on fresh data. Every P0 page a rollback sends is keyed by its reason and the chapter's
rollback key (:func:`page_kind`), so it is never deduplicated against an earlier P0.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from watchdog.actions.approval import StageApprover
from watchdog.actions.base import (
    Deployer,
    Deployment,
    FeatureFlag,
    Page,
    RollbackRequest,
    RollingReleases,
    TargetGoneError,
)
from watchdog.actions.endings import EventSink, RollbackEndings, page_kind
from watchdog.actions.journal import Journal
from watchdog.actions.paging import Paging
from watchdog.actions.production import ProductionView
from watchdog.actions.reconcile import (
    PENDING_STATES,
    Classified,
    classify,
    follow,
    reissue_key,
    rollback_key,
    settle_orphans,
)
from watchdog.actions.rollouts import RolloutAbort
from watchdog.actions.updates import IncidentUpdates
from watchdog.actions.verify import ErrorRateProbe, Verifier
from watchdog.clock import Clock
from watchdog.core.model import (
    Decision,
    RollbackOutcome,
    RollbackResultEvent,
    Severity,
    Signal,
)
from watchdog.metrics import Metrics
from watchdog.retry import Retrier
from watchdog.store.base import (
    ActionJournal,
    ActionStatus,
    IncidentRecord,
    RollbackRecord,
    RollbackState,
)
from watchdog.transport import CallError

log = structlog.get_logger(__name__)

__all__ = ["EventSink", "RollbackRunner", "TargetActions", "error_rate_in", "page_kind"]


@dataclass(frozen=True)
class TargetActions:
    """What the dispatcher can do for one target (app)."""

    deployer: Deployer | None = None
    verifier: Verifier | None = None
    #: the latest error rate for the target, or None when unknown (for verification)
    error_rate: ErrorRateProbe | None = None
    flags: Sequence[FeatureFlag] = ()
    #: the project's rolling releases (the abort of a bad canary, approving a stage)
    rollouts: RollingReleases | None = None


def error_rate_in(decision: Decision) -> float | None:
    for obs in decision.observations:
        if obs.signal == Signal.ERROR_RATE and obs.value is not None:
            return obs.value
    return None


class RollbackRunner:
    def __init__(
        self,
        *,
        store: ActionJournal,
        clock: Clock,
        retrier: Retrier,
        journal: Journal,
        paging: Paging,
        updates: IncidentUpdates,
        production: ProductionView,
        targets: Mapping[str, TargetActions],
        shadow: bool,
        emit: EventSink,
        metrics: Metrics | None,
        commander: str = "rollback-watchdog (automatic)",
    ) -> None:
        self._store = store
        self._clock = clock
        self._retry = retrier
        self._journal = journal
        self._paging = paging
        self._updates = updates
        self._production = production
        self._targets = targets
        self._shadow_mode = shadow
        self._emit = emit
        self._metrics = metrics
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_flight: dict[str, str] = {}
        #: rollbacks a crash left running on Vercel, followed in the background
        self._following: set[str] = set()
        #: pending rollbacks the last restore could not settle (Vercel did not answer)
        self.postponed = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self._end = RollbackEndings(
            store=store,
            clock=clock,
            paging=paging,
            updates=updates,
            production=production,
            targets=targets,
            emit=emit,
            metrics=metrics,
        )
        self._aborts = RolloutAbort(
            store=store,
            clock=clock,
            retrier=retrier,
            journal=journal,
            paging=paging,
            updates=updates,
            end=self._end,
            shadow=shadow,
            metrics=metrics,
        )
        self._approvals = StageApprover(
            store=store,
            clock=clock,
            retrier=retrier,
            journal=journal,
            updates=updates,
            shadow=shadow,
            emit=emit,
            commander=commander,
        )

    # ----------------------------------------------------------------- entry points

    def start(self, decision: Decision, incident: IncidentRecord | None) -> None:
        """Run the rollback in the background: a page must not wait for Vercel's job."""
        task = asyncio.create_task(
            self._run(decision, incident), name=f"rollback:{decision.target}"
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def approve(self, decision: Decision) -> None:
        """Approve the rolling release's next stage in the background (never blocks)."""
        task = asyncio.create_task(self._approve(decision), name=f"approve:{decision.target}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _approve(self, decision: Decision) -> None:
        structlog.contextvars.bind_contextvars(target=decision.target)
        wiring = self._targets.get(decision.target)
        try:
            deployer = wiring.deployer if wiring is not None else None
            if deployer is not None and self.in_flight(deployer.project):
                # a rollback or an abort moves production now: no stage goes on meanwhile
                log.info("approve_skipped", target=decision.target, why="rollback in flight")
                return
            await self._approvals.approve(decision, wiring)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("approve_crashed", target=decision.target)

    def in_flight(self, project: str) -> bool:
        lock = self._locks.get(project)
        return lock is not None and lock.locked()

    def notes(self, target: str) -> tuple[str, ...]:
        """The undo note while a rollback pins production (Vercel's auto-assignment is off)."""
        return self._end.notes(target)

    # ----------------------------------------------------------------- the run

    async def _run(self, decision: Decision, incident: IncidentRecord | None) -> None:
        """Every rollback the engine committed ends in an outcome it hears of: an error here
        (the store failing the write-ahead, a bug) fails it with a P0 page, never leaves the
        engine believing it in flight."""
        # this task's own context: every line logged on its behalf (Vercel, verification,
        # chat it starts) names the target and incident
        structlog.contextvars.bind_contextvars(target=decision.target, incident=decision.incident)
        try:
            await self._attempt(decision, incident)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            what = (
                f"the rollback stopped on an internal error ({type(exc).__name__}); not rolled back"
            )
            log.exception("rollback_crashed", target=decision.target, incident=decision.incident)
            self._end.count(decision.target, "failed")
            self._emit(
                RollbackResultEvent(
                    decision.target, self._clock.now(), RollbackOutcome.FAILED, "", what
                )
            )
            try:
                key = rollback_key(decision.incident or "", decision.chapter, decision.deployment)
                await self._end.page_p0(
                    decision,
                    page_kind(key, "rollback-crashed"),
                    f"[P0] {decision.target}: {what}; roll back by hand",
                )
            except Exception:
                log.exception("page_failed", target=decision.target, incident=decision.incident)

    async def _attempt(self, decision: Decision, incident: IncidentRecord | None) -> None:
        assert decision.incident is not None
        bound = log.bind(target=decision.target, incident=decision.incident)
        key = rollback_key(decision.incident, decision.chapter, decision.deployment)
        wiring = self._targets.get(decision.target)
        deployer = wiring.deployer if wiring else None
        if wiring is None or deployer is None:
            await self._end.refuse(
                decision, key, "no_deployer", "no deployer is configured for the target"
            )
            return
        project = deployer.project
        lock = self._locks.setdefault(project, asyncio.Lock())
        if lock.locked():
            if self._in_flight.get(project) in (key, reissue_key(key)):
                bound.info("rollback_duplicated", key=key)  # the same decision delivered again
                return
            await self._end.refuse(
                decision, key, "in_flight", f"a rollback of {project} is in flight"
            )
            return
        async with lock:
            self._in_flight[project] = key
            records = {
                r.id: r
                for r in await self._store.list_rollbacks(target=decision.target)
                if r.project == project
            }
            mine = records.get(key)
            if mine is not None and mine.state is RollbackState.ABANDONED:
                # the previous run died before Vercel heard of it (reconcile proved it) and
                # the engine, on fresh data and past every guard rail, still wants it: once
                key = reissue_key(key)
                self._in_flight[project] = key
                bound.warning("rollback_reissued", key=key)
                mine = records.get(key)
            if mine is not None:
                bound.info("rollback_duplicated", key=key)
                return
            pending = [r for r in records.values() if r.state in PENDING_STATES]
            if pending:
                await self._end.refuse(
                    decision,
                    key,
                    "in_flight",
                    f"rollback {pending[0].id} of {project} is unsettled",
                )
                return
            if not await self._journal.allowed():
                bound.info("rollback_fenced")
                return
            if decision.scope == "canary":
                # during a rolling release the rollback is its abort: only the canary leaves
                await self._aborts.abort(
                    decision, incident, wiring, deployer, key, bound, self._execute
                )
                return
            await self._execute(decision, incident, wiring, deployer, key, bound)

    async def _execute(
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
            await self._end.failed(decision, rb, key, f"could not read the deployments: {exc}")
            return
        known_bad = await self._store.known_bad(deployer.project)
        healthy = self._production.healthy(decision.target)
        choice = deployer.policy.choose(current, candidates, known_bad, healthy)
        if choice.target is None:
            await self._end.close(
                decision,
                key,
                ActionStatus.FAILED,
                error=choice.reason,
                detail={"refused_by": choice.refused_by},
            )
            await self._end.refuse(decision, key, choice.refused_by or "no_target", choice.reason)
            return
        target: Deployment = choice.target
        rb = RollbackRecord(
            id=key,
            incident=decision.incident,
            target=decision.target,
            project=deployer.project,
            requested_at=self._clock.now(),
            from_deployment=current.id,
            to_deployment=target.id,
            detail=choice.reason,
        )
        if self._shadow_mode:
            await self._end.shadow(decision, rb, key, f"would roll back to {target.id}")
            return
        # the look-ups (which may retry for a minute) are done: fence again, then write the
        # intent immediately before the one call that changes production (DESIGN §5)
        if not await self._journal.allowed():
            bound.info("rollback_fenced")
            return
        intent = self._end.intent(
            decision, key, project=rb.project, frm=rb.from_deployment, to=rb.to_deployment
        )
        if not await self._store.record_intent(intent):
            bound.info("rollback_duplicated", key=key)
            return
        await self._store.save_rollback(rb)
        request: RollbackRequest | None = None
        excluded: set[str] = set()
        for _ in range(2):
            try:
                request = await self._retry(functools.partial(deployer.request_rollback, target))
                break
            except TargetGoneError as exc:
                # the target vanished between listing and request: choose again, once
                bound.warning("rollback_target_vanished", to=target.id, error=str(exc))
                excluded.add(target.id)
                again = deployer.policy.choose(
                    current, [c for c in candidates if c.id not in excluded], known_bad, healthy
                )
                if again.target is None:
                    await self._end.failed(decision, rb, key, f"{exc}; {again.reason}")
                    return
                target = again.target
                rb = replace(rb, to_deployment=target.id, detail=again.reason)
                await self._store.save_rollback(rb)
            except CallError as exc:
                await self._end.failed(decision, rb, key, str(exc))
                return
        if request is None:
            await self._end.failed(decision, rb, key, "the rollback target vanished twice")
            return
        if request.shadow:
            await self._end.shadow(decision, rb, key, request.detail)
            return
        bound.info("rollback_requested", frm=current.id, to=target.id, method=request.method)
        rb = await self._end.requested(
            decision,
            rb,
            current.id,
            target,
            request.method,
            f"rollback-watchdog rolled {decision.target} back from {current.id} to {target.id}",
        )
        await self._disable_flags(decision, wiring)
        result = await deployer.await_rollback(target)
        if not result.ok:
            await self._end.failed(decision, rb, key, result.detail)
            return
        bound.info("rollback_succeeded", to=target.id)
        rb = await self._end.took(rb, key, current.id, target.id, result.detail)
        await self._end.verify(decision, incident, wiring, deployer, rb, target, baseline)

    async def _disable_flags(self, decision: Decision, wiring: TargetActions) -> None:
        assert decision.incident is not None
        reason = f"rollback-watchdog: {decision.incident}: {decision.reason}"
        for switch in wiring.flags:
            for flag in switch.flags:
                await self._journal.run(
                    f"{decision.incident}/flag/{flag}",
                    "flag",
                    decision.target,
                    decision.incident,
                    functools.partial(switch.disable, flag, reason),
                )

    # ----------------------------------------------------------------- restart

    async def prepare_restore(self, incidents: Sequence[str] = ()) -> Classified:
        """Before the engine is re-seeded: settle what a crash left, from two look-ups each.

        Runs on becoming leader, before the store is read into the engine, so an ABANDONED
        rollback is restored as "not rolled back" and the engine may ask for it once more.
        Never waits for a Vercel job (:meth:`after_restore` follows those in the background):
        the new leader must renew its lease meanwhile.
        """
        out = Classified([], [], [])
        for incident in incidents:  # the open ones: an orphan of a resolved one is moot
            out.settled.extend(
                await settle_orphans(self._store, self._clock, incident, self._project_of)
            )
        busy = set(self._in_flight.values()) | self._following
        for wiring in self._targets.values():
            if wiring.deployer is None or self.in_flight(wiring.deployer.project):
                continue
            found = await classify(
                self._store, wiring.deployer, self._clock, skip=busy, rollouts=wiring.rollouts
            )
            out.settled.extend(found.settled)
            out.running.extend(found.running)
            out.postponed.extend(found.postponed)
        self.postponed = len(out.postponed)
        return out

    async def after_restore(self, classified: Classified) -> None:
        """After the engine is re-seeded: tell it what the settled rollbacks came to, page P0
        for any that cannot be completed, and follow the jobs Vercel is still running."""
        for rb in classified.settled:
            await self._settled(rb)
        for rb in classified.postponed:
            # the rollback may or may not have reached Vercel and nobody can tell yet: the
            # engine keeps it in flight; on-call hears it now (once), the chore keeps trying
            await self._paging.page(
                Page(
                    target=rb.target,
                    incident=rb.incident,
                    severity=Severity.P0,
                    summary=(
                        f"[P0] {rb.target}: the watchdog restarted during rollback {rb.id} "
                        "and cannot reach Vercel to tell whether it happened; it keeps "
                        "trying: check what production serves by hand"
                    ),
                    at=self._clock.now(),
                    reason="restart recovery postponed: Vercel did not answer",
                    path=("restart", "reconcile", "rollback:unsettled"),
                    deployment=rb.from_deployment,
                ),
                page_kind(rb.id, "rollback-unsettled"),
            )
        for rb in classified.running:
            self._following.add(rb.id)
            task = asyncio.create_task(self._follow(rb), name=f"reconcile:{rb.target}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        await self._repin()

    async def reconcile(self) -> list[RollbackRecord]:
        """Settle every pending rollback now, following running jobs to their end (tests and
        callers that can wait; the daemon uses :meth:`prepare_restore`/:meth:`after_restore`)."""
        classified = await self.prepare_restore()
        await self.after_restore(classified)
        followed = [t for t in self.tasks if t.get_name().startswith("reconcile:")]
        await asyncio.gather(*followed, return_exceptions=True)
        done = {r.id for r in classified.settled}
        latest = {r.id: r for r in await self._store.list_rollbacks()}
        return [
            *classified.settled,
            *(latest[r.id] for r in classified.running if r.id not in done),
        ]

    def _project_of(self, target: str) -> str | None:
        wiring = self._targets.get(target)
        return wiring.deployer.project if wiring and wiring.deployer else None

    async def _follow(self, rb: RollbackRecord) -> None:
        wiring = self._targets.get(rb.target)
        try:
            if wiring is None or wiring.deployer is None:
                return
            lock = self._locks.setdefault(wiring.deployer.project, asyncio.Lock())
            async with lock:
                self._in_flight[wiring.deployer.project] = rb.id
                new = await follow(self._store, wiring.deployer, self._clock, rb)
            await self._settled(new)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("rollback_reconcile_failed", target=rb.target, rollback=rb.id)
        finally:
            self._following.discard(rb.id)

    async def _settled(self, rb: RollbackRecord) -> None:
        """Tell the engine how a rollback a crash interrupted ended; page P0 if it failed."""
        if rb.state is RollbackState.SUCCEEDED and rb.to_deployment:
            self._end.succeeded(rb.target, rb.to_deployment, rb.from_deployment, rb.detail)
            return
        if rb.state is RollbackState.ABANDONED:
            # restored as "not rolled back": the engine decides afresh with current data
            return
        self._end.count(rb.target, "failed")
        self._emit(
            RollbackResultEvent(
                rb.target,
                self._clock.now(),
                RollbackOutcome.FAILED,
                rb.to_deployment or "",
                rb.detail,
            )
        )
        page = Page(
            target=rb.target,
            incident=rb.incident,
            severity=Severity.P0,
            summary=f"[P0] {rb.target}: rollback did not take: {rb.detail}",
            at=self._clock.now(),
            reason=rb.detail,
            path=("restart", "reconcile", "rollback:failed"),
            deployment=rb.from_deployment,
            notes=self.notes(rb.target),
        )
        await self._paging.page(page, page_kind(rb.id, "rollback-failed"))

    async def _repin(self) -> None:
        """After a restart, the undo note comes back while production still serves what the
        last successful rollback moved it to (Vercel's auto-assignment is still off)."""
        for name, wiring in self._targets.items():
            if wiring.deployer is None or self._production.pinned_to(name) is not None:
                continue
            done = [
                r
                for r in await self._store.list_rollbacks(target=name)
                if r.state in (RollbackState.SUCCEEDED, RollbackState.VERIFIED) and r.to_deployment
            ]
            if not done:
                continue
            last = done[-1]
            try:
                serving = await wiring.deployer.serving()
            except CallError:
                continue
            if serving is not None and serving == last.to_deployment:
                self._production.pinned(name, serving, last.from_deployment)
