"""Fixtures for daemon tests: a started world of fakes and a fake clock at its epoch."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.daemon.support import World, fixed_start
from watchdog.testing.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(fixed_start())


@pytest.fixture
async def world(clock: FakeClock) -> AsyncIterator[World]:
    w = World(now=clock.now)
    await w.start()
    yield w
    await w.close()
