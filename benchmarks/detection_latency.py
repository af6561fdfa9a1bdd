"""Detection latency: fault onset → rollback request at Vercel → rollback verified.

The real daemon (``watchdog.daemon.main.start``: scheduler, sources, engine, dispatcher,
SQLite store, HTTP server) runs against loopback stand-ins (FakeApp, FakeVercel, FakeSentry,
FakePagerDuty) with the default rule pack. Each run uses fresh fakes, a fresh store and a
fresh daemon:

1. production serves ``dpl_good``; the daemon starts and polls;
2. ``dpl_bad`` goes live (Vercel promotes it, the app serves it); we wait until the daemon
   has learnt it, so deploy correlation passes, as in ``watchdog demo``;
3. after a uniformly random delay in [0, interval) (a random phase of the poll cycle) a hard
   fault starts: ``health`` (the app's health endpoint answers 500) or ``error-rate``
   (Sentry reports 20 % failures);
4. we time the rollback request's arrival at the fake Vercel (its ``on_request`` hook) and
   the dispatcher's "verified" result (the RollbackResultEvent the daemon applies; the store's
   RollbackRecord is checked to say VERIFIED too).

The theoretical minimum is what the sustain rule needs at that interval given the phase:
``system-down`` needs 3 consecutive failing health polls, so it is the time from onset to the
3rd planned health poll at or after onset; ``error-rate-critical`` needs 2 Sentry samples.
Planned poll times are recovered from the requests' arrival times at the fakes (the grid is
``origin + k * interval``; arrivals are never early, so the smallest ``arrival - k * interval``
is the origin to within the smallest scheduling lag). Overhead = measured − minimum: the
scheduling lag, the request round trips, the engine and the dispatcher's own Vercel calls
before the rollback POST. Goal: overhead <= 0.5 s at p95.

    python benchmarks/detection_latency.py [--runs N] [--intervals 1,5] [--faults health,error-rate]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from watchdog import logs as wlog
from watchdog.actions.pagerduty import PagerDutyConfig
from watchdog.actions.vercel import VercelConfig
from watchdog.actions.verify import VerifyConfig
from watchdog.clock import SystemClock
from watchdog.config import SchedulerSettings, ServerSettings, Settings, StoreSettings, TargetConfig
from watchdog.core.model import Event, RollbackOutcome, RollbackResultEvent
from watchdog.daemon.main import start
from watchdog.sources import HealthSourceConfig, SentrySourceConfig, VersionSourceConfig
from watchdog.store.base import RollbackState
from watchdog.store.sqlite import SqliteStore
from watchdog.testing.fake_app import FakeApp
from watchdog.testing.fake_pagerduty import FakePagerDuty
from watchdog.testing.fake_sentry import DEFAULT_TOKEN as SENTRY_TOKEN
from watchdog.testing.fake_sentry import FakeSentry
from watchdog.testing.fake_vercel import FakeVercel
from watchdog.testing.server import RecordedRequest
from watchdog.yamlfile import default_rules_path, load_rule_pack

GOOD, BAD, TARGET = "dpl_good", "dpl_bad", "web"
#: consecutive failing samples the default pack's rule needs (system-down, error-rate-critical)
SUSTAIN = {"health": 3, "error-rate": 2}
#: how long one run may take before it is abandoned (bounded, whatever the daemon does)
RUN_LIMIT_S = 90.0


class Arrivals:
    """Monotonic arrival times of requests, per path prefix, stamped by a server middleware."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def middleware(self, prefix: str) -> Callable[..., object]:
        @web.middleware
        async def stamp(request: web.Request, handler: Callable[..., object]) -> object:
            if request.path.startswith(prefix):
                self.times.setdefault(prefix, []).append(time.monotonic())
            return await handler(request)  # type: ignore[misc]

        return stamp


class TimedApp(FakeApp):
    """FakeApp that stamps each health request's arrival (the instant the poll sees the app)."""

    def __init__(self, arrivals: Arrivals) -> None:
        super().__init__(version=GOOD, commit="a1b2c3d")
        self.arrivals = arrivals

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self.arrivals.middleware("/api/health"))  # type: ignore[arg-type]
        super().routes(app)


class TimedSentry(FakeSentry):
    def __init__(self, arrivals: Arrivals) -> None:
        super().__init__()
        self.arrivals = arrivals

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self.arrivals.middleware("/api/0/"))  # type: ignore[arg-type]
        super().routes(app)


@dataclass
class Run:
    fault: str
    interval: float
    phase: float  # onset's offset into the poll cycle of the rule's source, seconds
    minimum: float  # the sustain rule's theoretical minimum onset → decision, seconds
    requested: float | None  # onset → rollback POST received by Vercel
    verified: float | None  # onset → dispatcher's "verified" event applied by the daemon
    store_verified: bool
    note: str = ""

    @property
    def overhead(self) -> float | None:
        return None if self.requested is None else self.requested - self.minimum


def grid_origin(arrivals: list[float], interval: float) -> float:
    """The planned-poll grid's origin, from arrivals that are never earlier than planned."""
    first = arrivals[0]
    return min(a - round((a - first) / interval) * interval for a in arrivals)


def theoretical_minimum(origin: float, interval: float, onset: float, polls: int) -> float:
    """Time from onset to the ``polls``-th planned poll at or after onset."""
    k = math.ceil((onset - origin) / interval - 1e-9)
    return origin + (k + polls - 1) * interval - onset


def settings_for(
    app: FakeApp, vercel: FakeVercel, sentry: FakeSentry, pd: FakePagerDuty, interval: float
) -> Settings:
    every = timedelta(seconds=interval)
    timeout = timedelta(seconds=min(5.0, 0.8 * interval))
    return Settings(
        rules=None,
        store=StoreSettings(url="memory://"),  # unused: the SqliteStore is passed in
        server=ServerSettings(host="127.0.0.1", port=0),
        scheduler=SchedulerSettings(),
        pager=PagerDutyConfig(routing_key="bench0routing0key000000000000000", base_url=pd.url),
        targets=[
            TargetConfig(
                name=TARGET,
                sources=[
                    HealthSourceConfig(
                        url=f"{app.url}/api/health", interval=every, timeout=timeout
                    ),
                    VersionSourceConfig(
                        url=f"{app.url}/api/version",
                        field="deployment.id",
                        interval=every,
                        timeout=timeout,
                    ),
                    SentrySourceConfig(
                        org="acme",
                        project=["web"],
                        base_url=sentry.url,
                        token=SENTRY_TOKEN,
                        interval=every,
                        timeout=timeout,
                        window=timedelta(minutes=1),
                    ),
                ],
                deployer=VercelConfig(
                    token=vercel.token,
                    project_id=vercel.project_id,
                    production_domain=vercel.production_domain,
                    base_url=vercel.url,
                    poll_interval=timedelta(seconds=0.25),
                ),
                verify=VerifyConfig(
                    health_url=f"{app.url}/api/health",
                    version_url=f"{app.url}/api/version",
                    poll_interval=timedelta(seconds=0.25),
                    verify_timeout=timedelta(seconds=60),
                ),
            )
        ],
    )


async def wait_for(predicate: Callable[[], bool], limit: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


async def one_run(fault: str, interval: float, rng: random.Random, tmp: Path) -> Run:
    arrivals = Arrivals()
    app = TimedApp(arrivals)
    sentry = TimedSentry(arrivals)
    vercel = FakeVercel(project_name="web", production_domain="www.example.com")
    pd = FakePagerDuty()
    now_ms = int(time.time() * 1000)
    vercel.add_deployment(
        "dpl_old", created_ms=now_ms - 3 * 86_400_000, meta={"githubCommitSha": "0ld0ld0"}
    )
    vercel.add_deployment(
        GOOD, created_ms=now_ms - 86_400_000, meta={"githubCommitSha": "a1b2c3d"}, production=True
    )
    marks: dict[str, float] = {}

    def serve(dep_id: str) -> None:
        app.deploy(dep_id, vercel.deployments[dep_id]["meta"].get("githubCommitSha", dep_id))
        if dep_id != BAD:  # rolled back to good code: healthy again at once
            sentry.error_rate = 0.002

    def on_vercel(req: RecordedRequest) -> None:
        if req.route == "rollback" and req.method == "POST":
            marks.setdefault("requested", time.monotonic())

    vercel.on_production_change(serve)
    vercel.on_request(on_vercel)
    for fake in (app, sentry, vercel, pd):
        await fake.start()
    db = tmp / f"run-{fault}-{interval:g}-{rng.random():.9f}.db"
    running = None
    try:
        running = await start(
            settings_for(app, vercel, sentry, pd, interval),
            load_rule_pack(default_rules_path()),
            clock=SystemClock(),
            store=SqliteStore(db),
            port=0,
        )
        daemon = running.daemon
        # the dispatcher's events reach the engine through the pipeline's apply
        applied = daemon.pipeline.apply

        async def timed_apply(event: Event) -> object:
            if isinstance(event, RollbackResultEvent) and event.outcome is RollbackOutcome.VERIFIED:
                marks.setdefault("verified", time.monotonic())
            return await applied(event)

        daemon.pipeline.apply = timed_apply  # type: ignore[method-assign,assignment]

        def knows(dep: str) -> bool:
            return daemon.engine.deployment_of(TARGET) == dep

        def warm() -> bool:
            # the daemon has been watching a while: it has seen the good version served
            # (a version change is noticed only against a version seen before) and the
            # poll grid of every source shows in the arrivals
            return (
                knows(GOOD)
                and len(app.requests_to("/api/version")) >= 2
                and all(len(arrivals.times.get(p, [])) >= 2 for p in ("/api/health", "/api/0/"))
            )

        if not await wait_for(warm, 10 + 3 * interval):
            return Run(fault, interval, 0, 0, None, None, False, "warm-up did not complete")
        # the bad deployment goes live; wait until the daemon has learnt it
        vercel.add_deployment(
            BAD, created_ms=int(time.time() * 1000), meta={"githubCommitSha": "f00dbad"}
        )
        vercel.set_serving(BAD)
        if not await wait_for(lambda: knows(BAD), 10 + 3 * interval):
            return Run(fault, interval, 0, 0, None, None, False, "never learnt the bad deployment")
        await asyncio.sleep(rng.uniform(0, interval))
        onset = time.monotonic()
        if fault == "health":
            app.health_status = 500
        else:
            sentry.error_rate = 0.2
        limit = RUN_LIMIT_S - 10
        await wait_for(lambda: "verified" in marks, limit, step=0.02)
        prefix = "/api/health" if fault == "health" else "/api/0/"
        # the verifier's own health checks after the rollback request are not polls
        cut = marks.get("requested", math.inf)
        times = [t for t in arrivals.times.get(prefix, []) if t < cut]
        origin = grid_origin(times, interval)
        minimum = theoretical_minimum(origin, interval, onset, SUSTAIN[fault])
        phase = (onset - origin) % interval
        rollbacks = await daemon.store.list_rollbacks(target=TARGET)
        store_verified = any(r.state is RollbackState.VERIFIED for r in rollbacks)
        requested = marks.get("requested")
        verified = marks.get("verified")
        return Run(
            fault,
            interval,
            phase,
            minimum,
            None if requested is None else requested - onset,
            None if verified is None else verified - onset,
            store_verified,
            "" if verified is not None else "no verified rollback within the limit",
        )
    finally:
        if running is not None:
            await running.stop()
        for fake in (app, sentry, vercel, pd):
            await fake.close()


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (no interpolation: with 20 runs p95 is the 19th value)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summarize(runs: list[Run]) -> list[str]:
    lines = []
    keys = sorted({(r.fault, r.interval) for r in runs}, key=lambda k: (k[1], k[0]))
    header = (
        f"{'fault':<11}{'interval':>9}{'runs':>6}{'ok':>4}  "
        f"{'minimum p50/p95':>16}  {'→request p50/p95':>17}  {'overhead p50/p95':>17}  "
        f"{'→verified p50/p95':>18}  {'goal':>5}"
    )
    lines.append(header)
    for fault, interval in keys:
        group = [r for r in runs if r.fault == fault and r.interval == interval]
        ok = [r for r in group if r.requested is not None and r.verified is not None]
        if not ok:
            lines.append(f"{fault:<11}{interval:>8g}s{len(group):>6}{0:>4}  (no complete run)")
            continue

        def pair(values: list[float]) -> str:
            return f"{quantile(values, 0.5):6.2f}/{quantile(values, 0.95):6.2f}"

        over = [r.overhead for r in ok if r.overhead is not None]
        goal = "met" if quantile(over, 0.95) <= 0.5 and len(ok) == len(group) else "MISSED"
        lines.append(
            f"{fault:<11}{interval:>8g}s{len(group):>6}{len(ok):>4}  "
            f"{pair([r.minimum for r in ok]):>16}  "
            f"{pair([r.requested for r in ok if r.requested is not None]):>17}  "
            f"{pair(over):>17}  "
            f"{pair([r.verified for r in ok if r.verified is not None]):>18}  {goal:>5}"
        )
    return lines


async def main_async(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    runs: list[Run] = []
    total = len(args.intervals) * len(args.faults) * args.runs
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="watchdog-bench-") as tmp:
        for interval in args.intervals:
            for fault in args.faults:
                for i in range(args.runs):
                    try:
                        run = await asyncio.wait_for(
                            one_run(fault, interval, rng, Path(tmp)), RUN_LIMIT_S
                        )
                    except TimeoutError:
                        run = Run(fault, interval, 0, 0, None, None, False, "run timed out")
                    runs.append(run)
                    over = run.overhead
                    print(
                        f"[{len(runs):>3}/{total}] {fault:<10} interval {interval:g}s "
                        f"run {i + 1:>2}: "
                        f"phase {run.phase:5.2f}s  minimum {run.minimum:5.2f}s  "
                        f"request {_s(run.requested)}  overhead {_s(over)}  "
                        f"verified {_s(run.verified)}"
                        f"{'' if run.store_verified else '  (store: not VERIFIED)'}"
                        f"{'  ' + run.note if run.note else ''}",
                        flush=True,
                    )
    print()
    print(f"detection latency, seconds from fault onset ({time.monotonic() - started:.0f} s total)")
    for line in summarize(runs):
        print(line)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    complete = all(r.requested is not None and r.verified is not None for r in runs)
    return 0 if complete else 1


def _s(value: float | None) -> str:
    return "  —  " if value is None else f"{value:5.2f}s"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per fault and interval")
    parser.add_argument(
        "--intervals",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[1.0, 5.0],
        help="poll intervals in seconds, comma-separated (default 1,5)",
    )
    parser.add_argument(
        "--faults",
        type=lambda s: s.split(","),
        default=["health", "error-rate"],
        help="faults to inject: health, error-rate (default both)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-level", default="error", help="the daemon's log level")
    args = parser.parse_args(argv)
    unknown = set(args.faults) - set(SUSTAIN)
    if unknown or args.runs < 1 or any(i <= 0 for i in args.intervals):
        parser.error("--faults takes health,error-rate; --runs and --intervals must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    wlog.configure(args.log_level, "console")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
