"""The real daemon in a child process, for the ``kill -9`` tests in test_restart.py.

Usage: ``python -m tests.daemon.crash_child DB APP_URL VERCEL_URL PAGERDUTY_URL SLACK_URL
[CRASH_POINT]``. It runs ``watchdog run``'s code path (scheduler, engine, dispatcher, SQLite
store, HTTP server) against fakes living in the test process, with sub-second intervals, until
killed. ``CRASH_POINT`` ``before_post`` makes the process ``kill -9`` itself at the moment the
rollback runner calls the deployer, after the intent is written and before any byte reaches
Vercel: a point the test process cannot hit from outside.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from tests.daemon.support import default_pack, settings_for
from watchdog.actions.vercel import VercelDeployer
from watchdog.clock import SystemClock
from watchdog.daemon.main import start
from watchdog.store.sqlite import SqliteStore


def crash_before_post() -> None:
    """SIGKILL this process when the first rollback request is about to be sent."""

    async def die(self: VercelDeployer, target: object) -> object:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    VercelDeployer.request_rollback = die  # type: ignore[assignment,method-assign]


async def main(db: str, app: str, vercel: str, pagerduty: str, slack: str, point: str = "") -> None:
    if point == "before_post":
        crash_before_post()
    world = SimpleNamespace(
        app=SimpleNamespace(url=app),
        vercel=SimpleNamespace(url=vercel, project_id="prj_1", production_domain="www.example.com"),
        pagerduty=SimpleNamespace(url=pagerduty),
        slack=SimpleNamespace(webhook_url=slack),
    )
    settings = settings_for(
        world,  # type: ignore[arg-type]
        store_url=f"sqlite:///{db}",
        tick=timedelta(seconds=0.1),
        health_interval=timedelta(seconds=0.2),
        health_timeout=timedelta(seconds=0.15),
    )
    running = await start(
        settings, default_pack(), clock=SystemClock(), store=SqliteStore(Path(db)), port=0
    )
    try:
        await asyncio.Event().wait()
    finally:
        await running.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
