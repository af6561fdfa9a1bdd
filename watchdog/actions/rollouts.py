"""A bad canary's rolling release aborted: only the canary's share of users was hit.

I/O boundary: the target's :class:`~watchdog.actions.base.RollingReleases` (read, abort,
follow) and its deployer (what production serves), the store's rollback records and journal,
the pager's change event and the chat channel. The engine decides (a rollback with
``scope == "canary"``); this carries it out with the project's rollback lock held by the
runner (:mod:`watchdog.actions.rollback`), and ends through the same
:class:`~watchdog.actions.endings.RollbackEndings` as any rollback:

- the rollout is re-read right before acting. Still active for the blamed canary: the intent
  is written (journal key and record, under the chapter's rollback key), then the one call,
  the instant rollback to the rollout's base; every retry re-reads first, so an abort Vercel
  took despite a lost answer is followed, never sent twice blindly;
- the rollout completed meanwhile (the canary serves everyone): the full production rollback
  instead, and every message says so;
- aborted meanwhile (a human, Vercel's gate): no call; the engine hears production is back on
  the base and verification runs;
- another canary rolls out now: a P0 page, no call. A refusal (a 4xx) pages P0 with
  Vercel's words and what to do by hand.

Shadow mode records "would abort" and calls nothing. The kill switch, holds and freezes are
the engine's guard rails: it never asks for an abort while one applies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from watchdog.actions.base import (
    Deployer,
    Deployment,
    RollbackRequest,
    RollingRelease,
    RollingReleases,
    with_commit,
)
from watchdog.actions.endings import RollbackEndings
from watchdog.actions.journal import Journal
from watchdog.actions.paging import Paging
from watchdog.actions.updates import IncidentUpdates
from watchdog.clock import Clock
from watchdog.core.model import Decision, RolloutState
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

if TYPE_CHECKING:
    from watchdog.actions.rollback import TargetActions

log = structlog.get_logger(__name__)

#: what the runner hands over for the full production rollback (same arguments as an abort)
FullRollback = Callable[
    [Decision, IncidentRecord | None, "TargetActions", Deployer, str, Any], Awaitable[None]
]

ABORT_METHOD = "Vercel Rolling Release abort (Instant Rollback to its base, Method 1)"


class RolloutAbort:
    """Aborts for every target's rolling release; one per dispatcher."""

    def __init__(
        self,
        *,
        store: ActionJournal,
        clock: Clock,
        retrier: Retrier,
        journal: Journal,
        paging: Paging,
        updates: IncidentUpdates,
        end: RollbackEndings,
        shadow: bool,
        metrics: Metrics | None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._retry = retrier
        self._journal = journal
        self._paging = paging
        self._updates = updates
        self._end = end
        self._shadow = shadow
        self._metrics = metrics

    async def abort(
        self,
        decision: Decision,
        incident: IncidentRecord | None,
        wiring: TargetActions,
        deployer: Deployer,
        key: str,
        bound: Any,
        full: FullRollback,
    ) -> None:
        """Abort the rolling release of the canary the decision blames (lock held)."""
        assert decision.incident is not None
        canary = decision.deployment or ""
        rollouts = wiring.rollouts
        started = self._clock.now()
        rb = RollbackRecord(
            key,
            decision.incident,
            decision.target,
            deployer.project,
            started,
            from_deployment=canary,
        )
        if rollouts is None:
            await self._end.close(decision, key, ActionStatus.FAILED, error="no rollouts")
            await self._end.refuse(
                decision,
                key,
                "no_rolling_releases",
                f"the decision is to abort the rolling release of {canary}, but the target "
                "has no rolling-release client: abort it by hand",
            )
            return
        baseline = wiring.error_rate() if wiring.error_rate else None
        try:
            release = await self._retry(rollouts.read)
        except CallError as exc:
            await self._end.failed(
                decision, rb, key, f"could not read the rolling release of {canary}: {exc}"
            )
            return
        if release is None or not release.active_for(canary):
            await self._moved_on(decision, incident, wiring, deployer, key, bound, full, release)
            return
        base = release.base
        if base is None:
            await self._end.failed(
                decision, rb, key, "the rolling release names no current deployment to go back to"
            )
            return
        share = release.share()
        rb = replace(
            rb,
            to_deployment=base.id,
            detail=f"abort the rolling release of {canary} at {share}: back to {base.id}",
        )
        if self._shadow:
            what = (
                f"would abort the rolling release of {canary} (it served {share} of users): "
                f"production back to {base.id}"
            )
            await self._end.shadow(decision, rb, key, what)
            return
        # the re-read is done: fence again, then the intent right before the one call
        if not await self._journal.allowed():
            bound.info("abort_fenced")
            return
        intent = self._end.intent(
            decision,
            key,
            project=rb.project,
            frm=canary,
            to=base.id,
            scope="canary",
            percent=release.percent,
        )
        if not await self._store.record_intent(intent):
            bound.info("rollback_duplicated", key=key)
            return
        await self._store.save_rollback(rb)
        try:
            request = await self._retry(self._attempts(rollouts, release))
        except CallError as exc:
            await self._end.failed(
                decision,
                rb,
                key,
                f"Vercel refused to abort the rolling release of {canary} ({exc}): abort it "
                f"by hand (roll production back to {base.id})",
            )
            return
        if request is None:
            # a retry's re-read found the rollout no longer active: an earlier attempt whose
            # answer was lost, most likely. Follow the job to the base; but a rollout that
            # completed meanwhile gets no second, blind action under this intent
            fresh = await self._read(rollouts)
            if fresh is not None and fresh.state is RolloutState.COMPLETE:
                await self._end.failed(
                    decision,
                    rb,
                    key,
                    f"the rolling release of {canary} completed while its abort was retried: "
                    "the canary serves everyone; roll production back by hand",
                )
                return
            bound.warning("abort_answer_lost", canary=canary)
        await self._aborting(decision, incident, wiring, deployer, key, rb, release, baseline)

    def _attempts(
        self, rollouts: RollingReleases, release: RollingRelease
    ) -> Callable[[], Awaitable[RollbackRequest | None]]:
        """One abort attempt per call; every one after the first re-reads the rollout first
        and sends nothing once it is over (None), so an abort is never repeated blindly."""
        assert release.canary is not None
        canary = release.canary.id
        tried = False

        async def attempt() -> RollbackRequest | None:
            nonlocal tried
            if tried:
                fresh = await rollouts.read()
                if fresh is None or not fresh.active_for(canary):
                    return None
            tried = True
            return await rollouts.abort(release)

        return attempt

    async def _aborting(
        self,
        decision: Decision,
        incident: IncidentRecord | None,
        wiring: TargetActions,
        deployer: Deployer,
        key: str,
        rb: RollbackRecord,
        release: RollingRelease,
        baseline: float | None,
    ) -> None:
        """Vercel took the abort: say so, follow it, record it, verify."""
        assert decision.incident is not None
        assert release.canary is not None
        assert release.base is not None
        canary, base, share = release.canary.id, release.base, release.share()
        log.info("rolling_release_abort_requested", canary=canary, to=base.id, share=share)
        rb = await self._end.requested(
            decision,
            rb,
            canary,
            base,
            "abort",
            f"rollback-watchdog aborted the rolling release of {canary} on "
            f"{decision.target} at {share}: production back on {base.id}",
            action=(
                f"Aborting the rolling release of {canary} (it served {share} of users): "
                f"all production traffic goes back to {base.id}"
            ),
            details={"share": share},
        )
        assert wiring.rollouts is not None
        result = await wiring.rollouts.await_abort(release)
        if not result.ok:
            await self._end.failed(decision, rb, key, result.detail)
            return
        log.info("rolling_release_aborted", canary=canary, to=base.id)
        rb = await self._end.took(rb, key, canary, base.id, result.detail, aborted=canary)
        await self._end.verify(
            decision,
            incident,
            wiring,
            deployer,
            rb,
            await with_commit(wiring.rollouts, base),
            baseline,
            method=ABORT_METHOD,
            impact=(
                f"rolling release of {canary} aborted: only the canary's {share} of users "
                "were affected"
            ),
        )

    async def _read(self, rollouts: RollingReleases) -> RollingRelease | None:
        try:
            return await self._retry(rollouts.read)
        except CallError:
            return None

    async def _moved_on(
        self,
        decision: Decision,
        incident: IncidentRecord | None,
        wiring: TargetActions,
        deployer: Deployer,
        key: str,
        bound: Any,
        full: FullRollback,
        release: RollingRelease | None,
    ) -> None:
        """The rollout is no longer active for the blamed canary: do what now fits, and say."""
        assert decision.incident is not None
        canary = decision.deployment or ""
        rb = RollbackRecord(
            key,
            decision.incident,
            decision.target,
            deployer.project,
            self._clock.now(),
            from_deployment=canary,
        )
        if release is not None and release.active_for(None):
            assert release.canary is not None
            # a new rollout of another deployment: aborting it would hit the wrong one
            await self._end.failed(
                decision,
                rb,
                key,
                f"the rolling release moved on to {release.canary.id} before the abort of "
                f"{canary}: not acting on another deployment; on-call decides",
            )
            return
        completed = release is not None and release.state is RolloutState.COMPLETE
        try:
            serving = await self._retry(deployer.serving)
        except CallError as exc:
            await self._end.failed(
                decision,
                rb,
                key,
                f"the rolling release of {canary} is over and production "
                f"could not be read ({exc}): check by hand",
            )
            return
        if completed or serving == canary:
            # the canary serves everyone now: a deployment fully live gets the full rollback
            why = "completed" if completed else "ended with the canary serving production"
            bound.warning("rolling_release_completed_meanwhile", canary=canary)
            again = replace(
                decision,
                scope="production",
                reason=(
                    f"{decision.reason}; the rolling release of {canary} {why} before the "
                    "abort: it is fully live, so production is rolled back instead"
                ),
            )
            await full(again, incident, wiring, deployer, key, bound)
            return
        # someone else aborted it (a human, Vercel's gate): production is back on the base
        state = release.state.value if release is not None else "gone"
        base = serving or (release.base.id if release and release.base else "")
        what = (
            f"the rolling release of {canary} was {state} before the watchdog acted (a human "
            f"or Vercel's gate): production serves {base}; no call made"
        )
        bound.warning("rolling_release_aborted_meanwhile", canary=canary, serving=base)
        now = self._clock.now()
        rb = replace(
            rb,
            to_deployment=base or None,
            state=RollbackState.SUCCEEDED,
            finished_at=now,
            automatic=False,  # nothing was done: it spends no cooldown or budget
            detail=what,
        )
        await self._store.save_rollback(rb)
        await self._end.close(decision, key, ActionStatus.SKIPPED, detail={"moved_on": what})
        self._updates.set_status(decision.incident, "In Progress", what, "verifying")
        if not base:
            return
        self._end.succeeded(decision.target, base, canary, what, aborted=canary)
        assert wiring.rollouts is not None
        target = await with_commit(wiring.rollouts, Deployment(id=base))
        baseline = wiring.error_rate() if wiring.error_rate else None
        await self._end.verify(
            decision,
            incident,
            wiring,
            deployer,
            rb,
            target,
            baseline,
            method="aborted outside the watchdog (a human or Vercel's gate)",
            impact=f"{what}; only the canary's share of users was affected",
        )
