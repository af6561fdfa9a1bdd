"""Small statistics the rules need: Wilson bounds for rates, Mann-Kendall and Sen's slope.

Pure functions over plain numbers, table-tested in ``tests/core/test_stats.py``. No NumPy or
SciPy: the series are short (a few dozen samples) and the daemon must stay light.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


def z_for(confidence: float) -> float:
    """Two-sided normal quantile, e.g. 1.96 for 0.95."""
    return _NORMAL.inv_cdf(0.5 + confidence / 2.0)


def wilson_bounds(rate: float, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    Why Wilson: with few requests the raw ratio is noisy (3 of 4 failing is not "75%" worth a
    rollback); the lower bound only crosses a threshold once there is enough evidence.
    """
    if n <= 0:
        return (0.0, 1.0)
    p = min(1.0, max(0.0, rate))
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = p + z2 / (2.0 * n)
    spread = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return (max(0.0, (centre - spread) / denom), min(1.0, (centre + spread) / denom))


def median(values: Sequence[float]) -> float:
    """The middle value (mean of the two middle ones for an even count); 0 items is an error."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of no values")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


@dataclass(frozen=True, slots=True)
class MannKendall:
    """The Mann-Kendall trend test on a series in time order.

    ``s`` counts later-minus-earlier pairs that rise minus those that fall; ``p_up`` is the
    one-sided p-value of "the series rises" under the null of no trend (normal approximation
    with the tie correction and a continuity correction, conservative for short series). To
    test for a fall, negate the values.
    """

    n: int
    s: int
    var_s: float
    z: float
    p_up: float


def mann_kendall(values: Sequence[float]) -> MannKendall:
    """Mann-Kendall S, its tie-corrected variance, and the one-sided p-value of a rise.

    Why Mann-Kendall: it is rank based, so one wild sample cannot make a trend, and its
    false-positive rate on stationary noise is controlled whatever the noise's distribution
    (independent samples assumed). Quantised rates (0/50, 1/50, ...) produce many ties; the
    tie correction keeps the variance honest.
    """
    n = len(values)
    s = 0
    for i in range(n - 1):
        vi = values[i]
        for j in range(i + 1, n):
            d = values[j] - vi
            if d > 0:
                s += 1
            elif d < 0:
                s -= 1
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    ties = sum(t * (t - 1) * (2 * t + 5) for t in counts.values() if t > 1)
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if n < 2 or var_s <= 0:
        return MannKendall(n, s, max(var_s, 0.0), 0.0, 1.0)
    if s > 0:
        z = (s - 1) / math.sqrt(var_s)
    elif s < 0:
        z = (s + 1) / math.sqrt(var_s)
    else:
        z = 0.0
    return MannKendall(n, s, var_s, z, 1.0 - _NORMAL.cdf(z))


def sen_slope(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Sen's slope (median of pairwise slopes, value per second) and its intercept.

    The intercept is the median of ``v - slope * t``, so ``intercept + slope * t`` is the
    robust fitted level at time ``t``. Pairs taken at the same time carry no slope and are
    skipped. Fewer than two distinct times: slope 0 and the median as the level.
    """
    slopes: list[float] = []
    n = len(points)
    for i in range(n - 1):
        ti, vi = points[i]
        for j in range(i + 1, n):
            tj, vj = points[j]
            if tj != ti:
                slopes.append((vj - vi) / (tj - ti))
    if not slopes:
        level = median([v for _, v in points]) if points else 0.0
        return (0.0, level)
    slope = median(slopes)
    return (slope, median([v - slope * t for t, v in points]))


def mann_whitney_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value that values in ``a`` tend to exceed those in ``b`` (Mann-Whitney U).

    Normal approximation with the tie correction and a continuity correction; 1.0 when
    either side is empty or every value ties.
    """
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 1.0
    u = 0.0
    for x in a:
        for y in b:
            if x > y:
                u += 1.0
            elif x == y:
                u += 0.5
    n = n1 + n2
    counts: dict[float, int] = {}
    for v in (*a, *b):
        counts[v] = counts.get(v, 0) + 1
    ties = sum(t**3 - t for t in counts.values() if t > 1)
    var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(var)
    return 1.0 - _NORMAL.cdf(z)


def newcombe_difference(
    rate_a: float, n_a: int, rate_b: float, n_b: int, z: float
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for the difference of two proportions (a - b).

    Why Newcombe: it is built from each side's Wilson interval, so it stays honest at small
    counts and rates near 0 where the textbook z interval is too narrow (Newcombe 1998,
    method 10).
    """
    low_a, high_a = wilson_bounds(rate_a, n_a, z)
    low_b, high_b = wilson_bounds(rate_b, n_b, z)
    diff = rate_a - rate_b
    low = diff - math.sqrt((rate_a - low_a) ** 2 + (high_b - rate_b) ** 2)
    high = diff + math.sqrt((high_a - rate_a) ** 2 + (rate_b - low_b) ** 2)
    return (max(-1.0, low), min(1.0, high))
