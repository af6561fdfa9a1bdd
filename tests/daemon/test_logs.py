"""What the daemon says in its JSON log: one line per thing it decides or does.

The logs are configured as ``watchdog run`` configures them (JSON lines) and read back as
text, so context bound to a rollback's task (target, incident) is checked as an operator's
log query would see it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.daemon.conftest import Start
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
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock

Logs = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logs() -> Logs:
    """Logs configured as ``watchdog run`` does, written to a buffer instead of stderr; call
    it for the lines since the last call, each of which must be one JSON object."""
    buffer = io.StringIO()
    wlog.configure("info", "json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(buffer))

    def read() -> list[dict[str, Any]]:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return [json.loads(line) for line in text.splitlines() if line]

    return read


def named(entries: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["event"] == event]


class TestIncident:
    async def test_one_line_per_step_in_order(
        self, world: World, clock: FakeClock, started: Start, logs: Logs
    ) -> None:
        """Outage to resolution logs the decision, the page, the rollback request, result and
        verification, the chat messages and the resolve, in that order, with no secret."""
        daemon = await started(build_daemon(settings_for(world), MemoryStore(), clock))
        await ingest_each(daemon, outage(clock.now()), clock)
        await settle(daemon)
        t = clock.now()
        await ingest_each(daemon, [health(t + timedelta(seconds=15 * i), True) for i in range(30)])
        await settle(daemon)
        entries = logs()
        for secret in (API_TOKEN, ROUTING_KEY, VERCEL_TOKEN):
            assert secret not in json.dumps(entries)
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
        self, world: World, clock: FakeClock, started: Start, logs: Logs
    ) -> None:
        """A rollback the kill switch refuses logs rollback_refused with the guard rail, once,
        however many failed probes restate it."""
        daemon = await started(build_daemon(settings_for(world), MemoryStore(), clock))
        await daemon.kill_switch(True, "maintenance", "bob")
        await ingest_each(daemon, outage(clock.now(), count=6), clock)
        await settle(daemon)
        (refused,) = named(logs(), "rollback_refused")
        assert refused["level"] == "warning"
        assert (refused["target"], refused["guard"]) == (TARGET, "kill_switch")
        assert "kill switch" in refused["reason"]


class TestStartup:
    async def test_names_what_is_not_configured(
        self, world: World, clock: FakeClock, started: Start, logs: Logs
    ) -> None:
        """No pager, no chat and no deployer each get a start-up warning saying what the
        watchdog therefore cannot do."""
        settings = settings_for(world)
        target = settings.targets[0].model_copy(update={"deployer": None})
        settings = settings.model_copy(update={"pager": None, "chat": None, "targets": [target]})
        await started(build_daemon(settings, MemoryStore(), clock))
        entries = logs()
        warned = {e["event"]: e for e in entries if e["level"] == "warning"}
        assert {"pager_not_configured", "chat_not_configured", "deployer_not_configured"} <= set(
            warned
        )
        deployer = warned["deployer_not_configured"]
        assert deployer["target"] == TARGET
        assert f"rollbacks impossible for target {TARGET}" in deployer["consequence"]
        assert "P0" in warned["pager_not_configured"]["consequence"]

    async def test_a_complete_config_warns_of_nothing(
        self, world: World, clock: FakeClock, started: Start, logs: Logs
    ) -> None:
        """With pager, chat, deployer and verification configured, start-up warns of nothing."""
        await started(build_daemon(settings_for(world), MemoryStore(), clock))
        assert [e for e in logs() if e["level"] == "warning"] == []

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
