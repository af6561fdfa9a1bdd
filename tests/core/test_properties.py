"""Properties of the engine that must hold for every trace (hypothesis).

- Unknown values never cause a rollback.
- Making every signal worse never makes the worst action of a trace milder.
- Replay is deterministic.
"""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.helpers import DEFAULT_PACK
from watchdog.core.engine import Engine
from watchdog.core.model import (
    Action,
    Decision,
    DeployEvent,
    Sample,
    Severity,
    UnknownReason,
    from_seconds,
)
from watchdog.replay import replay

SIGNALS = ("health_up", "error_rate", "latency_p95_s", "db_cpu", "payment_failures", "feature_up.x")

#: per signal: a value strategy from healthy to bad
VALUES = {
    "health_up": st.sampled_from([0.0, 1.0]),
    "error_rate": st.floats(0, 0.3),
    "latency_p95_s": st.floats(0, 10),
    "db_cpu": st.floats(0, 1),
    "payment_failures": st.integers(0, 3).map(float),
    "feature_up.x": st.sampled_from([0.0, 1.0]),
}
HEALTHY = {
    "health_up": st.just(1.0),
    "error_rate": st.floats(0, 0.005),
    "latency_p95_s": st.floats(0, 1.9),
    "db_cpu": st.floats(0, 0.89),
    "payment_failures": st.just(0.0),
    "feature_up.x": st.just(1.0),
}


@st.composite
def traces(
    draw: st.DrawFn, values: dict[str, st.SearchStrategy[float]], unknown_p: float
) -> list[tuple[float, str, float | None]]:
    n = draw(st.integers(1, 120))
    out = []
    t = 0.0
    for _ in range(n):
        t += draw(st.sampled_from([5.0, 10.0, 30.0, 60.0]))
        signal = draw(st.sampled_from(SIGNALS))
        unknown = draw(st.floats(0, 1)) < unknown_p
        out.append((t, signal, None if unknown else draw(values[signal])))
    return out


def run(trace: list[tuple[float, str, float | None]]) -> list[Decision]:
    engine = Engine(DEFAULT_PACK)
    engine.apply(DeployEvent("web", from_seconds(0), "dpl_2"))
    actions = []
    for t, signal, value in trace:
        unknown = UnknownReason.PROVIDER_ERROR if value is None else None
        actions.append(
            engine.observe(Sample("web", signal, value, from_seconds(t), unknown=unknown))
        )
    return actions


WORSE = {
    "health_up": lambda v: 0.0,
    "error_rate": lambda v: min(1.0, v * 2 + 0.01),
    "latency_p95_s": lambda v: v + 1.0,
    "db_cpu": lambda v: min(1.0, v + 0.05),
    "payment_failures": lambda v: v + 1.0,
    "feature_up.x": lambda v: 0.0,
}


class TestProperties:
    @settings(max_examples=150, deadline=None)
    @given(traces(HEALTHY, unknown_p=0.6))
    def test_unknown_values_never_cause_a_rollback(
        self, trace: list[tuple[float, str, float | None]]
    ) -> None:
        """Healthy values mixed with any amount of unknown never roll back or page above warning."""
        decisions = run(trace)
        assert all(d.action is not Action.ROLLBACK for d in decisions)
        assert all(d.severity in (None, Severity.INVESTIGATE) for d in decisions)

    @settings(max_examples=150, deadline=None)
    @given(traces(VALUES, unknown_p=0.2), st.data())
    def test_worse_signals_never_make_the_action_milder(
        self, trace: list[tuple[float, str, float | None]], data: st.DataObject
    ) -> None:
        """Pushing any subset of samples worse never lowers the worst action over the trace."""
        mask = data.draw(st.lists(st.booleans(), min_size=len(trace), max_size=len(trace)))
        worse = [
            (t, s, WORSE[s](v) if (v is not None and m) else v)
            for (t, s, v), m in zip(trace, mask, strict=True)
        ]
        base = max(d.action.rank for d in run(trace))
        assert max(d.action.rank for d in run(worse)) >= base

    @settings(max_examples=50, deadline=None)
    @given(traces(VALUES, unknown_p=0.2))
    def test_replay_is_deterministic(self, trace: list[tuple[float, str, float | None]]) -> None:
        """The same trace replayed twice prints the same decisions."""
        lines = [json.dumps({"t": 0, "target": "web", "event": "deploy", "deployment": "d"})]
        lines += [
            json.dumps({"t": t, "target": "web", "signal": s, "value": v}) for t, s, v in trace
        ]
        outs = []
        for _ in range(2):
            buf = io.StringIO()
            replay(lines, DEFAULT_PACK, buf, explain=True)
            outs.append(buf.getvalue())
        assert outs[0] == outs[1]
