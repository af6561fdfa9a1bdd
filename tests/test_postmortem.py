"""The post-mortem draft: the procedure's template, filled from records and nothing else."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from watchdog.postmortem import render_postmortem
from watchdog.store.base import (
    ActionRecord,
    ActionStatus,
    DecisionRecord,
    IncidentRecord,
    RollbackRecord,
    RollbackState,
)


def t(hour: int, minute: int, second: int = 0, day: int = 20) -> datetime:
    return datetime(2026, 8, day, hour, minute, second, tzinfo=UTC)


def observations(error_rate: float | None, *, refused_by: str | None = None) -> dict[str, Any]:
    """A decision's data as the runtime stores it (``asdict`` of each Observation)."""
    return {
        "observations": [
            {
                "rule": "error-rate-critical",
                "signal": "error_rate",
                "value": error_rate,
                "op": ">",
                "threshold": 0.05,
                "firing": True,
                "unknown": None,
                "since": t(10, 1),
            },
            {
                "rule": "latency-high",
                "signal": "p95_latency_ms",
                "value": 800.0,
                "op": ">",
                "threshold": 3000.0,
                "firing": False,
                "unknown": None,
                "since": None,
            },
        ],
        "refused_by": refused_by,
        "deployment": "dpl_c",
    }


def decision(at: datetime, data: dict[str, Any], *, incident: str = "inc-1") -> DecisionRecord:
    return DecisionRecord(
        target="web",
        at=at,
        action="rollback",
        severity="P0",
        rule="error-rate-critical",
        reason="error_rate 7.2% > 5% for 2m",
        path=("issue", "critical", "rollback"),
        incident=incident,
        data=data,
    )


INCIDENT = IncidentRecord(
    id="inc-1",
    target="web",
    opened_at=t(10, 3),
    severity="P0",
    rule="error-rate-critical",
    reason="error_rate 7.2% > 5% for 2m",
    dedup_key="watchdog/web/inc-1",
    deployment="dpl_c",
    resolved_at=t(10, 40),
    first_detected_at=t(10, 1),
)
DECISIONS = [
    decision(t(10, 4), observations(0.12)),
    decision(t(10, 3), observations(0.072)),
    # another incident's decision: its (worse) value must not leak into this post-mortem
    decision(t(9, 0), observations(0.9), incident="inc-0"),
]
PAGED = ActionRecord(
    key="inc-1/page/rollback/P0",
    kind="page",
    target="web",
    created_at=t(10, 3),
    status=ActionStatus.SUCCEEDED,
    incident="inc-1",
    finished_at=t(10, 3, 5),
)
ROLLBACK = RollbackRecord(
    id="inc-1/rollback",
    incident="inc-1",
    target="web",
    project="prj_1",
    requested_at=t(10, 3, 10),
    state=RollbackState.VERIFIED,
    from_deployment="dpl_c",
    to_deployment="dpl_b",
    finished_at=t(10, 4, 20),
    verified_at=t(10, 6),
    detail="www.example.com serves dpl_b",
)

HUMAN_SECTIONS = """\
## Root Cause

[Detailed technical explanation of what went wrong]

## Contributing Factors

- [Factor 1]
- [Factor 2]
- [Factor 3]
"""

REVIEW_SECTIONS = """\
## What Went Well

- [Thing 1]
- [Thing 2]

## What Didn't Go Well

- [Thing 1]
- [Thing 2]

## Action Items

| Action | Owner | Due Date | Status |
|--------|-------|----------|--------|
| [Action 1] | [Name] | [Date] | [ ] |
| [Action 2] | [Name] | [Date] | [ ] |
| [Action 3] | [Name] | [Date] | [ ] |

## Lessons Learned

- [Lesson 1]
- [Lesson 2]
- [Lesson 3]

## Prevention

How we'll prevent this in the future:

1. [Prevention measure 1]
2. [Prevention measure 2]
3. [Prevention measure 3]

---
"""

RESOLUTION_PROMPT = "[How the issue was resolved - rollback method, fix implemented, etc.]"

FULL = f"""\
# Incident Post-Mortem: web: error-rate-critical after deployment dpl_c

**Date**: 2026-08-20 (incident `inc-1`, opened 2026-08-20T10:03:00Z)
**Duration**: 39 min 00 s (10:01 – 10:40 UTC)
**Severity**: P0
**Incident Commander**: [Name]

## Summary

The watchdog opened a P0 incident on web at 10:03 UTC (rule `error-rate-critical`): \
error_rate 7.2% > 5% for 2m. Production was serving deployment `dpl_c`. An automatic Vercel \
Instant Rollback moved production from `dpl_c` to `dpl_b`, and verification passed.

## Impact

- **Users Affected**: [Number or percentage]
- **Features Affected**: [List]
- **Financial Impact**: [If applicable]
- **Duration**: 10:01 – 10:40 UTC
- **Signals at detection**:
  - `error_rate` 0.072 (threshold > 0.05, rule `error-rate-critical`) since 10:01 UTC, worst 0.12

## Timeline

| Time | Event |
|------|-------|
| 09:55 | Deployment to production (`dpl_c`) |
| 10:01 | First error detected (rule `error-rate-critical`) |
| 10:03 | Incident declared automatically by the watchdog (P0); on-call paged at 10:03 |
| 10:03 | Rollback initiated (automatic, Vercel Instant Rollback: `dpl_c` → `dpl_b`) |
| 10:04 | Rollback completed (production serves `dpl_b`) |
| 10:06 | System verified stable (rollback verification passed) |

{HUMAN_SECTIONS}
## Resolution

Vercel Instant Rollback (Method 1) from `dpl_c` to `dpl_b`: requested 10:03 UTC, production \
served the target at 10:04 UTC (1 min 10 s). Verification passed at 10:06 UTC.

After a rollback Vercel stops assigning new deployments to production: promote the fixed \
deployment (dashboard "Undo Rollback" or `vercel promote`) once it is ready.

Incident resolved at 2026-08-20T10:40:00Z.

{RESOLUTION_PROMPT}

{REVIEW_SECTIONS}
**Prepared By**: [Name] (draft from rollback-watchdog's records of `inc-1`)
**Reviewed By**: [Name, Name]
**Date**: [Date]
"""

REFUSED_INCIDENT = replace(
    INCIDENT,
    id="inc-2",
    opened_at=t(14, 3),
    first_detected_at=t(14, 1),
    resolved_at=t(15, 10),
)

REFUSED = f"""\
# Incident Post-Mortem: web: error-rate-critical after deployment dpl_c

**Date**: 2026-08-20 (incident `inc-2`, opened 2026-08-20T14:03:00Z)
**Duration**: 1 h 09 min (14:01 – 15:10 UTC)
**Severity**: P0
**Incident Commander**: [Name]

## Summary

The watchdog opened a P0 incident on web at 14:03 UTC (rule `error-rate-critical`): \
error_rate 7.2% > 5% for 2m. Production was serving deployment `dpl_c`. Automatic rollback \
was refused by the `deploy_correlation` guard rail: rollback unlikely to help: condition \
predates deployment.

## Impact

- **Users Affected**: [Number or percentage]
- **Features Affected**: [List]
- **Financial Impact**: [If applicable]
- **Duration**: 14:01 – 15:10 UTC
- **Signals at detection**:
  - `error_rate` 0.072 (threshold > 0.05, rule `error-rate-critical`) since 14:00 UTC

## Timeline

| Time | Event |
|------|-------|
| — | Deployment to production (`dpl_c`): go-live time not recorded |
| 14:01 | First error detected (rule `error-rate-critical`) |
| 14:03 | Incident declared automatically by the watchdog (P0) |
| — | Rollback initiated: none (automatic rollback refused by `deploy_correlation`) |
| — | Rollback completed: none |
| 15:10 | System verified stable (incident resolved) |

{HUMAN_SECTIONS}
## Resolution

No automatic rollback: the `deploy_correlation` guard rail refused it (rollback unlikely to \
help: condition predates deployment). On-call was paged to decide.

Incident resolved at 2026-08-20T15:10:00Z.

{RESOLUTION_PROMPT}

{REVIEW_SECTIONS}
**Prepared By**: [Name] (draft from rollback-watchdog's records of `inc-2`)
**Reviewed By**: [Name, Name]
**Date**: [Date]
"""

OPEN_INCIDENT = IncidentRecord(
    id="inc-3",
    target="web",
    opened_at=t(23, 58),
    severity="P0",
    rule=None,
    reason="security vulnerability in the login form",
    dedup_key="watchdog/web/inc-3",
    declared=True,
)
IN_FLIGHT = RollbackRecord(
    id="inc-3/rollback",
    incident="inc-3",
    target="web",
    project="prj_1",
    requested_at=t(0, 1, day=21),
    state=RollbackState.REQUESTED,
    from_deployment="dpl_c",
    to_deployment="dpl_b",
)

OPEN = f"""\
# Incident Post-Mortem: web: declared incident

**Date**: 2026-08-20 (incident `inc-3`, opened 2026-08-20T23:58:00Z)
**Duration**: ongoing (since 23:58 UTC)
**Severity**: P0
**Incident Commander**: [Name]

## Summary

A human declared a P0 incident on web at 23:58 UTC: security vulnerability in the login form. \
A Vercel Instant Rollback to `dpl_b` was requested; the records do not show it finishing. The \
incident is still open.

## Impact

- **Users Affected**: [Number or percentage]
- **Features Affected**: [List]
- **Financial Impact**: [If applicable]
- **Duration**: 23:58 UTC – ongoing

## Timeline

| Time | Event |
|------|-------|
| — | Deployment to production: go-live time not recorded |
| — | First error detected: not recorded |
| 23:58 | Incident declared by a human |
| 2026-08-21 00:01 | Rollback initiated (automatic, Vercel Instant Rollback: `dpl_c` → `dpl_b`) |
| — | Rollback completed: none |
| — | System verified stable: not yet |

{HUMAN_SECTIONS}
## Resolution

A Vercel Instant Rollback to `dpl_b` was requested (requested); the records do not show how it \
ended.

Not resolved yet: the incident is still open.

{RESOLUTION_PROMPT}

{REVIEW_SECTIONS}
**Prepared By**: [Name] (draft from rollback-watchdog's records of `inc-3`)
**Reviewed By**: [Name, Name]
**Date**: [Date]
"""

#: the procedure's template, heading by heading, in order
TEMPLATE_HEADINGS = [
    "# Incident Post-Mortem: ",
    "**Date**: ",
    "**Duration**: ",
    "**Severity**: ",
    "**Incident Commander**: ",
    "## Summary",
    "## Impact",
    "## Timeline",
    "## Root Cause",
    "## Contributing Factors",
    "## Resolution",
    "## What Went Well",
    "## What Didn't Go Well",
    "## Action Items",
    "## Lessons Learned",
    "## Prevention",
    "**Prepared By**: ",
    "**Reviewed By**: ",
    "**Date**: ",
]


def headings(markdown: str) -> list[str]:
    found = []
    for line in markdown.splitlines():
        for head in dict.fromkeys(TEMPLATE_HEADINGS):
            if line.startswith(head) and (head.endswith(" ") or line == head):
                found.append(head)
    return found


def timeline(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index("| Time | Event |") + 2
    return lines[start : start + 6]


class TestRenderPostmortem:
    def test_full_incident(self) -> None:
        """Deploy, detect, roll back, verify: every timeline row has its time from the records."""
        text = render_postmortem(INCIDENT, DECISIONS, [PAGED], [ROLLBACK], deployed_at=t(9, 55))
        assert text == FULL

    def test_refused_rollback(self) -> None:
        """A rollback the engine refused leaves its rows as "—" and names the guard rail."""
        refusal = decision(
            t(14, 3),
            {
                **observations(0.072, refused_by="deploy_correlation"),
                "observations": [
                    {**observations(0.072)["observations"][0], "since": "2026-08-20T14:00:00Z"}
                ],
            },
            incident="inc-2",
        )
        refusal = replace(
            refusal, reason="rollback unlikely to help: condition predates deployment"
        )
        assert render_postmortem(REFUSED_INCIDENT, [refusal], [], []) == REFUSED

    def test_open_incident(self) -> None:
        """A declared, still-open incident says so, and a next-day time carries its date."""
        assert render_postmortem(OPEN_INCIDENT, [], [], [IN_FLIGHT]) == OPEN

    def test_template_structure(self) -> None:
        """Every draft keeps the template's headings in the template's order."""
        for text in (
            render_postmortem(INCIDENT, DECISIONS, [PAGED], [ROLLBACK]),
            render_postmortem(REFUSED_INCIDENT, [], [], []),
            render_postmortem(OPEN_INCIDENT, [], [], [IN_FLIGHT]),
        ):
            assert headings(text) == TEMPLATE_HEADINGS


class TestRollbackOutcomes:
    def test_refused_by_dispatcher(self) -> None:
        """A refusal recorded by the dispatcher (no target) is reported like the engine's."""
        refused = ActionRecord(
            key="inc-1/rollback",
            kind="rollback",
            target="web",
            created_at=t(10, 3),
            status=ActionStatus.FAILED,
            incident="inc-1",
            detail={"refused_by": "no_target"},
            finished_at=t(10, 3, 2),
            error="no older READY deployment has served production",
        )
        text = render_postmortem(INCIDENT, [], [refused], [])
        assert timeline(text)[3] == (
            "| — | Rollback initiated: none (automatic rollback refused by `no_target`) |"
        )
        assert (
            "No automatic rollback: the `no_target` guard rail refused it (no older READY "
            "deployment has served production). On-call was paged to decide." in text
        )

    def test_failed_rollback(self) -> None:
        """A rollback that failed shows when it was initiated and that it never completed."""
        failed = replace(
            ROLLBACK,
            state=RollbackState.FAILED,
            verified_at=None,
            detail="Vercel's rollback job to dpl_b failed",
        )
        text = render_postmortem(INCIDENT, [], [], [failed])
        rows = timeline(text)
        assert rows[3].startswith("| 10:03 | Rollback initiated (automatic")
        assert rows[4] == (
            "| — | Rollback completed: none (the rollback failed at 10:04: "
            "Vercel's rollback job to dpl_b failed) |"
        )
        assert rows[5] == "| 10:40 | System verified stable (incident resolved) |"

    def test_verify_failed(self) -> None:
        """A rollback that completed but did not verify: completed time, no "verified" time."""
        bad = replace(
            ROLLBACK,
            state=RollbackState.VERIFY_FAILED,
            verified_at=None,
            detail="health: health returns 500",
        )
        text = render_postmortem(replace(INCIDENT, resolved_at=None), [], [], [bad])
        rows = timeline(text)
        assert rows[4] == (
            "| 10:04 | Rollback completed (production serves `dpl_b`); verification then failed |"
        )
        assert rows[5] == (
            "| — | System verified stable: verification failed: health: health returns 500 |"
        )
        assert "Verification failed: health: health returns 500." in text

    def test_shadow_rollback_is_not_a_rollback(self) -> None:
        """A shadow-mode "would roll back" never fills the rollback rows."""
        shadow = replace(
            ROLLBACK,
            state=RollbackState.SHADOW,
            verified_at=None,
            detail="would roll back to dpl_b",
        )
        text = render_postmortem(INCIDENT, [], [], [shadow])
        rows = timeline(text)
        assert rows[3] == "| — | Rollback initiated: none (shadow mode: recorded, not executed) |"
        assert rows[4] == "| — | Rollback completed: none |"
        assert "Shadow mode: would roll back to dpl_b (not executed)." in text

    def test_other_incidents_rollbacks_ignored(self) -> None:
        """Rollbacks of another incident on the same target do not appear in this one."""
        other = replace(ROLLBACK, incident="inc-0", id="inc-0/rollback")
        rows = timeline(render_postmortem(INCIDENT, [], [], [other]))
        assert rows[3:] == [
            "| — | Rollback initiated: none |",
            "| — | Rollback completed: none |",
            "| 10:40 | System verified stable (incident resolved) |",
        ]


class TestFormatting:
    def test_pipes_in_reasons_do_not_break_the_table(self) -> None:
        """A reason with a pipe or newline stays inside its table cell."""
        failed = replace(ROLLBACK, state=RollbackState.FAILED, verified_at=None, detail="a | b\nc")
        rows = timeline(render_postmortem(INCIDENT, [], [], [failed]))
        assert rows[4] == (
            "| — | Rollback completed: none (the rollback failed at 10:04: a \\| b c) |"
        )

    def test_naive_times_read_as_utc(self) -> None:
        """A backend that drops the offset still renders the stored UTC time, not local time."""
        naive = replace(
            INCIDENT,
            opened_at=datetime(2026, 8, 20, 10, 3),
            first_detected_at=datetime(2026, 8, 20, 10, 1),
            resolved_at=datetime(2026, 8, 20, 10, 40),
        )
        text = render_postmortem(naive, [], [], [])
        assert "**Duration**: 39 min 00 s (10:01 – 10:40 UTC)" in text
        assert "| 10:03 | Incident declared" in text

    def test_unknown_signal(self) -> None:
        """A firing signal whose value is unknown says why instead of inventing a number."""
        data = {
            "observations": [
                {
                    "rule": "system-down",
                    "signal": "health",
                    "value": None,
                    "op": "==",
                    "threshold": 0,
                    "firing": True,
                    "unknown": "provider_error",
                    "since": None,
                }
            ]
        }
        text = render_postmortem(INCIDENT, [decision(t(10, 2), data)], [], [])
        assert (
            "  - `health` unknown: provider_error (threshold == 0, rule `system-down`) "
            "since 10:02 UTC" in text
        )
