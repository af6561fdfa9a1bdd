"""Verification: pure judging of version and error rate, and the bounded loop against a fake app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from watchdog.actions.base import Deployment
from watchdog.actions.vercel import VercelDeployer
from watchdog.actions.verify import (
    Check,
    CheckResult,
    CheckState,
    RoundOutcome,
    Verifier,
    VerifyConfig,
    judge_error_rate,
    judge_round,
    judge_version,
)
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_vercel import FakeVercel

TARGET = Deployment(id="dpl_b", meta={"githubCommitSha": "bbbbbbb2deadbeef"})
FIELDS = ["deploymentId", "commit", "version"]
PASS = CheckResult(CheckState.PASS, "")
FAIL = CheckResult(CheckState.FAIL, "")


class TestJudging:
    @pytest.mark.parametrize(
        ("body", "state"),
        [
            ('{"deploymentId":"dpl_b"}', CheckState.PASS),
            ('{"commit":"bbbbbbb2"}', CheckState.PASS),
            ('{"build":{"commit":"bbbbbbb2deadbeef"}}', CheckState.PASS),
            ('{"commit":"bbbb"}', CheckState.FAIL),
            ('{"deploymentId":"dpl_c","commit":"ccccccc3"}', CheckState.FAIL),
            ("dpl_b", CheckState.PASS),
            ("{}", CheckState.UNKNOWN),
        ],
    )
    def test_version(self, body: str, state: CheckState) -> None:
        """The version endpoint must name the target's id or a ≥7-char prefix of its commit."""
        assert judge_version(body, TARGET, FIELDS).state is state

    @pytest.mark.parametrize(
        ("baseline", "latest", "state"),
        [
            (0.08, None, CheckState.UNKNOWN),
            (0.08, 0.004, CheckState.PASS),
            (0.08, 0.03, CheckState.PASS),
            (0.08, 0.09, CheckState.FAIL),
            (None, 0.03, CheckState.FAIL),
            (None, 0.005, CheckState.PASS),
        ],
    )
    def test_error_rate(
        self, baseline: float | None, latest: float | None, state: CheckState
    ) -> None:
        """The error rate passes when back to normal or lower than at rollback time."""
        assert judge_error_rate(baseline, latest, 0.005).state is state

    def test_judge_round(self) -> None:
        """All passing verifies; otherwise continue until the timeout, then fail naming checks."""
        t = timedelta(minutes=3)
        both = {Check.HEALTH: PASS, Check.VERSION: PASS}
        assert judge_round(both, elapsed=timedelta(0), timeout=t) == (RoundOutcome.VERIFIED, ())
        mixed = {Check.HEALTH: PASS, Check.VERSION: FAIL}
        assert judge_round(mixed, elapsed=timedelta(minutes=1), timeout=t) == (
            RoundOutcome.CONTINUE,
            ("version",),
        )
        assert judge_round(mixed, elapsed=t, timeout=t) == (RoundOutcome.FAILED, ("version",))


class App:
    def __init__(self) -> None:
        self.health = 500
        self.version = "dpl_c"

    def app(self) -> web.Application:
        a = web.Application()
        a.router.add_get("/api/health", self._health)
        a.router.add_get("/api/version", self._version)
        return a

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=self.health)

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"deploymentId": self.version})


@pytest.fixture
async def app() -> AsyncIterator[tuple[App, str]]:
    fake = App()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


class TestVerifier:
    async def test_verified_once_app_serves_target(
        self,
        app: tuple[App, str],
        deployer: VercelDeployer,
        vercel: FakeVercel,
        session: aiohttp.ClientSession,
        clock: FakeClock,
    ) -> None:
        """Verification keeps probing until Vercel, health and version agree on the target."""
        fake, base = app
        vercel.set_serving("dpl_b")
        vercel.on_production_change(lambda _: None)
        cfg = VerifyConfig(
            health_url=f"{base}/api/health",
            version_url=f"{base}/api/version",
            poll_interval=timedelta(seconds=10),
        )
        verifier = Verifier(cfg, session, clock)
        calls = 0

        def rate() -> float | None:
            nonlocal calls
            calls += 1
            if calls == 1:  # the app recovers right after the first probe read it
                fake.health, fake.version = 200, "dpl_b"
            return 0.01

        result = await verifier.verify(deployer, TARGET, baseline_error_rate=0.08, error_rate=rate)
        assert result.ok, result.detail
        assert result.elapsed == timedelta(seconds=10)

    async def test_fails_naming_checks(
        self,
        app: tuple[App, str],
        deployer: VercelDeployer,
        session: aiohttp.ClientSession,
        clock: FakeClock,
    ) -> None:
        """At verify_timeout the result names every check that never passed."""
        _, base = app
        cfg = VerifyConfig(
            verify_timeout=timedelta(seconds=30),
            health_url=f"{base}/api/health",
            version_url=f"{base}/api/version",
        )
        result = await Verifier(cfg, session, clock).verify(deployer, TARGET)
        assert not result.ok
        assert result.failed == ("serves_target", "health", "version")
        assert "production serves dpl_c, not dpl_b" in result.detail
        assert result.elapsed == timedelta(seconds=30)
