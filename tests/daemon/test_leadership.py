"""Leadership without a database: a lease request that hangs is a lost lease."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry

from watchdog.daemon.leadership import Leadership
from watchdog.metrics import Metrics
from watchdog.store.base import Lease
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock


class _HangingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.hang = False

    async def acquire(self, holder: str, ttl: timedelta, now: datetime) -> Lease | None:
        if self.hang:
            await asyncio.sleep(60)
        return await super().acquire(holder, ttl, now)


def _leadership(store: MemoryStore) -> Leadership:
    return Leadership(
        store,
        holder="a",
        ttl=timedelta(seconds=0.1),
        clock=FakeClock(),
        metrics=Metrics(CollectorRegistry()),
        stopping=asyncio.Event(),
    )


class TestLeadership:
    async def test_a_hung_renewal_stops_acting(self) -> None:
        """A store that does not answer within half the TTL leaves this replica follower."""
        store = _HangingStore()
        leadership = _leadership(store)
        await leadership.elect()
        assert await leadership.can_act()
        store.hang = True
        await asyncio.wait_for(leadership.elect(), timeout=1.0)
        assert not leadership.leader
        assert not await leadership.can_act()

    async def test_gaining_restores_once(self) -> None:
        """Becoming leader runs the restore hook once, not on every renewal."""
        leadership = _leadership(MemoryStore())
        restored: list[int] = []

        async def restore() -> None:
            restored.append(1)

        leadership.on_gained = restore
        await leadership.elect()
        await leadership.elect()
        assert restored == [1]
