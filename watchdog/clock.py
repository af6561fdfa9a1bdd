"""Time, injected: the daemon reads the clock only through a :class:`Clock`.

Production uses :class:`SystemClock`; tests use ``watchdog.testing.clock.FakeClock`` and advance
it by hand, so no test sleeps to make time pass.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC wall-clock time (what samples and records are stamped with)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never jump (for intervals and deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
