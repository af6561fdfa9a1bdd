"""A client-side token bucket so the watchdog stays inside a vendor's published rate limit.

It never sleeps itself: ``take`` either spends a token or says how long until one is free,
and the caller turns that into a retryable error with ``retry_after``, so the dispatcher's
retry loop (with its injected sleep and deadline) does the waiting.
"""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float, monotonic: Callable[[], float]) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._monotonic = monotonic
        self._tokens = float(burst)
        self._last = monotonic()

    def take(self) -> float:
        """Spend one token and return 0, or return the seconds until a token is available."""
        now = self._monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate
