"""A live incident for the real-tool tests: the real daemon on the wall clock, with its HTTP
server, watching the demo's stand-ins (``watchdog.demo_world``) through a bad deployment.

The default rule pack runs with every duration divided by :data:`SPEED`, so the whole
incident (the bad deployment goes live, the error rate rule fires twice, a P1 rollback,
Vercel's job, verification, the resolve period) takes about ten seconds. Tests that start a
real Prometheus or Alertmanager around it use :func:`live_daemon` and :meth:`Live.incident`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from pydantic import SecretStr

from watchdog.actions.dispatcher import DispatcherConfig
from watchdog.actions.pagerduty import PagerDutyConfig
from watchdog.actions.slack import SlackConfig
from watchdog.actions.vercel import VercelConfig
from watchdog.actions.verify import VerifyConfig
from watchdog.clock import SystemClock
from watchdog.config import (
    LeaderSettings,
    PagerConfig,
    SchedulerSettings,
    ServerSettings,
    Settings,
    StoreSettings,
    TargetConfig,
)
from watchdog.daemon import Daemon
from watchdog.daemon.main import Running, start
from watchdog.demo import compress
from watchdog.demo_world import BAD, GOOD, TARGET, Production
from watchdog.sources import HealthSourceConfig, SentrySourceConfig, VersionSourceConfig
from watchdog.store.base import IncidentRecord, RollbackState
from watchdog.store.memory import MemoryStore
from watchdog.testing.fake_sentry import DEFAULT_TOKEN as SENTRY_TOKEN
from watchdog.yamlfile import default_rules_path, load_rule_pack

__all__ = ["BAD", "GOOD", "SPEED", "TARGET", "Live", "live_daemon", "pagerduty"]

#: every duration of the default pack is divided by this (5 min resolve period → 5 s)
SPEED = 60.0
#: the error rate the bad deployment serves (the P1 rule rolls back above 5%)
BAD_ERROR_RATE = 0.12

PagerFor = Callable[[Production], PagerConfig]


def pagerduty(prod: Production) -> PagerConfig:
    """The stand-in PagerDuty (what the demo pages)."""
    return PagerDutyConfig(
        routing_key=SecretStr("demo0routing0key0000000000000000"), base_url=prod.pagerduty.url
    )


def live_settings(prod: Production, pager: PagerConfig) -> Settings:
    poll = timedelta(seconds=0.5)
    return Settings(
        store=StoreSettings(url="memory://"),
        server=ServerSettings(host="127.0.0.1", port=0),
        scheduler=SchedulerSettings(
            tick=timedelta(seconds=0.25),
            deploy_poll=timedelta(seconds=1),
            jitter=0.0,
            max_concurrency=8,
        ),
        leader=LeaderSettings(holder="live"),
        pager=pager,
        chat=SlackConfig(webhook_url=SecretStr(prod.slack.webhook_url)),
        dispatcher=DispatcherConfig(
            retry_attempts=2,
            retry_initial=timedelta(milliseconds=20),
            retry_maximum=timedelta(milliseconds=100),
            retry_deadline=timedelta(seconds=5),
        ),
        targets=[
            TargetConfig(
                name=TARGET,
                sources=[
                    HealthSourceConfig(
                        url=f"{prod.app.url}/api/health", interval=poll, timeout=poll * 0.8
                    ),
                    VersionSourceConfig(
                        url=f"{prod.app.url}/api/version",
                        field="deployment.id",
                        interval=poll,
                        timeout=poll * 0.8,
                    ),
                    SentrySourceConfig(
                        org="acme",
                        project=["web"],
                        base_url=prod.sentry.url,
                        token=SecretStr(SENTRY_TOKEN),
                        window=timedelta(minutes=1),
                        interval=poll,
                        timeout=poll * 0.8,
                    ),
                ],
                deployer=VercelConfig(
                    token=SecretStr(prod.vercel.token),
                    project_id=prod.vercel.project_id,
                    production_domain=prod.vercel.production_domain,
                    base_url=prod.vercel.url,
                    poll_interval=timedelta(milliseconds=50),
                ),
                verify=VerifyConfig(
                    health_url=f"{prod.app.url}/api/health",
                    version_url=f"{prod.app.url}/api/version",
                    poll_interval=timedelta(milliseconds=100),
                    verify_timeout=timedelta(seconds=10),
                ),
            )
        ],
    )


@dataclass
class Live:
    prod: Production
    running: Running

    @property
    def daemon(self) -> Daemon:
        return self.running.daemon

    @property
    def metrics_address(self) -> str:
        """``host:port`` of the daemon's ``/metrics``, as a scrape config names it."""
        return self.running.url.removeprefix("http://")

    def deploy_bad(self) -> None:
        """The bad deployment goes live and its requests start failing."""
        self.prod.deploy(BAD, "f00dbad")
        self.prod.sentry.error_rate = BAD_ERROR_RATE

    async def open_incident(self, limit_s: float = 15.0) -> IncidentRecord:
        return await self._wait(lambda i: i, limit_s, "an incident")

    async def resolved(self, limit_s: float = 30.0) -> IncidentRecord:
        """The incident once the rollback is verified and the resolve period has passed."""
        incident = await self._wait(lambda i: i if i.resolved_at else None, limit_s, "resolve")
        rollbacks = await self.daemon.store.list_rollbacks(target=TARGET)
        assert [r.state for r in rollbacks] == [RollbackState.VERIFIED], rollbacks
        assert self.prod.vercel.alias == GOOD
        return incident

    async def incident(self) -> IncidentRecord:
        """The whole incident: bad deployment, P1 rollback, verification, resolution."""
        self.deploy_bad()
        return await self.resolved()

    async def _wait(
        self,
        pick: Callable[[IncidentRecord], IncidentRecord | None],
        limit_s: float,
        what: str,
    ) -> IncidentRecord:
        deadline = time.monotonic() + limit_s
        while True:
            for incident in await self.daemon.store.list_incidents():
                if (found := pick(incident)) is not None:
                    return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {limit_s} s")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def live_daemon(pager: PagerFor = pagerduty) -> AsyncIterator[Live]:
    """The stand-ins and the daemon (real loops, wall clock, HTTP server on a free port)."""
    prod = Production("bad-deploy")
    await prod.start()
    try:
        settings = live_settings(prod, pager(prod))
        pack = compress(load_rule_pack(default_rules_path()), SPEED)
        running = await start(settings, pack, clock=SystemClock(), store=MemoryStore(), port=0)
        try:
            yield Live(prod, running)
        finally:
            await running.stop()
    finally:
        await prod.close()
