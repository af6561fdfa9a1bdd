"""The shared retry policy: bounded attempts, backoff, server hints, deadline, no sleeping."""

from __future__ import annotations

import pytest

from watchdog.retry import RetryPolicy, call_with_retries
from watchdog.transport import CallError


class Script:
    """An attempt that fails with the given errors, then returns "ok"."""

    def __init__(self, *errors: CallError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def transient(retry_after: float | None = None) -> CallError:
    return CallError("503", retryable=True, reason="http_503", retry_after=retry_after)


class TestCallWithRetries:
    async def run(self, script: Script, policy: RetryPolicy) -> tuple[str, list[float]]:
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        result = await call_with_retries(script, policy, sleep=sleep, monotonic=lambda: 0.0)
        return result, slept

    async def test_success_needs_one_call_and_no_sleep(self) -> None:
        """The common case is one attempt."""
        script = Script()
        assert await self.run(script, RetryPolicy()) == ("ok", [])
        assert script.calls == 1

    async def test_transient_errors_back_off_exponentially(self) -> None:
        """Two 503s then success: three attempts, waits 0.5 s then 1 s."""
        script = Script(transient(), transient())
        assert await self.run(script, RetryPolicy(attempts=4, initial=0.5)) == ("ok", [0.5, 1.0])
        assert script.calls == 3

    async def test_attempts_are_bounded(self) -> None:
        """With every attempt failing, exactly ``attempts`` calls are made, then it raises."""
        script = Script(*(transient() for _ in range(10)))
        with pytest.raises(CallError):
            await self.run(script, RetryPolicy(attempts=3))
        assert script.calls == 3

    async def test_server_hint_wins_over_backoff(self) -> None:
        """Retry-After (or a reset header) sets the wait."""
        script = Script(transient(retry_after=7.0))
        assert await self.run(script, RetryPolicy(deadline=60)) == ("ok", [7.0])

    async def test_hint_past_the_deadline_raises_at_once(self) -> None:
        """A wait that would overrun the deadline is not slept: the error is raised now."""
        script = Script(transient(retry_after=120.0))
        with pytest.raises(CallError):
            await self.run(script, RetryPolicy(deadline=10))
        assert script.calls == 1

    async def test_permanent_errors_are_not_retried(self) -> None:
        """A 401-like error is raised after one attempt."""
        script = Script(CallError("401", retryable=False, reason="http_401"))
        with pytest.raises(CallError):
            await self.run(script, RetryPolicy())
        assert script.calls == 1
