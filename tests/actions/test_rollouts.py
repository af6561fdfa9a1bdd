"""Aborting a bad canary's rolling release, against the fake Vercel: the call, write-ahead,
shadow mode, what changed meanwhile, and the faults (429, 5xx, a refusal)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.actions.conftest import MS, Rig, rollback_decision, run
from watchdog.core.model import (
    Decision,
    DeployEvent,
    Observation,
    RollbackOutcome,
    Severity,
)
from watchdog.store.base import ActionStatus, RollbackRecord, RollbackState
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_vercel import FakeVercel
from watchdog.testing.fake_vercel_rolling import FakeStage
from watchdog.testing.server import RecordedRequest

CANARY, BASE = "dpl_d", "dpl_c"
KEY = "inc-1/rollback"
STAGES = [FakeStage(10, approval=True), FakeStage(50, approval=True), FakeStage(100)]


@pytest.fixture
def canary(vercel: FakeVercel) -> FakeVercel:
    """dpl_d rolls out over dpl_c (production), at its first stage: 10% of users."""
    vercel.add_deployment(
        CANARY, created_ms=MS + 3 * 3_600_000, candidate=False, meta={"githubCommitSha": "d" * 40}
    )
    vercel.start_rolling_release(CANARY, STAGES)
    return vercel


def abort_decision(clock: FakeClock, **kw: object) -> Decision:
    values: dict[str, Any] = {
        "rule": "canary-error-rate",
        "reason": (
            "error_rate 9.0% on dpl_d vs 0.4% on dpl_c (3 consecutive samples); aborting the "
            "rolling release of dpl_d: only the canary's share (10% of users) was affected; "
            "production goes back to dpl_c"
        ),
        "deployment": CANARY,
        "scope": "canary",
        "observations": (Observation("canary-error-rate", "error_rate", 0.09, ">", 0.0, True),),
    }
    values.update(kw)
    return rollback_decision(clock, **values)


def rollback_posts(vercel: FakeVercel) -> list[str]:
    return [r.path for r in vercel.requests_for("rollback")]


def p0_summaries(rig: Rig) -> list[str]:
    return [
        e["payload"]["summary"] for e in rig.pd.events if e["payload"]["severity"] == "critical"
    ]


class TestAbort:
    async def test_aborts_to_the_base_and_says_only_the_canary_was_hit(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """The abort is the rollback to the base (never the canary); the engine hears the
        base serves, the canary is known bad, and chat speaks of the canary's share only."""
        rig = make_rig()
        await run(rig, abort_decision(clock))
        assert rollback_posts(canary) == ["/v1/projects/prj_1/rollback/dpl_c"]
        assert canary.rolling.state == "ABORTED"
        rb = rig.store.rollbacks[KEY]
        assert (rb.state, rb.from_deployment, rb.to_deployment) == (
            RollbackState.VERIFIED,
            CANARY,
            BASE,
        )
        assert rig.store.actions[KEY].status is ActionStatus.SUCCEEDED
        assert rig.store.actions[KEY].detail["scope"] == "canary"
        assert rig.outcomes() == [RollbackOutcome.SUCCEEDED, RollbackOutcome.VERIFIED]
        assert next(e for e in rig.events if isinstance(e, DeployEvent)).deployment == BASE
        assert await rig.store.known_bad("prj_1") == frozenset({CANARY})
        progress = rig.slack.messages[0]
        assert progress.startswith("🚨 PRODUCTION ROLLBACK IN PROGRESS")
        assert "Aborting the rolling release of dpl_d (it served 10% of users)" in progress
        complete = rig.slack.messages[-1]
        assert complete.startswith("✅ ROLLBACK COMPLETE")
        assert "Vercel Rolling Release abort" in complete
        assert "rolling release of dpl_d aborted: only the canary's 10% of users" in complete
        assert "aborted the rolling release of dpl_d" in rig.pd.changes[0]["payload"]["summary"]

    async def test_intent_is_written_right_before_the_call(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """Write-ahead: the journal and the record hold the abort's intent when Vercel
        receives the call, after the rollout was re-read."""
        rig = make_rig()
        seen: list[tuple[object, object, int]] = []

        def check(req: RecordedRequest) -> None:
            if req.route == "rollback":
                rb, act = rig.store.rollbacks.get(KEY), rig.store.actions.get(KEY)
                reads = len(canary.requests_for("rolling_release"))
                seen.append((rb and rb.state, act and act.status, reads))

        canary.on_request(check)
        await run(rig, abort_decision(clock))
        assert seen == [(RollbackState.INTENT, ActionStatus.INTENT, 1)]

    async def test_shadow_would_abort(self, make_rig, canary: FakeVercel, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """Shadow mode: everything but the call; recorded "would abort"."""
        rig = make_rig(shadow=True)
        await run(rig, abort_decision(clock))
        assert rollback_posts(canary) == []
        assert canary.rolling.state == "ACTIVE"
        assert rig.store.rollbacks[KEY].state is RollbackState.SHADOW
        assert rig.outcomes() == [RollbackOutcome.SHADOWED]
        assert "would abort the rolling release of dpl_d" in rig.slack.messages[-1]


class TestMeanwhile:
    async def test_completed_meanwhile_rolls_production_back(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """The rollout reached 100% before the abort: the canary is fully live, so the full
        rollback runs (to dpl_c), and the reason says why."""
        canary.deployments[CANARY]["isRollbackCandidate"] = True
        while canary.rolling.state == "ACTIVE":
            canary.rolling.advance()
        assert canary.alias == CANARY
        rig = make_rig()
        await run(rig, abort_decision(clock))
        assert rollback_posts(canary) == ["/v1/projects/prj_1/rollback/dpl_c"]
        assert rig.store.rollbacks[KEY].state is RollbackState.VERIFIED
        assert any(
            "completed before the abort: it is fully live, so production is rolled back" in m
            for m in rig.slack.messages
        )

    async def test_aborted_meanwhile_makes_no_call(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """Someone (a human, Vercel's gate) aborted it first: no call; the engine hears the
        base serves, verification runs, and it spends no budget."""
        canary.rolling.aborted()
        rig = make_rig()
        await run(rig, abort_decision(clock))
        assert rollback_posts(canary) == []
        rb = rig.store.rollbacks[KEY]
        assert (rb.state, rb.automatic) == (RollbackState.VERIFIED, False)
        assert "was aborted before the watchdog acted" in rb.detail
        assert rig.store.actions[KEY].status is ActionStatus.SKIPPED
        assert rig.outcomes() == [RollbackOutcome.SUCCEEDED, RollbackOutcome.VERIFIED]

    async def test_another_canary_now_pages_and_does_nothing(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """The rollout moved on to another deployment: never abort the wrong one; P0."""
        canary.add_deployment("dpl_e", created_ms=MS + 4 * 3_600_000, candidate=False)
        canary.start_rolling_release("dpl_e", STAGES)
        rig = make_rig()
        await run(rig, abort_decision(clock))
        assert rollback_posts(canary) == []
        assert rig.outcomes() == [RollbackOutcome.FAILED]
        assert any("moved on to dpl_e" in s for s in p0_summaries(rig))


class TestFaults:
    async def test_429_waits_for_retry_after_and_re_reads(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """A rate-limited abort waits Vercel's reset, re-reads the rollout, then aborts."""
        canary.rate_limit("rollback", reset_in=3)
        rig = make_rig()
        await run(rig, abort_decision(clock))
        assert rollback_posts(canary) == ["/v1/projects/prj_1/rollback/dpl_c"] * 2
        assert 3 in clock.slept
        routes = [r.route for r in canary.requests if r.route in ("rolling_release", "rollback")]
        assert routes[:4] == ["rolling_release", "rollback", "rolling_release", "rollback"]
        assert rig.store.rollbacks[KEY].state is RollbackState.VERIFIED

    async def test_5xx_is_retried(self, make_rig, canary: FakeVercel, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A 503 that Vercel did not act on: retried once the re-read shows it still active."""
        canary.fail("rollback", 503)
        rig = make_rig()
        await run(rig, abort_decision(clock))
        assert len(rollback_posts(canary)) == 2
        assert rig.store.rollbacks[KEY].state is RollbackState.VERIFIED

    @pytest.mark.parametrize("flips", ["at_once", "after_job"])
    async def test_5xx_after_vercel_took_it_is_not_sent_blindly(
        self, make_rig, canary: FakeVercel, clock: FakeClock, flips: Any
    ) -> None:  # type: ignore[no-untyped-def]
        """Vercel started the abort but the answer was a 500: the retry's re-read sees the
        rollout over (or the job running: 409, ours) and follows that job to its end."""
        canary.rolling.abort_flips = flips
        rig = make_rig()
        state = {"first": True}

        def took_it(req: RecordedRequest) -> None:
            if req.route == "rollback" and state["first"]:
                state["first"] = False
                canary.last_alias_request = {
                    "type": "rollback",
                    "fromDeploymentId": BASE,
                    "toDeploymentId": BASE,
                    "fromRollingReleaseId": CANARY,
                    "jobStatus": "pending",
                    "requestedAt": int(clock.now().timestamp() * 1000),
                }
                canary.rolling.take_abort(BASE)

        canary.on_request(took_it)
        canary.fail("rollback", 500)
        await run(rig, abort_decision(clock))
        expected = 1 if flips == "at_once" else 2  # the second one meets a 409: ours
        assert len(rollback_posts(canary)) == expected
        assert canary.rolling.state == "ABORTED"
        assert rig.store.rollbacks[KEY].state is RollbackState.VERIFIED

    @pytest.mark.parametrize(
        ("status", "code"), [(400, "bad_request"), (403, "forbidden"), (404, "not_found")]
    )
    async def test_a_refused_abort_pages_p0_with_why(
        self, make_rig, canary: FakeVercel, clock: FakeClock, status: int, code: str
    ) -> None:  # type: ignore[no-untyped-def]
        """Vercel refuses the abort: no retry, no other deployment touched, and a P0 page
        that quotes Vercel and says what to do by hand."""
        body = f'{{"error":{{"code":"{code}","message":"Rolling release is locked"}}}}'
        canary.fail("rollback", status, body)
        rig = make_rig()
        await run(rig, abort_decision(clock))
        assert rollback_posts(canary) == ["/v1/projects/prj_1/rollback/dpl_c"]
        assert canary.rolling.state == "ACTIVE"
        assert rig.store.rollbacks[KEY].state is RollbackState.FAILED
        assert rig.outcomes() == [RollbackOutcome.FAILED]
        [summary] = [s for s in p0_summaries(rig) if "did not take" in s]
        assert "Vercel refused to abort the rolling release of dpl_d" in summary
        assert "roll production back to dpl_c" in summary
        assert rig.pd.events[-1]["payload"]["severity"] == "critical"

    async def test_a_rollout_that_stays_active_did_not_abort(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """The job succeeded but the rollout still runs: the abort did not take, P0."""
        canary.rolling.abort_sticks = True
        rig = make_rig()
        await run(rig, abort_decision(clock))
        assert rig.store.rollbacks[KEY].state is RollbackState.FAILED
        assert any("still active" in s for s in p0_summaries(rig))

    async def test_unreadable_rollout_pages_and_does_nothing(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """The rollout cannot be re-read (5xx past the deadline): nothing is sent blind."""
        canary.fail("rolling_release", 502, times=50)
        rig = make_rig()
        await run(rig, abort_decision(clock, severity=Severity.P1))
        assert rollback_posts(canary) == []
        assert any("could not read the rolling release" in s for s in p0_summaries(rig))


def abort_intent(clock: FakeClock, key: str = KEY) -> RollbackRecord:
    """What a crash between the abort's intent and its call leaves in the store."""
    return RollbackRecord(
        key, "inc-1", "web", "prj_1", clock.now(), RollbackState.INTENT, CANARY, BASE
    )


class TestRestart:
    async def test_an_abort_that_never_reached_vercel_is_abandoned(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """The domain serves the base all along during a rollout, so "production serves the
        target" proves nothing: the rollout still active for the canary, and no job to the
        base, mean the abort never reached Vercel (ABANDONED, not SUCCEEDED)."""
        store = MemoryStore()
        await store.save_rollback(abort_intent(clock))
        rig = make_rig(store=store)
        assert canary.alias == BASE
        settled = await rig.dispatcher.reconcile()
        assert [r.state for r in settled] == [RollbackState.ABANDONED]
        assert rig.outcomes() == []
        # the engine, on fresh data, still asks: the abort is re-issued once
        await run(rig, abort_decision(clock))
        await run(rig, abort_decision(clock))
        assert rollback_posts(canary) == ["/v1/projects/prj_1/rollback/dpl_c"]
        assert store.rollbacks[f"{KEY}#reissue"].state is RollbackState.VERIFIED
        assert canary.rolling.state == "ABORTED"

    async def test_an_abort_that_landed_is_settled_without_a_call(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """The abort landed before the crash (the rollout is over, the base serves):
        SUCCEEDED from two look-ups, and nothing is sent again."""
        canary.rolling.aborted()
        store = MemoryStore()
        await store.save_rollback(abort_intent(clock))
        rig = make_rig(store=store)
        settled = await rig.dispatcher.reconcile()
        assert [r.state for r in settled] == [RollbackState.SUCCEEDED]
        assert rollback_posts(canary) == []
        assert rig.outcomes() == [RollbackOutcome.SUCCEEDED]
