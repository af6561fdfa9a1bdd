"""Small statistics the rules need: Wilson bounds for rates and least-squares trends."""

from __future__ import annotations

import math
from collections.abc import Iterable
from statistics import NormalDist


def z_for(confidence: float) -> float:
    """Two-sided normal quantile, e.g. 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


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


def slope(points: Iterable[tuple[float, float]]) -> tuple[float, int]:
    """Least-squares slope (value per second) of (t, value) points, and how many points."""
    n = 0
    sum_t = sum_v = sum_tt = sum_tv = 0.0
    t0: float | None = None
    for t, v in points:
        if t0 is None:
            t0 = t
        x = t - t0  # centre on the first point to keep the sums well conditioned
        n += 1
        sum_t += x
        sum_v += v
        sum_tt += x * x
        sum_tv += x * v
    if n < 2:
        return (0.0, n)
    var = n * sum_tt - sum_t * sum_t
    if var <= 0.0:
        return (0.0, n)
    return ((n * sum_tv - sum_t * sum_v) / var, n)
