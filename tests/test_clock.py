"""The system clock never runs backwards, and follows the wall clock forwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watchdog.clock import SystemClock

T0 = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


class Manual:
    def __init__(self) -> None:
        self.wall = T0
        self.mono = 100.0

    def step(self, seconds: float, *, wall: float | None = None) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds if wall is None else wall)


class TestSystemClock:
    def test_follows_the_wall_clock(self) -> None:
        """Without steps, now() is the wall time."""
        m = Manual()
        clock = SystemClock(wall=lambda: m.wall, mono=lambda: m.mono)
        m.step(30)
        assert clock.now() == T0 + timedelta(seconds=30)

    def test_wall_clock_stepping_back_is_ignored(self) -> None:
        """A wall clock stepped back an hour: time keeps moving forward at monotonic pace."""
        m = Manual()
        clock = SystemClock(wall=lambda: m.wall, mono=lambda: m.mono)
        m.step(10)
        before = clock.now()
        m.step(5, wall=-3600)
        after = clock.now()
        assert after == before + timedelta(seconds=5)

    def test_wall_clock_jumping_forward_is_followed(self) -> None:
        """A forward correction beyond the tolerance is taken over."""
        m = Manual()
        clock = SystemClock(wall=lambda: m.wall, mono=lambda: m.mono)
        m.step(1, wall=120)
        assert clock.now() == T0 + timedelta(seconds=120)
        m.step(10)
        assert clock.now() == T0 + timedelta(seconds=130)
