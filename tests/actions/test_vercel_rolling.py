"""Vercel Rolling Releases: the documented shapes parsed, each call against the fake."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.actions.conftest import MS, TOKEN, vercel_config
from watchdog.actions.base import RollingRelease, rollout_event
from watchdog.actions.vercel import VercelDeployer
from watchdog.actions.vercel_rolling import VercelRollingReleases, parse_rolling_release
from watchdog.core.model import RolloutEvent, RolloutState
from watchdog.retry import RetryPolicy, call_with_retries
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_vercel import FakeVercel
from watchdog.testing.fake_vercel_rolling import FakeStage
from watchdog.transport import CallError

CANARY = "dpl_d"
#: an answer in the shape of Vercel's SDK model (getrollingreleaseop.ts), every field set
DOCUMENTED: dict[str, Any] = {
    "rollingRelease": {
        "state": "ACTIVE",
        "substate": None,
        "currentDeployment": {
            "id": "dpl_c",
            "name": "web",
            "url": "web-c.vercel.app",
            "createdAt": MS,
            "readyState": "READY",
            "target": "production",
        },
        "canaryDeployment": {
            "id": "dpl_d",
            "name": "web",
            "url": "web-d.vercel.app",
            "createdAt": MS + 1000,
            "readyState": "READY",
        },
        "queuedDeploymentId": None,
        "advancementType": "manual-approval",
        "stages": [
            {"index": 0, "isFinalStage": False, "targetPercentage": 10, "requireApproval": True},
            {"index": 1, "isFinalStage": False, "targetPercentage": 50, "duration": None},
            {"index": 2, "isFinalStage": True, "targetPercentage": 100, "duration": None},
        ],
        "activeStage": {
            "index": 0,
            "isFinalStage": False,
            "targetPercentage": 10,
            "requireApproval": True,
            "duration": None,
        },
        "nextStage": {"index": 1, "isFinalStage": False, "targetPercentage": 50},
        "startedAt": MS + 2000,
        "updatedAt": MS + 3000,
    }
}


def documented(**changes: Any) -> dict[str, Any]:
    body = {"rollingRelease": dict(DOCUMENTED["rollingRelease"])}
    body["rollingRelease"].update(changes)
    return body


class TestParse:
    def test_documented_shape(self) -> None:
        """Every documented field lands in the typed rollout; nothing vendor-shaped leaks."""
        rr = parse_rolling_release(DOCUMENTED)
        assert rr is not None
        assert rr.state is RolloutState.ACTIVE
        assert rr.canary is not None
        assert rr.base is not None
        assert (rr.canary.id, rr.base.id) == ("dpl_d", "dpl_c")
        assert rr.active is not None
        assert rr.next is not None
        assert (rr.active.index, rr.next.index, rr.percent) == (0, 1, 10.0)
        assert [s.percent for s in rr.stages] == [10.0, 50.0, 100.0]
        assert rr.stages[2].final
        assert rr.manual
        assert rr.awaiting_approval
        assert rr.started_at is not None
        assert rr.started_at.timestamp() == (MS + 2000) / 1000

    def test_no_rolling_release_is_none(self) -> None:
        """``rollingRelease: null`` is documented as "no rollout": None, not an error."""
        assert parse_rolling_release({"rollingRelease": None}) is None

    @pytest.mark.parametrize(
        "body",
        [{}, {"rollingRelease": "ACTIVE"}, documented(state="RUNNING"), documented(state=None)],
    )
    def test_unreadable_is_an_error(self, body: dict[str, Any]) -> None:
        """A missing key, a non-object or a state this code does not know is a malformed
        answer: the watchdog never acts on a rollout it cannot read."""
        with pytest.raises(CallError) as info:
            parse_rolling_release(body)
        assert info.value.reason == "malformed"

    def test_persisted_share_wins(self) -> None:
        """currentCanaryPercentage (a pause, a linear shift) is the share now, not the
        stage's target."""
        rr = parse_rolling_release(documented(currentCanaryPercentage=4, substate="PAUSED"))
        assert rr is not None
        assert rr.percent == 4.0
        assert rr.paused
        assert not rr.awaiting_approval  # someone paused it: approving must not undo that

    def test_duration_is_kept_never_interpreted(self) -> None:
        """A stage's duration (seconds or minutes, the docs disagree) is carried as given."""
        stages = [{"targetPercentage": 10, "duration": 300}, {"targetPercentage": 100}]
        rr = parse_rolling_release(documented(stages=stages))
        assert rr is not None
        assert [(s.index, s.duration) for s in rr.stages] == [(0, 300.0), (1, None)]
        assert rr.stages[1].final  # targetPercentage 100 without isFinalStage

    def test_event_for_the_engine(self) -> None:
        """The engine hears canary, base, stage, share and whether a stage waits."""
        rr = parse_rolling_release(DOCUMENTED)
        assert rr is not None
        at = rr.updated_at
        assert at is not None
        assert rollout_event("web", at, rr) == RolloutEvent(
            "web",
            at,
            RolloutState.ACTIVE,
            canary="dpl_d",
            base="dpl_c",
            stage=0,
            percent=10.0,
            requires_approval=True,
            next_stage=1,
        )
        over = parse_rolling_release(documented(state="ABORTED", activeStage=None))
        assert over is not None
        assert rollout_event("web", at, over) == RolloutEvent("web", at, RolloutState.ABORTED)
        assert rollout_event("web", at, None) == RolloutEvent("web", at, RolloutState.NONE)


@pytest.fixture
def rolling(
    vercel: FakeVercel, deployer: VercelDeployer, clock: FakeClock
) -> VercelRollingReleases:
    """dpl_d rolls out over dpl_c: 10% waiting for approval, then 50%, then 100%."""
    vercel.add_deployment(
        CANARY, created_ms=MS + 3 * 3_600_000, candidate=False, meta={"githubCommitSha": "d" * 40}
    )
    vercel.start_rolling_release(
        CANARY, [FakeStage(10, approval=True), FakeStage(50, approval=True), FakeStage(100)]
    )
    return VercelRollingReleases(deployer, clock)


async def read(rolling: VercelRollingReleases) -> RollingRelease:
    rr = await rolling.read()
    assert rr is not None
    return rr


class TestCalls:
    async def test_read(self, rolling: VercelRollingReleases, vercel: FakeVercel) -> None:
        """GET /v1/projects/{id}/rolling-release, with the token and teamId."""
        rr = await read(rolling)
        assert rr.active_for(CANARY)
        [req] = vercel.requests_for("rolling_release")
        assert req.path == "/v1/projects/prj_1/rolling-release"
        assert req.headers["Authorization"] == f"Bearer {TOKEN}"
        assert req.query["teamId"] == "team_1"

    async def test_none(self, deployer: VercelDeployer, clock: FakeClock) -> None:
        """A project without a rolling release reads as None."""
        assert await VercelRollingReleases(deployer, clock).read() is None

    async def test_approve_sends_the_documented_body(
        self, rolling: VercelRollingReleases, vercel: FakeVercel
    ) -> None:
        """approve-stage gets exactly nextStageIndex and canaryDeploymentId."""
        approval = await rolling.approve(CANARY, 1)
        [req] = vercel.requests_for("approve_stage")
        assert req.path == "/v1/projects/prj_1/rolling-release/approve-stage"
        assert req.json() == {"nextStageIndex": 1, "canaryDeploymentId": CANARY}
        assert approval.release is not None
        assert approval.release.active is not None
        assert approval.release.active.index == 1

    async def test_approve_out_of_turn_is_refused(self, rolling: VercelRollingReleases) -> None:
        """A stage that is not the next one is a 400 (the fake's reading of a silent doc)."""
        with pytest.raises(CallError) as info:
            await rolling.approve(CANARY, 2)
        assert (info.value.status, info.value.retryable) == (400, False)

    async def test_abort_rolls_back_to_the_base_never_the_canary(
        self, rolling: VercelRollingReleases, vercel: FakeVercel
    ) -> None:
        """The abort is POST /v1/projects/{id}/rollback/{currentDeployment.id}."""
        rr = await read(rolling)
        request = await rolling.abort(rr)
        assert request.method == "rollback"
        [req] = vercel.requests_for("rollback")
        assert req.path == "/v1/projects/prj_1/rollback/dpl_c"
        assert vercel.rolling.state == "ABORTED"
        assert vercel.last_alias_request is not None
        assert vercel.last_alias_request["fromRollingReleaseId"] == CANARY

    @pytest.mark.parametrize("flips", ["at_once", "after_job"])
    async def test_await_abort(
        self, rolling: VercelRollingReleases, vercel: FakeVercel, flips: Any
    ) -> None:
        """Done once the job succeeded, the base serves and the rollout is over, whether the
        state flips at once or when the job ends (Vercel does not say)."""
        vercel.rolling.abort_flips = flips
        rr = await read(rolling)
        await rolling.abort(rr)
        result = await rolling.await_abort(rr)
        assert result.ok, result.detail
        assert "rolling release of dpl_d is aborted" in result.detail

    async def test_await_abort_fails_while_the_rollout_stays_active(
        self, rolling: VercelRollingReleases, vercel: FakeVercel
    ) -> None:
        """A job that succeeded while the rollout still runs did not abort anything."""
        vercel.rolling.abort_sticks = True
        rr = await read(rolling)
        await rolling.abort(rr)
        result = await rolling.await_abort(rr)
        assert not result.ok
        assert "still active" in result.detail

    async def test_shadow_makes_no_call(
        self, vercel: FakeVercel, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """With the deployer in shadow mode neither approve nor abort reaches Vercel."""
        vercel.add_deployment(CANARY, created_ms=MS + 4 * 3_600_000, candidate=False)
        vercel.start_rolling_release(CANARY, [FakeStage(10, approval=True), FakeStage(100)])
        shadowed = VercelDeployer(vercel_config(vercel, shadow=True), session, clock)
        rolling = VercelRollingReleases(shadowed, clock)
        approval = await rolling.approve(CANARY, 1)
        assert approval.shadow
        request = await rolling.abort(await read(rolling))
        assert request.shadow
        assert not vercel.requests_for("approve_stage")
        assert not vercel.requests_for("rollback")

    async def test_429_waits_for_the_reset(
        self, rolling: VercelRollingReleases, vercel: FakeVercel, clock: FakeClock
    ) -> None:
        """A rate-limited read carries Vercel's reset as its wait, and the retry succeeds."""
        vercel.rate_limit("rolling_release", shape="errors", reset_in=4)
        rr = await call_with_retries(
            rolling.read,
            RetryPolicy(attempts=3, initial=1, maximum=10, deadline=30),
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
        assert rr is not None
        assert clock.slept == [4]

    async def test_5xx_is_retryable(
        self, rolling: VercelRollingReleases, vercel: FakeVercel
    ) -> None:
        """A 5xx on any call is a retryable CallError (the runner decides what to retry)."""
        vercel.fail("approve_stage", 503)
        with pytest.raises(CallError) as info:
            await rolling.approve(CANARY, 1)
        assert info.value.retryable
        assert vercel.rolling.active == 0

    async def test_deployment_carries_the_commit(self, rolling: VercelRollingReleases) -> None:
        """The rollout's deployments carry no meta: one look-up gives the commit SHA."""
        dep = await rolling.deployment(CANARY)
        assert dep.commit == "d" * 40

    async def test_timed_stages_advance_on_their_own(
        self, vercel: FakeVercel, deployer: VercelDeployer, clock: FakeClock
    ) -> None:
        """The fake's timed stages move with its clock; the last one completes the rollout
        and the canary serves production."""
        vercel.add_deployment(CANARY, created_ms=MS + 4 * 3_600_000, candidate=False)
        vercel.start_rolling_release(CANARY, [FakeStage(10, duration=60), FakeStage(100)])
        rolling = VercelRollingReleases(deployer, clock)
        assert (await read(rolling)).state is RolloutState.ACTIVE
        clock.advance(61)
        done = await read(rolling)
        assert done.state is RolloutState.COMPLETE
        assert vercel.alias == CANARY
        assert await deployer.serving() == CANARY
