"""Replay throughput: 1,000,000 samples over 100 targets, parsing included, against a floor.

Three figures, each measured in the same run so load on the machine hits them alike:

* **floor**: read the trace in byte mode, ``orjson.loads`` every line and make one comparison
  per line: what no JSON Lines replay can beat;
* **in-process**: :func:`watchdog.replay.replay_file` on the same trace, as a ratio to the
  floor;
* **whole process**: ``python -m watchdog replay TRACE`` in a subprocess, output to
  ``/dev/null``, so interpreter start-up, imports and the rule pack are counted: the goal of
  issue 16 (>= 300,000 samples/s) is stated for the whole process.

Each figure is the median of ``--repeat`` runs (CPU time, which another process on the
machine steals less of than wall time); the spread is printed beside it.

    python benchmarks/replay_throughput.py [--samples N] [--targets N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from watchdog.replay import replay_file
from watchdog.yamlfile import default_rules_path, load_rule_pack

SIGNALS = ("health_up", "error_rate", "latency_p95_s", "db_cpu", "payment_failures")
GOAL_WHOLE_PROCESS = 300_000


def generate(path: Path, samples: int, targets: int, seed: int = 7) -> None:
    """A realistic mix: mostly healthy, some unknowns, and a bad deployment on a few targets."""
    rng = random.Random(seed)
    with path.open("w") as out:
        for target in range(targets):
            out.write(
                json.dumps(
                    {"t": 0, "target": f"app{target}", "event": "deploy", "deployment": "d1"}
                )
                + "\n"
            )
        written = 0
        tick = 0
        while written < samples:
            t = 10 * (tick + 1)
            for target in range(targets):
                bad = target % 10 == 0 and 3000 <= t < 3600
                for signal in SIGNALS:
                    if rng.random() < 0.02:
                        value: float | None = None
                    elif signal == "health_up":
                        value = 0.0 if bad else 1.0
                    elif signal == "error_rate":
                        value = rng.uniform(0.06, 0.2) if bad else rng.uniform(0, 0.004)
                    elif signal == "latency_p95_s":
                        value = rng.uniform(0.2, 1.5)
                    elif signal == "db_cpu":
                        value = rng.uniform(0.1, 0.6)
                    else:
                        value = 0.0
                    line: dict[str, object] = {
                        "t": t,
                        "target": f"app{target}",
                        "signal": signal,
                        "value": value,
                    }
                    if signal == "error_rate":
                        # a Sentry sample carries the request count behind its rate
                        line["requests"] = rng.randint(800, 5000)
                    out.write(json.dumps(line) + "\n")
                    written += 1
                    if written >= samples:
                        break
                if written >= samples:
                    break
            tick += 1


def floor(trace: Path) -> int:
    """Read and parse every line, and compare once per line: the cheapest honest replay."""
    over = 0
    loads = orjson.loads
    with trace.open("rb") as lines:
        for raw in lines:
            value = loads(raw).get("value")
            if value is not None and value > 0.05:
                over += 1
    return over


def in_process(trace: Path) -> int:
    pack = load_rule_pack(default_rules_path())
    return replay_file(str(trace), pack, io.StringIO())


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of ``work`` in this process."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    work()
    return time.perf_counter() - wall0, time.process_time() - cpu0


def whole_process(trace: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``python -m watchdog replay TRACE`` in a child process."""
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(Path.cwd()))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    with open(os.devnull, "w") as sink:
        subprocess.run(
            [sys.executable, "-m", "watchdog", "replay", str(trace)],
            stdout=sink,
            check=True,
            env=env,
        )
    wall = time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f}–{max(values):,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each figure (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.jsonl"
        t0 = time.perf_counter()
        generate(trace, args.samples, args.targets)
        print(
            f"trace: {args.samples:,} samples, {args.targets} targets, "
            f"{trace.stat().st_size / 1e6:.0f} MB (generated in {time.perf_counter() - t0:.1f}s)"
        )
        lines = args.samples + args.targets
        rates: dict[str, list[float]] = {"floor": [], "in-process": [], "whole process": []}
        walls: dict[str, list[float]] = {name: [] for name in rates}
        for _ in range(args.repeat):
            # interleaved, so a burst of load elsewhere hits every figure alike
            for name, run in (
                ("floor", lambda: timed(lambda: floor(trace))),
                ("in-process", lambda: timed(lambda: in_process(trace))),
                ("whole process", lambda: whole_process(trace)),
            ):
                wall, cpu = run()
                count = lines if name == "floor" else args.samples
                rates[name].append(count / cpu)
                walls[name].append(count / wall)
    base = statistics.median(rates["floor"])
    print(
        f"{'figure':<14} {'per s (CPU), median':>20} {'range':>20} {'per s (wall)':>13} "
        f"{'vs floor':>8}"
    )
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"{name:<14} {median:>20,.0f} {spread(values):>20} "
            f"{statistics.median(walls[name]):>13,.0f} {median / base:>8.3f}"
        )
    whole = statistics.median(rates["whole process"])
    verdict = "met" if whole >= GOAL_WHOLE_PROCESS else "NOT met"
    print(
        f"goal: whole process >= {GOAL_WHOLE_PROCESS:,} samples/s: {verdict} "
        f"({whole:,.0f}; {args.repeat} runs each, load {os.getloadavg()[0]:.2f})"
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
