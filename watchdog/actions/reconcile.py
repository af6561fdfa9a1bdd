"""Restart recovery: settle the rollbacks a crash left in INTENT or REQUESTED.

I/O boundary: the deployer's read-only look-ups (what production serves, the latest job, and
following a job already running) and the store's rollback records and journal. Nothing here
asks for a rollback. Re-issuing *blindly* is forbidden (DESIGN §5 "Write-ahead"); what this
module does instead is prove, from what Vercel shows, that a rollback never reached it: such a
record is ABANDONED, and the incident may re-issue it once, under :func:`reissue_key`, if the
engine (with fresh data and every guard rail) still wants it. A re-issue that is abandoned
again is FAILED: a third try would be blind persistence, so on-call takes over.

Settling is split in two so that a new leader never blocks on Vercel's job (minutes) before
it renews its lease: :func:`classify` answers at once from two look-ups, :func:`follow` waits
for a job already running on Vercel's side and runs in the background.

A rolling release's abort is a rollback to the rollout's base, which the production domain
may well have served all along (Vercel splits traffic at the edge): "production serves the
target" proves nothing while the rollout is still active for the record's from-deployment, so
the rollout is read as well and only its end (or a job seen) settles such a record.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from watchdog.actions.base import Deployer, Deployment, RollingReleases
from watchdog.clock import Clock
from watchdog.store.base import ActionJournal, ActionStatus, RollbackRecord, RollbackState
from watchdog.transport import CallError

log = structlog.get_logger(__name__)

#: records in these states mean "a rollback may be running on Vercel right now"
PENDING_STATES = (RollbackState.INTENT, RollbackState.REQUESTED)

#: our clock and Vercel's may disagree by this much when matching a job to an intent
_JOB_SKEW = timedelta(minutes=2)

#: the suffix of the one re-issue an abandoned rollback may have
REISSUE = "#reissue"


def rollback_key(incident: str, chapter: int = 1, deployment: str | None = None) -> str:
    """The journal key of an incident's rollback: one per chapter of the incident, ever.

    A deployment that went live during the incident starts a later chapter, keyed by that
    deployment, so the key survives a restart (which cannot know the chapter's number).
    """
    if chapter <= 1 or not deployment:
        return f"{incident}/rollback"
    return f"{incident}/rollback@{deployment}"


def reissue_key(key: str) -> str:
    """The key of the one re-issue of the abandoned rollback ``key``."""
    return key if key.endswith(REISSUE) else f"{key}{REISSUE}"


def is_rollback_key(key: str, incident: str) -> bool:
    first = rollback_key(incident)
    return key == first or key.startswith((f"{first}@", f"{first}{REISSUE}"))


@dataclass(frozen=True, slots=True)
class Classified:
    """What :func:`classify` made of the pending records."""

    #: settled now: SUCCEEDED (production serves the target), ABANDONED or FAILED
    settled: list[RollbackRecord]
    #: Vercel has the job: follow it to its end (:func:`follow`)
    running: list[RollbackRecord]
    #: Vercel could not be read: still pending, to classify again later
    postponed: list[RollbackRecord]


async def classify(
    store: ActionJournal,
    deployer: Deployer,
    clock: Clock,
    *,
    skip: Container[str] = (),
    rollouts: RollingReleases | None = None,
) -> Classified:
    """Settle this project's pending rollbacks from two look-ups; never waits for a job.

    A record is ABANDONED only on proof: production does not serve its target (or a rolling
    release of its from-deployment is still active) *and* the project's latest job is
    readable and is not a job to that target since the intent. When Vercel cannot be read the
    record is postponed, never guessed at.
    """
    out = Classified([], [], [])
    for rb in await store.list_rollbacks():
        if rb.project != deployer.project or rb.state not in PENDING_STATES or rb.id in skip:
            continue
        bound = log.bind(target=rb.target, incident=rb.incident, rollback=rb.id)
        try:
            serving = await deployer.serving()
            job_seen = rb.state is RollbackState.REQUESTED or await _accepted(deployer, rb)
            rolling = await _still_rolling(rollouts, rb)
        except CallError as exc:
            bound.warning("reconcile_postponed", error=str(exc))
            out.postponed.append(rb)
            continue
        now = clock.now()
        if rb.to_deployment and serving == rb.to_deployment and not rolling:
            new = replace(
                rb,
                state=RollbackState.SUCCEEDED,
                finished_at=now,
                detail=f"reconciled after restart: production serves {serving}",
            )
        elif rb.to_deployment and job_seen:
            # REQUESTED, or a crash right after Vercel accepted the POST but before REQUESTED
            # was saved: the job runs on Vercel's side, so follow it rather than fail it
            out.running.append(rb)
            continue
        elif rb.id.endswith(REISSUE):
            new = replace(
                rb,
                state=RollbackState.FAILED,
                finished_at=now,
                detail=(
                    f"the watchdog stopped twice before Vercel heard of the rollback "
                    f"(production serves {serving}); not re-issued again: roll back by hand"
                ),
            )
        else:
            new = replace(
                rb,
                state=RollbackState.ABANDONED,
                finished_at=now,
                detail=(
                    f"the watchdog stopped before Vercel heard of the rollback (production "
                    f"serves {serving}, no job to {rb.to_deployment}); re-issued once if the "
                    "incident still warrants it"
                ),
            )
        await _save(store, new, now)
        bound.info("rollback_reconciled", state=str(new.state), serving=serving)
        out.settled.append(new)
    return out


async def follow(
    store: ActionJournal, deployer: Deployer, clock: Clock, rb: RollbackRecord
) -> RollbackRecord:
    """Wait for the job Vercel is running for ``rb`` (bounded by the deployer) and record it."""
    assert rb.to_deployment is not None
    result = await deployer.await_rollback(Deployment(id=rb.to_deployment))
    new = replace(
        rb,
        state=RollbackState.SUCCEEDED if result.ok else RollbackState.FAILED,
        finished_at=clock.now(),
        detail=f"reconciled after restart: {result.detail}",
    )
    await _save(store, new, clock.now())
    log.info("rollback_reconciled", target=rb.target, rollback=rb.id, state=str(new.state))
    return new


async def _save(store: ActionJournal, new: RollbackRecord, now: datetime) -> None:
    """Save the settled record and close its journal entry (when it has one)."""
    await store.save_rollback(new)
    ok = new.state is RollbackState.SUCCEEDED
    journaled = {a.key for a in await store.list_actions(incident=new.incident, limit=1000)}
    if new.id in journaled:
        await store.record_outcome(
            new.id,
            ActionStatus.SUCCEEDED if ok else ActionStatus.FAILED,
            now,
            error=None if ok else new.detail,
            detail={"abandoned": True} if new.state is RollbackState.ABANDONED else None,
        )


async def _still_rolling(rollouts: RollingReleases | None, rb: RollbackRecord) -> bool:
    """Is a rolling release of the record's from-deployment still active (an abort that has
    not landed)? Raises ``CallError`` when it cannot be read."""
    if rollouts is None or not rb.from_deployment:
        return False
    release = await rollouts.read()
    return release is not None and release.active_for(rb.from_deployment)


async def _accepted(deployer: Deployer, rb: RollbackRecord) -> bool:
    """Did Vercel start a job to ``rb``'s target after ``rb``'s intent was recorded?

    Raises ``CallError`` when the job cannot be read: "unreadable" is not "no job".
    """
    job = await deployer.last_job()
    if job is None or job.to_deployment != rb.to_deployment or job.requested_at is None:
        return False
    return job.requested_at >= rb.requested_at - _JOB_SKEW


async def settle_orphans(
    store: ActionJournal,
    clock: Clock,
    incident: str,
    project_of: Callable[[str], str | None],
) -> list[RollbackRecord]:
    """Rollbacks journaled but never recorded: the previous run died before asking Vercel.

    The intent and the record are written together just before the deployer call, so an
    intent without a record never reached Vercel: it is ABANDONED (re-issued once if still
    warranted), or FAILED if it was the re-issue already. Without this the journal key would
    stay taken and the rollback be skipped as a duplicate: nothing rolled back, nobody told.
    """
    recorded = {r.id for r in await store.list_rollbacks()}
    settled: list[RollbackRecord] = []
    for action in await store.list_actions(incident=incident, limit=1000):
        if (
            action.kind != "rollback"
            or action.status is not ActionStatus.INTENT
            or not is_rollback_key(action.key, incident)
            or action.key in recorded
        ):
            continue
        project = project_of(action.target) or str(action.detail.get("project", ""))
        again = action.key.endswith(REISSUE)
        detail = (
            "the watchdog stopped twice before asking the deployer; not re-issued again"
            if again
            else "the watchdog stopped before asking the deployer; re-issued once if the "
            "incident still warrants it"
        )
        rb = RollbackRecord(
            id=action.key,
            incident=incident,
            target=action.target,
            project=project,
            requested_at=action.created_at,
            state=RollbackState.FAILED if again else RollbackState.ABANDONED,
            finished_at=clock.now(),
            detail=detail,
        )
        await _save(store, rb, clock.now())
        log.warning("rollback_orphaned", incident=incident, rollback=action.key, detail=detail)
        settled.append(rb)
    return settled
