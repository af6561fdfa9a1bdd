"""``watchdog run``: start the daemon and its HTTP server; stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from watchdog import __version__
from watchdog.clock import Clock, SystemClock
from watchdog.config import Settings
from watchdog.core.rules import RulePack
from watchdog.daemon import Daemon
from watchdog.daemon.server import build_app
from watchdog.store.base import LeaderStore
from watchdog.store.factory import store_from_url

log = structlog.get_logger(__name__)


@dataclass
class Running:
    """A started daemon and its HTTP server (what tests and the demo hold on to)."""

    daemon: Daemon
    runner: web.AppRunner
    url: str

    async def stop(self) -> None:
        await self.daemon.stop()
        await self.runner.cleanup()


def init_sentry(settings: Settings) -> None:
    """Report the daemon's own crashes to Sentry when a DSN is configured."""
    if settings.sentry_dsn is None:
        return
    import sentry_sdk

    redactor = settings.redactor()

    def before_send(event: Any, hint: Any) -> Any:
        # a crash report carries messages and local variables: the secrets stay here
        return redactor.data(event)

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        release=f"rollback-watchdog@{__version__}",
        send_default_pii=False,
        traces_sample_rate=0.0,
        before_send=before_send,
    )


async def start(
    settings: Settings,
    pack: RulePack,
    *,
    clock: Clock | None = None,
    store: LeaderStore | None = None,
    host: str | None = None,
    port: int | None = None,
) -> Running:
    """Start everything; the caller owns stopping it.

    The HTTP server comes first: while the daemon opens the store, is elected and takes its
    state back (which may follow an interrupted Vercel job for minutes), ``/healthz`` is alive,
    ``/readyz`` says it is restoring and the page shows the store's open incidents, instead of
    nothing answering at all.
    """
    daemon = Daemon(
        settings,
        pack,
        store if store is not None else store_from_url(settings.store.url),
        clock=clock or SystemClock(),
    )
    app = build_app(daemon, daemon.registry, settings.server.api_token, daemon.redactor)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    bind_host = host if host is not None else settings.server.host
    site = web.TCPSite(runner, bind_host, settings.server.port if port is None else port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    try:
        await daemon.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await daemon.stop()
        await runner.cleanup()
        raise
    bound = runner.addresses[0] if runner.addresses else (bind_host, port)
    url = f"http://{'127.0.0.1' if bind_host in ('0.0.0.0', '') else bind_host}:{bound[1]}"  # noqa: S104
    log.info("http_server_started", url=url)
    return Running(daemon, runner, url)


def settle_heap() -> None:
    """What start-up built (modules, the rule pack, the wiring, every target's state) lives
    as long as the process: move it out of the garbage collector's full passes
    (``gc.freeze``), which at 1,000 targets stalled the event loop for up to 170 ms each and
    doubled the scheduling lag's p99 (``benchmarks/footprint.py``). Only ``watchdog run``
    calls it: a test process starting many daemons must keep collecting their cycles."""
    gc.freeze()


async def serve(
    settings: Settings,
    pack: RulePack,
    *,
    until: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``until`` returns); exit code 0 on a clean stop."""
    init_sentry(settings)
    running = await start(settings, pack)
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if until is None:
            await stop.wait()
        else:
            waiter = asyncio.create_task(stop.wait())
            other = asyncio.create_task(until())
            await asyncio.wait({waiter, other}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, other):
                task.cancel()
        log.info("shutdown_started")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await running.stop()
    return 0
