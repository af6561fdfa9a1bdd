"""False rollbacks: how often ordinary noise rolls production back, and how fast real trouble is.

A heuristic that can roll back production ships with its false-positive rate, measured here on
thousands of randomized traces per family and replayed through the real engine
(``watchdog.replay``, the same code path the daemon decides on). Three kinds of family:

* ``noise-*``: a key feature is down (P1, flowchart step 3) while the error rate is stationary
  noise at a healthy-to-elevated level (0.05 %–3 %, log-uniform). Nothing is getting worse,
  so nothing may roll back before the fix-forward window ends (15 min after the page, or the
  ack's own window when on-call acknowledged "fix forward"). Noise is uniform, gaussian,
  gaussian with autocorrelation (AR(1), a stress test), or Poisson-quantised counts at low
  traffic (50–1,000 requests per window), at a 10 s or a 60 s cadence. The true rate stays
  under the 5 % rollback threshold (a real 5 % is the procedure's rollback, not noise); the
  Poisson counts may still read above it, which is what the Wilson bound is for.
* ``worse-*``: the same outage, with the error rate genuinely climbing from 0.3 % to 3 % over
  10 min (linear or in four steps), with gaussian or Poisson noise. "Getting worse" must be
  detected inside the window; the delay is reported in samples after the outage began, and in
  samples after the true rise first reached the rule's practical minimum change.
* ``healthy-*``: no outage, one hour of healthy noise (0.05 %–0.6 %). Nothing may page.
* ``dependency-*``: a Vercel rolling release (canary at 10 %) when a dependency fails: the
  error rate of both deployments jumps to 6–12 % together. The overall rate breaks the 5 %
  threshold, but the old deployment is as bad over the same minutes, so nothing may roll
  back (the page says "not the deployment").
* ``canary-*``: the same rolling release where only the canary's error rate jumps to 6–12 %.
  The canary must be caught (aborted); its delay is compared, trace by trace, with judging
  the canary's own numbers on the absolute 5 % rule as if it were fully live: the baseline
  comparison may cost at most one sample.

Run from the repository root::

    python benchmarks/false_rollbacks.py [--traces 1000] [--seed 1] [--only noise] [--jobs 2]

The AR(1) families are a stress test beyond the issue's families: MK assumes independent
samples, and autocorrelated noise that drifts +1 pp for several minutes is, sample by sample,
a rise. They are reported, not judged.

It prints one row per family and exits 1 when a noise family rolled back early, a healthy
family paged or rolled back, or a worsening family went undetected before the window ended in
more than 10 % of its traces (at 50–1,000 requests a minute, Poisson noise hides a rise in a
few percent of traces; those still roll back when the window ends).
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from watchdog.core.rules import RulePack
from watchdog.replay import replay
from watchdog.yamlfile import default_rules_path, load_rule_pack

WARMUP = 600.0  # healthy minutes before the outage: the level "just before" it
OUTAGE = 1500.0  # the outage outlasts the 15 min window and a late ack's window
HEALTHY = 3600.0
FEATURE = "feature_up.checkout"
WINDOW = 900.0  # the default pack's fix-forward window


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # noise | worse | healthy
    noise: str  # uniform | gauss | ar1 | poisson
    cadence: float
    ack: bool = False
    shape: str = "flat"  # flat | linear | step


def families() -> list[Family]:
    out: list[Family] = []
    for cadence in (10.0, 60.0):
        c = f"{cadence:g}s"
        for noise in ("uniform", "gauss", "poisson", "ar1"):
            for ack in (False, True):
                suffix = "-ack" if ack else ""
                out.append(Family(f"noise-{noise}-{c}{suffix}", "noise", noise, cadence, ack))
    for cadence in (10.0, 60.0):
        c = f"{cadence:g}s"
        for shape in ("linear", "step"):
            for noise in ("gauss", "poisson"):
                name = f"worse-{shape}-{noise}-{c}"
                out.append(Family(name, "worse", noise, cadence, False, shape))
    for cadence in (10.0, 60.0):
        c = f"{cadence:g}s"
        for noise in ("uniform", "gauss", "poisson"):
            out.append(Family(f"healthy-{noise}-{c}", "healthy", noise, cadence))
    for cadence in (10.0, 60.0):
        c = f"{cadence:g}s"
        out.append(Family(f"dependency-{c}", "dependency", "poisson", cadence))
        out.append(Family(f"canary-{c}", "canary", "poisson", cadence))
    return out


# --------------------------------------------------------------------------- traces


@dataclass
class Noise:
    """One trace's error-rate noise: a level plus a draw per sample."""

    rng: random.Random
    kind: str
    level: float
    spread: float
    traffic: float
    ar: float = 0.0

    def draw(self, mean: float) -> tuple[float, int]:
        rng = self.rng
        requests = max(1, round(self.traffic * rng.uniform(0.8, 1.2)))
        if self.kind == "uniform":
            value = mean * rng.uniform(1 - self.spread, 1 + self.spread)
        elif self.kind == "gauss":
            value = max(0.0, rng.gauss(mean, self.spread * mean))
        elif self.kind == "ar1":
            # AR(1) with coefficient 0.8: the deviation carries over from sample to sample
            self.ar = 0.8 * self.ar + math.sqrt(1 - 0.64) * rng.gauss(0, self.spread * mean)
            value = max(0.0, mean + self.ar)
        else:
            requests = rng.randint(50, 1000)
            value = _poisson(rng, mean * requests) / requests
        return min(value, 1.0), requests


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def make_noise(rng: random.Random, family: Family, level: float) -> Noise:
    spread = {
        "uniform": rng.uniform(0.2, 0.5),
        "gauss": rng.uniform(0.05, 0.15),
        "ar1": rng.uniform(0.05, 0.15),
        "poisson": 0.0,
    }[family.noise]
    return Noise(rng, family.noise, level, spread, traffic=math.exp(rng.uniform(6.2, 8.5)))


def rising(shape: str, since: float) -> float:
    """The worsening families' true error rate, ``since`` seconds into the outage."""
    if since < 0:
        return 0.003
    share = min(1.0, since / 600.0)
    if shape == "step":
        share = math.floor(share * 4) / 4
    return 0.003 + (0.03 - 0.003) * share


@dataclass
class Trace:
    lines: list[bytes]
    outage_at: float | None
    ack_at: float | None
    #: when the true rise first reached +1 percentage point (worsening families)
    rise_at: float | None


def build_rollout(family: Family, seed: int, *, alone: bool = False) -> Trace:
    """A rolling release (canary 10 %) with release-scoped error rates for both deployments
    and the overall one; at the onset a dependency (both) or the canary alone goes bad.
    ``alone``: the canary's own numbers as a fully live deployment's (no rollout)."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    add = lines.append
    dumps = orjson.dumps
    c = family.cadence
    onset = WARMUP + rng.uniform(0, c)
    level = math.exp(rng.uniform(math.log(0.002), math.log(0.006)))
    bad = rng.uniform(0.06, 0.12)
    if alone:
        add(dumps({"t": 0, "target": "web", "event": "deploy", "deployment": "dpl_new"}))
    else:
        add(dumps({"t": 0, "target": "web", "event": "deploy", "deployment": "dpl_old"}))
        add(
            dumps(
                {
                    "t": 5,
                    "target": "web",
                    "event": "rollout",
                    "canary": "dpl_new",
                    "base": "dpl_old",
                    "stage": 0,
                    "percent": 10,
                    "approval": True,
                    "next_stage": 1,
                }
            )
        )
    t = c
    while t <= onset + 900:
        total = rng.randint(2000, 20000)
        n_new = max(1, round(total * 0.1))
        n_old = total - n_new
        sick = t >= onset
        rate_new = bad if sick else level
        rate_old = bad if sick and family.kind == "dependency" else level
        x_new = _poisson(rng, rate_new * n_new)
        x_old = _poisson(rng, rate_old * n_old)
        add(dumps({"t": t, "target": "web", "signal": "health_up", "value": 1}))
        if alone:
            add(_rate(t, x_new, n_new))
        else:
            # release-scoped first, then the overall rate: the order the Sentry source emits
            # one poll's samples in, so deploy correlation sees the same minutes
            add(_rate(t, x_old, n_old, "dpl_old"))
            add(_rate(t, x_new, n_new, "dpl_new"))
            add(_rate(t, x_new + x_old, total))
        t += c
    return Trace(lines, onset, None, None)


def _rate(t: float, failed: int, requests: int, deployment: str | None = None) -> bytes:
    """An error-rate sample line: ``failed`` of ``requests``, release-scoped if tagged."""
    line: dict[str, object] = {
        "t": t,
        "target": "web",
        "signal": "error_rate",
        "value": round(failed / requests, 6),
        "requests": requests,
    }
    if deployment is not None:
        line["deployment"] = deployment
    return orjson.dumps(line)


def build(family: Family, seed: int) -> Trace:
    if family.kind in ("dependency", "canary"):
        return build_rollout(family, seed)
    rng = random.Random(seed)
    lines: list[bytes] = []
    add = lines.append
    dumps = orjson.dumps
    add(dumps({"t": 0, "target": "web", "event": "deploy", "deployment": "dpl_2"}))
    if family.kind == "worse":
        level = 0.003
    elif family.kind == "healthy":
        level = math.exp(rng.uniform(math.log(0.0005), math.log(0.006)))
    else:
        level = math.exp(rng.uniform(math.log(0.0005), math.log(0.03)))
    noise = make_noise(rng, family, level)
    c = family.cadence
    outage_at = None if family.kind == "healthy" else WARMUP + rng.uniform(0, c)
    end = HEALTHY if family.kind == "healthy" else WARMUP + OUTAGE
    page_at = None if outage_at is None else outage_at + c  # feature-down needs 2 polls
    ack_at = None
    if family.ack and page_at is not None:
        ack_at = page_at + rng.uniform(60, 300)
    rise_at = None
    t = c
    acked = False
    while t <= end:
        down = outage_at is not None and t >= outage_at
        if family.kind == "worse" and outage_at is not None:
            mean = rising(family.shape, t - outage_at)
            if rise_at is None and mean >= 0.003 + 0.01:
                rise_at = t
        else:
            mean = level
        rate, requests = noise.draw(mean)
        if ack_at is not None and not acked and t >= ack_at:
            acked = True
            add(dumps({"t": t, "target": "web", "event": "ack", "decision": "fix_forward"}))
        add(dumps({"t": t, "target": "web", "signal": "health_up", "value": 1}))
        add(dumps({"t": t, "target": "web", "signal": FEATURE, "value": 0 if down else 1}))
        add(
            dumps(
                {
                    "t": t,
                    "target": "web",
                    "signal": "error_rate",
                    "value": round(rate, 6),
                    "requests": requests,
                }
            )
        )
        add(dumps({"t": t, "target": "web", "signal": "request_count", "value": requests}))
        add(
            dumps(
                {
                    "t": t,
                    "target": "web",
                    "signal": "latency_p95_s",
                    "value": round(rng.uniform(0.3, 0.6), 3),
                }
            )
        )
        t += c
    return Trace(lines, outage_at, ack_at, rise_at)


# --------------------------------------------------------------------------- judging


@dataclass
class Result:
    early_rollback: bool
    any_rollback: bool
    paged: bool
    lines: int
    detected_after: float | None  # seconds after the outage began
    detected_samples: int | None
    over_floor_samples: int | None
    #: canary families: samples later than the absolute rule on the canary's own numbers
    slower_samples: int | None = None


def _decisions(lines: list[bytes], pack: RulePack) -> list[dict[str, object]]:
    out = io.StringIO()
    replay(lines, pack, out, explain=True)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def run_rollout(family: Family, seed: int, pack: RulePack) -> Result:
    trace = build_rollout(family, seed)
    decisions = _decisions(trace.lines, pack)
    assert trace.outage_at is not None
    rollbacks = [d for d in decisions if d["action"] == "rollback"]
    paged = any(d["action"] in ("page", "rollback") for d in decisions)
    detected_after = detected = slower = None
    if family.kind == "canary" and rollbacks:
        first = float(rollbacks[0]["t"])  # type: ignore[arg-type]
        detected_after = first - trace.outage_at
        detected = round(detected_after / family.cadence)
        alone = _decisions(build_rollout(family, seed, alone=True).lines, pack)
        alone_rb = [d for d in alone if d["action"] == "rollback"]
        if alone_rb:
            slower = round((first - float(alone_rb[0]["t"])) / family.cadence)  # type: ignore[arg-type]
    return Result(
        early_rollback=bool(rollbacks),
        any_rollback=bool(rollbacks),
        paged=paged,
        lines=len(decisions),
        detected_after=detected_after,
        detected_samples=detected,
        over_floor_samples=slower,
        slower_samples=slower,
    )


def run_one(family: Family, seed: int, pack: RulePack) -> Result:
    if family.kind in ("dependency", "canary"):
        return run_rollout(family, seed, pack)
    trace = build(family, seed)
    out = io.StringIO()
    text = (line.decode() for line in trace.lines)
    replay(text, pack, out, explain=True)
    decisions = [orjson.loads(line) for line in out.getvalue().splitlines()]
    c = family.cadence
    if trace.outage_at is not None:
        page_at = trace.outage_at + c
        expiry = page_at + WINDOW
        if trace.ack_at is not None:
            expiry = max(expiry, math.ceil(trace.ack_at / c) * c + WINDOW)
    else:
        expiry = math.inf
    rollbacks = [d for d in decisions if d["action"] == "rollback"]
    early = [d for d in rollbacks if d["t"] < expiry - 1e-6]
    paged = any(d["action"] in ("page", "rollback") for d in decisions)
    detected_after = detected_samples = over_floor = None
    if family.kind == "worse" and early and trace.outage_at is not None:
        first = early[0]["t"]
        detected_after = first - trace.outage_at
        detected_samples = round(detected_after / c)
        if trace.rise_at is not None:
            over_floor = max(0, round((first - trace.rise_at) / c))
    return Result(
        early_rollback=bool(early),
        any_rollback=bool(rollbacks),
        paged=paged,
        lines=len(decisions),
        detected_after=detected_after,
        detected_samples=detected_samples,
        over_floor_samples=over_floor,
    )


_PACK: RulePack | None = None


def _init(pack_path: str) -> None:
    global _PACK
    _PACK = load_rule_pack(Path(pack_path))


def _work(args: tuple[Family, int]) -> Result:
    assert _PACK is not None
    family, seed = args
    return run_one(family, seed, _PACK)


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.2f}% ({part})" if whole else "-"


def _q(values: list[int], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return str(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1000, help="traces per family")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="", help="run families whose name contains this")
    parser.add_argument("--rules", default=str(default_rules_path()))
    parser.add_argument("--jobs", type=int, default=max(1, min(2, multiprocessing.cpu_count())))
    args = parser.parse_args(argv)
    chosen = [f for f in families() if args.only in f.name]
    print(f"rule pack: {args.rules}; {args.traces} traces per family; seed {args.seed}")
    header = (
        f"{'family':<28} {'rolled back early':>18} {'rolled back':>14} {'paged':>14} "
        f"{'lines p50/max':>14} {'detect p50/p95 (samples)':>25} {'after floor p50/p95':>20}"
    )
    print(header)
    print("-" * len(header))
    failed = False
    started = time.perf_counter()
    with multiprocessing.Pool(args.jobs, initializer=_init, initargs=(args.rules,)) as pool:
        for family in chosen:
            work = [(family, args.seed * 1_000_003 + i) for i in range(args.traces)]
            results = pool.map(_work, work, chunksize=25)
            n = len(results)
            early = sum(r.early_rollback for r in results)
            anyrb = sum(r.any_rollback for r in results)
            paged = sum(r.paged for r in results)
            lines = [r.lines for r in results]
            detected = [r.detected_samples for r in results if r.detected_samples is not None]
            floor = [r.over_floor_samples for r in results if r.over_floor_samples is not None]
            if family.kind in ("worse", "canary"):
                early_txt = f"detected {_pct(early, n)}"
                failed |= early < 0.90 * n
                if family.kind == "canary":
                    slower = [r.slower_samples for r in results if r.slower_samples is not None]
                    failed |= bool(slower) and max(slower) > 1
            elif family.kind == "dependency":
                early_txt = _pct(early, n)
                failed |= early > 0
            else:
                early_txt = _pct(early, n)
                failed |= early > 0 and family.noise != "ar1"
            if family.kind == "healthy":
                failed |= paged > 0 or anyrb > 0
            print(
                f"{family.name:<28} {early_txt:>18} {_pct(anyrb, n):>14} {_pct(paged, n):>14} "
                f"{int(statistics.median(lines)):>6}/{max(lines):<7} "
                f"{_q(detected, 0.5):>12}/{_q(detected, 0.95):<12} "
                f"{_q(floor, 0.5):>9}/{_q(floor, 0.95):<10}",
                flush=True,
            )
    print(f"total {time.perf_counter() - started:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
