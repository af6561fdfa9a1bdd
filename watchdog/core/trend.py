"""Is it getting worse? (procedure Appendix A, DESIGN §4 step 3), as a pure function.

"Getting worse" can roll production back inside the fix-forward window, so it is a claim
that needs evidence on two counts, both required:

1. **a trend**: the trend signal's samples since the condition started (at most the trend
   window back) rise by a one-sided Mann-Kendall test at ``alpha``. Rank based, so one wild
   sample cannot make a trend; its false-positive rate on stationary noise is controlled
   whatever the noise's distribution.
2. **a practical size**: the robust fitted level now (Sen's line at the last sample) exceeds
   the level just before the condition started (the median over the trend's ``baseline``
   span) by at least ``min_delta`` in the signal's own unit. A statistically clear rise from
   0.20 % to 0.25 % is real, and not worth a rollback.
3. **a level that really moved**: the latest ``min_samples`` samples sit above the samples
   before the condition started by more than half of ``min_delta``, by a one-sided
   Mann-Whitney test at ``alpha``. The trend test alone is asked again at every sample, and
   a chance run at low traffic (2 failures of 70 requests in the last sample) can pass it and
   the point estimate of 2. together; anchoring the claim on the level before the condition
   started removes that (measured: 0 in 2,000 low-traffic Poisson traces, against 1–2
   without), for about one sample of delay on a real rise.

``benchmarks/false_rollbacks.py`` measures what these give on thousands of randomized
traces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from watchdog.core.rules import Trend
from watchdog.core.stats import mann_kendall, mann_whitney_greater, median, sen_slope


@dataclass(frozen=True, slots=True)
class TrendVerdict:
    """The evidence behind "getting worse", for the decision's reason and the audit trail."""

    worse: bool
    samples: int
    p_value: float | None = None
    #: Sen's slope, signal units per second, signed so that positive is worse
    slope: float = 0.0
    before: float | None = None
    now: float | None = None
    why_not: str = ""

    @property
    def change(self) -> float | None:
        if self.before is None or self.now is None:
            return None
        return self.now - self.before


def baseline_values(
    history: Iterable[tuple[float, float]], onset: float, trend: Trend
) -> tuple[float, ...]:
    """The samples just before the condition started (over ``trend.baseline``)."""
    start = onset - trend.baseline.total_seconds()
    return tuple(v for t, v in history if start <= t < onset)


def judge_trend(
    history: Iterable[tuple[float, float]],
    *,
    onset: float,
    now: float,
    trend: Trend,
    worse_up: bool,
    before: Sequence[float],
) -> TrendVerdict:
    """Judge "getting worse" on ``history`` (epoch seconds, value; known samples only).

    ``before`` holds the samples just before ``onset`` (see :func:`baseline_values`);
    without them (the watchdog started during the condition) the first third of the judged
    samples stands in for them.
    """
    start = max(onset, now - trend.window.total_seconds())
    sign = 1.0 if worse_up else -1.0
    points = [(t, sign * v) for t, v in history if start <= t <= now]
    n = len(points)
    if n < trend.min_samples:
        return TrendVerdict(False, n, why_not=f"{n} samples since it started")
    values = [v for _, v in points]
    test = mann_kendall(values)
    if not (test.s > 0 and test.p_up < trend.alpha):
        return TrendVerdict(
            False,
            n,
            p_value=test.p_up,
            why_not=f"no significant rise (Mann-Kendall p={test.p_up:.2g}, alpha {trend.alpha:g})",
        )
    slope, intercept = sen_slope(points)
    fitted_now = intercept + slope * points[-1][0]
    base = [sign * v for v in before] if before else values[: max(1, n // 3)]
    reference = median(base)
    evidence = TrendVerdict(
        worse=False,
        samples=n,
        p_value=test.p_up,
        slope=slope,
        before=sign * reference,
        now=sign * fitted_now,
    )
    if fitted_now - reference < trend.min_delta:
        return replace(evidence, why_not=f"rise under the practical minimum of {trend.min_delta:g}")
    recent = [v - trend.min_delta / 2.0 for v in values[-trend.min_samples :]]
    if mann_whitney_greater(recent, base) >= trend.alpha:
        return replace(
            evidence, why_not="the latest samples are not clearly above the level before"
        )
    return replace(evidence, worse=True)
