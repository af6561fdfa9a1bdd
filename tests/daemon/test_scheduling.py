"""Scheduling helpers: fixed grid, no drift, late polls skipped, stable phases."""

from __future__ import annotations

import pytest

from watchdog.daemon.scheduling import Slot, next_slot, phase


class TestNextSlot:
    @pytest.mark.parametrize(
        ("planned", "interval", "now", "expected"),
        [
            (100.0, 10.0, 100.3, Slot(110.0, 0)),  # quick poll: next grid point
            (100.0, 10.0, 109.99, Slot(110.0, 0)),  # slow poll, still in time
            (100.0, 10.0, 110.0, Slot(110.0, 0)),  # exactly on the next slot
            (100.0, 10.0, 110.5, Slot(120.0, 1)),  # overran one slot: skip it
            (100.0, 10.0, 135.0, Slot(140.0, 3)),  # overran three
            (0.0, 0.25, 1.0, Slot(1.0, 3)),  # now exactly on a later slot: poll it
        ],
    )
    def test_grid(self, planned: float, interval: float, now: float, expected: Slot) -> None:
        """The next poll is the next grid point not in the past; missed ones are counted."""
        assert next_slot(planned, interval, now) == expected

    def test_no_drift_over_many_polls(self) -> None:
        """With polls costing 0.3 s each, the 1000th poll is still on the grid."""
        planned = 0.0
        for _ in range(1000):
            planned = next_slot(planned, 5.0, planned + 0.3).at
        assert planned == 5000.0

    def test_rejects_zero_interval(self) -> None:
        """A zero interval is a configuration error, not an infinite loop."""
        with pytest.raises(ValueError, match="positive"):
            next_slot(0.0, 0.0, 1.0)


class TestPhase:
    def test_stable_and_bounded(self) -> None:
        """The same name always gets the same phase, inside the jitter fraction."""
        assert phase("web/health", 10.0, 0.5) == phase("web/health", 10.0, 0.5)
        values = [phase(f"app{i}/health", 10.0, 0.5) for i in range(500)]
        assert all(0.0 <= v < 5.0 for v in values)
        # spread: the 500 phases are not bunched in one tenth of the window
        assert len({int(v) for v in values}) == 5

    def test_no_jitter(self) -> None:
        """Jitter 0 means every source polls on the interval boundary."""
        assert phase("x", 10.0, 0.0) == 0.0
