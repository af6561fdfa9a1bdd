"""How a rollback ends: its records, what the engine hears, the P0 pages and the chat.

I/O boundary: the store's rollback records and action journal, the paging outbox and the chat
channel (through :mod:`~watchdog.actions.paging` and :mod:`~watchdog.actions.updates`), and the
target's :class:`~watchdog.actions.verify.Verifier`. The rollback runner
(:mod:`watchdog.actions.rollback`) and a rolling release's abort
(:mod:`watchdog.actions.rollouts`) end the same way through here, so a refused, failed,
shadowed or verified abort reads exactly like a rollback in the records, the pages and chat,
and the engine hears of both through the same events, in the same order (deploy first).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from watchdog.actions.base import Change, Deployer, Deployment
from watchdog.actions.paging import Paging, page_from_decision
from watchdog.actions.production import ProductionView
from watchdog.actions.updates import IncidentUpdates
from watchdog.clock import Clock
from watchdog.core.model import (
    Decision,
    DeployEvent,
    Event,
    RollbackOutcome,
    RollbackResultEvent,
    Severity,
)
from watchdog.metrics import Metrics
from watchdog.store.base import (
    ActionJournal,
    ActionRecord,
    ActionStatus,
    IncidentRecord,
    RollbackRecord,
    RollbackState,
)

if TYPE_CHECKING:
    from watchdog.actions.rollback import TargetActions

log = structlog.get_logger(__name__)

#: where the runner's events go: the engine, in order (rollback outcomes, deployments the
#: rollback put live, the rolling release as an approval left it)
EventSink = Callable[[Event], None]


class RollbackEndings:
    """The endings every rollback shares; one per dispatcher, used by the runner and aborts."""

    def __init__(
        self,
        *,
        store: ActionJournal,
        clock: Clock,
        paging: Paging,
        updates: IncidentUpdates,
        production: ProductionView,
        targets: Mapping[str, TargetActions],
        emit: EventSink,
        metrics: Metrics | None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._paging = paging
        self._updates = updates
        self._production = production
        self._targets = targets
        self._emit = emit
        self._metrics = metrics

    def notes(self, target: str) -> tuple[str, ...]:
        """The undo note while a rollback pins production (Vercel's auto-assignment is off)."""
        wiring = self._targets.get(target)
        if self._production.pinned_to(target) is None or wiring is None:
            return ()
        if wiring.deployer is None:
            return ()
        return (wiring.deployer.undo_hint(),)

    def succeeded(
        self, target: str, to: str, frm: str | None, detail: str, *, aborted: str = ""
    ) -> None:
        """Production moved to ``to``: deploy first, then the result (see the module doc).
        ``aborted``: the canary whose rolling release this ended."""
        now = self._clock.now()
        self._production.pinned(target, to, frm)
        self._emit(DeployEvent(target, now, to, rollback=True))
        self._emit(
            RollbackResultEvent(target, now, RollbackOutcome.SUCCEEDED, to, detail, aborted=aborted)
        )

    async def requested(
        self,
        decision: Decision,
        rb: RollbackRecord,
        frm: str,
        to: Deployment,
        method: str,
        summary: str,
        *,
        action: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> RollbackRecord:
        """Vercel accepted the call: the record says requested, ``frm`` is known bad, chat
        says "rollback in progress" (``action`` in other words than "rolling back to"), and
        the service's timeline gets the change event."""
        assert decision.incident is not None
        rb = replace(rb, state=RollbackState.REQUESTED)
        await self._store.save_rollback(rb)
        await self._store.mark_known_bad(rb.project, frm, self._clock.now())
        self._updates.rollback_requested(decision, to, method, action=action)
        await self._paging.change(
            decision.incident,
            Change(
                target=decision.target,
                summary=summary,
                at=self._clock.now(),
                deployment=to.id,
                details={
                    "incident": decision.incident,
                    "from": frm,
                    "to": to.id,
                    "method": method,
                    **(details or {}),
                    "reason": decision.reason,
                },
            ),
        )
        return rb

    async def took(
        self, rb: RollbackRecord, key: str, frm: str, to: str, detail: str, *, aborted: str = ""
    ) -> RollbackRecord:
        """Vercel's job ended and production serves ``to``: the record and the journal say
        so, the metrics count it, and the engine hears it (verification follows)."""
        now = self._clock.now()
        rb = replace(rb, state=RollbackState.SUCCEEDED, finished_at=now, detail=detail)
        self.count(rb.target, "succeeded")
        if self._metrics is not None:
            self._metrics.rollback_duration.observe((now - rb.requested_at).total_seconds())
        await self._store.save_rollback(rb)
        await self._store.record_outcome(
            key, ActionStatus.SUCCEEDED, now, detail={"from": frm, "to": to}
        )
        self.succeeded(rb.target, to, frm, detail, aborted=aborted)
        return rb

    async def page_p0(
        self, decision: Decision, kind: str, summary: str, refused_by: str | None = None
    ) -> None:
        """The P0 page a rollback that did not happen, or did not take, sends."""
        page = replace(
            page_from_decision(decision, self.notes(decision.target)),
            severity=Severity.P0,
            summary=summary,
        )
        if refused_by is not None:
            page = replace(page, refused_by=refused_by)
        await self._paging.page(page, kind)

    def count(self, target: str, result: str, *, verified_from: datetime | None = None) -> None:
        if self._metrics is None:
            return
        self._metrics.rollbacks.labels(target=target, result=result).inc()
        if verified_from is not None:
            elapsed = (self._clock.now() - verified_from).total_seconds()
            self._metrics.verification_duration.observe(max(0.0, elapsed))

    def intent(self, decision: Decision, key: str, **detail: Any) -> ActionRecord:
        """The journal's rollback intent: the decision's why, plus what the caller knows."""
        return ActionRecord(
            key=key,
            kind="rollback",
            target=decision.target,
            created_at=self._clock.now(),
            incident=decision.incident,
            detail={"reason": decision.reason, "rule": decision.rule, **detail},
        )

    async def close(
        self,
        decision: Decision,
        key: str,
        status: ActionStatus,
        *,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Journal how the chapter's rollback ended, whether or not its intent was written
        (a look-up can fail before it): the key is then taken, as for any rollback tried."""
        await self._store.record_intent(self.intent(decision, key))
        await self._store.record_outcome(key, status, self._clock.now(), error=error, detail=detail)

    async def verify(
        self,
        decision: Decision,
        incident: IncidentRecord | None,
        wiring: TargetActions,
        deployer: Deployer,
        rb: RollbackRecord,
        target: Deployment,
        baseline: float | None,
        *,
        method: str | None = None,
        impact: str | None = None,
    ) -> None:
        assert decision.incident is not None
        if wiring.verifier is not None:
            self._updates.set_status(
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
                self.count(rb.target, "verify_failed", verified_from=rb.finished_at)
                await self._store.save_rollback(rb)
                self._emit(
                    RollbackResultEvent(
                        decision.target, now, RollbackOutcome.VERIFY_FAILED, target.id, res.detail
                    )
                )
                self._updates.set_status(
                    decision.incident, "Blocked", res.detail, "on-call takes over"
                )
                await self.page_p0(
                    decision,
                    page_kind(rb.id, "verify-failed"),
                    f"[P0] {decision.target}: rollback did not take "
                    f"(failed: {', '.join(res.failed)}): {res.detail}",
                )
                return
            rb = replace(rb, state=RollbackState.VERIFIED, verified_at=now)
            self.count(rb.target, "verified", verified_from=rb.finished_at)
            await self._store.save_rollback(rb)
            self._emit(
                RollbackResultEvent(
                    decision.target, now, RollbackOutcome.VERIFIED, target.id, res.detail
                )
            )
        now = self._clock.now()
        opened = incident.opened_at if incident is not None else rb.requested_at
        self._updates.rollback_completed(
            decision,
            target,
            took=now - rb.requested_at,
            duration=now - opened,
            method=method,
            impact=impact,
        )

    async def refuse(self, decision: Decision, key: str, refused_by: str, reason: str) -> None:
        """Turn a rollback that cannot run into the P0 page that says why (DESIGN §4)."""
        assert decision.incident is not None
        log.warning("rollback_refused", target=decision.target, guard=refused_by, reason=reason)
        if self._metrics is not None:
            self._metrics.count_refusal(decision.target, refused_by)
        self._emit(
            RollbackResultEvent(
                decision.target, self._clock.now(), RollbackOutcome.FAILED, "", reason
            )
        )
        self._updates.set_status(decision.incident, "Blocked", reason, "on-call decides what to do")
        await self.page_p0(
            decision,
            page_kind(key, f"refused/{refused_by}"),
            f"[P0] {decision.target}: automatic rollback refused by {refused_by}: {reason}",
            refused_by=refused_by,
        )

    async def failed(self, decision: Decision, rb: RollbackRecord, key: str, what: str) -> None:
        assert decision.incident is not None
        now = self._clock.now()
        rb = replace(rb, state=RollbackState.FAILED, finished_at=now, detail=what)
        log.error("rollback_failed", target=rb.target, to=rb.to_deployment, error=what)
        self.count(rb.target, "failed")
        await self._store.save_rollback(rb)
        await self.close(decision, key, ActionStatus.FAILED, error=what)
        self._emit(
            RollbackResultEvent(
                decision.target, now, RollbackOutcome.FAILED, rb.to_deployment or "", what
            )
        )
        self._updates.set_status(decision.incident, "Blocked", what, "on-call rolls back by hand")
        await self.page_p0(
            decision,
            page_kind(key, "rollback-failed"),
            f"[P0] {decision.target}: rollback did not take: {what}",
        )

    async def shadow(self, decision: Decision, rb: RollbackRecord, key: str, what: str) -> None:
        assert decision.incident is not None
        now = self._clock.now()
        self.count(rb.target, "shadow")
        await self._store.save_rollback(
            replace(rb, state=RollbackState.SHADOW, finished_at=now, detail=what)
        )
        await self.close(decision, key, ActionStatus.SKIPPED, detail={"would": what})
        log.info("rollback_shadowed", target=decision.target, detail=what)
        self._emit(
            RollbackResultEvent(
                decision.target, now, RollbackOutcome.SHADOWED, rb.to_deployment or "", what
            )
        )
        self._updates.rollback_shadowed(decision, what)


def page_kind(rollback: str, what: str) -> str:
    """The journal kind of a rollback's P0 page: its reason and the chapter's rollback key, so
    a "rollback failed" page is never deduplicated against the chapter's earlier P0."""
    _, _, tail = rollback.partition("/")
    return f"{what}/{tail or rollback}"
