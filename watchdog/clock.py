"""Time, injected: the daemon reads the clock only through a :class:`Clock`.

Production uses :class:`SystemClock`; tests use ``watchdog.testing.clock.FakeClock`` and advance
it by hand, so no test sleeps to make time pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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
    """Wall time that never runs backwards.

    Samples, streaks and windows are stamped with wall time, so a wall clock stepping back
    (a VM resumed, NTP correcting hard) would make fresh samples look older than the last
    ones. This clock advances at the monotonic clock's pace from an anchor and re-anchors only
    forward, when the wall clock is ahead by more than ``tolerance`` seconds.
    """

    def __init__(
        self,
        *,
        wall: Callable[[], datetime] | None = None,
        mono: Callable[[], float] = time.monotonic,
        tolerance: float = 1.0,
    ) -> None:
        self._wall = wall or (lambda: datetime.now(UTC))
        self._mono = mono
        self._tolerance = tolerance
        self._anchor_wall = self._wall()
        self._anchor_mono = self._mono()

    def now(self) -> datetime:
        steady = self._anchor_wall + timedelta(seconds=self._mono() - self._anchor_mono)
        wall = self._wall()
        if (wall - steady).total_seconds() > self._tolerance:
            self._anchor_wall, self._anchor_mono = wall, self._mono()
            return wall
        return steady

    def monotonic(self) -> float:
        return self._mono()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
