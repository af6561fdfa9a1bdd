"""watchdog/daemon/main.py ``serve``: what ``watchdog run`` does around the daemon."""

from __future__ import annotations

import gc

from tests.daemon.support import World, default_pack, settings_for
from watchdog.daemon.main import serve


class TestServe:
    async def test_start_up_objects_leave_the_collectors_full_passes(self, world: World) -> None:
        """After start-up, ``watchdog run`` freezes what it built (gc.freeze): at 1,000
        targets the collector's full passes over it stalled the loop for up to 170 ms."""
        gc.unfreeze()
        assert gc.get_freeze_count() == 0
        frozen: list[int] = []

        async def check() -> None:
            frozen.append(gc.get_freeze_count())

        try:
            assert await serve(settings_for(world), default_pack(), until=check) == 0
        finally:
            gc.unfreeze()
        assert frozen
        assert frozen[0] > 0
