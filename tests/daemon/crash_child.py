"""The real daemon in a child process, for the ``kill -9`` tests in test_restart.py.

Usage: ``python -m tests.daemon.crash_child DB APP_URL VERCEL_URL PAGERDUTY_URL SLACK_URL``.
It runs ``watchdog run``'s code path (scheduler, engine, dispatcher, SQLite store, HTTP
server) against fakes living in the test process, with sub-second intervals, until killed.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from tests.daemon.support import default_pack, settings_for
from watchdog.clock import SystemClock
from watchdog.daemon.main import start
from watchdog.store.sqlite import SqliteStore


async def main(db: str, app: str, vercel: str, pagerduty: str, slack: str) -> None:
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
    asyncio.run(main(*sys.argv[1:6]))
