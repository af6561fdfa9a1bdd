"""The statistics behind sample size and "getting worse", against hand-computed answers."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from watchdog.core.rules import Trend
from watchdog.core.stats import (
    mann_kendall,
    mann_whitney_greater,
    median,
    sen_slope,
    wilson_bounds,
    z_for,
)
from watchdog.core.trend import baseline_values, judge_trend


class TestWilson:
    @pytest.mark.parametrize(
        ("rate", "n", "low", "high"),
        [
            (0.75, 4, 0.3006, 0.9544),  # 3 of 4: not "75%"
            (0.08, 2000, 0.0689, 0.0927),
            (0.0, 100, 0.0, 0.0370),
            (1.0, 10, 0.7225, 1.0),
        ],
    )
    def test_interval(self, rate: float, n: int, low: float, high: float) -> None:
        """The 95% Wilson interval matches the textbook values."""
        lo, hi = wilson_bounds(rate, n, z_for(0.95))
        assert lo == pytest.approx(low, abs=5e-4)
        assert hi == pytest.approx(high, abs=5e-4)

    def test_no_requests_is_the_whole_range(self) -> None:
        """Zero requests carry no evidence: [0, 1]."""
        assert wilson_bounds(0.5, 0, 1.96) == (0.0, 1.0)


class TestMannKendall:
    @pytest.mark.parametrize(
        ("values", "s", "var_s", "p_up"),
        [
            # n=5 strictly rising: S = 10, Var = 5*4*15/18, z = (10-1)/sqrt(Var)
            ([1, 2, 3, 4, 5], 10, 16.6667, 0.01374),
            ([5, 4, 3, 2, 1], -10, 16.6667, 0.98626),
            # ties: two groups of 2 take 2*(2*1*9)/18 = 2 off the variance
            ([1, 1, 2, 2], 4, 6.6667, 0.12264),
            # every value tied: no variance, no evidence
            ([3, 3, 3, 3], 0, 0.0, 1.0),
            # S = +1 +1 -1 = 1: the continuity correction makes z = 0, p = 0.5
            ([1, 3, 2], 1, 3.6667, 0.5),
        ],
    )
    def test_known_series(self, values: list[float], s: int, var_s: float, p_up: float) -> None:
        """S, its tie-corrected variance and the one-sided p-value match hand computation."""
        result = mann_kendall(values)
        assert result.s == s
        assert result.var_s == pytest.approx(var_s, abs=1e-3)
        assert result.p_up == pytest.approx(p_up, abs=1e-4)

    def test_one_outlier_does_not_make_a_trend(self) -> None:
        """Rank based: a single huge last sample on flat noise is not significant at 0.01."""
        values = [0.003, 0.004, 0.002, 0.003, 0.004, 0.002, 0.003, 0.5]
        assert mann_kendall(values).p_up > 0.01


class TestSen:
    def test_line(self) -> None:
        """A straight line gives its slope and intercept."""
        assert sen_slope([(0, 1.0), (1, 3.0), (2, 5.0)]) == (2.0, 1.0)

    def test_robust_to_an_outlier(self) -> None:
        """Six of ten pairwise slopes are 1, so the median ignores the wild last point."""
        slope, intercept = sen_slope([(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0), (4, 100.0)])
        assert (slope, intercept) == (1.0, 0.0)

    def test_same_time_pairs_are_skipped(self) -> None:
        """Two samples at one time carry no slope; a single time gives the median level."""
        assert sen_slope([(5, 1.0), (5, 3.0)]) == (0.0, 2.0)


class TestMannWhitney:
    def test_separated_groups(self) -> None:
        """U = 9 of 9, z = (9 - 4.5 - 0.5) / sqrt(9/12 * 7)."""
        p = mann_whitney_greater([3, 4, 5], [0, 1, 2])
        assert p == pytest.approx(1 - 0.5 * (1 + math.erf(1.7457 / math.sqrt(2))), abs=1e-4)

    def test_empty_or_all_tied(self) -> None:
        assert mann_whitney_greater([], [1.0]) == 1.0
        assert mann_whitney_greater([1.0, 1.0], [1.0]) == 1.0

    def test_median(self) -> None:
        assert median([3, 1, 2]) == 2
        assert median([4, 1, 3, 2]) == 2.5
        with pytest.raises(ValueError, match="no values"):
            median([])


TREND = Trend(window=timedelta(minutes=15), min_delta=0.01, alpha=0.01, min_samples=6)


def _history(
    values: list[float], *, start: float = 0, step: float = 60
) -> list[tuple[float, float]]:
    return [(start + i * step, v) for i, v in enumerate(values)]


class TestJudgeTrend:
    """Known series with known answers; onset at t=600 after ten samples at 0.3%."""

    BEFORE = [0.003] * 10

    def judge(
        self, after: list[float], *, worse_up: bool = True, before: list[float] | None = None
    ):  # type: ignore[no-untyped-def]
        base = self.BEFORE if before is None else before
        history = _history([*base, *after])
        onset = 60.0 * len(base)
        return judge_trend(
            history,
            onset=onset,
            now=history[-1][0],
            trend=TREND,
            worse_up=worse_up,
            before=baseline_values(history, onset, TREND),
        )

    def test_climbing_past_the_minimum_is_worse(self) -> None:
        """0.3% -> 3% in steady steps: significant, +1 pp and more, recent level clearly up."""
        verdict = self.judge([0.003 + 0.003 * i for i in range(1, 10)])
        assert verdict.worse
        assert verdict.before == pytest.approx(0.003)
        assert verdict.change is not None
        assert verdict.change > 0.02

    def test_significant_but_small_rise_is_not(self) -> None:
        """0.30% -> 0.38%: a real, monotone rise, under the practical minimum of +1 pp."""
        verdict = self.judge([0.003 + 0.0001 * i for i in range(1, 10)])
        assert not verdict.worse
        assert verdict.p_value is not None
        assert verdict.p_value < 0.01
        assert "practical minimum" in verdict.why_not

    def test_flat_noise_is_not(self) -> None:
        """Alternating noise has no trend."""
        verdict = self.judge([0.002, 0.006, 0.003, 0.005, 0.002, 0.006, 0.003, 0.005])
        assert not verdict.worse
        assert "no significant rise" in verdict.why_not

    def test_too_few_samples(self) -> None:
        """Five samples since onset are not enough to judge at the default min_samples."""
        verdict = self.judge([0.01, 0.02, 0.03, 0.04, 0.05])
        assert not verdict.worse
        assert verdict.samples == 5

    def test_downward_signals(self) -> None:
        """For a signal that gets worse as it falls, a fall is the trend."""
        falling = [0.9 - 0.05 * i for i in range(9)]
        assert self.judge(falling, worse_up=False, before=[0.9] * 10).worse
        assert not self.judge(falling, worse_up=True, before=[0.9] * 10).worse

    def test_without_samples_before_the_first_third_stands_in(self) -> None:
        """Started during the condition: the level is compared with the first judged third."""
        history = _history([0.003 + 0.003 * i for i in range(12)])
        verdict = judge_trend(
            history, onset=0, now=history[-1][0], trend=TREND, worse_up=True, before=()
        )
        assert verdict.worse
        assert verdict.before == pytest.approx(0.0075)  # median of 0.3, 0.6, 0.9, 1.2 %

    def test_recent_level_must_stand_clear_of_the_level_before(self) -> None:
        """A trend that only lifts the last samples barely (noisy baseline) is not enough."""
        before = [0.0, 0.02, 0.0, 0.02, 0.0, 0.02, 0.0, 0.02, 0.0, 0.02]
        after = [0.0, 0.001, 0.002, 0.004, 0.01, 0.014, 0.017, 0.02, 0.024]
        verdict = self.judge(after, before=before)
        assert not verdict.worse
