"""A clock that only moves when told to."""

from __future__ import annotations

import asyncio
import heapq
from datetime import UTC, datetime, timedelta


class FakeClock:
    """Manual clock. ``sleep`` advances time instantly and yields to the event loop once,
    so code that sleeps in a retry loop runs at full speed in tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
        self._mono = 1000.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def jump_wall(self, seconds: float) -> None:
        """Move wall time only (an NTP step): monotonic time does not jump."""
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


class SteppingClock(FakeClock):
    """A manual clock whose ``sleep`` really waits, until :meth:`advance` passes its deadline.

    For running the daemon's own loops (polls, chores) in a test: every loop wakes on its
    schedule in fake time, so "was the lease renewed every tick while the pager hung?" is a
    question about fake seconds, answered without sleeping through real ones.
    """

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.slept.append(seconds)
        if seconds == 0:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self.monotonic() + seconds, self._seq, waiter))
        await waiter

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        while self._sleepers and self._sleepers[0][0] <= self.monotonic():
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)
