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

With ``--vs-prometheus``, Debian's ``prometheus`` runs beside the daemon for the same window,
scraping the same loopback endpoints at the same interval (a static scrape config listing every
endpoint; the fakes answer a scraper that asks for the text format in that format), and the
table gives both processes' CPU and RSS and their ratio. Prometheus does not scrape the
daemon's ``/metrics`` (``--scrape-interval`` does that, from this script), so its figures are
the cost of the same polling job alone.

Goals (issue 16) at 1,000 targets with ``/metrics`` scraped every 15 s: CPU at most
Prometheus's in the same run (and <= 25 % of one core), lag p99 < 100 ms, RSS < 120 MB; and
3,000 targets without a skipped poll.

    python benchmarks/footprint.py [--targets 1,100,1000] [--duration 120] [--metric sentry]
        [--scrape-interval 15] [--vs-prometheus] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

INTERVAL_S = 5.0
ORG_PREFIX = "o"
SENTRY_TOKEN = "sntrys_footprint"
GOALS = {"lag_p99_s": 0.100, "cpu_share": 0.25, "rss_mb": 120.0}
#: what Prometheus asks for first (it accepts the classic text format too)
SCRAPE_FORMATS = ("application/openmetrics-text", "text/plain")


# --------------------------------------------------------------------------- the fakes


def fakes_app() -> web.Application:
    """Every target's endpoints in one app; answers are static (this measures the daemon)."""

    def scraper(request: web.Request) -> bool:
        # Prometheus (--vs-prometheus) asks for the text format; the daemon for JSON
        accept = request.headers.get("Accept", "")
        return any(kind in accept for kind in SCRAPE_FORMATS)

    def exposition(lines: str) -> web.Response:
        return web.Response(text=lines, content_type="text/plain")

    async def health(request: web.Request) -> web.Response:
        if scraper(request):
            return exposition("app_health_up 1\n")
        return web.json_response({"status": "ok"})

    async def version(request: web.Request) -> web.Response:
        n = request.match_info["n"]
        if scraper(request):
            return exposition(f'app_version_info{{commit="a1b2c3d",deployment="dpl_{n}"}} 1\n')
        return web.json_response(
            {"commit": "a1b2c3d", "deployment": {"id": f"dpl_{n}"}, "env": "production"}
        )

    async def sentry(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SENTRY_TOKEN}":
            return web.json_response({"detail": "Invalid token"}, status=401)
        if scraper(request):
            return exposition(
                "sentry_failure_rate 0.002\nsentry_p95_milliseconds 420\nsentry_count 5000\n"
            )
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
        if scraper(request):
            return exposition("app_error_rate 0.002\n")
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
    # Prometheus keeps one connection per scrape target: thousands
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
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


#: the scraper process: GET the URL every interval for the window, print each scrape's seconds
SCRAPER = """
import sys, time, urllib.request
url, every, window = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + window
while (left := end - time.monotonic()) > every:
    time.sleep(every)
    t0 = time.monotonic()
    with urllib.request.urlopen(url) as resp:
        resp.read()
    print(time.monotonic() - t0, flush=True)
"""


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
    from watchdog.daemon.main import settle_heap, start
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
        settle_heap()  # as `watchdog run` does
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
            print(json.dumps({"phase": "measuring"}), flush=True)
            cpu0, wall0 = cpu_seconds(), time.monotonic()
            window = max(duration - warmup, INTERVAL_S)
            profiler = None
            if profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            scrapes: list[float] = []
            if scrape_interval > 0:
                # Prometheus scraping /metrics while the daemon polls: from another process,
                # as Prometheus does (a scraper on the daemon's own loop would charge the
                # client's reading of megabytes to the daemon's lag and CPU)
                scraper = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    SCRAPER,
                    f"{running.url}/metrics",
                    str(scrape_interval),
                    str(window),
                    stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await scraper.communicate()
                scrapes = [float(line) for line in out.decode().split()]
            else:
                await asyncio.sleep(window)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)
            cpu1, wall1 = cpu_seconds(), time.monotonic()
            measuring = False
            print(json.dumps({"phase": "done"}), flush=True)
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
    vs_prometheus: bool = False,
    uvloop: bool = False,
) -> dict[str, Any]:
    limit = duration + 120
    fakes = child("--serve-fakes", "--limit", str(limit))
    with tempfile.TemporaryDirectory(prefix="watchdog-footprint-prom-") as tmp:
        prometheus: Prometheus | None = None
        try:
            assert fakes.stdout is not None
            url = json.loads(fakes.stdout.readline())["url"]
            if vs_prometheus:
                prometheus = Prometheus(Path(tmp), url, targets, metric)
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
                *(["--uvloop"] if uvloop else []),
            )
            timer = threading.Timer(limit, daemon.kill)
            timer.start()
            result: dict[str, Any] | None = None
            try:
                assert daemon.stdout is not None
                for line in daemon.stdout:
                    if not line.startswith("{"):
                        continue
                    message = json.loads(line)
                    # Prometheus is measured over the daemon's own window
                    if message.get("phase") == "measuring" and prometheus is not None:
                        prometheus.window_starts()
                    elif message.get("phase") == "done" and prometheus is not None:
                        prometheus.window_ends()
                    elif "targets" in message:
                        result = message
                daemon.wait()
            finally:
                timer.cancel()
            if daemon.returncode != 0 or result is None:
                raise RuntimeError(f"the daemon process failed (exit {daemon.returncode})")
            result["fakes_cpu_s"] = _cpu_of(fakes.pid) - fakes_cpu0
            if prometheus is not None:
                result["prometheus"] = prometheus.figures()
            return result
        finally:
            if prometheus is not None:
                prometheus.stop()
            if fakes.stdin is not None:
                fakes.stdin.close()
            try:
                fakes.wait(timeout=10)
            except subprocess.TimeoutExpired:
                fakes.kill()
                fakes.wait()


class Prometheus:
    """Debian's ``prometheus`` scraping every endpoint the daemon polls, at the same interval.

    One job per source kind, one static target per endpoint (``__metrics_path__`` per
    target), the Sentry token and query as the daemon sends them. Measured over the daemon's
    window: CPU seconds from ``/proc``, RSS at the end, and how many targets were up.
    """

    def __init__(self, tmp: Path, base: str, targets: int, metric: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise SystemExit(
                "--vs-prometheus needs Debian's prometheus: "
                "apt-get install -y --no-install-recommends prometheus"
            )
        self.targets = targets
        address = base.removeprefix("http://")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = tmp / "prometheus.json"  # JSON is YAML
        config.write_text(json.dumps(prometheus_config(address, targets, metric)))
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=error",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._cpu0 = self._wall0 = self._cpu1 = self._wall1 = math.nan
        self._rss_kb = self._hwm_kb = 0

    def window_starts(self) -> None:
        self._cpu0, self._wall0 = _cpu_of(self.process.pid), time.monotonic()

    def window_ends(self) -> None:
        self._cpu1, self._wall1 = _cpu_of(self.process.pid), time.monotonic()
        self._rss_kb = _status_kb(self.process.pid, "VmRSS")
        self._hwm_kb = _status_kb(self.process.pid, "VmHWM")

    def figures(self) -> dict[str, Any]:
        up = math.nan
        try:
            query = urllib.parse.urlencode({"query": "count(up == 1)"})
            url = f"http://127.0.0.1:{self.port}/api/v1/query?{query}"
            with urllib.request.urlopen(url, timeout=10) as resp:  # loopback only
                answer = json.load(resp)["data"]["result"]
            up = float(answer[0]["value"][1]) if answer else 0.0
        except (OSError, KeyError, ValueError):
            pass
        return {
            "cpu_share": (self._cpu1 - self._cpu0) / (self._wall1 - self._wall0),
            "rss_mb": self._rss_kb / 1024,
            "hwm_mb": self._hwm_kb / 1024,
            "targets_up": up,
            "endpoints": 3 * self.targets,
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def prometheus_config(address: str, targets: int, metric: str) -> dict[str, Any]:
    """A static scrape config listing every endpoint the daemon polls (JSON is YAML)."""
    interval = f"{INTERVAL_S:g}s"

    def job(name: str, paths: list[str], **extra: Any) -> dict[str, Any]:
        return {
            "job_name": name,
            "scrape_interval": interval,
            "scrape_timeout": "4s",
            "static_configs": [
                {"targets": [address], "labels": {"__metrics_path__": path, "app": f"t{i}"}}
                for i, path in enumerate(paths)
            ],
            **extra,
        }

    jobs = [
        job("health", [f"/t/{i}/api/health" for i in range(targets)]),
        job("version", [f"/t/{i}/api/version" for i in range(targets)]),
    ]
    if metric == "sentry":
        jobs.append(
            job(
                "sentry",
                [f"/api/0/organizations/{ORG_PREFIX}{i}/events/" for i in range(targets)],
                authorization={"type": "Bearer", "credentials": SENTRY_TOKEN},
                params={
                    "field": ["failure_rate()", "p95(span.duration)", "count()"],
                    "dataset": ["spans"],
                    "project": ["web"],
                    "query": ["is_transaction:true"],
                    "statsPeriod": ["5m"],
                },
            )
        )
    else:
        # one query endpoint for every target, told apart by its query
        jobs.append(
            {
                "job_name": "prometheus",
                "scrape_interval": interval,
                "scrape_timeout": "4s",
                "metrics_path": "/api/v1/query",
                "static_configs": [
                    {"targets": [address], "labels": {"app": f"t{i}", "__param_query": f"t{i}"}}
                    for i in range(targets)
                ],
            }
        )
    return {"global": {"scrape_interval": interval}, "scrape_configs": jobs}


def _status_kb(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'targets':>7} {'run':>6} {'RSS MB':>7} {'peak MB':>8} {'CPU %':>6} "
        f"{'lag p50 ms':>10} {'lag p99 ms':>10} {'lag max ms':>10} {'polls/planned':>14} "
        f"{'skipped':>7} {'errors':>6} {'/metrics ms':>11} {'KB':>6} {'prom CPU %':>10} "
        f"{'prom RSS MB':>11} {'CPU ratio':>9} {'RSS ratio':>9}"
    ]
    for r in results:
        prom = r.get("prometheus")
        versus = (
            f" {100 * prom['cpu_share']:>10.1f} {prom['rss_mb']:>11.1f} "
            f"{r['cpu_share'] / prom['cpu_share']:>9.2f} {r['rss_mb'] / prom['rss_mb']:>9.2f}"
            if prom
            else ""
        )
        lines.append(
            f"{r['targets']:>7} {r.get('run', ''):>6} {r['rss_mb']:>7.1f} {r['hwm_mb']:>8.1f} "
            f"{100 * r['cpu_share']:>6.1f} {1000 * r['lag_p50_s']:>10.1f} "
            f"{1000 * r['lag_p99_s']:>10.1f} {1000 * r['lag_max_s']:>10.1f} "
            f"{r['polls']:>6.0f}/{r['planned_polls']:<7.0f} {r['skipped']:>7.0f} "
            f"{r['sources_in_error']:>6.0f} {1000 * r['scrape_s']:>11.1f} {r['scrape_kb']:>6.0f}"
            + versus
        )
    return lines


#: the figures a median row is taken of (the rest come from the first run)
MEDIAN_OF = (
    "rss_mb",
    "hwm_mb",
    "cpu_share",
    "lag_p50_s",
    "lag_p99_s",
    "lag_max_s",
    "polls",
    "planned_polls",
    "skipped",
    "sources_in_error",
    "scrape_s",
    "scrape_kb",
)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of medians over repeated runs of one target count."""
    row = {**runs[0], "run": "median"}
    for key in MEDIAN_OF:
        row[key] = statistics.median(r[key] for r in runs)
    proms = [r["prometheus"] for r in runs if r.get("prometheus")]
    if proms:
        row["prometheus"] = {
            key: statistics.median(p[key] for p in proms) for key in ("cpu_share", "rss_mb")
        }
    return row


def goals(result: dict[str, Any]) -> str:
    checks = [
        f"lag p99 {1000 * result['lag_p99_s']:.0f} ms "
        f"({'<' if result['lag_p99_s'] < GOALS['lag_p99_s'] else 'NOT <'} 100 ms)",
        f"CPU {100 * result['cpu_share']:.1f} % "
        f"({'<=' if result['cpu_share'] <= GOALS['cpu_share'] else 'NOT <='} 25 %)",
        f"RSS {result['rss_mb']:.0f} MB "
        f"({'<' if result['rss_mb'] < GOALS['rss_mb'] else 'NOT <'} 120 MB)",
        f"skipped polls {result['skipped']}",
    ]
    prom = result.get("prometheus")
    if prom:
        checks.append(
            f"Prometheus CPU {100 * prom['cpu_share']:.1f} %, RSS {prom['rss_mb']:.0f} MB, "
            f"{prom.get('targets_up', math.nan):.0f}/{prom.get('endpoints', 0)} endpoints up "
            f"(daemon CPU {'<=' if result['cpu_share'] <= prom['cpu_share'] else 'NOT <='} "
            "Prometheus's)"
        )
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
    parser.add_argument(
        "--vs-prometheus",
        action="store_true",
        help="run Debian's prometheus scraping the same endpoints at the same interval, "
        "alongside, and compare CPU and RSS",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per target count (a median row follows)"
    )
    parser.add_argument(
        "--uvloop", action="store_true", help="run the daemon on uvloop (pip install uvloop)"
    )
    parser.add_argument("--json", default="", help="append every run's figures to this file")
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
        loop_factory = None
        if args.uvloop:
            import uvloop  # an experiment: not a dependency of the daemon

            loop_factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(
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
    if args.duration < 3 * INTERVAL_S or any(n < 1 for n in args.targets) or args.repeat < 1:
        parser.error(
            f"--duration must be at least {3 * INTERVAL_S:g} s; --targets and --repeat positive"
        )
    scheduler: dict[str, Any] = {}
    if args.jitter is not None:
        scheduler["jitter"] = args.jitter
    if args.max_concurrency is not None:
        scheduler["max_concurrency"] = args.max_concurrency
    results = []
    for n in args.targets:
        runs = []
        for run in range(1, args.repeat + 1):
            print(
                f"{n} target(s) × 3 sources at {INTERVAL_S:g} s ({args.metric}), "
                f"{args.duration:g} s, scheduler {scheduler or 'defaults'}"
                + (f", /metrics every {args.scrape_interval:g} s" if args.scrape_interval else "")
                + (", beside Prometheus" if args.vs_prometheus else "")
                + (", on uvloop" if args.uvloop else "")
                + f", run {run}/{args.repeat} ...",
                flush=True,
            )
            profile = f"{args.profile}.{n}" if args.profile else ""
            result = measure(
                n,
                args.metric,
                args.duration,
                profile,
                scheduler,
                args.scrape_interval,
                args.vs_prometheus,
                args.uvloop,
            )
            result["run"] = str(run)
            result["load"] = os.getloadavg()[0]
            runs.append(result)
            if args.json:
                with open(args.json, "a") as out:
                    out.write(json.dumps(result) + "\n")
            print(
                f"  {goals(result)}; fakes process used {result['fakes_cpu_s']:.1f} CPU s "
                f"(not counted); sources whose last poll failed: {result['errors'] or 'none'}; "
                f"load {result['load']:.2f}",
                flush=True,
            )
            print(
                f"  /metrics: {result['series']} series, largest families "
                f"{result['top_families']}"
                + (
                    f"; {result['scrapes_during']} scrapes while measuring, slowest "
                    f"{1000 * result['scrape_during_max_s']:.0f} ms"
                    if result["scrapes_during"]
                    else ""
                ),
                flush=True,
            )
        results.extend(runs)
        if len(runs) > 1:
            results.append(median_of(runs))
    print()
    for line in report(results):
        print(line)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
