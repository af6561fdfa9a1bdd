"""The drill's report: its steps, the verdict against the procedure's target, and how it reads.

Pure: built from what :func:`watchdog.drill.run_drill` observed, rendered as Markdown for
people and JSON for machines, and turned into the stored :class:`DrillRecord`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from watchdog.store.base import DrillRecord

#: the procedure's target time for Method 1 (Vercel): under 3 minutes
TARGET_S: Final = 180.0
#: a step slower than this is worth talking about in the debrief
SLOW_STEP_S: Final = 60.0
METHOD: Final = "Method 1: Vercel Instant Rollback"

FIND = "find production"
CHOOSE = "choose target"
REQUEST = "request rollback"
JOB = "rollback job"
VERIFY = "verify rollback"
RESTORE = "request restore"
RESTORE_JOB = "restore job"
VERIFY_RESTORE = "verify restore"
#: the steps the procedure's timer covers: from noticing what is live to a verified rollback
TIMED: Final = (FIND, CHOOSE, REQUEST, JOB, VERIFY)

#: what usually makes each step slow, for the debrief's "what was slow or confusing"
_HINTS: Final = {
    FIND: "reading the project and the production alias from Vercel was slow: check Vercel "
    "API latency and rate limits (X-RateLimit-Remaining)",
    CHOOSE: "listing deployments was slow: many pages of deployments, or rate limits; "
    "consider a lower max_pages",
    REQUEST: "Vercel was slow to accept the rollback: retries after 5xx/429, or a 409 because "
    "another rollback or promote was running on the project",
    JOB: "Vercel's rollback job stayed pending/in-progress a long time, or the production "
    "alias was slow to follow it",
    VERIFY: "verification took long: health, version or error rate were slow to reflect the "
    "target (a cached /api/version? a long verify poll interval?)",
    RESTORE: "Vercel was slow to accept the restore (retries, rate limits or a 409)",
    RESTORE_JOB: "Vercel's restore job stayed pending/in-progress a long time",
    VERIFY_RESTORE: "verifying the restore took long: the app was slow to report the original",
}


class DrillExit(enum.IntEnum):
    """``watchdog drill``'s exit status, for the cron job or CI step that runs the drill.

    Distinct from argparse's 2 (a usage error), so a wrapper can tell "the drill failed"
    from "the drill was called wrong", and "staging needs a human now" from both.
    """

    #: rolled back, verified and restored, under the procedure's target time
    PASSED = 0
    #: the drill did not run: bad config, a target not marked staging, no deployer (the
    #: exit status every ``watchdog`` command gives a user error)
    CANNOT_RUN = 1
    #: the drill ran and failed (slow, a check failed, the rollback did not take, it could not
    #: start); staging serves what it served before
    FAILED = 3
    #: staging may not serve what it served before the drill: restore it by hand now
    STAGING_CHANGED = 4


@dataclass(frozen=True, slots=True)
class DrillStep:
    name: str
    started: datetime
    duration_s: float
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class SlowStep:
    """A debrief item: a step that failed or took longer than :data:`SLOW_STEP_S`."""

    name: str
    duration_s: float
    note: str


@dataclass(frozen=True, slots=True)
class DrillReport:
    """What the drill did, how long each step took, and where it left staging.

    ``rollback_target`` is the deployment chosen (whether or not the rollback took);
    ``restored`` is None when no restore was attempted (the rollback never took).
    ``rollback_s`` is the procedure's timer: from reading production to a verified rollback.
    """

    target: str
    project: str
    started_at: datetime
    finished_at: datetime
    steps: tuple[DrillStep, ...]
    total_s: float
    rollback_s: float
    original: str | None = None
    rollback_target: str | None = None
    restored: bool | None = None
    serving_at_end: str | None = None
    notes: tuple[str, ...] = ()
    target_s: float = TARGET_S

    @property
    def all_ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def rolled_back(self) -> bool:
        return any(s.name == JOB and s.ok for s in self.steps)

    @property
    def within_target(self) -> bool:
        return self.rolled_back and self.rollback_s < self.target_s

    @property
    def passed(self) -> bool:
        return self.all_ok and self.within_target

    @property
    def staging_left_changed(self) -> bool:
        """True when staging may not serve what it served before the drill: a human must look."""
        if self.restored is False:
            return True
        return self.original is not None and self.serving_at_end not in (None, self.original)

    @property
    def slow_steps(self) -> tuple[SlowStep, ...]:
        slow: list[SlowStep] = []
        for step in self.steps:
            if not step.ok:
                slow.append(SlowStep(step.name, step.duration_s, f"failed: {step.detail}"))
            elif step.duration_s > SLOW_STEP_S:
                slow.append(
                    SlowStep(
                        step.name,
                        step.duration_s,
                        f"took {step.duration_s:.0f} s (over {SLOW_STEP_S:.0f} s): "
                        f"{_HINTS.get(step.name, 'no hint for this step')}",
                    )
                )
        return tuple(slow)

    @property
    def exit_code(self) -> DrillExit:
        """The most urgent thing the report says, as ``watchdog drill``'s exit status."""
        if self.staging_left_changed:
            return DrillExit.STAGING_CHANGED
        return DrillExit.PASSED if self.passed else DrillExit.FAILED

    @property
    def verdict(self) -> str:
        if self.staging_left_changed:
            return "FAILED: STAGING NOT RESTORED"
        if self.passed:
            return "PASSED"
        if not any(s.name == REQUEST for s in self.steps):
            return "FAILED: the drill could not start (nothing was changed)"
        if not self.rolled_back:
            return "FAILED: the rollback did not take"
        if not self.all_ok:
            return "FAILED: a step failed"
        return "FAILED: slower than the target"


# --------------------------------------------------------------------------- running


def drill_record(report: DrillReport) -> DrillRecord:
    """The store's row: ``succeeded`` = rolled back, verified and restored; ``duration_s`` is
    the procedure's timer (to a verified rollback), the number compared with the 3 minutes."""
    return DrillRecord(
        id=f"drill-{report.target}-{report.started_at.strftime('%Y%m%dT%H%M%SZ')}",
        target=report.target,
        started_at=report.started_at,
        finished_at=report.finished_at,
        succeeded=report.all_ok,
        duration_s=report.rollback_s,
        report=report_json(report),
    )


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def report_json(report: DrillReport) -> dict[str, Any]:
    return {
        "target": report.target,
        "project": report.project,
        "method": METHOD,
        "started_at": _iso(report.started_at),
        "finished_at": _iso(report.finished_at),
        "verdict": report.verdict,
        "passed": report.passed,
        "within_target": report.within_target,
        "rollback_s": round(report.rollback_s, 3),
        "target_s": report.target_s,
        "total_s": round(report.total_s, 3),
        "original": report.original,
        "rollback_target": report.rollback_target,
        "restored": report.restored,
        "serving_at_end": report.serving_at_end,
        "staging_left_changed": report.staging_left_changed,
        "steps": [
            {
                "name": s.name,
                "started": _iso(s.started),
                "duration_s": round(s.duration_s, 3),
                "ok": s.ok,
                "detail": s.detail,
            }
            for s in report.steps
        ],
        "slow_steps": [
            {"name": s.name, "duration_s": round(s.duration_s, 3), "note": s.note}
            for s in report.slow_steps
        ],
        "notes": list(report.notes),
    }


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def report_markdown(report: DrillReport) -> str:
    out: list[str] = [f"# Rollback drill: {report.target}: {report.verdict}", ""]
    if report.staging_left_changed:
        out += [
            "> **⚠️ STAGING IS NOT AS THE DRILL FOUND IT.** It served "
            f"`{report.original}` before the drill and now serves "
            f"`{report.serving_at_end or 'an unknown deployment'}`. See the notes below for "
            "how to restore it.",
            "",
        ]
    timer = (
        f"{report.rollback_s:.1f} s (target < {report.target_s:.0f} s)"
        if report.rolled_back
        else f"not measured: the rollback did not take (target < {report.target_s:.0f} s)"
    )
    restored = {None: "not attempted", True: "yes", False: "**NO**"}[report.restored]
    out += [
        f"- **Project**: `{report.project}`",
        f"- **Method**: {METHOD}",
        f"- **Started**: {_iso(report.started_at)}",
        f"- **Finished**: {_iso(report.finished_at)}",
        f"- **Original production deployment**: `{report.original or 'unknown'}`",
        f"- **Rollback target**: `{report.rollback_target or 'none'}`",
        f"- **Rollback + verify**: {timer}",
        f"- **Restored**: {restored}",
        f"- **Serving at the end**: `{report.serving_at_end or 'unknown'}`",
        f"- **Total drill time**: {report.total_s:.1f} s",
        "",
        "## Steps",
        "",
        "| Step | Started (UTC) | Duration | Result | Detail |",
        "|------|---------------|----------|--------|--------|",
    ]
    out += [
        f"| {s.name} | {s.started.astimezone(UTC).strftime('%H:%M:%S')} | "
        f"{s.duration_s:.1f} s | {'ok' if s.ok else '**FAILED**'} | {_cell(s.detail)} |"
        for s in report.steps
    ]
    out += ["", "## What was slow or confusing", ""]
    slow = report.slow_steps
    if slow:
        out += [f"- **{s.name}**: {s.note}" for s in slow]
    else:
        out.append(f"- Nothing: every step finished within {SLOW_STEP_S:.0f} s.")
    if report.rolled_back and not report.within_target:
        out.append(
            f"- The rollback took {report.rollback_s:.0f} s, over the procedure's "
            f"{report.target_s:.0f} s target for {METHOD}."
        )
    if report.notes:
        out += ["", "## Notes", ""]
        out += [f"- {n}" for n in report.notes]
    out += [
        "",
        "## Debrief",
        "",
        "- What went well?",
        "- What was confusing?",
        "- Update procedures if needed",
        "- Set target time improvement",
        "",
    ]
    return "\n".join(out)


__all__ = [
    "SLOW_STEP_S",
    "TARGET_S",
    "DrillReport",
    "DrillStep",
    "SlowStep",
    "drill_record",
    "report_json",
    "report_markdown",
]
