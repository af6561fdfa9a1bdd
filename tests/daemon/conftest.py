"""Fixtures for daemon tests: a started world of fakes and a fake clock at its epoch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.daemon.support import World, fixed_start
from watchdog.daemon import Daemon
from watchdog.testing.clock import FakeClock

Start = Callable[[Daemon], Awaitable[Daemon]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(fixed_start())


@pytest.fixture
async def world(clock: FakeClock) -> AsyncIterator[World]:
    w = World(now=clock.now)
    await w.start()
    yield w
    await w.close()


@pytest.fixture
async def started() -> AsyncIterator[Start]:
    """``await started(daemon)`` starts it with its loops off; each is stopped after the
    test."""
    daemons: list[Daemon] = []

    async def start(daemon: Daemon) -> Daemon:
        await daemon.start(loops=False)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        await daemon.stop()
