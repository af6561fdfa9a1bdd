"""A healthy canary's next rolling-release stage approved (optional, off by default).

I/O boundary: the target's :class:`~watchdog.actions.base.RollingReleases` (read, approve),
the store's action journal and the chat channel. The engine asks (a decision with
``approve_stage``, no incident; only when the pack's ``flowchart.approve_stages`` is true,
never under the kill switch, a hold or a freeze); this carries it out once:

- the rollout is re-read first. The stage moved on meanwhile (a timed advance, a human, a
  new rollout): recorded as "moved on", never retried;
- the intent is written right before approve-stage; a failed attempt re-reads before any
  retry (a 5xx may have approved it), and a refusal (a 4xx) is not retried: a re-read that
  moved on is what it meant, one that still waits is a failure the channel hears of.

Shadow mode records "would approve" and calls nothing. The engine hears the new stage at
once (a ``RolloutEvent`` from Vercel's answer), so it never asks for the same stage twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from watchdog.actions.base import RollingRelease, StageApproval, rollout_event
from watchdog.actions.endings import EventSink
from watchdog.actions.journal import Journal
from watchdog.actions.slack import render_rollout
from watchdog.actions.updates import IncidentUpdates
from watchdog.clock import Clock
from watchdog.core.model import Decision
from watchdog.retry import Retrier
from watchdog.store.base import ActionJournal, ActionRecord, ActionStatus
from watchdog.transport import CallError

if TYPE_CHECKING:
    from watchdog.actions.rollback import TargetActions

log = structlog.get_logger(__name__)


def approve_key(target: str, canary: str, stage: int) -> str:
    """The journal key of approving ``stage`` of ``canary``'s rollout: once, ever."""
    return f"rollout/{target}/{canary}/stage-{stage}"


def _moved(release: RollingRelease | None, canary: str, stage: int) -> str | None:
    """Why approving ``stage`` of ``canary`` is no longer asked for (None: it still is)."""
    if release is None:
        return "the project has no rolling release any more"
    if not release.active_for(canary):
        other = f" ({release.canary.id})" if release.canary else ""
        return f"the rolling release is {release.state.value}{other}, not active for {canary}"
    if release.active is not None and release.active.index >= stage:
        return f"stage {release.active.index} is already active"
    if release.next is None or release.next.index != stage:
        return f"the next stage is {release.next.index if release.next else 'none'}, not {stage}"
    if not release.awaiting_approval:
        return "the active stage does not wait for an approval (timed, or paused)"
    return None


class StageApprover:
    """Approvals for every target's rolling release; one per dispatcher."""

    def __init__(
        self,
        *,
        store: ActionJournal,
        clock: Clock,
        retrier: Retrier,
        journal: Journal,
        updates: IncidentUpdates,
        shadow: bool,
        emit: EventSink,
        commander: str,
    ) -> None:
        self._store = store
        self._clock = clock
        self._retry = retrier
        self._journal = journal
        self._updates = updates
        self._shadow = shadow
        self._emit = emit
        self._commander = commander

    async def approve(self, decision: Decision, wiring: TargetActions | None) -> None:
        """Approve the next stage the engine asks for, once, if it still waits for it."""
        stage = decision.approve_stage
        assert stage is not None
        canary = decision.deployment or ""
        rollouts = wiring.rollouts if wiring is not None else None
        bound = log.bind(target=decision.target, canary=canary, stage=stage)
        if rollouts is None:
            bound.warning("approve_impossible", why="no rolling-release client for the target")
            return
        key = approve_key(decision.target, canary, stage)
        try:
            release = await self._retry(rollouts.read)
        except CallError as exc:
            await self._approval_failed(decision, key, stage, f"could not read it: {exc}")
            return
        moved = _moved(release, canary, stage)
        if moved is not None:
            await self._moved_stage(decision, key, stage, moved, release)
            return
        assert release is not None
        if self._shadow:
            what = f"would approve stage {stage} of the rolling release of {canary}"
            await self._note(decision, key, ActionStatus.SKIPPED, {"would": what})
            self._chat_stage(decision, key, "🧪 SHADOW MODE: ROLLING RELEASE STAGE", stage, what)
            return
        if not await self._journal.allowed():
            bound.info("approve_fenced")
            return
        record = ActionRecord(
            key=key,
            kind="approve_stage",
            target=decision.target,
            created_at=self._clock.now(),
            detail={"reason": decision.reason, "canary": canary, "stage": stage},
        )
        if not await self._store.record_intent(record):
            bound.info("approve_duplicated", key=key)
            return
        tried = False

        async def attempt() -> StageApproval | str:
            # every attempt after the first re-reads: a lost answer may have approved it
            nonlocal tried
            if tried:
                why = _moved(await rollouts.read(), canary, stage)
                if why is not None:
                    return why
            tried = True
            try:
                return await rollouts.approve(canary, stage)
            except CallError as exc:
                if exc.retryable:
                    raise
                # a refusal: only a re-read that still shows the stage waiting keeps it
                # a failure; one that moved on is what the refusal meant
                why = _moved(await rollouts.read(), canary, stage)
                if why is not None:
                    return why
                raise

        try:
            outcome = await self._retry(attempt)
        except CallError as exc:
            await self._store.record_outcome(
                key, ActionStatus.FAILED, self._clock.now(), error=str(exc)
            )
            await self._approval_failed(decision, key, stage, str(exc))
            return
        if isinstance(outcome, str):
            await self._store.record_outcome(
                key, ActionStatus.SKIPPED, self._clock.now(), detail={"moved_on": outcome}
            )
            await self._moved_stage(decision, key, stage, outcome, None, noted=True)
            return
        await self._approved(decision, key, stage, outcome, release)

    async def _approved(
        self,
        decision: Decision,
        key: str,
        stage: int,
        approval: StageApproval,
        before: RollingRelease,
    ) -> None:
        now = approval.release
        share = now.share() if now is not None else "its next share"
        await self._store.record_outcome(
            key, ActionStatus.SUCCEEDED, self._clock.now(), detail={"stage": stage, "share": share}
        )
        log.info("rolling_release_stage_approved", target=decision.target, stage=stage)
        if now is not None:
            self._emit(rollout_event(decision.target, self._clock.now(), now))
        self._chat_stage(
            decision,
            key,
            "✅ ROLLING RELEASE: STAGE APPROVED",
            stage,
            f"{decision.reason} (was {before.share()}, now {share})",
        )

    async def _moved_stage(
        self,
        decision: Decision,
        key: str,
        stage: int,
        why: str,
        release: RollingRelease | None,
        *,
        noted: bool = False,
    ) -> None:
        """The stage moved on meanwhile: recorded once, never retried, the channel told."""
        log.info("rolling_release_stage_moved_on", target=decision.target, stage=stage, why=why)
        if not noted:
            await self._note(decision, key, ActionStatus.SKIPPED, {"moved_on": why})
        self._chat_stage(
            decision,
            key,
            "⏭️ ROLLING RELEASE: STAGE NOT APPROVED (moved on meanwhile)",
            stage,
            why,
        )

    async def _approval_failed(self, decision: Decision, key: str, stage: int, why: str) -> None:
        log.warning("rolling_release_approve_failed", target=decision.target, why=why)
        self._chat_stage(
            decision,
            key,
            "⚠️ ROLLING RELEASE: STAGE NOT APPROVED",
            stage,
            f"Vercel did not approve it: {why}",
            next_step="the rollout waits at its stage: approve by hand once satisfied",
        )

    async def _note(
        self, decision: Decision, key: str, status: ActionStatus, detail: dict[str, Any]
    ) -> None:
        """Journal an approval that was not made (shadow, moved on): the key is taken."""
        record = ActionRecord(
            key=key,
            kind="approve_stage",
            target=decision.target,
            created_at=self._clock.now(),
            detail={"reason": decision.reason, "stage": decision.approve_stage},
        )
        if await self._store.record_intent(record):
            await self._store.record_outcome(key, status, self._clock.now(), detail=detail)

    def _chat_stage(
        self,
        decision: Decision,
        key: str,
        headline: str,
        stage: int,
        why: str,
        *,
        next_step: str = "watching the canary against its base",
    ) -> None:
        self._updates.chat(
            f"{key}/slack",
            decision.target,
            None,
            render_rollout(
                headline=headline,
                canary=decision.deployment or "the canary",
                stage=str(stage),
                why=why,
                next_step=next_step,
                commander=self._commander,
            ),
        )
