"""A simulated production for daemon tests: the fakes on loopback and Settings pointing at them.

Every daemon test builds the same small world: one target ``web`` whose current production
deployment (``dpl_bad``) went live ten minutes ago, a good one before it (``dpl_good``) and an
older one, a fake app whose health and version follow what Vercel's production domain serves,
and stand-ins for PagerDuty and Slack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from watchdog.actions.dispatcher import DispatcherConfig
from watchdog.actions.pagerduty import PagerDutyConfig
from watchdog.actions.slack import SlackConfig
from watchdog.actions.vercel import VercelConfig
from watchdog.actions.verify import VerifyConfig
from watchdog.clock import Clock
from watchdog.config import (
    LeaderSettings,
    SchedulerSettings,
    ServerSettings,
    Settings,
    StoreSettings,
    TargetConfig,
)
from watchdog.core.model import Sample, Signal
from watchdog.core.rules import RulePack
from watchdog.daemon import Daemon
from watchdog.daemon.server import build_app
from watchdog.sources import HealthSourceConfig
from watchdog.store.base import Store
from watchdog.testing.fake_app import FakeApp
from watchdog.testing.fake_pagerduty import FakePagerDuty
from watchdog.testing.fake_slack import FakeSlack
from watchdog.testing.fake_vercel import FakeVercel
from watchdog.yamlfile import default_rules_path, load_rule_pack

TARGET = "web"
GOOD, BAD, OLD = "dpl_good", "dpl_bad", "dpl_old"
#: canaries: these must never show up in logs, metrics, status or pages
API_TOKEN = "canary-api-token-4f1d9a"
VERCEL_TOKEN = "canary-vercel-token-77e2c0"
ROUTING_KEY = "canaryroutingkey000000000000000a"


def default_pack() -> RulePack:
    return load_rule_pack(default_rules_path())


@dataclass
class World:
    """The fakes, started together; ``epoch`` gives the deployments' creation times."""

    now: Callable[[], datetime]
    app: FakeApp = field(default_factory=lambda: FakeApp(version=BAD, commit="f00dbad"))
    pagerduty: FakePagerDuty = field(default_factory=FakePagerDuty)
    slack: FakeSlack = field(default_factory=FakeSlack)
    vercel: FakeVercel = field(init=False)

    def __post_init__(self) -> None:
        self.vercel = FakeVercel(
            token=VERCEL_TOKEN, job_polls=2, now=lambda: self.now().timestamp()
        )
        now_ms = int(self.now().timestamp() * 1000)
        self.vercel.add_deployment(OLD, created_ms=now_ms - 3 * 86_400_000)
        self.vercel.add_deployment(GOOD, created_ms=now_ms - 86_400_000)
        self.vercel.add_deployment(BAD, created_ms=now_ms - 600_000, production=True)
        self.vercel.on_production_change(lambda dep: self.app.deploy(dep, dep))

    async def start(self) -> None:
        for fake in (self.app, self.vercel, self.pagerduty, self.slack):
            await fake.start()

    async def close(self) -> None:
        for fake in (self.app, self.vercel, self.pagerduty, self.slack):
            await fake.close()

    def rollback_posts(self) -> list[Any]:
        return [r for r in self.vercel.requests if r.method == "POST"]


def settings_for(
    world: World,
    *,
    store_url: str = "memory://",
    shadow: bool = False,
    api_token: str | None = API_TOKEN,
    holder: str = "replica-a",
    ttl: timedelta = timedelta(seconds=15),
    tick: timedelta = timedelta(seconds=5),
    health_interval: timedelta = timedelta(seconds=15),
    health_timeout: timedelta = timedelta(seconds=5),
    **extra: Any,
) -> Settings:
    """Settings for one target watched by a health probe, rolled back through fake Vercel."""
    return Settings(
        store=StoreSettings(url=store_url),
        server=ServerSettings(
            host="127.0.0.1", port=0, api_token=SecretStr(api_token) if api_token else None
        ),
        scheduler=SchedulerSettings(
            tick=tick, deploy_poll=timedelta(seconds=30), jitter=0.0, max_concurrency=4
        ),
        leader=LeaderSettings(ttl=ttl, holder=holder),
        pager=PagerDutyConfig(routing_key=SecretStr(ROUTING_KEY), base_url=world.pagerduty.url),
        chat=SlackConfig(webhook_url=SecretStr(world.slack.webhook_url)),
        dispatcher=DispatcherConfig(
            retry_attempts=2,
            retry_initial=timedelta(milliseconds=10),
            retry_maximum=timedelta(milliseconds=50),
            retry_deadline=timedelta(seconds=5),
        ),
        shadow=shadow,
        targets=[
            TargetConfig(
                name=TARGET,
                sources=[
                    HealthSourceConfig(
                        url=f"{world.app.url}/api/health",
                        interval=health_interval,
                        timeout=health_timeout,
                    )
                ],
                deployer=VercelConfig(
                    token=SecretStr(VERCEL_TOKEN),
                    project_id=world.vercel.project_id,
                    production_domain=world.vercel.production_domain,
                    base_url=world.vercel.url,
                    poll_interval=timedelta(milliseconds=50),
                    conflict_wait=timedelta(milliseconds=50),
                ),
                verify=VerifyConfig(
                    health_url=f"{world.app.url}/api/health",
                    version_url=f"{world.app.url}/api/version",
                    poll_interval=timedelta(milliseconds=50),
                    verify_timeout=timedelta(seconds=20),
                ),
            )
        ],
        **extra,
    )


def health(at: datetime, up: bool) -> Sample:
    return Sample(TARGET, Signal.HEALTH_UP, 1.0 if up else 0.0, at, source="web/health")


def error_rate(at: datetime, value: float | None) -> Sample:
    return Sample(TARGET, Signal.ERROR_RATE, value, at, requests=5000, source="web/sentry")


def outage(start: datetime, count: int = 3, step: float = 15.0) -> list[Sample]:
    """A healthy error rate, then ``count`` failed health probes: the P0 system-down rule."""
    samples = [error_rate(start, 0.001)]
    samples += [health(start + timedelta(seconds=step * (i + 1)), False) for i in range(count)]
    return samples


async def settle(daemon: Daemon, limit_s: float = 20.0) -> None:
    """Wait until background rollbacks, chat and queued engine events are all done."""

    async def quiet() -> None:
        dispatcher = daemon.dispatcher
        while True:
            await daemon.pipeline.events.join()
            if dispatcher is None:
                return
            if not dispatcher.background and daemon.pipeline.events.empty():
                return
            await dispatcher.drain()

    await asyncio.wait_for(quiet(), limit_s)


async def ingest_each(daemon: Daemon, samples: Iterable[Sample], clock: Any = None) -> None:
    """Ingest samples one by one, moving a fake clock to each sample's time first."""
    for sample in samples:
        if clock is not None and sample.at > clock.now():
            clock.advance((sample.at - clock.now()).total_seconds())
        await daemon.ingest([sample])


async def wait_for(predicate: Callable[[], bool], limit_s: float, what: str) -> float:
    """Poll ``predicate`` in real time (only for tests that run the real loops)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > limit_s:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def fixed_start() -> datetime:
    return datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


def build_daemon(
    settings: Settings, store: Store, clock: Clock, pack: RulePack | None = None
) -> Daemon:
    return Daemon(settings, pack or default_pack(), store, clock=clock)


async def crash(daemon: Daemon) -> None:
    """Abandon a daemon as a crash would: its tasks die mid-await, nothing is flushed or
    released, no shutdown code runs. Only the OS-level resources (the HTTP session and the
    database handle) are closed afterwards so the test process does not leak them."""
    dispatcher = daemon.dispatcher
    tasks: list[asyncio.Task[Any]] = list(daemon._tasks)
    if dispatcher is not None:
        tasks += [*dispatcher.background]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    daemon._tasks.clear()
    if daemon._session is not None:
        await daemon._session.close()
    close = getattr(daemon.store, "_db", None)
    if close is not None:  # SQLite: drop the handle without any store-level shutdown
        daemon.store._db = None  # type: ignore[attr-defined]
        await close.close()
    pool = getattr(daemon.store, "_pool", None)
    if pool is not None:  # PostgreSQL: drop the connections, never release the lease
        daemon.store._pool = None  # type: ignore[attr-defined]
        pool.terminate()


async def api_client(daemon: Daemon, token: str | None = API_TOKEN) -> TestClient[Any, Any]:
    """The daemon's HTTP app behind aiohttp's test server; the caller closes it."""
    app = build_app(daemon, daemon.registry, SecretStr(token) if token else None)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


@asynccontextmanager
async def http_served(daemon: Daemon) -> AsyncIterator[str]:
    """The daemon's HTTP app on a real loopback port (for a CLI subprocess or a browser)."""
    runner = web.AppRunner(build_app(daemon, daemon.registry, daemon.settings.server.api_token))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
