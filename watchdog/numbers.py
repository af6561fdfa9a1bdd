"""Numbers read from outside (a vendor's JSON): one reading for every parser.

No I/O. JSON gives bools (not numbers here), integers of any size (beyond any float) and, from
lenient encoders, NaN and ±Infinity: none of them is a measurement.
"""

from __future__ import annotations

import math


def finite(value: object, low: float = -math.inf, high: float = math.inf) -> float | None:
    """``value`` as a finite float from ``low`` to ``high``; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) and low <= number <= high else None
