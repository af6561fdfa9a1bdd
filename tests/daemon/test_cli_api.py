"""The operator commands (status, hold, ack, declare, kill-switch) against a running daemon."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.daemon.browser import SCREENSHOTS
from tests.daemon.support import (
    API_TOKEN,
    BAD,
    GOOD,
    TARGET,
    World,
    build_daemon,
    http_served,
    ingest_each,
    outage,
    settings_for,
    settle,
)
from watchdog.daemon import Daemon
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_vercel_rolling import FakeStage


@pytest.fixture
async def served(world: World, clock: FakeClock) -> AsyncIterator[tuple[Daemon, str]]:
    daemon = build_daemon(settings_for(world), MemoryStore(), clock)
    await daemon.start(loops=False)
    async with http_served(daemon) as url:
        yield daemon, url
    await daemon.stop()


async def cli(
    *args: str, token: str | None = API_TOKEN, env_extra: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    """Run the CLI; stdout comes back parsed as JSON when it is JSON, else as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
    if token is not None:
        env["WATCHDOG_API_TOKEN"] = token
    env.update(env_extra or {})
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
    try:
        data = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        data = out.decode()
    return proc.returncode or 0, data, err.decode()


class TestOperatorCommands:
    async def test_status_json(self, served: tuple[Daemon, str]) -> None:
        """`watchdog status --json` prints the daemon's per-target view as it is."""
        _, url = served
        code, data, _ = await cli("status", "--json", "--url", url)
        assert code == 0
        assert [t["name"] for t in data["targets"]] == [TARGET]
        assert data["targets"][0]["headline"]["label"]

    async def test_status_names_an_active_rolling_release(
        self, served: tuple[Daemon, str], world: World
    ) -> None:
        daemon, url = served
        world.vercel.add_deployment("dpl_canary", created_ms=0)
        world.vercel.start_rolling_release("dpl_canary", [FakeStage(25), FakeStage(100)])
        await daemon.rollouts.refresh()
        code, text, err = await cli("status", "--url", url)
        assert code == 0, err
        assert f"Rolling release: dpl_canary serves 25%, {BAD} the rest (stage 1 of 2)." in text

    async def test_status_mid_incident_is_a_readable_block(
        self, served: tuple[Daemon, str], clock: FakeClock
    ) -> None:
        """By default one block per target: state since when, the incident and its rollback,
        what happens next, guard rails, deployments, rules, the timeline, how to stop it;
        WATCHDOG_URL stands in for --url."""
        daemon, url = served
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        code, text, err = await cli("status", env_extra={"WATCHDOG_URL": url})
        assert code == 0, err
        assert isinstance(text, str)
        lines = text.splitlines()
        assert lines[0].startswith(f"rollback-watchdog at {url}, as of now (")
        assert any(
            line.startswith(f"{TARGET}: ROLLED BACK · VERIFIED · P0 since ") for line in lines
        )
        for fact in (
            "  incident ",
            f"rollback verified to {GOOD}",
            "  next ",
            "verification ends",
            "budget 1 of 2 used in 1 d 0 h (1 left); cooldown ends in 30 min",
            f"{BAD} (known bad)",
            "a rollback now would go to",
            "firing   system-down" if "firing   system-down" in text else "ok       system-down",
            "  timeline ",
            "verified: health, version and error rate as expected",
            f'watchdog hold {TARGET} 30m --reason "<why>"',
            'watchdog kill-switch on --reason "<why>"',
        ):
            assert fact in text, fact
        assert len(lines) < 60
        (SCREENSHOTS.parent / "watchdog-status.txt").write_text(text)

    async def test_hold_positional_duration_and_release(self, served: tuple[Daemon, str]) -> None:
        """`watchdog hold web 2h` holds; `watchdog hold web 0s` ends it, as a release."""
        daemon, url = served
        code, data, err = await cli("hold", TARGET, "2h", "--reason", "deploying", "--url", url)
        assert code == 0, err
        assert daemon.engine.hold_until(TARGET) is not None
        code, data, _ = await cli("hold", TARGET, "0s", "--url", url)
        assert code == 0
        assert data["hold_until"] is None
        view = daemon.engine.view(TARGET, daemon.now())
        assert view is not None
        assert view.guards.hold_until is None
        kinds = [e.kind for e in await daemon.store.list_events(target=TARGET)]
        assert kinds[-2:] == ["hold", "release"]

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
