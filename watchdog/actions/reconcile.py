"""Restart recovery: settle the rollbacks a crash left in INTENT or REQUESTED.

I/O boundary: the deployer's read-only look-ups (what production serves, the latest job, and
following a job already running) and the store's rollback records. Nothing here asks for a
rollback: re-issuing blindly is forbidden (DESIGN §5 "Write-ahead").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import structlog

from watchdog.actions.base import Deployer, Deployment
from watchdog.clock import Clock
from watchdog.store.base import ActionJournal, ActionStatus, RollbackRecord, RollbackState
from watchdog.transport import CallError

log = structlog.get_logger(__name__)

#: records in these states mean "a rollback may be running on Vercel right now"
PENDING_STATES = (RollbackState.INTENT, RollbackState.REQUESTED)

#: our clock and Vercel's may disagree by this much when matching a job to an intent
_JOB_SKEW = timedelta(minutes=2)


def rollback_key(incident: str, chapter: int = 1, deployment: str | None = None) -> str:
    """The journal key of an incident's rollback: one per chapter of the incident, ever.

    A deployment that went live during the incident starts a later chapter, keyed by that
    deployment, so the key survives a restart (which cannot know the chapter's number).
    """
    if chapter <= 1 or not deployment:
        return f"{incident}/rollback"
    return f"{incident}/rollback@{deployment}"


async def reconcile(store: ActionJournal, deployer: Deployer, clock: Clock) -> list[RollbackRecord]:
    """Settle this project's rollbacks left in INTENT/REQUESTED by a crash.

    Never re-issues: production serving the target means the rollback happened (SUCCEEDED);
    a REQUESTED one still running is followed to its end; anything else is FAILED, and the
    engine decides afresh with current data.
    """
    settled: list[RollbackRecord] = []
    for rb in await store.list_rollbacks():
        if rb.project != deployer.project or rb.state not in PENDING_STATES:
            continue
        bound = log.bind(target=rb.target, incident=rb.incident, rollback=rb.id)
        try:
            serving = await deployer.serving()
        except CallError as exc:
            bound.warning("reconcile_postponed", error=str(exc))
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


async def _accepted(deployer: Deployer, rb: RollbackRecord) -> bool:
    """Did Vercel start a job to ``rb``'s target after ``rb``'s intent was recorded?"""
    try:
        job = await deployer.last_job()
    except CallError:
        return False
    if job is None or job.to_deployment != rb.to_deployment or job.requested_at is None:
        return False
    return job.requested_at >= rb.requested_at - _JOB_SKEW


async def settle_orphan(store: ActionJournal, clock: Clock, incident: str) -> bool:
    """A rollback journaled but never recorded: the previous run died before asking Vercel.

    The journal key is taken, so the rollback runner would skip the rollback as a duplicate while
    the engine believed it in flight: nothing rolled back and nobody told. Settle it as
    failed instead, so the engine pages P0 "rollback did not take" (never re-issued
    blindly, as for any rollback a crash interrupted).
    """
    first = rollback_key(incident)
    for action in await store.list_actions(incident=incident, limit=1000):
        chapter = action.key == first or action.key.startswith(f"{first}@")
        if chapter and action.status is ActionStatus.INTENT:
            detail = "the watchdog stopped before asking the deployer; not re-issued"
            await store.record_outcome(action.key, ActionStatus.FAILED, clock.now(), error=detail)
            log.warning("rollback_orphaned", incident=incident, detail=detail)
            return True
    return False
