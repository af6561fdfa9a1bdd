"""The demo's simulated production, and the stand-ins served on one port for compose.

I/O boundary: the fake servers of :mod:`watchdog.testing` on loopback (app, Vercel, Sentry,
Supabase, PagerDuty, Slack); nothing here reaches a real vendor.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from watchdog.testing.fake_app import FakeApp, Feature
from watchdog.testing.fake_pagerduty import FakePagerDuty
from watchdog.testing.fake_sentry import FakeSentry, ReleaseStats
from watchdog.testing.fake_slack import FakeSlack
from watchdog.testing.fake_supabase import FakeSupabase
from watchdog.testing.fake_vercel import FakeVercel
from watchdog.testing.fake_vercel_rolling import FakeStage
from watchdog.testing.server import FakeServer

GOOD, BAD, FIX = "dpl_good", "dpl_bad", "dpl_fix"
TARGET = "web"
#: the commits the deployments are built from (Sentry's releases, as @sentry/nextjs names them)
GOOD_COMMIT = "a1b2c3d"
#: the canary scenario's rollout: 10% for a minute, then 50%, then everyone
CANARY_STAGES = [FakeStage(10, duration=60.0), FakeStage(50, duration=60.0), FakeStage(100)]
#: the canary's error rate, and the base's, in the canary scenario
CANARY_ERRORS, BASE_ERRORS = 0.08, 0.002


class Production:
    """The simulated production: app + Vercel + Sentry + Supabase, changing together."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.app = FakeApp(version=GOOD, commit=GOOD_COMMIT)
        self.vercel = FakeVercel(project_name="web", production_domain="www.example.com")
        self.sentry = FakeSentry()
        self.supabase = FakeSupabase(cpus=2)
        self.pagerduty = FakePagerDuty()
        self.slack = FakeSlack()
        self.deployed_bad_at: float | None = None
        self.busy = 0.25
        now_ms = int(time.time() * 1000)
        self.vercel.add_deployment(
            "dpl_old", created_ms=now_ms - 3 * 86_400_000, meta={"githubCommitSha": "0ld0ld0"}
        )
        self.vercel.add_deployment(
            GOOD,
            created_ms=now_ms - 86_400_000,
            meta={"githubCommitSha": GOOD_COMMIT},
            production=True,
        )
        self.vercel.on_production_change(self._serve)
        self.app.features["create-opportunity"] = Feature()

    async def start(self) -> None:
        for fake in (self.app, self.vercel, self.sentry, self.supabase, self.pagerduty, self.slack):
            await fake.start()

    async def close(self) -> None:
        for fake in (self.app, self.vercel, self.sentry, self.supabase, self.pagerduty, self.slack):
            await fake.close()

    def deploy(self, dep_id: str, commit: str) -> None:
        """A push to main goes live: Vercel builds and promotes it (in the canary scenario,
        rolls it out to 10% of users first)."""
        self.vercel.add_deployment(
            dep_id, created_ms=int(time.time() * 1000), meta={"githubCommitSha": commit}
        )
        if self.scenario == "canary":
            self.vercel.start_rolling_release(dep_id, CANARY_STAGES)
            self.sentry.releases = {
                GOOD_COMMIT: ReleaseStats(error_rate=BASE_ERRORS, count=4500),
                commit: ReleaseStats(error_rate=CANARY_ERRORS, count=500),
            }
            self._mix()
            return
        self.vercel.set_serving(dep_id)

    def _mix(self) -> None:
        """Sentry's overall numbers during the rollout: the canary's share of its errors."""
        rolling = self.vercel.rolling
        if rolling.state == "ACTIVE" and rolling.active is not None:
            share = rolling.stages[rolling.active].percent / 100
            self.sentry.error_rate = share * CANARY_ERRORS + (1 - share) * BASE_ERRORS
            return
        # over: the canary serves no one (aborted) or everyone (complete)
        for name, stats in self.sentry.releases.items():
            if (name == GOOD_COMMIT) == (rolling.state == "COMPLETE"):
                stats.count = 0
            else:
                stats.count = 5000
                self.sentry.error_rate = stats.error_rate

    def _serve(self, dep_id: str) -> None:
        commit = self.vercel.deployments[dep_id]["meta"].get("githubCommitSha", dep_id)
        self.app.deploy(dep_id, commit)
        bad = dep_id.startswith(BAD)
        self.deployed_bad_at = time.monotonic() if bad else None
        # good code: back to normal at once
        self.sentry.error_rate = 0.002
        self.sentry.p95_ms = 420.0
        self.app.latency = 0.0
        self.app.features["create-opportunity"] = Feature()
        if bad and self.scenario == "outage":
            self.app.health_status = 500
        if bad and self.scenario == "latency":
            self.sentry.p95_ms = 6400.0
        if bad and self.scenario == "feature-down":
            self.app.features["create-opportunity"] = Feature(
                status=500, payload={"error": "TypeError: cannot read 'owner'"}
            )

    def step(self, dt: float) -> None:
        """Advance the simulation by ``dt`` seconds of wall time."""
        if self.scenario == "canary" and self.sentry.releases:
            self.vercel.rolling.tick()
            self._mix()
        if self.deployed_bad_at is not None and self.scenario == "bad-deploy":
            age = time.monotonic() - self.deployed_bad_at
            # errors climb: 2% → 12% over ~10 s
            self.sentry.error_rate = min(0.12, 0.02 + 0.01 * age)
        self.supabase.run(dt, busy=self.busy)


# --------------------------------------------------------------------------- stand-ins only

STANDIN_PREFIXES = ("app", "vercel", "sentry", "supabase", "pagerduty", "slack")


def standins_app(prod: Production) -> web.Application:
    """Every stand-in under one port, by path prefix (``/app``, ``/vercel``, ...), for the
    compose file: the watchdog container's config points each base URL at one prefix."""
    root = web.Application()
    fakes: list[tuple[str, FakeServer]] = [
        ("app", prod.app),
        ("sentry", prod.sentry),
        ("supabase", prod.supabase),
        ("vercel", prod.vercel),
        ("pagerduty", prod.pagerduty),
        ("slack", prod.slack),
    ]
    for prefix, fake in fakes:
        root.add_subapp(f"/{prefix}", fake.application())
    return root


async def serve_standins(
    host: str, port: int, *, scenario: str = "bad-deploy", every: float = 300.0
) -> None:
    """Serve the simulated production and replay ``scenario`` every ``every`` seconds:
    the bad deployment goes live, and the watchdog (another process) must roll it back."""
    prod = Production(scenario)
    runner = web.AppRunner(standins_app(prod), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"stand-ins on http://{host}:{port}/{{{','.join(STANDIN_PREFIXES)}}}", flush=True)
    last = time.monotonic()
    next_bad = last + 30.0
    rounds = 0
    try:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            prod.step(now - last)
            last = now
            if now >= next_bad:
                next_bad = now + every
                if not (prod.vercel.alias or "").startswith(BAD):
                    rounds += 1
                    print(f"deploying {BAD}{rounds} (scenario {scenario})", flush=True)
                    prod.deploy(f"{BAD}{rounds}", "f00dbad")
    finally:
        await runner.cleanup()
