"""The operator commands (status, hold, ack, declare, kill-switch) against a running daemon."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.daemon.support import API_TOKEN, TARGET, World, build_daemon, settings_for
from watchdog.daemon import Daemon
from watchdog.daemon.server import build_app
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock


@pytest.fixture
async def served(world: World, clock: FakeClock) -> AsyncIterator[tuple[Daemon, str]]:
    daemon = build_daemon(settings_for(world), MemoryStore(), clock)
    await daemon.start(loops=False)
    runner = web.AppRunner(build_app(daemon, daemon.registry, daemon.settings.server.api_token))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield daemon, f"http://127.0.0.1:{port}"
    await runner.cleanup()
    await daemon.stop()


async def cli(*args: str, token: str | None = API_TOKEN) -> tuple[int, Any, str]:
    env = {k: v for k, v in os.environ.items() if k != "WATCHDOG_API_TOKEN"}
    if token is not None:
        env["WATCHDOG_API_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "watchdog",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    data = json.loads(out) if out.strip() else None
    return proc.returncode or 0, data, err.decode()


class TestOperatorCommands:
    async def test_status(self, served: tuple[Daemon, str]) -> None:
        """`watchdog status` prints the daemon's per-target view."""
        _, url = served
        code, data, _ = await cli("status", "--url", url)
        assert code == 0
        assert [t["name"] for t in data["targets"]] == [TARGET]

    async def test_hold_takes_effect(self, served: tuple[Daemon, str]) -> None:
        """`watchdog hold` puts a hold on the target in the running engine."""
        daemon, url = served
        code, data, _ = await cli("hold", TARGET, "--duration", "2h", "--url", url)
        assert code == 0
        assert data["target"] == TARGET
        assert daemon.engine.targets[TARGET].hold_until is not None

    async def test_kill_switch(self, served: tuple[Daemon, str]) -> None:
        """`watchdog kill-switch on` stops automatic actions."""
        daemon, url = served
        code, _, _ = await cli("kill-switch", "on", "--reason", "vendor incident", "--url", url)
        assert code == 0
        assert daemon.engine.kill_switch is True

    async def test_wrong_token_fails_and_changes_nothing(self, served: tuple[Daemon, str]) -> None:
        """A wrong token exits 1 with the daemon's 401, and no hold is set."""
        daemon, url = served
        code, _, err = await cli("hold", TARGET, "--url", url, token="wrong")
        assert code == 1
        assert "401" in err
        assert daemon.engine.targets.get(TARGET) is None or (
            daemon.engine.targets[TARGET].hold_until is None
        )

    async def test_unreachable_daemon(self) -> None:
        """Pointing at nothing is one clear line and exit 1."""
        code, _, err = await cli("status", "--url", "http://127.0.0.1:9")
        assert code == 1
        assert "cannot reach the watchdog" in err
