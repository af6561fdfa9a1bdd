"""Vercel deployer: reads, the rollback call and its asynchronous job."""

from __future__ import annotations

import functools
import json

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.actions.conftest import HOUR_MS, MS, TOKEN, vercel_config
from watchdog.actions.base import Deployment, TargetGoneError
from watchdog.actions.vercel import VercelConfig, VercelDeployer
from watchdog.retry import RetryPolicy, call_with_retries
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_vercel import FakeVercel, rate_limit_body
from watchdog.transport import CallError


class TestConfig:
    def test_rejects_unknown_keys(self) -> None:
        """A typo in the config fails loudly instead of being ignored."""
        with pytest.raises(ValueError, match="projectid"):
            VercelConfig.model_validate(
                {"token": "x", "project_id": "p", "production_domain": "d.com", "projectid": "p"}
            )

    def test_token_not_in_repr(self) -> None:
        """The token never shows in the config's repr."""
        cfg = VercelConfig.model_validate(
            {"token": TOKEN, "project_id": "p", "production_domain": "d.com"}
        )
        assert TOKEN not in repr(cfg)
        assert TOKEN not in str(cfg.model_dump())

    def test_domain_without_scheme(self) -> None:
        """The production domain is a bare host name."""
        with pytest.raises(ValueError, match="bare production domain"):
            VercelConfig.model_validate(
                {"token": "x", "project_id": "p", "production_domain": "https://d.com"}
            )


class TestReads:
    async def test_current_production(self, deployer: VercelDeployer, vercel: FakeVercel) -> None:
        """Production is read from the project and cross-checked with the domain's alias."""
        current = await deployer.current_production()
        assert current.id == "dpl_c"
        assert current.commit == "ccccccc3"
        assert [r.route for r in vercel.requests] == ["project", "alias"]
        for req in vercel.requests:
            assert req.headers["Authorization"] == f"Bearer {TOKEN}"
            assert req.query["teamId"] == "team_1"

    async def test_alias_wins(self, deployer: VercelDeployer, vercel: FakeVercel) -> None:
        """When targets.production and the alias disagree, the alias (what users hit) wins."""
        vercel.alias = "dpl_b"
        current = await deployer.current_production()
        assert current.id == "dpl_b"
        assert vercel.requests[-1].path == "/v13/deployments/dpl_b"

    async def test_list_paginates(
        self, vercel: FakeVercel, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Pages are followed with until=pagination.next until next is null; ids come from uid."""
        d = VercelDeployer(vercel_config(vercel, list_limit=2), session, clock)
        found = await d.list_candidates()
        assert [x.id for x in found] == ["dpl_c", "dpl_b", "dpl_a"]
        reqs = vercel.requests_for("deployments")
        assert len(reqs) == 2
        assert reqs[0].query == {
            "projectId": "prj_1",
            "target": "production",
            "state": "READY",
            "limit": "2",
            "teamId": "team_1",
        }
        assert reqs[1].query["until"] == str(MS + HOUR_MS)

    async def test_token_rejected(
        self, vercel: FakeVercel, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 403 says "token rejected", is not retryable, and never contains the token."""
        bad = "vercel-wrong-canary-9x"
        d = VercelDeployer(vercel_config(vercel, token=bad), session, clock)
        with capture_logs() as logs, pytest.raises(CallError) as info:
            await d.current_production()
        err = info.value
        assert not err.retryable
        assert err.status == 403
        assert "token rejected" in str(err)
        assert "Not authorized" in str(err)
        assert bad not in str(err)
        assert TOKEN not in str(err)
        assert bad not in json.dumps(logs, default=str)

    async def test_missing_team_rejected(
        self, vercel: FakeVercel, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Without the configured teamId the fake refuses, as Vercel does for team projects."""
        d = VercelDeployer(vercel_config(vercel, team_id=None), session, clock)
        with pytest.raises(CallError) as info:
            await d.serving()
        assert info.value.status == 403

    async def test_malformed_body(self, deployer: VercelDeployer, vercel: FakeVercel) -> None:
        """A body that is not JSON is a retryable provider fault."""
        vercel.fail("project", 200, "<html>oops</html>", content_type="text/html")
        with pytest.raises(CallError) as info:
            await deployer.get_project()
        assert info.value.retryable
        assert info.value.reason == "malformed"

    async def test_slow_answer_times_out(
        self, vercel: FakeVercel, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """An answer slower than request_timeout is a retryable timeout."""
        d = VercelDeployer(vercel_config(vercel, request_timeout=0.05), session, clock)
        vercel.fail("alias", 200, "{}", delay=0.5)
        with pytest.raises(CallError) as info:
            await d.serving()
        assert info.value.retryable
        assert info.value.reason == "timeout"

    async def test_connection_refused(
        self, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Nothing listening is a retryable connection error."""
        fake = FakeVercel(token=TOKEN)
        async with fake:
            cfg = vercel_config(fake)
        d = VercelDeployer(cfg, session, clock)
        with pytest.raises(CallError) as info:
            await d.serving()
        assert info.value.retryable
        assert info.value.reason == "connect"  # the same label sources use


class TestRollback:
    async def test_rollback_happy(self, deployer: VercelDeployer, vercel: FakeVercel) -> None:
        """POST /v1/.../rollback, poll lastAliasRequest to succeeded, then the alias serves it."""
        changes: list[str] = []
        vercel.on_production_change(changes.append)
        target = (await deployer.list_candidates())[1]
        req = await deployer.request_rollback(target)
        assert req.method == "rollback"
        assert not req.shadow
        post = vercel.requests_for("rollback")[0]
        assert post.path == "/v1/projects/prj_1/rollback/dpl_b"
        assert post.query == {"teamId": "team_1"}
        assert post.headers["Content-Type"] == "application/json"
        result = await deployer.await_rollback(target)
        assert result.ok, result.detail
        assert result.job_status == "succeeded"
        assert result.serving == "dpl_b"
        assert changes == ["dpl_b"]
        assert not vercel.auto_assign

    async def test_staged_is_promoted(self, deployer: VercelDeployer, vercel: FakeVercel) -> None:
        """A STAGED deployment is promoted (v10 promote), never rolled back to."""
        vercel.add_deployment("dpl_s", created_ms=MS + 3 * HOUR_MS, substate="STAGED")
        target = Deployment(id="dpl_s", substate="STAGED")
        req = await deployer.request_rollback(target)
        assert req.method == "promote"
        assert vercel.requests[-1].path == "/v10/projects/prj_1/promote/dpl_s"
        assert (await deployer.await_rollback(target)).ok

    async def test_job_failed(self, deployer: VercelDeployer, vercel: FakeVercel) -> None:
        """A job that ends failed is a failed rollback."""
        vercel.job_outcome = "failed"
        target = Deployment(id="dpl_b")
        await deployer.request_rollback(target)
        result = await deployer.await_rollback(target)
        assert not result.ok
        assert result.job_status == "failed"
        assert "failed" in result.detail

    async def test_alias_still_bad(self, deployer: VercelDeployer, vercel: FakeVercel) -> None:
        """A job that "succeeded" while the domain still serves the bad deployment failed."""
        vercel.alias_sticks = True
        target = Deployment(id="dpl_b")
        await deployer.request_rollback(target)
        result = await deployer.await_rollback(target)
        assert not result.ok
        assert result.job_status == "succeeded"
        assert result.serving == "dpl_c"
        assert "still serves dpl_c" in result.detail

    async def test_job_timeout(
        self, vercel: FakeVercel, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A job that never finishes ends the wait at job_timeout on the injected clock."""
        vercel.job_polls = 10_000
        d = VercelDeployer(vercel_config(vercel, job_timeout=10, poll_interval=2), session, clock)
        await d.request_rollback(Deployment(id="dpl_b"))
        started = clock.monotonic()
        result = await d.await_rollback(Deployment(id="dpl_b"))
        assert not result.ok
        assert "did not finish within 10s" in result.detail
        assert clock.monotonic() - started == pytest.approx(10)

    async def test_500_then_retried(
        self, deployer: VercelDeployer, vercel: FakeVercel, clock: FakeClock
    ) -> None:
        """A 500 on the rollback call is retryable and the retry goes through."""
        vercel.fail("rollback", 500, '{"error":{"code":"internal_server_error","message":"x"}}')
        target = Deployment(id="dpl_b")
        req = await call_with_retries(
            functools.partial(deployer.request_rollback, target),
            RetryPolicy(attempts=3, initial=1, maximum=5, deadline=30),
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
        assert req.method == "rollback"
        assert len(vercel.requests_for("rollback")) == 2
        assert clock.slept == [1]

    async def test_409_other_job(self, deployer: VercelDeployer, vercel: FakeVercel) -> None:
        """A 409 for someone else's job is retryable after conflict_wait."""
        vercel.last_alias_request = {"toDeploymentId": "dpl_a", "jobStatus": "in-progress"}
        with pytest.raises(CallError) as info:
            await deployer.request_rollback(Deployment(id="dpl_b"))
        assert info.value.retryable
        assert info.value.reason == "conflict"
        assert info.value.retry_after == 5

    async def test_409_our_job(self, deployer: VercelDeployer, vercel: FakeVercel) -> None:
        """A 409 because our own earlier attempt is running counts as accepted."""
        vercel.last_alias_request = {"toDeploymentId": "dpl_b", "jobStatus": "in-progress"}
        req = await deployer.request_rollback(Deployment(id="dpl_b"))
        assert "already running" in req.detail

    async def test_409_then_success(
        self, deployer: VercelDeployer, vercel: FakeVercel, clock: FakeClock
    ) -> None:
        """A scripted 409 is waited out and the request then succeeds."""
        vercel.fail("rollback", 409, '{"error":{"code":"conflict","message":"busy"}}')
        req = await call_with_retries(
            functools.partial(deployer.request_rollback, Deployment(id="dpl_b")),
            RetryPolicy(attempts=3, initial=1, maximum=10, deadline=60),
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
        assert req.method == "rollback"
        assert clock.slept == [5]

    @pytest.mark.parametrize("status", [404, 410])
    async def test_target_gone(
        self, deployer: VercelDeployer, vercel: FakeVercel, status: int
    ) -> None:
        """404/410 on the rollback call raise TargetGoneError (choose again), not retryable."""
        vercel.fail("rollback", status, '{"error":{"code":"not_found","message":"gone"}}')
        with pytest.raises(TargetGoneError) as info:
            await deployer.request_rollback(Deployment(id="dpl_b"))
        assert not info.value.retryable

    async def test_rate_limited_header(self, deployer: VercelDeployer, vercel: FakeVercel) -> None:
        """A 429 waits until X-RateLimit-Reset (epoch seconds)."""
        vercel.rate_limit("rollback", shape="overview", reset_in=7)
        with pytest.raises(CallError) as info:
            await deployer.request_rollback(Deployment(id="dpl_b"))
        assert info.value.retryable
        assert info.value.status == 429
        assert info.value.retry_after == pytest.approx(7, abs=1)

    @pytest.mark.parametrize("shape", ["overview", "errors"])
    async def test_rate_limited_bodies(
        self, deployer: VercelDeployer, vercel: FakeVercel, clock: FakeClock, shape: str
    ) -> None:
        """Both documented 429 bodies are understood; the errors-page shape carries the reset."""
        reset = clock.now().timestamp() + 12
        vercel.fail("rollback", 429, rate_limit_body(shape, reset))
        with pytest.raises(CallError) as info:
            await deployer.request_rollback(Deployment(id="dpl_b"))
        assert info.value.retryable
        if shape == "errors":
            assert info.value.retry_after == pytest.approx(12, abs=1)
        else:
            assert info.value.retry_after is None

    async def test_shadow(
        self, vercel: FakeVercel, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Shadow mode makes no API call and says what it would have done."""
        d = VercelDeployer(vercel_config(vercel, shadow=True), session, clock)
        req = await d.request_rollback(Deployment(id="dpl_b"))
        assert req.shadow
        assert req.detail == "would rollback to dpl_b"
        assert vercel.requests == []

    async def test_undo_hint(self, deployer: VercelDeployer) -> None:
        """The undo hint names the dashboard's Undo Rollback and the promote API."""
        hint = deployer.undo_hint()
        assert "stopped auto-assigning" in hint
        assert "Undo Rollback" in hint
        assert "/v10/projects/prj_1/promote/<fixed-deployment-id>?teamId=team_1" in hint
