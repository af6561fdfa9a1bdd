"""The one retry wrapper: whether and when to try a failed call again.

Sources and actions make *one* attempt through :mod:`watchdog.transport` and raise
:class:`~watchdog.transport.CallError`; :func:`call_with_retries` (and :class:`Retrier`, the
same bound to a policy and a clock) owns tenacity. No I/O happens here beyond the injected
sleep, so retry tests run instantly, and every retry loop is bounded by a deadline so a poll
never overruns its interval and a page never delays a rollback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from watchdog.transport import CallError

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
Monotonic = Callable[[], float]
OnRetry = Callable[[CallError, float], None]


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
    on_retry: OnRetry | None = None,
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


class _Timer(Protocol):
    """What a retry loop needs of a clock (``watchdog.clock.Clock`` has both)."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class Retrier:
    """:func:`call_with_retries` bound to a policy and a clock, so callers cannot mix them up."""

    policy: RetryPolicy
    clock: _Timer

    async def __call__(
        self, attempt: Callable[[], Awaitable[T]], *, on_retry: OnRetry | None = None
    ) -> T:
        return await call_with_retries(
            attempt,
            self.policy,
            sleep=self.clock.sleep,
            monotonic=self.clock.monotonic,
            on_retry=on_retry,
        )

    def with_deadline(self, seconds: float) -> Retrier:
        """The same backoff, capped sooner (chat must never hold up a rollback)."""
        return Retrier(
            RetryPolicy(self.policy.attempts, self.policy.initial, self.policy.maximum, seconds),
            self.clock,
        )
