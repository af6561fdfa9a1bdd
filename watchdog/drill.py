"""The procedure's quarterly rollback drill, automated against a STAGING Vercel project.

The drill does what the on-call would do in a real incident (Method 1): note what production
serves, pick the previous eligible deployment, roll back to it, wait for Vercel's job and
verify. Each step is timed against the procedure's target (under 3 minutes). Then it puts
staging back the way it found it and reports.

I/O boundary: :func:`run_drill` calls Vercel through the deployer and the app through the
verifier. Time comes only from the injected clock. :func:`report_markdown` and
:func:`report_json` are pure.

Staging must never be left half-way without anyone knowing. If the rollback does not take,
the drill does not pile a restore on top of an unknown state: it reports what staging serves
and how to put it back. If the restore fails, the report opens with a warning and the exact
request that fixes it. Restoring uses *rollback*, not promote: the original deployment
already served production, and Vercel only promotes staged builds (EXTERNAL-APIS §1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import structlog

from watchdog.actions.base import Deployment, TargetChoice
from watchdog.actions.vercel import VercelDeployer
from watchdog.actions.verify import Verifier
from watchdog.clock import Clock
from watchdog.drill_report import (
    CHOOSE,
    FIND,
    JOB,
    REQUEST,
    RESTORE,
    RESTORE_JOB,
    TIMED,
    VERIFY,
    VERIFY_RESTORE,
    DrillExit,
    DrillReport,
    DrillStep,
    drill_record,
    report_json,
    report_markdown,
)
from watchdog.retry import Retrier, RetryPolicy
from watchdog.store.base import DrillLog
from watchdog.transport import CallError

__all__ = [
    "DrillExit",
    "DrillReport",
    "DrillStep",
    "drill_record",
    "report_json",
    "report_markdown",
    "run_drill",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass
class _Progress:
    """Where the drill has got to; read by the report and by the cancellation log."""

    original: str | None = None
    rollback_target: str | None = None
    restored: bool | None = None
    serving_at_end: str | None = None
    notes: list[str] = field(default_factory=list)


class _Steps:
    """Runs and times steps; a step that raises becomes a failed step, never a lost report."""

    def __init__(self, clock: Clock, policy: RetryPolicy, bound: Any) -> None:
        self.clock = clock
        self.policy = policy
        self.log = bound
        self.done: list[DrillStep] = []
        self.origin = clock.monotonic()
        self.timed_until = self.origin

    async def retried(self, call: Callable[[], Awaitable[T]]) -> T:
        """The deployer makes one attempt per call; the drill retries what retrying can fix."""

        return await Retrier(self.policy, self.clock)(
            call,
            on_retry=lambda exc, wait: self.log.info(
                "drill_step_retried", error=str(exc), wait_s=wait
            ),
        )

    async def run(
        self,
        name: str,
        call: Callable[[], Awaitable[T]],
        judge: Callable[[T], tuple[bool, str]],
    ) -> T | None:
        started_at = self.clock.now()
        started = self.clock.monotonic()
        result: T | None = None
        try:
            result = await call()
        except CallError as exc:
            ok, detail = False, str(exc)
        except Exception as exc:
            # a bug must still end in a report that says where staging was left
            self.log.exception("drill_step_crashed", step=name)
            ok, detail = False, f"unexpected error: {type(exc).__name__}: {exc}"
        else:
            ok, detail = judge(result)
        ended = self.clock.monotonic()
        if name in TIMED:
            self.timed_until = ended
        self.done.append(DrillStep(name, started_at, ended - started, ok, detail))
        self.log.info("drill_step_finished", step=name, ok=ok, duration_s=round(ended - started, 3))
        return result if ok else None


async def run_drill(
    deployer: VercelDeployer,
    verifier: Verifier | None,
    clock: Clock,
    *,
    target_name: str,
    store: DrillLog | None = None,
    retry: RetryPolicy | None = None,
) -> DrillReport:
    """Roll the staging project back to its previous deployment, verify, restore, report.

    Never raises for a failed step: the report says what failed and where staging stands.
    Cancellation is logged with what to check and then propagates.
    """
    bound = log.bind(target=target_name, project=deployer.project)
    started_at = clock.now()
    steps = _Steps(clock, retry or RetryPolicy(), bound)
    progress = _Progress()

    bound.info("drill_started")
    try:
        await _drill(deployer, verifier, steps, progress)
    except asyncio.CancelledError:
        bound.error(
            "drill_interrupted",
            original=progress.original,
            rollback_target=progress.rollback_target,
            fix=_manual_restore(deployer, progress.original) if progress.original else "",
        )
        raise
    report = DrillReport(
        target=target_name,
        project=deployer.project,
        started_at=started_at,
        finished_at=clock.now(),
        steps=tuple(steps.done),
        total_s=clock.monotonic() - steps.origin,
        rollback_s=steps.timed_until - steps.origin,
        original=progress.original,
        rollback_target=progress.rollback_target,
        restored=progress.restored,
        serving_at_end=progress.serving_at_end,
        notes=tuple(progress.notes),
    )
    if report.staging_left_changed:
        bound.error("drill_left_staging_changed", serving=report.serving_at_end)
    bound.info("drill_finished", verdict=report.verdict, rollback_s=round(report.rollback_s, 3))
    if store is not None:
        try:
            await store.save_drill(drill_record(report))
        except Exception as exc:
            bound.error("drill_record_failed", error=str(exc))
            report = replace(
                report,
                notes=(*report.notes, f"The drill could not be recorded in the store: {exc}"),
            )
    return report


async def _drill(
    deployer: VercelDeployer,
    verifier: Verifier | None,
    steps: _Steps,
    progress: _Progress,
) -> None:
    notes = progress.notes
    found = await steps.run(
        FIND,
        lambda: steps.retried(deployer.current_production),
        lambda dep: (True, f"production serves {dep.id}"),
    )
    if found is None:
        notes.append("Nothing was changed: the drill stopped before any rollback.")
        return
    original: Deployment = found
    progress.original = original.id

    async def choose() -> TargetChoice:
        candidates = await steps.retried(deployer.list_candidates)
        # a drill exercises the plain path: no known-bad list, no "seen healthy" preference
        return deployer.policy.choose(original, candidates, frozenset(), frozenset())

    choice = await steps.run(
        CHOOSE,
        choose,
        lambda c: (
            (True, c.reason)
            if c.target is not None
            else (False, f"no rollback target ({c.refused_by}): {c.reason}")
        ),
    )
    if choice is None or choice.target is None:
        notes.append(
            "Nothing was changed: staging needs at least two READY deployments that served "
            "production (deploy a baseline, then the 'problematic' version)."
        )
        progress.serving_at_end = original.id
        return
    target: Deployment = choice.target
    progress.rollback_target = target.id

    request = await steps.run(
        REQUEST,
        lambda: steps.retried(lambda: deployer.request_rollback(target)),
        lambda r: (
            (False, "the deployer is in shadow mode: a drill needs a real rollback")
            if r.shadow
            else (True, r.detail)
        ),
    )
    if request is None:
        serving = await _serving(deployer)
        notes.append(
            f"The rollback request failed, so the drill did not try to restore. "
            f"{_where(serving, original.id)}"
        )
        if serving not in (None, original.id):
            notes.append(_manual_restore(deployer, original.id))
        progress.serving_at_end = serving
        return

    job = await steps.run(
        JOB,
        lambda: deployer.await_rollback(target),
        lambda r: (r.ok, f"{r.detail} (job {r.job_status})"),
    )
    if job is None:
        serving = await _serving(deployer)
        notes.append(
            f"The rollback to {target.id} did not take, so the drill did not try to restore "
            f"(a Vercel job may still be running: check the project's lastAliasRequest before "
            f"acting). {_where(serving, original.id)}"
        )
        if serving != original.id:
            notes.append(_manual_restore(deployer, original.id))
        progress.serving_at_end = serving
        return

    if verifier is not None:
        await steps.run(
            VERIFY,
            lambda: verifier.verify(deployer, target),
            lambda v: (v.ok, v.detail),
        )
    else:
        notes.append(
            "No verifier configured: only Vercel's alias was checked, not health, version or "
            "error rate."
        )

    # restore even after a failed verification: staging must go back to what it served
    restore = await steps.run(
        RESTORE,
        lambda: steps.retried(lambda: deployer.request_rollback(original)),
        lambda r: (not r.shadow, r.detail),
    )
    restored = False
    if restore is not None:
        back = await steps.run(
            RESTORE_JOB,
            lambda: deployer.await_rollback(original),
            lambda r: (r.ok, f"{r.detail} (job {r.job_status})"),
        )
        restored = back is not None
        if restored and verifier is not None:
            await steps.run(
                VERIFY_RESTORE,
                lambda: verifier.verify(deployer, original),
                lambda v: (v.ok, v.detail),
            )
    progress.restored = restored
    progress.serving_at_end = serving = await _serving(deployer)
    if not restored:
        steps.log.error("drill_restore_failed", original=original.id, serving=serving)
        notes.append(
            f"STAGING IS NOT RESTORED: the drill rolled {deployer.project} back to {target.id} "
            f"and could not put {original.id} back. {_where(serving, original.id)}"
        )
        notes.append(_manual_restore(deployer, original.id))
    else:
        notes.append(await _auto_assign_note(deployer, original.id))


async def _serving(deployer: VercelDeployer) -> str | None:
    """Best effort: what staging's production domain serves now, for the report's last word."""
    try:
        return await deployer.serving()
    except CallError as exc:
        log.warning("drill_serving_lookup_failed", error=str(exc))
        return None


def _where(serving: str | None, original: str) -> str:
    if serving is None:
        return f"What staging serves now is unknown; it served {original} before the drill."
    if serving == original:
        return f"Staging serves {serving}, as before the drill."
    return f"Staging serves {serving}; it served {original} before the drill."


def _manual_restore(deployer: VercelDeployer, original: str) -> str:
    cfg = deployer.config
    team = f"?teamId={cfg.team_id}" if cfg.team_id else ""
    return (
        f"To restore by hand: in the Vercel dashboard open {cfg.project_id} → Deployments → "
        f"{original} → Instant Rollback, or POST "
        f"{cfg.base_url}/v1/projects/{cfg.project_id}/rollback/{original}{team} with body {{}} "
        f"and then check that {cfg.production_domain} serves {original}."
    )


async def _auto_assign_note(deployer: VercelDeployer, original: str) -> str:
    """After a rollback Vercel stops auto-assigning production; say so and how to undo it."""
    state = "may be off (Vercel does not reliably report it)"
    try:
        project = await deployer.get_project()
    except CallError:
        project = {}
    if project.get("autoAssignCustomDomains") is False:
        state = "is off (the project reports autoAssignCustomDomains=false)"
    return (
        f"Staging was restored with a rollback (Vercel promotes only staged builds, and "
        f"{original} had served production), so auto-assignment of production domains "
        f"{state}. {deployer.undo_hint()}"
    )


# --------------------------------------------------------------------------- reporting
