"""Fixtures for the actions tests: a fake clock, one aiohttp session, a fake Vercel project,
and the dispatcher rig wired to them (with PagerDuty and Slack fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
from pydantic import SecretStr

from watchdog.actions.dispatcher import Dispatcher, DispatcherConfig, TargetActions
from watchdog.actions.pagerduty import PagerDutyConfig, PagerDutyPager
from watchdog.actions.slack import SlackConfig, SlackNotifier
from watchdog.actions.vercel import VercelConfig, VercelDeployer
from watchdog.actions.vercel_rolling import VercelRollingReleases
from watchdog.actions.verify import Verifier, VerifyConfig
from watchdog.core.model import (
    Action,
    Decision,
    Event,
    Observation,
    RollbackOutcome,
    RollbackResultEvent,
    Severity,
)
from watchdog.metrics import Metrics
from watchdog.store.memory import MemoryStore
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


ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"


@dataclass
class Rig:
    dispatcher: Dispatcher
    store: MemoryStore
    events: list[Event]
    vercel: FakeVercel
    pd: FakePagerDuty
    slack: FakeSlack
    clock: FakeClock

    def outcomes(self) -> list[RollbackOutcome]:
        return [e.outcome for e in self.events if isinstance(e, RollbackResultEvent)]


@pytest.fixture
def make_rig(
    vercel: FakeVercel,
    pd: FakePagerDuty,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
    clock: FakeClock,
):  # type: ignore[no-untyped-def]
    def build(
        *,
        shadow: bool = False,
        error_rate: list[float | None] | None = None,
        verify_timeout: float = 60,
        can_act: object = None,
        store: MemoryStore | None = None,
        metrics: Metrics | None = None,
        **vercel_overrides: object,
    ) -> Rig:
        store = store or MemoryStore()
        events: list[Event] = []
        deployer = VercelDeployer(vercel_config(vercel, **vercel_overrides), session, clock)
        rollouts = VercelRollingReleases(deployer, clock)
        rates = list(error_rate or [])

        def probe() -> float | None:
            return rates.pop(0) if len(rates) > 1 else (rates[0] if rates else None)

        verifier = Verifier(
            VerifyConfig(verify_timeout=timedelta(seconds=verify_timeout)), session, clock
        )
        dispatcher = Dispatcher(
            store=store,
            clock=clock,
            config=DispatcherConfig(shadow=shadow, chat_deadline=timedelta(seconds=0.3)),
            pager=PagerDutyPager(
                PagerDutyConfig(routing_key=SecretStr(ROUTING_KEY), base_url=pd.url),
                session,
                clock,
            ),
            notifier=SlackNotifier(
                SlackConfig(webhook_url=SecretStr(slack.webhook_url)), session, clock
            ),
            targets={
                "web": TargetActions(
                    deployer=deployer,
                    verifier=verifier,
                    error_rate=probe if error_rate is not None else None,
                    rollouts=rollouts,
                )
            },
            on_event=events.append,
            can_act=can_act,  # type: ignore[arg-type]
            metrics=metrics,
        )
        return Rig(dispatcher, store, events, vercel, pd, slack, clock)

    return build


def rollback_decision(clock: FakeClock, incident: str = "inc-1", **kw: object) -> Decision:
    values: dict[str, object] = {
        "target": "web",
        "at": clock.now(),
        "action": Action.ROLLBACK,
        "severity": Severity.P1,
        "rule": "error-rate-critical",
        "reason": "error rate 7.2% > 5% for 2 samples",
        "path": ("p0?no", "rollback-threshold?yes", "rollback"),
        "incident": incident,
        "execute_rollback": True,
        "deployment": "dpl_c",
        "observations": (Observation("error-rate-critical", "error_rate", 0.072, ">", 0.05, True),),
    }
    values.update(kw)
    return Decision(**values)  # type: ignore[arg-type]


async def run(rig: Rig, decision: Decision) -> None:
    await rig.dispatcher.execute(decision)
    await rig.dispatcher.drain()
