"""Replay throughput: 1,000,000 samples over 100 targets, parsing included.

Prints samples per second and peak RSS. The engine is the hot path both for a daemon watching
hundreds of apps and for backtesting months of history; the goal is >= 100,000 samples/s on
one core.

    python benchmarks/replay_throughput.py [--samples N] [--targets N]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from watchdog.replay import replay
from watchdog.yamlfile import default_rules_path, load_rule_pack

SIGNALS = ("health_up", "error_rate", "latency_p95_s", "db_cpu", "payment_failures")


def generate(path: Path, samples: int, targets: int, seed: int = 7) -> None:
    """A realistic mix: mostly healthy, some unknowns, and a bad deployment on a few targets."""
    rng = random.Random(seed)
    per_tick = targets * len(SIGNALS)
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
    assert per_tick > 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--targets", type=int, default=100)
    args = parser.parse_args()
    pack = load_rule_pack(default_rules_path())
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.jsonl"
        t0 = time.perf_counter()
        generate(trace, args.samples, args.targets)
        gen_s = time.perf_counter() - t0
        size_mb = trace.stat().st_size / 1e6
        out = io.StringIO()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        with trace.open() as lines:
            changes = replay(lines, pack, out)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"trace: {args.samples:,} samples, {args.targets} targets, {size_mb:.0f} MB "
        f"(generated in {gen_s:.1f}s)"
    )
    print(f"replay: {wall:.2f}s wall, {cpu:.2f}s CPU, {changes} decision changes")
    print(
        f"throughput: {args.samples / wall:,.0f} samples/s (wall), "
        f"{args.samples / cpu:,.0f} samples/s (CPU)"
    )
    print(f"peak RSS: {rss_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
