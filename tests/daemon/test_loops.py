"""Chores: each on its own periodic task, so a slow one never holds up another."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from structlog.testing import capture_logs

from watchdog.clock import SystemClock
from watchdog.daemon.loops import Chore, run_chore

TICK = timedelta(seconds=0.01)


async def _run_for(seconds: float, *chores: Chore) -> None:
    stopping = asyncio.Event()
    clock = SystemClock()
    tasks = [asyncio.create_task(run_chore(c, clock, stopping)) for c in chores]
    await asyncio.sleep(seconds)
    stopping.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class TestChores:
    async def test_a_hung_chore_does_not_delay_another(self) -> None:
        """A heartbeat that hangs leaves the lease renewal running on its own schedule."""
        renewals: list[int] = []

        async def hang() -> None:
            await asyncio.sleep(60)

        async def renew() -> None:
            renewals.append(1)

        await _run_for(
            0.3,
            Chore("heartbeat", TICK, timedelta(seconds=30), hang),
            Chore("leadership", TICK, timedelta(seconds=1), renew),
        )
        assert len(renewals) >= 5

    async def test_an_overrun_is_cut_and_reported(self) -> None:
        """A chore past its timeout is cancelled, its on_timeout runs, and it runs again."""
        started: list[int] = []
        timed_out: list[int] = []

        async def slow() -> None:
            started.append(1)
            await asyncio.sleep(60)

        with capture_logs() as logs:
            await _run_for(
                0.3,
                Chore(
                    "store_ping",
                    TICK,
                    timedelta(seconds=0.02),
                    slow,
                    on_timeout=lambda: timed_out.append(1),
                ),
            )
        assert len(started) >= 2
        assert timed_out
        assert any(e["event"] == "chore_timed_out" for e in logs)

    async def test_a_failure_is_logged_and_the_chore_goes_on(self) -> None:
        """An exception in one run is logged; the next run still happens."""
        runs: list[int] = []

        async def flaky() -> None:
            runs.append(1)
            raise RuntimeError("boom")

        with capture_logs() as logs:
            await _run_for(0.2, Chore("prune", TICK, timedelta(seconds=1), flaky))
        assert len(runs) >= 2
        assert any(e["event"] == "chore_failed" for e in logs)

    async def test_first_run_waits_first_after(self) -> None:
        """``first_after`` delays only the first run (the heartbeat pings after one tick)."""
        runs: list[int] = []

        async def ping() -> None:
            runs.append(1)

        await _run_for(
            0.15, Chore("heartbeat", timedelta(seconds=60), timedelta(seconds=1), ping, TICK)
        )
        assert runs == [1]
