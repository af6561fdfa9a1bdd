"""The automated rollback drill against a fake staging Vercel project and a fake app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from watchdog.actions.vercel import VercelConfig, VercelDeployer
from watchdog.actions.verify import Verifier, VerifyConfig
from watchdog.drill import (
    DrillExit,
    DrillReport,
    DrillStep,
    report_json,
    report_markdown,
    run_drill,
)
from watchdog.retry import RetryPolicy
from watchdog.store.base import DrillRecord
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_app import FakeApp
from watchdog.testing.fake_vercel import FakeVercel
from watchdog.testing.server import RecordedRequest

TOKEN = "vercel-drill-canary-7c1e"
MS = 1_760_000_000_000
HOUR_MS = 3_600_000
FAST = RetryPolicy(attempts=2, initial=1, maximum=1, deadline=10)


@dataclass
class Staging:
    vercel: FakeVercel
    app: FakeApp
    deployer: VercelDeployer
    verifier: Verifier
    clock: FakeClock


@pytest.fixture
async def staging() -> AsyncIterator[Staging]:
    """dpl_a, dpl_b (the baseline) and dpl_c (live); the app follows the production alias."""
    clock = FakeClock()
    vercel = FakeVercel(token=TOKEN, team_id="team_s", now=lambda: clock.now().timestamp())
    vercel.add_deployment("dpl_a", created_ms=MS)
    vercel.add_deployment("dpl_b", created_ms=MS + HOUR_MS)
    vercel.add_deployment("dpl_c", created_ms=MS + 2 * HOUR_MS, production=True)
    async with vercel, FakeApp(version="dpl_c", commit="ccccccc3") as app:
        vercel.on_production_change(lambda dep: app.deploy(dep))
        async with aiohttp.ClientSession() as session:
            cfg = VercelConfig(
                token=SecretStr(TOKEN),
                project_id=vercel.project_id,
                team_id="team_s",
                production_domain=vercel.production_domain,
                base_url=vercel.url,
                poll_interval=timedelta(seconds=1),
                job_timeout=timedelta(minutes=10),
            )
            verify_cfg = VerifyConfig(
                health_url=f"{app.url}/api/health",
                version_url=f"{app.url}/api/version",
                poll_interval=timedelta(seconds=5),
                verify_timeout=timedelta(seconds=30),
            )
            yield Staging(
                vercel,
                app,
                VercelDeployer(cfg, session, clock),
                Verifier(verify_cfg, session, clock),
                clock,
            )


def jobs(vercel: FakeVercel) -> list[tuple[str, str]]:
    """The rollback/promote requests Vercel received, as (route, deployment)."""
    return [
        (r.route, r.path.rsplit("/", 1)[-1])
        for r in vercel.requests
        if r.route in ("rollback", "promote")
    ]


def step_names(report: DrillReport) -> list[tuple[str, bool]]:
    return [(s.name, s.ok) for s in report.steps]


class TestSuccessfulDrill:
    async def test_rolls_back_verifies_and_restores(self, staging: Staging) -> None:
        """A clean drill rolls back to the previous deployment, verifies, then restores dpl_c."""
        store = MemoryStore()
        report = await run_drill(
            staging.deployer,
            staging.verifier,
            staging.clock,
            target_name="staging-web",
            store=store,
            retry=FAST,
        )
        assert step_names(report) == [
            ("find production", True),
            ("choose target", True),
            ("request rollback", True),
            ("rollback job", True),
            ("verify rollback", True),
            ("request restore", True),
            ("restore job", True),
            ("verify restore", True),
        ]
        # restoring a deployment that already served production is a rollback, not a promote
        assert jobs(staging.vercel) == [("rollback", "dpl_b"), ("rollback", "dpl_c")]
        assert staging.vercel.alias == "dpl_c"
        assert staging.app.version == "dpl_c"
        assert report.passed
        assert report.verdict == "PASSED"
        assert (report.original, report.rollback_target, report.restored) == (
            "dpl_c",
            "dpl_b",
            True,
        )
        assert report.serving_at_end == "dpl_c"
        assert report.slow_steps == ()
        # two job polls one second apart, then the alias check: 2 s to roll back
        assert report.rollback_s == pytest.approx(2.0)
        assert report.total_s == pytest.approx(4.0)

    async def test_report_says_auto_assignment_is_off(self, staging: Staging) -> None:
        """After restoring by rollback the report says auto-assignment is off, and how to undo."""
        report = await run_drill(
            staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
        )
        (note,) = report.notes
        assert "auto-assignment of production domains is off" in note
        assert "Vercel has stopped auto-assigning" in note
        assert "autoAssignCustomDomains=false" in note
        assert f"{staging.vercel.url}/v10/projects/prj_1/promote/" in note
        assert "teamId=team_s" in note

    async def test_records_the_drill(self, staging: Staging) -> None:
        """The store gets one drill record with the timer, success and the JSON report."""
        store = MemoryStore()
        report = await run_drill(
            staging.deployer,
            staging.verifier,
            staging.clock,
            target_name="staging-web",
            store=store,
            retry=FAST,
        )
        (record,) = await store.list_drills()
        assert record == DrillRecord(
            id="drill-staging-web-20260820T100000Z",
            target="staging-web",
            started_at=datetime(2026, 8, 20, 10, 0, tzinfo=UTC),
            finished_at=datetime(2026, 8, 20, 10, 0, 4, tzinfo=UTC),
            succeeded=True,
            duration_s=pytest.approx(2.0),
            report=report_json(report),
        )

    async def test_without_verifier(self, staging: Staging) -> None:
        """Without a verifier the drill still rolls back and restores, and says what it skipped."""
        report = await run_drill(staging.deployer, None, staging.clock, target_name="s", retry=FAST)
        assert [n for n, _ in step_names(report)] == [
            "find production",
            "choose target",
            "request rollback",
            "rollback job",
            "request restore",
            "restore job",
        ]
        assert report.passed
        assert "No verifier configured" in report.notes[0]


class TestRollbackFails:
    async def test_failed_job_is_reported_and_not_restored(self, staging: Staging) -> None:
        """A failed rollback job ends the drill: no restore is attempted, the report says so."""
        staging.vercel.job_outcome = "failed"
        report = await run_drill(
            staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
        )
        assert step_names(report)[-1] == ("rollback job", False)
        assert jobs(staging.vercel) == [("rollback", "dpl_b")]
        assert report.restored is None
        assert not report.passed
        assert report.verdict == "FAILED: the rollback did not take"
        assert report.serving_at_end == "dpl_c"
        assert not report.staging_left_changed
        assert "did not try to restore" in report.notes[0]
        assert "Staging serves dpl_c, as before the drill." in report.notes[0]
        assert len(report.notes) == 1  # nothing to restore by hand

    async def test_request_refused(self, staging: Staging) -> None:
        """A rejected rollback request (403) stops the drill before anything changed."""
        staging.vercel.fail("rollback", 403, '{"error":{"code":"forbidden","message":"no"}}')
        report = await run_drill(
            staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
        )
        assert step_names(report)[-1] == ("request rollback", False)
        assert "token rejected" in report.steps[-1].detail
        assert TOKEN not in report_markdown(report)
        assert jobs(staging.vercel) == [("rollback", "dpl_b")]
        assert report.verdict == "FAILED: the rollback did not take"

    async def test_alias_moved_but_job_failed(self, staging: Staging) -> None:
        """If staging serves something else after a failed job, the report says how to restore."""
        staging.vercel.job_outcome = "failed"

        def move(req: RecordedRequest) -> None:
            if req.route == "rollback":
                staging.vercel.set_serving("dpl_b")  # half-way: the alias moved anyway

        staging.vercel.on_request(move)
        report = await run_drill(
            staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
        )
        assert report.staging_left_changed
        assert report.verdict == "FAILED: STAGING NOT RESTORED"
        assert (
            "POST " + staging.vercel.url + "/v1/projects/prj_1/rollback/dpl_c" in (report.notes[1])
        )
        assert report_markdown(report).splitlines()[2].startswith("> **⚠️ STAGING IS NOT")

    async def test_no_target(self, staging: Staging) -> None:
        """With only one production deployment the drill changes nothing and explains why."""
        for dep in ("dpl_a", "dpl_b"):
            del staging.vercel.deployments[dep]
        report = await run_drill(
            staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
        )
        assert step_names(report)[-1] == ("choose target", False)
        assert jobs(staging.vercel) == []
        assert "Nothing was changed" in report.notes[0]
        assert report.verdict == "FAILED: the drill could not start (nothing was changed)"

    async def test_shadow_deployer_is_refused(self, staging: Staging) -> None:
        """A deployer in shadow mode cannot drill: the step fails instead of pretending."""
        cfg = staging.deployer.config.model_copy(update={"shadow": True})
        async with aiohttp.ClientSession() as session:
            deployer = VercelDeployer(cfg, session, staging.clock)
            report = await run_drill(deployer, None, staging.clock, target_name="s", retry=FAST)
        assert step_names(report)[-1] == ("request rollback", False)
        assert "shadow mode" in report.steps[-1].detail
        assert jobs(staging.vercel) == []


class TestRestoreFails:
    async def test_failed_restore_is_loud(self, staging: Staging) -> None:
        """A restore job that fails leaves a report that opens with a warning and the fix."""

        def fail_restore(req: RecordedRequest) -> None:
            if req.route == "rollback" and req.path.endswith("/dpl_c"):
                staging.vercel.job_outcome = "failed"

        staging.vercel.on_request(fail_restore)
        store = MemoryStore()
        report = await run_drill(
            staging.deployer,
            staging.verifier,
            staging.clock,
            target_name="s",
            store=store,
            retry=FAST,
        )
        assert step_names(report)[-2:] == [("request restore", True), ("restore job", False)]
        assert report.restored is False
        assert report.serving_at_end == "dpl_b"
        assert report.verdict == "FAILED: STAGING NOT RESTORED"
        assert report.notes[0].startswith("STAGING IS NOT RESTORED")
        assert "Staging serves dpl_b; it served dpl_c before the drill." in report.notes[0]
        assert (
            f"POST {staging.vercel.url}/v1/projects/prj_1/rollback/dpl_c?teamId=team_s"
            in report.notes[1]
        )
        (record,) = await store.list_drills()
        assert not record.succeeded
        md = report_markdown(report)
        assert "> **⚠️ STAGING IS NOT AS THE DRILL FOUND IT.**" in md
        assert "- **Restored**: **NO**" in md

    async def test_restore_request_rejected(self, staging: Staging) -> None:
        """A restore request Vercel keeps refusing (5xx) is retried, then reported loudly."""

        def fail_restore(req: RecordedRequest) -> None:
            if req.route == "rollback" and req.path.endswith("/dpl_c"):
                staging.vercel.fail("rollback", 500)  # answers this very request

        staging.vercel.on_request(fail_restore)
        report = await run_drill(
            staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
        )
        assert step_names(report)[-1] == ("request restore", False)
        # FAST allows two attempts
        assert jobs(staging.vercel) == [
            ("rollback", "dpl_b"),
            ("rollback", "dpl_c"),
            ("rollback", "dpl_c"),
        ]
        assert report.staging_left_changed
        assert staging.vercel.alias == "dpl_b"

    async def test_failed_verification_still_restores(self, staging: Staging) -> None:
        """A rollback that does not verify is still undone: staging goes back to dpl_c."""
        staging.vercel.on_production_change(
            lambda dep: staging.app.deploy(dep, healthy=dep != "dpl_b")
        )
        report = await run_drill(
            staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
        )
        assert ("verify rollback", False) in step_names(report)
        assert step_names(report)[-1] == ("verify restore", True)
        assert report.restored is True
        assert not report.passed
        assert report.verdict == "FAILED: a step failed"
        (slow,) = report.slow_steps
        assert slow.name == "verify rollback"
        assert slow.note.startswith("failed: health: health returns 500")


class TestCannotStart:
    async def test_production_unreadable(self, staging: Staging) -> None:
        """When Vercel cannot say what is live, the drill stops before touching anything."""
        staging.vercel.fail("project", 500, times=10)
        report = await run_drill(
            staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
        )
        assert step_names(report) == [("find production", False)]
        assert "500" in report.steps[0].detail
        assert jobs(staging.vercel) == []
        assert report.verdict == "FAILED: the drill could not start (nothing was changed)"
        assert not report.staging_left_changed


class TestRobustness:
    async def test_store_failure_keeps_the_report(self, staging: Staging) -> None:
        """A store that cannot save the drill costs a note in the report, never the report."""

        class BrokenStore(MemoryStore):
            async def save_drill(self, drill: DrillRecord) -> None:
                raise OSError("disk full")

        report = await run_drill(
            staging.deployer,
            staging.verifier,
            staging.clock,
            target_name="s",
            store=BrokenStore(),
            retry=FAST,
        )
        assert report.passed
        assert report.notes[-1] == "The drill could not be recorded in the store: disk full"

    async def test_unexpected_error_becomes_a_failed_step(self, staging: Staging) -> None:
        """A verifier that crashes fails its step; the drill still restores and reports."""

        class Crashing(Verifier):
            async def verify(self, *args: object, **kwargs: object) -> Any:
                raise RuntimeError("boom")

        async with aiohttp.ClientSession() as session:
            crashing = Crashing(VerifyConfig(), session, staging.clock)
            report = await run_drill(
                staging.deployer, crashing, staging.clock, target_name="s", retry=FAST
            )
        assert ("verify rollback", False) in step_names(report)
        assert report.steps[4].detail == "unexpected error: RuntimeError: boom"
        assert report.restored is True
        assert staging.vercel.alias == "dpl_c"

    async def test_cancellation_logs_how_to_restore(self, staging: Staging) -> None:
        """A drill cancelled mid-rollback logs where staging was left and how to restore it."""
        task: asyncio.Task[DrillReport] | None = None

        def cancel(req: RecordedRequest) -> None:
            if req.route == "rollback" and task is not None:
                task.cancel()

        staging.vercel.on_request(cancel)
        with capture_logs() as logs:
            task = asyncio.create_task(
                run_drill(
                    staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
                )
            )
            with pytest.raises(asyncio.CancelledError):
                await task
        (event,) = [e for e in logs if e["event"] == "drill_interrupted"]
        assert event["original"] == "dpl_c"
        assert "/v1/projects/prj_1/rollback/dpl_c" in event["fix"]


class TestSlowDrill:
    async def test_over_three_minutes_fails_the_target(self, staging: Staging) -> None:
        """A rollback job that takes 200 polls misses the 180 s target and is named as slow."""
        staging.vercel.job_polls = 200
        report = await run_drill(
            staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
        )
        assert report.all_ok
        assert report.rollback_s == pytest.approx(200.0)
        assert not report.within_target
        assert not report.passed
        assert report.verdict == "FAILED: slower than the target"
        assert [s.name for s in report.slow_steps] == ["rollback job", "restore job"]
        assert "stayed pending/in-progress" in report.slow_steps[0].note
        md = report_markdown(report)
        assert "- The rollback took 200 s, over the procedure's 180 s target" in md

    async def test_just_under_target_passes(self, staging: Staging) -> None:
        """A 120 s rollback has a slow step to discuss but still meets the target."""
        staging.vercel.job_polls = 120
        report = await run_drill(
            staging.deployer, staging.verifier, staging.clock, target_name="s", retry=FAST
        )
        assert report.rollback_s == pytest.approx(120.0)
        assert report.passed
        assert [s.name for s in report.slow_steps] == ["rollback job", "restore job"]


START = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


SLOW_REPORT = DrillReport(
    target="staging-web",
    project="prj_1",
    started_at=START,
    finished_at=at(215),
    steps=(
        DrillStep("find production", at(0), 0.4, True, "production serves dpl_c"),
        DrillStep("choose target", at(0.4), 0.6, True, "dpl_b is the newest eligible deployment"),
        DrillStep("request rollback", at(1), 1.0, True, "rollback to dpl_b: accepted"),
        DrillStep("rollback job", at(2), 150.0, True, "www.example.com serves dpl_b"),
        DrillStep("verify rollback", at(152), 40.0, True, "every check passed"),
        DrillStep("request restore", at(192), 1.0, True, "rollback to dpl_c: accepted"),
        DrillStep("restore job", at(193), 12.0, True, "a | b"),
        DrillStep("verify restore", at(205), 10.0, True, "every check passed"),
    ),
    total_s=215.0,
    rollback_s=192.0,
    original="dpl_c",
    rollback_target="dpl_b",
    restored=True,
    serving_at_end="dpl_c",
    notes=("Auto-assignment may be off.",),
)

SLOW_MARKDOWN = """\
# Rollback drill: staging-web: FAILED: slower than the target

- **Project**: `prj_1`
- **Method**: Method 1: Vercel Instant Rollback
- **Started**: 2026-08-20T10:00:00Z
- **Finished**: 2026-08-20T10:03:35Z
- **Original production deployment**: `dpl_c`
- **Rollback target**: `dpl_b`
- **Rollback + verify**: 192.0 s (target < 180 s)
- **Restored**: yes
- **Serving at the end**: `dpl_c`
- **Total drill time**: 215.0 s

## Steps

| Step | Started (UTC) | Duration | Result | Detail |
|------|---------------|----------|--------|--------|
| find production | 10:00:00 | 0.4 s | ok | production serves dpl_c |
| choose target | 10:00:00 | 0.6 s | ok | dpl_b is the newest eligible deployment |
| request rollback | 10:00:01 | 1.0 s | ok | rollback to dpl_b: accepted |
| rollback job | 10:00:02 | 150.0 s | ok | www.example.com serves dpl_b |
| verify rollback | 10:02:32 | 40.0 s | ok | every check passed |
| request restore | 10:03:12 | 1.0 s | ok | rollback to dpl_c: accepted |
| restore job | 10:03:13 | 12.0 s | ok | a \\| b |
| verify restore | 10:03:25 | 10.0 s | ok | every check passed |

## What was slow or confusing

- **rollback job**: took 150 s (over 60 s): Vercel's rollback job stayed pending/in-progress \
a long time, or the production alias was slow to follow it
- The rollback took 192 s, over the procedure's 180 s target for Method 1: Vercel Instant \
Rollback.

## Notes

- Auto-assignment may be off.

## Debrief

- What went well?
- What was confusing?
- Update procedures if needed
- Set target time improvement
"""


class TestReportRendering:
    def test_markdown(self) -> None:
        """The Markdown report has the header facts, step table, slow notes and debrief."""
        assert report_markdown(SLOW_REPORT) == SLOW_MARKDOWN

    def test_json(self) -> None:
        """The JSON report carries the verdict, timer and slow steps as plain values."""
        data = report_json(SLOW_REPORT)
        assert data["verdict"] == "FAILED: slower than the target"
        assert (data["passed"], data["within_target"], data["restored"]) == (False, False, True)
        assert data["rollback_s"] == 192.0
        assert data["target_s"] == 180.0
        assert data["steps"][3] == {
            "name": "rollback job",
            "started": "2026-08-20T10:00:02Z",
            "duration_s": 150.0,
            "ok": True,
            "detail": "www.example.com serves dpl_b",
        }
        assert [s["name"] for s in data["slow_steps"]] == ["rollback job"]


class TestExitCode:
    """`watchdog drill`'s exit status says what to do, apart from argparse's 2."""

    def test_passed_is_zero(self) -> None:
        """Every step ok and under 180 s exits 0."""
        report = replace(SLOW_REPORT, rollback_s=120.0)
        assert report.passed
        assert report.exit_code == 0

    def test_failed_drill_with_staging_as_it_was(self) -> None:
        """A drill that ran and failed (here: too slow), staging restored, exits 3."""
        assert SLOW_REPORT.exit_code == DrillExit.FAILED == 3

    def test_staging_left_changed_wins(self) -> None:
        """A restore that failed exits 4, whatever else went wrong: a human must act now."""
        report = replace(SLOW_REPORT, restored=False, serving_at_end="dpl_b")
        assert report.exit_code == DrillExit.STAGING_CHANGED == 4

    def test_no_code_is_a_usage_error(self) -> None:
        """No drill outcome shares argparse's 2, and every code is distinct."""
        codes = [int(c) for c in DrillExit]
        assert 2 not in codes
        assert len(set(codes)) == len(codes)
