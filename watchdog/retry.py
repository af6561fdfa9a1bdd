"""The one place that decides whether a failed HTTP call is worth retrying.

Sources and actions make *one* attempt and raise :class:`CallError`; :func:`call_with_retries`
owns tenacity. Sleep and clock are injected so retry tests run instantly, and every retry
loop is bounded by a deadline so a poll never overruns its interval and a page never
delays a rollback.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
Monotonic = Callable[[], float]

#: statuses that a later attempt may fix; everything else 4xx is a configuration problem
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class CallError(Exception):
    """One failed call to an external API.

    ``retryable`` says whether trying again can help; ``retry_after`` (seconds) is the
    server's own hint (``Retry-After`` or a rate-limit reset header). ``reason`` is a short
    machine-readable label for metrics (``timeout``, ``http_503``, ``malformed`` ...). The
    message must never contain a secret: callers build it from status and body only.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        reason: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` is either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def reset_header_delay(
    headers: Mapping[str, str], name: str, now_epoch_s: float, *, millis: bool = False
) -> float | None:
    """Seconds until an epoch rate-limit reset header (Vercel/Sentry: s; LaunchDarkly: ms)."""
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        reset = float(raw)
    except ValueError:
        return None
    if millis:
        reset /= 1000.0
    if not math.isfinite(reset):
        return None
    return max(0.0, reset - now_epoch_s)


def classify_status(
    status: int,
    service: str,
    body_hint: str = "",
    *,
    retry_after: float | None = None,
    auth_fix: str = "check the token and its scopes",
) -> CallError:
    """Build the :class:`CallError` for a non-success status, with a message a human can act on."""
    hint = f": {body_hint[:200]}" if body_hint else ""
    if status in (401, 403):
        return CallError(
            f"{service} rejected the credentials ({status}){hint}: {auth_fix}",
            retryable=False,
            reason=f"http_{status}",
            status=status,
        )
    if status == 429:
        return CallError(
            f"{service} rate-limited the request (429)",
            retryable=True,
            reason="rate_limited",
            status=status,
            retry_after=retry_after,
        )
    if status in RETRYABLE_STATUSES or status >= 500:
        return CallError(
            f"{service} answered {status}{hint}",
            retryable=True,
            reason=f"http_{status}",
            status=status,
            retry_after=retry_after,
        )
    return CallError(
        f"{service} refused the request ({status}){hint}: fix the configuration",
        retryable=False,
        reason=f"http_{status}",
        status=status,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff; ``deadline`` caps the whole loop including waits."""

    attempts: int = 4
    initial: float = 0.5
    maximum: float = 30.0
    deadline: float = 60.0


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy = RetryPolicy(),
    *,
    sleep: Sleep = asyncio.sleep,
    monotonic: Monotonic = time.monotonic,
    on_retry: Callable[[CallError, float], None] | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, fails permanently, or the policy runs out.

    A server's ``retry_after`` hint wins over the backoff when it fits inside the deadline;
    when it does not, the error is raised at once rather than sleeping past the deadline.
    """
    started = monotonic()

    def _backoff(attempt_number: int, exc: BaseException | None) -> float:
        backoff = min(policy.maximum, policy.initial * 2.0 ** (attempt_number - 1))
        if isinstance(exc, CallError) and exc.retry_after is not None:
            backoff = max(exc.retry_after, 0.0)
        return backoff

    # the common case costs one call and no retry machinery: polls run hundreds of times a
    # second across many targets, and building a tenacity retrier for each showed up as a
    # fifth of the daemon's CPU (benchmarks/footprint.py)
    try:
        return await attempt()
    except CallError as exc:
        first_wait = _backoff(1, exc)
        remaining = policy.deadline - (monotonic() - started)
        if not exc.retryable or policy.attempts <= 1 or first_wait > remaining:
            raise
        if on_retry is not None:
            on_retry(exc, first_wait)
        await sleep(first_wait)

    def _wait(state: RetryCallState) -> float:
        # tenacity counts from 1 again: this loop's first attempt is the policy's second
        exc = state.outcome.exception() if state.outcome else None
        return _backoff(state.attempt_number + 1, exc)

    def _past_deadline(state: RetryCallState) -> bool:
        remaining = policy.deadline - (monotonic() - started)
        return _wait(state) > remaining

    def _retryable(exc: BaseException) -> bool:
        return isinstance(exc, CallError) and exc.retryable

    def _before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if on_retry is not None and isinstance(exc, CallError):
            on_retry(exc, _wait(state))

    async def once() -> T:
        # tenacity only awaits what looks like a coroutine *function*; a lambda or partial
        # returning a coroutine would never be awaited, so always hand it a real one
        return await attempt()

    by_attempts = stop_after_attempt(policy.attempts - 1)
    retrying = AsyncRetrying(
        stop=lambda state: by_attempts(state) or _past_deadline(state),
        wait=_wait,
        retry=retry_if_exception(_retryable),
        sleep=sleep,
        reraise=True,
        before_sleep=_before_sleep,
    )
    return await retrying(once)
