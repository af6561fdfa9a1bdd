"""The engine's fast paths decide exactly as its general path does.

``decide`` skips the flowchart for a quiet target (:func:`watchdog.core.decide.quiet`) and
reuses the standing quiet decision; replay parses the common sample line without building a
:class:`Sample`. Both are special cases next to the general path; these tests run randomized
traces both ways and compare every decision.
"""

from __future__ import annotations

import io
import json
import random

import pytest

from tests.core.helpers import DEFAULT_PACK
from watchdog.core import decide as decide_module
from watchdog.core import tracks as tracks_module
from watchdog.core.engine import Engine
from watchdog.core.model import Decision, RollbackOutcome, RollbackResultEvent, Sample
from watchdog.replay import read_trace, render, replay

SIGNALS = ("health_up", "error_rate", "request_count", "latency_p95_s", "db_cpu", "version")


def random_trace(seed: int, *, samples: int = 3000, targets: int = 3) -> list[str]:
    """Mostly healthy, with unknowns, missing request counts, outages, versions, deploys."""
    rng = random.Random(seed)
    lines = [
        json.dumps({"t": 0, "target": f"t{i}", "event": "deploy", "deployment": "d1"})
        for i in range(targets)
    ]
    t = 0.0
    dark: dict[tuple[int, str], float] = {}  # (target, signal) -> unknown until
    while len(lines) < samples:
        t += rng.choice([5.0, 10.0, 10.0, 30.0, 60.0])
        for i in range(targets):
            for signal in SIGNALS:
                if rng.random() < 0.004:  # a source goes dark for 1-15 minutes
                    dark[(i, signal)] = t + rng.uniform(60, 900)
        if rng.random() < 0.01:
            target = f"t{rng.randrange(targets)}"
            lines.append(
                json.dumps({"t": t, "target": target, "event": "deploy", "deployment": f"d{t:g}"})
            )
        for i in range(targets):
            bad = rng.random() < 0.15
            down = rng.random() < 0.15  # the health check fails on its own
            for signal in SIGNALS:
                if rng.random() < 0.3:
                    continue
                line: dict[str, object] = {"t": t, "target": f"t{i}", "signal": signal}
                if dark.get((i, signal), 0.0) > t:
                    if signal == "request_count":
                        continue  # counts stop coming: rates cannot be judged
                    line["value"] = None
                elif rng.random() < 0.05:
                    line["value"] = None
                elif signal == "health_up":
                    line["value"] = 0 if down and rng.random() < 0.8 else 1
                elif signal == "error_rate":
                    line["value"] = rng.uniform(0.06, 0.3) if bad else rng.uniform(0, 0.012)
                    if rng.random() < 0.7 and dark.get((i, "request_count"), 0.0) <= t:
                        line["requests"] = rng.choice([3, 60, 500, 5000])
                elif signal == "request_count":
                    line["value"] = rng.choice([10, 800, 5000])
                elif signal == "version":
                    line["value"] = rng.choice(["aaa1111", "aaa1111", "bbb2222"])
                else:
                    line["value"] = rng.uniform(0, 8) if signal == "latency_p95_s" else rng.random()
                lines.append(json.dumps(line))
    return lines


def general_decisions(lines: list[str]) -> list[tuple[object, ...]]:
    """The general path: every line through the careful parser, every decision through the
    full flowchart (the quiet path switched off)."""
    engine = Engine(DEFAULT_PACK)
    out: list[tuple[object, ...]] = []
    for parsed in read_trace(lines):
        item = parsed.item
        decisions: list[Decision] = (
            [engine.observe(item)] if isinstance(item, Sample) else engine.apply(item)
        )
        for d in list(decisions):
            if d.execute_rollback:  # a deployer that succeeds: the intensive watch begins
                decisions += engine.apply(
                    RollbackResultEvent(d.target, d.at, RollbackOutcome.SUCCEEDED, "d0")
                )
        out += [(d.target, d.action, d.severity, d.rule, d.reason, d.incident) for d in decisions]
    return out


class TestQuietPath:
    @pytest.mark.parametrize("seed", range(6))
    def test_quiet_path_agrees(self, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
        """With the quiet path on and off, every decision is the same (but for its time)."""
        lines = random_trace(seed)
        fast = general_decisions(lines)
        monkeypatch.setattr(decide_module, "standing_quiet", lambda ts, now: None)
        monkeypatch.setattr(decide_module, "quiet", lambda ts, now: False)
        assert general_decisions(lines) == fast

    @pytest.mark.parametrize("seed", range(6))
    def test_quiet_gate_agrees(self, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
        """With the signal-level quiet gate on and off, every decision is the same."""
        lines = random_trace(seed)
        fast = general_decisions(lines)
        monkeypatch.setattr(tracks_module, "gate_admits", lambda *args: False)
        assert general_decisions(lines) == fast

    @pytest.mark.parametrize("seed", range(6))
    def test_quiet_sample_agrees(self, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
        """With the quiet-sample path of the tracks on and off, every decision is the same."""
        lines = random_trace(seed)
        fast = general_decisions(lines)
        monkeypatch.setattr(tracks_module, "quiet_sample", lambda track, value, n: False)
        assert general_decisions(lines) == fast
        assert any(d[3] == "watchdog-blind" for d in fast)  # blindness is exercised
        assert any(d[3] == "post-rollback-error-rate" for d in fast)  # and the intensive watch


class TestReplayFastLines:
    @pytest.mark.parametrize("seed", range(4))
    def test_fast_line_path_is_byte_identical(self, seed: int) -> None:
        """replay()'s fast path prints byte for byte what the careful parser would."""
        lines = random_trace(seed, samples=4000)
        out = io.StringIO()
        replay(lines, DEFAULT_PACK, out, explain=True)
        engine = Engine(DEFAULT_PACK)
        expected = io.StringIO()
        last: dict[str, object] = {}
        from watchdog.core.model import RollbackOutcome, RollbackResultEvent

        for parsed in read_trace(lines):
            item = parsed.item
            decisions = [engine.observe(item)] if isinstance(item, Sample) else engine.apply(item)
            for decision in list(decisions):
                if decision.execute_rollback:
                    decisions += engine.apply(
                        RollbackResultEvent(
                            decision.target,
                            decision.at,
                            RollbackOutcome.SUCCEEDED,
                            "",
                            "replay assumes the rollback succeeded",
                        )
                    )
            for decision in decisions:
                if last.get(decision.target, ("monitor", None)) != decision.key:
                    last[decision.target] = decision.key
                    expected.write(render(decision, parsed.numeric_time, explain=True) + "\n")
        assert out.getvalue() == expected.getvalue()
        assert out.getvalue().count("\n") > 5  # the traces do decide things


class TestQuietGatePhases:
    def decisions(self) -> list[tuple[object, ...]]:
        """A quiet error rate, then a health outage rolls back: the intensive watch starts
        while the error-rate tracks are quiet, and 0.8% must now reach the post-rollback rule
        (the gate made outside the watch would let it pass)."""
        from tests.core.helpers import engine, feed, sample

        eng = engine()
        items: list[object] = [sample(t, "error_rate", 0.008, requests=100_000) for t in (5, 15)]
        items += [sample(t, "health_up", 0) for t in (10, 20, 30)]
        out = feed(eng, items)
        out += eng.apply(RollbackResultEvent("web", out[-1].at, RollbackOutcome.SUCCEEDED, "d0"))
        after: list[object] = []
        for t in (40, 50, 60):
            after += [sample(t - 5, "health_up", 1), sample(t, "error_rate", 0.008, requests=10**5)]
        out += feed(eng, after)
        return [(d.action, d.severity, d.rule, d.reason) for d in out]

    def test_gate_respects_the_intensive_watch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fast = self.decisions()
        assert any(d[2] == "post-rollback-error-rate" for d in fast)
        monkeypatch.setattr(tracks_module, "gate_admits", lambda *args: False)
        assert self.decisions() == fast
