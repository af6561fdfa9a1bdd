"""What the daemon says in its JSON log: one line per thing it decides or does.

The logs are configured as ``watchdog run`` configures them (JSON lines on stderr) and read
back from stderr, so context bound to a rollback's task (target, incident) is checked as an
operator's log query would see it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.daemon.support import (
    API_TOKEN,
    ROUTING_KEY,
    TARGET,
    VERCEL_TOKEN,
    World,
    build_daemon,
    health,
    ingest_each,
    outage,
    settings_for,
    settle,
)
from watchdog import logs as wlog
from watchdog.cli import main
from watchdog.daemon import Daemon
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Every stderr line, each of which must be one JSON object."""
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]


def named(entries: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["event"] == event]


@pytest.fixture
async def daemons() -> AsyncIterator[list[Daemon]]:
    """Daemons stopped after the test; their last lines no longer go to the captured stderr,
    which pytest may have closed by then."""
    started: list[Daemon] = []
    yield started
    structlog.reset_defaults()
    for daemon in started:
        await daemon.stop()


async def start(started: list[Daemon], daemon: Daemon) -> Daemon:
    await daemon.start(loops=False)
    started.append(daemon)
    return daemon


class TestIncident:
    async def test_one_line_per_step_in_order(
        self,
        world: World,
        clock: FakeClock,
        daemons: list[Daemon],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Outage to resolution logs the decision, the page, the rollback request, result and
        verification, the chat messages and the resolve, in that order, with no secret."""
        wlog.configure("info", "json")
        daemon = await start(daemons, build_daemon(settings_for(world), MemoryStore(), clock))
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        t = clock.now()
        await ingest_each(daemon, [health(t + timedelta(seconds=15 * i), True) for i in range(30)])
        await settle(daemon)
        raw = capsys.readouterr().err
        for secret in (API_TOKEN, ROUTING_KEY, VERCEL_TOKEN):
            assert secret not in raw
        entries = [json.loads(line) for line in raw.splitlines() if line]
        order = [
            e["event"]
            for e in entries
            if e["event"]
            in (
                "decision_changed",
                "page_triggered",
                "rollback_requested",
                "rollback_succeeded",
                "rollback_verified",
                "page_resolved",
            )
        ]
        steps = [
            "decision_changed",  # rollback
            "page_triggered",
            "rollback_requested",
            "rollback_succeeded",
            "rollback_verified",
            "page_resolved",
        ]
        it = iter(order)
        assert all(step in it for step in steps), order

        (rollback,) = [e for e in named(entries, "decision_changed") if e["action"] == "rollback"]
        assert rollback["level"] == "warning"
        assert (rollback["target"], rollback["severity"], rollback["rule"]) == (
            TARGET,
            "P0",
            "system-down",
        )
        assert rollback["execute_rollback"] is True
        assert rollback["path"][-1] == "rollback"
        incident = rollback["incident"]
        resolved = [e for e in named(entries, "decision_changed") if e["resolved_incident"]]
        assert [e["resolved_incident"] for e in resolved] == [incident]

        (page,) = [e for e in named(entries, "page_triggered") if e["priority"] == "P0"][:1]
        assert (page["pager"], page["severity"], page["incident"]) == (
            "pagerduty",
            "critical",
            incident,
        )
        # logged by the verifier, which knows no target: the rollback's task context names it
        (verified,) = named(entries, "rollback_verified")
        assert (verified["target"], verified["incident"]) == (TARGET, incident)
        chats = named(entries, "chat_sent")
        assert {c["incident"] for c in chats} == {incident}
        assert any("ROLLBACK IN PROGRESS" in c["heading"] for c in chats)
        assert any("RESOLVED" in c["heading"] for c in chats)

    async def test_a_refusal_names_the_guard_rail_once(
        self,
        world: World,
        clock: FakeClock,
        daemons: list[Daemon],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A rollback the kill switch refuses logs rollback_refused with the guard rail, once,
        however many failed probes restate it."""
        wlog.configure("info", "json")
        daemon = await start(daemons, build_daemon(settings_for(world), MemoryStore(), clock))
        await daemon.kill_switch(True, "maintenance", "bob")
        await ingest_each(daemon, outage(clock.now(), count=6), clock)
        await settle(daemon)
        (refused,) = named(lines(capsys), "rollback_refused")
        assert refused["level"] == "warning"
        assert (refused["target"], refused["guard"]) == (TARGET, "kill_switch")
        assert "kill switch" in refused["reason"]


class TestStartup:
    async def test_names_what_is_not_configured(
        self,
        world: World,
        clock: FakeClock,
        daemons: list[Daemon],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """No pager, no chat and no deployer each get a start-up warning saying what the
        watchdog therefore cannot do."""
        wlog.configure("info", "json")
        settings = settings_for(world)
        target = settings.targets[0].model_copy(update={"deployer": None})
        settings = settings.model_copy(update={"pager": None, "chat": None, "targets": [target]})
        await start(daemons, build_daemon(settings, MemoryStore(), clock))
        entries = lines(capsys)
        warned = {e["event"]: e for e in entries if e["level"] == "warning"}
        assert {"pager_not_configured", "chat_not_configured", "deployer_not_configured"} <= set(
            warned
        )
        deployer = warned["deployer_not_configured"]
        assert deployer["target"] == TARGET
        assert f"rollbacks impossible for target {TARGET}" in deployer["consequence"]
        assert "P0" in warned["pager_not_configured"]["consequence"]

    async def test_a_complete_config_warns_of_nothing(
        self,
        world: World,
        clock: FakeClock,
        daemons: list[Daemon],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """With pager, chat, deployer and verification configured, start-up warns of nothing."""
        wlog.configure("info", "json")
        await start(daemons, build_daemon(settings_for(world), MemoryStore(), clock))
        assert [e for e in lines(capsys) if e["level"] == "warning"] == []

    def test_check_prints_the_same_gaps(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`watchdog check` accepts such a config (exit 0) and prints the same warnings."""
        config = tmp_path / "c.yaml"
        config.write_text(
            "targets:\n  - name: web\n    sources:\n"
            "      - {kind: health, url: 'https://x.example/api/health'}\n"
        )
        assert main(["check", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert "warning: no pager" in out
        assert "warning: rollbacks impossible for target web" in out
