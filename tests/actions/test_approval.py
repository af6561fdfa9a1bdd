"""Approving a healthy canary's next stage, against the fake Vercel: once, write-ahead, shadow
mode, a stage that moved on meanwhile, and the faults (429, 5xx, a refusal)."""

from __future__ import annotations

import pytest

from tests.actions.conftest import MS, Rig, run
from tests.actions.test_rollouts import abort_decision
from watchdog.actions.approval import approve_key
from watchdog.core.model import Action, Decision, RolloutEvent, RolloutState
from watchdog.store.base import ActionStatus
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_vercel import FakeVercel
from watchdog.testing.fake_vercel_rolling import FakeStage
from watchdog.testing.server import RecordedRequest

CANARY = "dpl_d"
KEY = approve_key("web", CANARY, 1)


@pytest.fixture
def canary(vercel: FakeVercel) -> FakeVercel:
    """dpl_d at its first stage (10%), which waits for approval; then 50%, then 100%."""
    vercel.add_deployment(CANARY, created_ms=MS + 3 * 3_600_000, candidate=False)
    vercel.start_rolling_release(
        CANARY, [FakeStage(10, approval=True), FakeStage(50, approval=True), FakeStage(100)]
    )
    return vercel


def approve_decision(clock: FakeClock, stage: int = 1) -> Decision:
    """What the engine decides for a healthy canary (approve_stages on): monitor, approve."""
    return Decision(
        target="web",
        at=clock.now(),
        action=Action.MONITOR,
        severity=None,
        rule=None,
        reason=(
            f"nothing firing; the canary {CANARY} has been healthy at 10% for 10m: approving "
            f"stage {stage} of its rolling release"
        ),
        path=("quiet", "rollout:approve"),
        deployment=CANARY,
        scope="canary",
        approve_stage=stage,
    )


def approvals(vercel: FakeVercel) -> list[object]:
    return [r.json() for r in vercel.requests_for("approve_stage")]


def outcome(rig: Rig) -> tuple[ActionStatus, dict[str, object]]:
    record = rig.store.actions[KEY]
    return record.status, record.detail


class TestApprove:
    async def test_approves_the_next_stage_once(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """One approve-stage with the documented body; the engine hears the new stage; the
        same decision again approves nothing more."""
        rig = make_rig()
        await run(rig, approve_decision(clock))
        await run(rig, approve_decision(clock))
        assert approvals(canary) == [{"nextStageIndex": 1, "canaryDeploymentId": CANARY}]
        assert canary.rolling.active == 1
        assert outcome(rig)[0] is ActionStatus.SUCCEEDED
        [event] = [e for e in rig.events if isinstance(e, RolloutEvent)]
        assert (event.state, event.stage, event.percent, event.next_stage) == (
            RolloutState.ACTIVE,
            1,
            50.0,
            2,
        )
        [message] = rig.slack.messages
        assert message.startswith("✅ ROLLING RELEASE: STAGE APPROVED")
        assert "(was 10%, now 50%)" in message
        assert not rig.pd.events  # an approval pages no one

    async def test_intent_is_written_right_before_the_call(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        rig = make_rig()
        seen: list[object] = []
        canary.on_request(
            lambda r: (
                seen.append(rig.store.actions.get(KEY)) if r.route == "approve_stage" else None
            )
        )
        await run(rig, approve_decision(clock))
        assert [a.status for a in seen if a is not None] == [ActionStatus.INTENT]

    async def test_shadow_would_approve(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        rig = make_rig(shadow=True)
        await run(rig, approve_decision(clock))
        assert approvals(canary) == []
        assert canary.rolling.active == 0
        status, detail = outcome(rig)
        assert status is ActionStatus.SKIPPED
        assert "would approve stage 1" in str(detail["would"])
        assert "SHADOW MODE" in rig.slack.messages[0]

    async def test_moved_on_before_the_call(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """A human approved first: nothing is sent, "moved on" is recorded, and the channel
        hears it."""
        canary.rolling.advance()
        rig = make_rig()
        await run(rig, approve_decision(clock))
        assert approvals(canary) == []
        status, detail = outcome(rig)
        assert status is ActionStatus.SKIPPED
        assert detail["moved_on"] == "stage 1 is already active"
        assert "moved on meanwhile" in rig.slack.messages[0]

    async def test_not_while_a_rollback_is_in_flight(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """An abort or rollback of the project runs: no stage goes on meanwhile."""
        rig = make_rig()
        await rig.dispatcher.execute(abort_decision(clock))
        await rig.dispatcher.execute(approve_decision(clock))
        await rig.dispatcher.drain()
        assert approvals(canary) == []
        assert canary.rolling.state == "ABORTED"


class TestFaults:
    async def test_429_waits_for_retry_after_and_re_reads(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        canary.rate_limit("approve_stage", reset_in=5)
        rig = make_rig()
        await run(rig, approve_decision(clock))
        assert len(approvals(canary)) == 2
        assert 5 in clock.slept
        routes = [
            r.route for r in canary.requests if r.route in ("rolling_release", "approve_stage")
        ]
        assert routes == ["rolling_release", "approve_stage", "rolling_release", "approve_stage"]
        assert canary.rolling.active == 1
        assert outcome(rig)[0] is ActionStatus.SUCCEEDED

    async def test_5xx_not_taken_is_retried(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        canary.fail("approve_stage", 503)
        rig = make_rig()
        await run(rig, approve_decision(clock))
        assert len(approvals(canary)) == 2
        assert canary.rolling.active == 1
        assert outcome(rig)[0] is ActionStatus.SUCCEEDED

    async def test_5xx_after_vercel_took_it_is_not_repeated(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """The approval went through but the answer was a 500: the re-read shows stage 1,
        so nothing is sent again (a second approve would push to 100%)."""

        def took_it(req: RecordedRequest) -> None:
            if req.route == "approve_stage" and canary.rolling.active == 0:
                canary.rolling.advance()

        canary.on_request(took_it)
        canary.fail("approve_stage", 500)
        rig = make_rig()
        await run(rig, approve_decision(clock))
        assert len(approvals(canary)) == 1
        assert canary.rolling.active == 1
        status, detail = outcome(rig)
        assert status is ActionStatus.SKIPPED
        assert detail["moved_on"] == "stage 1 is already active"

    async def test_refused_because_the_stage_moved_on(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """A timed advance lands between the re-read and the call: Vercel answers 400, the
        re-read explains it, and it is recorded as moved on, not retried."""

        def advance_first(req: RecordedRequest) -> None:
            if req.route == "approve_stage" and canary.rolling.active == 0:
                canary.rolling.advance()

        canary.on_request(advance_first)
        rig = make_rig()
        await run(rig, approve_decision(clock))
        assert len(approvals(canary)) == 1
        assert canary.rolling.active == 1
        assert outcome(rig)[0] is ActionStatus.SKIPPED

    async def test_refused_while_still_waiting_is_a_failure(
        self, make_rig, canary: FakeVercel, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """A 400 that the re-read cannot explain: failed, once, and the channel hears why."""
        canary.fail(
            "approve_stage",
            400,
            '{"error":{"code":"bad_request","message":"approvals are locked for this team"}}',
        )
        rig = make_rig()
        await run(rig, approve_decision(clock))
        assert len(approvals(canary)) == 1
        assert canary.rolling.active == 0
        record = rig.store.actions[KEY]
        assert record.status is ActionStatus.FAILED
        assert record.error is not None
        assert "approvals are locked" in record.error
        [message] = rig.slack.messages
        assert "STAGE NOT APPROVED" in message
        assert "approvals are locked" in message
        assert "approve by hand" in message
