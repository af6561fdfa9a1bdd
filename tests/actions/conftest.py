"""Fixtures for the actions tests: a fake clock, one aiohttp session, a fake Vercel project."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from watchdog.actions.vercel import VercelConfig, VercelDeployer
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_pagerduty import FakePagerDuty
from watchdog.testing.fake_slack import FakeSlack
from watchdog.testing.fake_vercel import FakeVercel

TOKEN = "vercel-canary-token-3f9d1c"  # a canary: it must never appear in errors or logs
MS = 1_760_000_000_000  # a creation time in ms; deployments below are an hour apart
HOUR_MS = 3_600_000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def vercel(clock: FakeClock) -> AsyncIterator[FakeVercel]:
    """Three production deployments: dpl_a (oldest), dpl_b, dpl_c (live, the bad one)."""
    fake = FakeVercel(token=TOKEN, team_id="team_1", now=lambda: clock.now().timestamp())
    fake.add_deployment("dpl_a", created_ms=MS, meta={"githubCommitSha": "aaaaaaa1"})
    fake.add_deployment("dpl_b", created_ms=MS + HOUR_MS, meta={"githubCommitSha": "bbbbbbb2"})
    fake.add_deployment(
        "dpl_c", created_ms=MS + 2 * HOUR_MS, meta={"githubCommitSha": "ccccccc3"}, production=True
    )
    async with fake:
        yield fake


@pytest.fixture
async def pd() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def vercel_config(fake: FakeVercel, **overrides: object) -> VercelConfig:
    values: dict[str, object] = {
        "token": SecretStr(fake.token),
        "project_id": fake.project_id,
        "team_id": fake.team_id,
        "production_domain": fake.production_domain,
        "base_url": fake.url,
        "poll_interval": 1,
        "job_timeout": 30,
    }
    values.update(overrides)
    return VercelConfig.model_validate(values)


@pytest.fixture
def deployer(
    vercel: FakeVercel, session: aiohttp.ClientSession, clock: FakeClock
) -> VercelDeployer:
    return VercelDeployer(vercel_config(vercel), session, clock)
