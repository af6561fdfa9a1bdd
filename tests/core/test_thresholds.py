"""Every rule of DESIGN §4 at its threshold boundary and its sustain boundary.

Each case feeds the default pack a deploy at t=0, then constant samples of one signal, and
checks the decision after exactly enough samples and after one sample short. Error rates come
with so many requests that their Wilson bound is the rate itself to five digits: the bound's
own effect is tested in ``test_sample_size.py``.
"""

from __future__ import annotations

import math

import pytest

from tests.core.helpers import engine, feed, sample
from watchdog.core.model import Action, Sample, Severity


# (rule, signal, threshold-side values (below, at, above), samples needed, step seconds,
#  expected action, expected severity)
def series(
    signal: str, values: list[float | None], *, start: float = 10, step: float = 10
) -> list[Sample]:
    requests = 10**9 if signal == "error_rate" else None
    return [sample(start + i * step, signal, v, requests=requests) for i, v in enumerate(values)]


CASES = [
    ("error-rate-critical", "error_rate", (0.0499, 0.05, 0.0501), 2, 10, Action.ROLLBACK, "P1"),
    ("latency-critical", "latency_p95_s", (4.99, 5.0, 5.01), 13, 10, Action.ROLLBACK, "P1"),
    (
        "error-rate-warning",
        "error_rate",
        (0.0099, 0.01, 0.0101),
        13,
        10,
        Action.PAGE,
        "investigate",
    ),
    ("latency-investigate", "latency_p95_s", (1.99, 2.0, 2.01), 13, 10, Action.PAGE, "investigate"),
    ("db-cpu-investigate", "db_cpu", (0.899, 0.90, 0.901), 31, 10, Action.PAGE, "investigate"),
    ("payments-failing", "payment_failures", (0.0, 0.0, 1.0), 1, 10, Action.ROLLBACK, "P0"),
]


class TestThresholdBoundaries:
    @pytest.mark.parametrize(("rule", "signal", "values", "needed", "step", "action", "sev"), CASES)
    def test_just_above_fires_at_sustain(
        self,
        rule: str,
        signal: str,
        values: tuple[float, float, float],
        needed: int,
        step: float,
        action: Action,
        sev: str,
    ) -> None:
        """A value just above the threshold fires the rule once sustained."""
        decisions = feed(engine(), series(signal, [values[2]] * needed, step=step))
        assert decisions[-1].rule == rule
        assert decisions[-1].action is action
        assert decisions[-1].severity == Severity(sev)

    @pytest.mark.parametrize(
        ("rule", "signal", "values", "needed", "step", "action", "sev"),
        [case for case in CASES if case[3] > 1],
    )
    def test_one_sample_short_does_not_fire(
        self,
        rule: str,
        signal: str,
        values: tuple[float, float, float],
        needed: int,
        step: float,
        action: Action,
        sev: str,
    ) -> None:
        """One sample short of the sustain the rule stays quiet."""
        decisions = feed(engine(), series(signal, [values[2]] * (needed - 1), step=step))
        assert all(d.rule != rule for d in decisions)

    @pytest.mark.parametrize(("rule", "signal", "values", "needed", "step", "action", "sev"), CASES)
    @pytest.mark.parametrize("which", [0, 1])
    def test_at_or_below_never_fires(
        self,
        rule: str,
        signal: str,
        values: tuple[float, float, float],
        needed: int,
        step: float,
        action: Action,
        sev: str,
        which: int,
    ) -> None:
        """A value at or just below a '>' threshold never fires, however long it lasts."""
        decisions = feed(engine(), series(signal, [values[which]] * (needed * 3), step=step))
        assert all(d.rule != rule for d in decisions)


class TestEqualityRules:
    @pytest.mark.parametrize(
        ("rule", "signal", "needed"),
        [("system-down", "health_up", 3), ("db-connection-failing", "db_connection_up", 3)],
    )
    def test_zero_for_three_polls_rolls_back(self, rule: str, signal: str, needed: int) -> None:
        """Three consecutive 0 polls roll back at P0; two do not."""
        short = feed(engine(), series(signal, [0.0] * (needed - 1)))
        assert short[-1].action is Action.MONITOR
        decisions = feed(engine(), series(signal, [0.0] * needed))
        assert (decisions[-1].action, decisions[-1].severity, decisions[-1].rule) == (
            Action.ROLLBACK,
            Severity.P0,
            rule,
        )
        assert decisions[-1].execute_rollback

    def test_healthy_poll_breaks_the_streak(self) -> None:
        """0, 0, 1, 0, 0 is never three consecutive failures."""
        decisions = feed(engine(), series("health_up", [0, 0, 1, 0, 0]))
        assert all(d.action is Action.MONITOR for d in decisions)

    def test_feature_down_two_polls_pages_p1(self) -> None:
        """A key feature down for two polls pages P1 (fix-forward window), no rollback yet."""
        one = feed(engine(), series("feature_up.create_opportunity", [0.0]))
        assert one[-1].action is Action.MONITOR
        two = feed(engine(), series("feature_up.create_opportunity", [0.0, 0.0]))
        assert (two[-1].action, two[-1].severity, two[-1].rule) == (
            Action.PAGE,
            Severity.P1,
            "major-feature-down",
        )

    def test_latency_for_is_measured_first_to_last_sample(self) -> None:
        """'for 2m' holds at exactly 120 s after the first bad sample, not at 119 s."""
        eng = engine()
        feed(eng, series("latency_p95_s", [6.0], start=0))
        almost = feed(eng, series("latency_p95_s", [6.0], start=119))
        assert almost[-1].action is Action.MONITOR
        enough = feed(eng, series("latency_p95_s", [6.0], start=120))
        assert enough[-1].action is Action.ROLLBACK


class TestUnknown:
    def test_unknown_neither_counts_nor_resets(self) -> None:
        """0, unknown, 0, 0: the unknown poll is skipped, so the third 0 completes the streak."""
        decisions = feed(engine(), series("health_up", [0.0, None, 0.0]))
        assert decisions[-1].action is Action.MONITOR
        decisions = feed(engine(), series("health_up", [0.0, None, 0.0, 0.0]))
        assert decisions[-1].action is Action.ROLLBACK

    def test_only_unknown_never_rolls_back(self) -> None:
        """An hour of unknown health pages 'blind' at warning level and never rolls back."""
        decisions = feed(engine(), series("health_up", [None] * 360))
        assert all(d.action is not Action.ROLLBACK for d in decisions)
        assert decisions[-1].rule == "watchdog-blind"
        assert decisions[-1].severity is Severity.INVESTIGATE

    def test_blind_after_boundary(self) -> None:
        """Blind pages at exactly blind_after (5 min) without data, not a poll earlier."""
        eng = engine()
        decisions = feed(eng, series("error_rate", [0.001] + [None] * 30, start=0))
        assert decisions[29].action is Action.MONITOR  # t=290: 4m50s without data
        assert decisions[30].rule == "watchdog-blind"  # t=300

    def test_nan_is_unknown_not_healthy(self) -> None:
        """A NaN that slips through is unknown: it does not break a streak of bad samples."""
        decisions = feed(engine(), series("error_rate", [0.08, math.nan, 0.08]))
        assert decisions[1].action is Action.MONITOR
        assert decisions[-1].action is Action.ROLLBACK
