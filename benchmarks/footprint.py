"""Footprint: RSS, CPU and scheduling lag of the real daemon at 1, 100 and 1,000 targets.

Each target has a health, a version and one metric source (Sentry by default, or Prometheus),
all polled every 5 s, against loopback stand-ins. Three processes per target count, so each
figure is the daemon's alone:

* the fakes: a child process running one aiohttp app that serves every target's endpoints
  (``/t/{i}/api/health``, ``/t/{i}/api/version``, Sentry's events API per org ``o{i}``,
  Prometheus's ``/api/v1/query``), answering in the documented shapes;
* the daemon: a child process that starts the real daemon (``watchdog.daemon.main.start``:
  scheduler, sources, engine, dispatcher, SQLite store, HTTP server) with the default rule
  pack, lets it run ``--duration`` seconds, and reports its own figures as one JSON line;
* this process, which only starts the other two and prints the table.

Measured in the daemon's process after a warm-up of two intervals (start-up is excluded):

* RSS: ``VmRSS`` at the end and ``VmHWM`` (peak) from ``/proc/self/status``;
* CPU share of one core: user + system CPU time of the process / wall time;
* scheduling lag (how late a poll started against its planned slot): every value the daemon
  observes into ``watchdog_scheduling_lag_seconds`` (the histogram's ``observe`` is wrapped,
  so quantiles are exact rather than bucket bounds), p50 / p99 / max;
* polls completed vs planned, polls the scheduler skipped, and how long one ``/metrics``
  scrape takes at the end (the exposition grows with targets).

Goal at 1,000 targets: lag p99 < 250 ms, < 50 % of one core, RSS < 150 MB.

    python benchmarks/footprint.py [--targets 1,100,1000] [--duration 120] [--metric sentry]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

INTERVAL_S = 5.0
ORG_PREFIX = "o"
SENTRY_TOKEN = "sntrys_footprint"
GOALS = {"lag_p99_s": 0.250, "cpu_share": 0.50, "rss_mb": 150.0}


# --------------------------------------------------------------------------- the fakes


def fakes_app() -> web.Application:
    """Every target's endpoints in one app; answers are static (this measures the daemon)."""

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def version(request: web.Request) -> web.Response:
        n = request.match_info["n"]
        return web.json_response(
            {"commit": "a1b2c3d", "deployment": {"id": f"dpl_{n}"}, "env": "production"}
        )

    async def sentry(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SENTRY_TOKEN}":
            return web.json_response({"detail": "Invalid token"}, status=401)
        fields = request.query.getall("field", [])
        if not fields or not request.query.get("dataset"):
            return web.json_response({"detail": "No columns selected"}, status=400)
        values = {"failure_rate()": 0.002, "count()": 5000}
        row = {f: values.get(f, 420.0) for f in fields}
        types = {
            f: "percentage"
            if f == "failure_rate()"
            else "integer"
            if f == "count()"
            else "duration"
            for f in fields
        }
        units = {f: "millisecond" for f in fields if f.startswith("p95(")}
        meta = {"fields": types, "units": units, "dataset": request.query["dataset"]}
        return web.json_response({"data": [row], "meta": meta})

    async def prometheus(request: web.Request) -> web.Response:
        result = [{"metric": {}, "value": [time.time(), "0.002"]}]
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    app = web.Application()
    app.router.add_get("/t/{n}/api/health", health)
    app.router.add_get("/t/{n}/api/version", version)
    app.router.add_get("/api/0/organizations/{org}/events/", sentry)
    app.router.add_route("*", "/api/v1/query", prometheus)
    return app


async def serve_fakes(limit_s: float) -> None:
    """Child process: serve until stdin closes (the parent went away) or ``limit_s`` passes."""
    runner = web.AppRunner(fakes_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.read), limit_s)
    except TimeoutError:
        pass
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- the daemon


def daemon_settings(
    targets: int, base: str, metric: str, state_dir: Path, scheduler: dict[str, Any]
) -> Any:
    from watchdog.config import (
        SchedulerSettings,
        ServerSettings,
        Settings,
        StoreSettings,
        TargetConfig,
    )
    from watchdog.sources import (
        HealthSourceConfig,
        PrometheusSourceConfig,
        SentrySourceConfig,
        VersionSourceConfig,
    )

    every = timedelta(seconds=INTERVAL_S)
    timeout = timedelta(seconds=4)
    configs = []
    for i in range(targets):
        metric_source: Any
        if metric == "sentry":
            metric_source = SentrySourceConfig(
                org=f"{ORG_PREFIX}{i}",
                project=["web"],
                base_url=base,
                token=SENTRY_TOKEN,
                interval=every,
                timeout=timeout,
                window=timedelta(minutes=5),
            )
        else:
            metric_source = PrometheusSourceConfig(
                base_url=base,
                queries=[
                    {
                        "signal": "error_rate",
                        "query": f'sum(rate(http_errors_total{{app="t{i}"}}[5m])) / '
                        f'sum(rate(http_requests_total{{app="t{i}"}}[5m]))',
                    }
                ],
                interval=every,
                timeout=timeout,
            )
        configs.append(
            TargetConfig(
                name=f"t{i}",
                sources=[
                    HealthSourceConfig(
                        url=f"{base}/t/{i}/api/health", interval=every, timeout=timeout
                    ),
                    VersionSourceConfig(
                        url=f"{base}/t/{i}/api/version",
                        field="deployment.id",
                        interval=every,
                        timeout=timeout,
                    ),
                    metric_source,
                ],
            )
        )
    return Settings(
        rules=None,
        store=StoreSettings(url=f"sqlite:///{state_dir / 'watchdog.db'}"),
        server=ServerSettings(host="127.0.0.1", port=0),
        scheduler=SchedulerSettings(**scheduler),
        targets=configs,
    )


def proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


async def run_daemon(
    targets: int,
    base: str,
    metric: str,
    duration: float,
    profile: str,
    scheduler: dict[str, Any],
    scrape_interval: float = 0.0,
) -> None:
    """Child process: run the real daemon and print one JSON line of its own figures."""
    from watchdog import logs as wlog
    from watchdog.clock import SystemClock
    from watchdog.daemon.main import start
    from watchdog.store.sqlite import SqliteStore
    from watchdog.yamlfile import default_rules_path, load_rule_pack

    wlog.configure("error", "console")
    with tempfile.TemporaryDirectory(prefix="watchdog-footprint-") as tmp:
        settings = daemon_settings(targets, base, metric, Path(tmp), scheduler)
        rss_before_start = proc_status_kb("VmRSS")
        t_start = time.monotonic()
        running = await start(
            settings,
            load_rule_pack(default_rules_path()),
            clock=SystemClock(),
            store=SqliteStore(Path(tmp) / "watchdog.db"),
            port=0,
        )
        started_s = time.monotonic() - t_start
        daemon = running.daemon
        lags: list[float] = []
        measuring = False
        histogram = daemon.metrics.scheduling_lag
        observe = histogram.observe

        def recording_observe(amount: float, exemplar: Any = None) -> None:
            if measuring:
                lags.append(amount)
            observe(amount, exemplar)

        histogram.observe = recording_observe  # type: ignore[method-assign]
        try:
            warmup = 2 * INTERVAL_S
            await asyncio.sleep(warmup)
            polls0 = sum(s.polls for s in daemon.sources.values())
            skipped0 = sum(s.skipped for s in daemon.sources.values())
            measuring = True
            cpu0, wall0 = cpu_seconds(), time.monotonic()
            window = max(duration - warmup, INTERVAL_S)
            profiler = None
            if profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            scrapes: list[float] = []
            if scrape_interval > 0:
                # Prometheus scraping /metrics while the daemon polls
                async with aiohttp.ClientSession() as session:
                    end = time.monotonic() + window
                    while (left := end - time.monotonic()) > 0:
                        await asyncio.sleep(min(scrape_interval, left))
                        if time.monotonic() >= end:
                            break
                        t0 = time.monotonic()
                        async with session.get(f"{running.url}/metrics") as resp:
                            await resp.read()
                        scrapes.append(time.monotonic() - t0)
            else:
                await asyncio.sleep(window)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)
            cpu1, wall1 = cpu_seconds(), time.monotonic()
            measuring = False
            polls = sum(s.polls for s in daemon.sources.values()) - polls0
            skipped = sum(s.skipped for s in daemon.sources.values()) - skipped0
            errors: dict[str, int] = {}
            for state in daemon.sources.values():
                if state.last_error is not None:
                    errors[state.last_error] = errors.get(state.last_error, 0) + 1
            rss_kb, hwm_kb = proc_status_kb("VmRSS"), proc_status_kb("VmHWM")
            scrape_s = math.nan
            scrape_bytes = 0
            async with aiohttp.ClientSession() as session:
                t0 = time.monotonic()
                async with session.get(f"{running.url}/metrics") as resp:
                    body = await resp.read()
                scrape_s = time.monotonic() - t0
                scrape_bytes = len(body)
            families: dict[str, int] = {}
            for line in body.decode().splitlines():
                if line and not line.startswith("#"):
                    name = line.split("{", 1)[0].split(" ", 1)[0]
                    for suffix in ("_bucket", "_count", "_sum", "_created", "_total"):
                        name = name.removesuffix(suffix)
                    families[name] = families.get(name, 0) + 1
        finally:
            await running.stop()
    measured = wall1 - wall0
    print(
        json.dumps(
            {
                "targets": targets,
                "sources": len(daemon.sources),
                "start_s": started_s,
                "measured_s": measured,
                "cpu_share": (cpu1 - cpu0) / measured,
                "rss_mb": rss_kb / 1024,
                "hwm_mb": hwm_kb / 1024,
                "rss_before_start_mb": rss_before_start / 1024,
                "lag_p50_s": quantile(lags, 0.50),
                "lag_p99_s": quantile(lags, 0.99),
                "lag_max_s": max(lags) if lags else math.nan,
                "lag_count": len(lags),
                "polls": polls,
                "planned_polls": len(daemon.sources) * measured / INTERVAL_S,
                "skipped": skipped,
                "sources_in_error": sum(errors.values()),
                "errors": errors,
                "scheduler": scheduler,
                "scrape_s": scrape_s,
                "scrape_kb": scrape_bytes / 1024,
                "series": sum(families.values()),
                "top_families": sorted(families.items(), key=lambda kv: -kv[1])[:4],
                "scrapes_during": len(scrapes),
                "scrape_during_max_s": max(scrapes) if scrapes else math.nan,
            }
        ),
        flush=True,
    )


# --------------------------------------------------------------------------- orchestration


def child(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(Path.cwd()))}
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def measure(
    targets: int,
    metric: str,
    duration: float,
    profile: str,
    scheduler: dict[str, Any],
    scrape_interval: float,
) -> dict[str, Any]:
    limit = duration + 120
    fakes = child("--serve-fakes", "--limit", str(limit))
    try:
        assert fakes.stdout is not None
        url = json.loads(fakes.stdout.readline())["url"]
        fakes_cpu0 = _cpu_of(fakes.pid)
        daemon = child(
            "--run-daemon",
            str(targets),
            "--fake-url",
            url,
            "--metric",
            metric,
            "--duration",
            str(duration),
            "--scheduler",
            json.dumps(scheduler),
            "--scrape-interval",
            str(scrape_interval),
            *(["--profile", profile] if profile else []),
        )
        try:
            out, _ = daemon.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.communicate()
            raise
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if daemon.returncode != 0 or not lines:
            raise RuntimeError(f"the daemon process failed (exit {daemon.returncode})")
        result: dict[str, Any] = json.loads(lines[-1])
        result["fakes_cpu_s"] = _cpu_of(fakes.pid) - fakes_cpu0
        return result
    finally:
        if fakes.stdin is not None:
            fakes.stdin.close()
        try:
            fakes.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fakes.kill()
            fakes.wait()


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'targets':>7} {'sources':>7} {'RSS MB':>7} {'peak MB':>8} {'CPU %':>6} "
        f"{'lag p50 ms':>10} {'lag p99 ms':>10} {'lag max ms':>10} {'polls/planned':>14} "
        f"{'skipped':>7} {'errors':>6} {'/metrics ms':>11} {'KB':>6}"
    ]
    for r in results:
        lines.append(
            f"{r['targets']:>7} {r['sources']:>7} {r['rss_mb']:>7.1f} {r['hwm_mb']:>8.1f} "
            f"{100 * r['cpu_share']:>6.1f} {1000 * r['lag_p50_s']:>10.1f} "
            f"{1000 * r['lag_p99_s']:>10.1f} {1000 * r['lag_max_s']:>10.1f} "
            f"{r['polls']:>6}/{r['planned_polls']:<7.0f} {r['skipped']:>7} "
            f"{r['sources_in_error']:>6} {1000 * r['scrape_s']:>11.1f} {r['scrape_kb']:>6.0f}"
        )
    return lines


def goals(result: dict[str, Any]) -> str:
    checks = [
        f"lag p99 {1000 * result['lag_p99_s']:.0f} ms "
        f"({'<' if result['lag_p99_s'] < GOALS['lag_p99_s'] else 'NOT <'} 250 ms)",
        f"CPU {100 * result['cpu_share']:.0f} % "
        f"({'<' if result['cpu_share'] < GOALS['cpu_share'] else 'NOT <'} 50 %)",
        f"RSS {result['rss_mb']:.0f} MB "
        f"({'<' if result['rss_mb'] < GOALS['rss_mb'] else 'NOT <'} 150 MB)",
    ]
    return "; ".join(checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--targets",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 100, 1000],
        help="target counts, comma-separated (default 1,100,1000)",
    )
    parser.add_argument("--duration", type=float, default=120.0, help="seconds per target count")
    parser.add_argument("--metric", choices=("sentry", "prometheus"), default="sentry")
    parser.add_argument("--profile", default="", help="write a cProfile of the daemon here")
    parser.add_argument(
        "--jitter", type=float, default=None, help="scheduler.jitter (default: the daemon's)"
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        help="scheduler.max_concurrency (default: the daemon's)",
    )
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=0.0,
        help="scrape /metrics every this many seconds while measuring, as Prometheus would "
        "(default 0: only once, after the measurement)",
    )
    parser.add_argument("--scheduler", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-daemon", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--fake-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=float, default=600.0, help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve_fakes:
        asyncio.run(serve_fakes(args.limit))
        return 0
    if args.run_daemon:
        asyncio.run(
            run_daemon(
                args.run_daemon,
                args.fake_url,
                args.metric,
                args.duration,
                args.profile,
                json.loads(args.scheduler),
                args.scrape_interval,
            )
        )
        return 0
    if args.duration < 3 * INTERVAL_S or any(n < 1 for n in args.targets):
        parser.error(f"--duration must be at least {3 * INTERVAL_S:g} s; --targets positive")
    scheduler: dict[str, Any] = {}
    if args.jitter is not None:
        scheduler["jitter"] = args.jitter
    if args.max_concurrency is not None:
        scheduler["max_concurrency"] = args.max_concurrency
    results = []
    for n in args.targets:
        print(
            f"{n} target(s) × 3 sources at {INTERVAL_S:g} s ({args.metric}), "
            f"{args.duration:g} s, scheduler {scheduler or 'defaults'} ...",
            flush=True,
        )
        profile = f"{args.profile}.{n}" if args.profile else ""
        result = measure(n, args.metric, args.duration, profile, scheduler, args.scrape_interval)
        results.append(result)
        print(
            f"  {goals(result)}; fakes process used {result['fakes_cpu_s']:.1f} CPU s "
            f"(not counted); sources whose last poll failed: {result['errors'] or 'none'}",
            flush=True,
        )
        print(
            f"  /metrics: {result['series']} series, largest families {result['top_families']}"
            + (
                f"; {result['scrapes_during']} scrapes while measuring, slowest "
                f"{1000 * result['scrape_during_max_s']:.0f} ms"
                if result["scrapes_during"]
                else ""
            ),
            flush=True,
        )
    print()
    for line in report(results):
        print(line)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
