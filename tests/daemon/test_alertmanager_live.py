"""The daemon paging a real Alertmanager (Debian's 0.25) through an incident to its resolve.

Alertmanager routes every alert to a webhook receiver in the test without grouping delay, so
both its API (``GET /api/v2/alerts``) and its notifications (firing, then resolved) are read
back: what an on-call's routing tree and receivers would actually get.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from tests.live import BAD, TARGET, live_daemon
from tests.realtools import Tool, alertmanager, get_json
from watchdog.actions.alertmanager import AlertmanagerConfig
from watchdog.config import PagerConfig
from watchdog.demo_world import Production
from watchdog.store.base import RollbackState
from watchdog.testing.server import FakeServer

RUNBOOK = "https://runbooks.example.com/rollback"
DASHBOARD = "https://grafana.example.com/d/rollback-watchdog"
T = TypeVar("T")


class Receiver(FakeServer):
    """Alertmanager's webhook receiver: records every notification it is sent."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hook", self._hook, name="hook")

    async def _hook(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def alerts(self, status: str, incident: str) -> list[dict[str, Any]]:
        """Alerts of ``incident`` in notifications whose alert status is ``status``."""
        return [
            alert
            for r in self.requests_for("hook")
            for alert in r.json()["alerts"]
            if alert["status"] == status and alert["labels"].get("incident") == incident
        ]


def pager(url: str) -> Callable[[Production], PagerConfig]:
    def config(prod: Production) -> PagerConfig:
        return AlertmanagerConfig(
            base_url=url,
            labels={"team": "web"},
            generator_url="http://watchdog.test/incidents/{incident}",
            runbook_url=RUNBOOK,
            dashboard_url=DASHBOARD,
            deployment_url="https://vercel.com/acme/web/{deployment}",
            repost_interval=timedelta(seconds=1),
        )

    return config


async def eventually(get: Callable[[], Awaitable[T | None]], limit_s: float, what: str) -> T:
    deadline = time.monotonic() + limit_s
    while (found := await get()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {limit_s} s")
        await asyncio.sleep(0.1)
    return found


async def active(am: Tool, incident: str) -> dict[str, Any] | None:
    """The incident's alert as Alertmanager's API lists it (resolved alerts are not listed)."""
    alerts = await get_json(f"{am.url}/api/v2/alerts", filter=f'incident="{incident}"')
    assert len(alerts) <= 1, alerts
    return alerts[0] if alerts else None


@pytest.mark.tool
async def test_incident_pages_and_resolves_in_a_real_alertmanager(tmp_path: Path) -> None:
    """A P1 rollback pages one critical alert with the reason, priority, runbook, dashboard,
    deployment and generator links; it stays active while the incident is open, through the
    rollback's verification; the resolve ends it, and the receiver hears both."""
    async with (
        Receiver() as hook,
        alertmanager(tmp_path, webhook=f"{hook.url}/hook") as am,
        live_daemon(pager(am.url)) as live,
    ):
        live.deploy_bad()
        incident = (await live.open_incident()).id

        alert = await eventually(lambda: active(am, incident), 10, "alert in Alertmanager")
        assert alert["labels"] == {
            "alertname": "WatchdogIncident",
            "target": TARGET,
            "incident": incident,
            "severity": "critical",  # P1 rolls back: critical, not PagerDuty's "error"
            "team": "web",
        }
        notes = alert["annotations"]
        assert notes["priority"] == "P1"
        assert notes["summary"].startswith(f"[P1] {TARGET}: rolling back")
        assert "error_rate" in notes["description"]
        assert "> 5.0%" in notes["description"]
        # the rule judges the Wilson lower bound of 12% over 5,000 requests: 11.1%
        assert notes["signals"].startswith("error_rate=0.1113 > 0.05")
        assert notes["flowchart_path"].endswith("rollback")
        assert (notes["runbook_url"], notes["dashboard_url"]) == (RUNBOOK, DASHBOARD)
        assert notes["deployment"] == BAD
        assert notes["deployment_url"] == f"https://vercel.com/acme/web/{BAD}"
        assert alert["generatorURL"] == f"http://watchdog.test/incidents/{incident}"
        assert alert["status"]["state"] == "active"

        firing = await eventually(
            lambda: _some(hook.alerts("firing", incident)), 10, "firing notification"
        )
        assert firing["labels"]["severity"] == "critical"
        assert firing["annotations"]["runbook_url"] == RUNBOOK

        # rolled back and verified, the incident still open: the alert must not end yet
        await eventually(lambda: _verified(live.daemon), 10, "verified rollback")
        record = await live.daemon.store.load_incident(incident)
        assert record is not None
        assert record.resolved_at is None
        still = await active(am, incident)
        assert still is not None
        assert still["status"]["state"] == "active"

        resolved_at = (await live.resolved()).resolved_at
        assert resolved_at is not None
        await eventually(_gone(am, incident), 10, "alert leaving Alertmanager's active list")
        ended = await eventually(
            lambda: _some(hook.alerts("resolved", incident)), 10, "resolved notification"
        )
        assert ended["labels"] == alert["labels"]
        ends = datetime.fromisoformat(ended["endsAt"].replace("Z", "+00:00"))
        assert ends <= datetime.now(UTC)
        assert hook.alerts("firing", incident)[0]["startsAt"] == ended["startsAt"]


async def _some(items: list[T]) -> T | None:
    return items[0] if items else None


async def _verified(daemon: Any) -> bool | None:
    rollbacks = await daemon.store.list_rollbacks(target=TARGET)
    return True if any(r.state is RollbackState.VERIFIED for r in rollbacks) else None


def _gone(am: Tool, incident: str) -> Callable[[], Awaitable[bool | None]]:
    async def check() -> bool | None:
        return True if await active(am, incident) is None else None

    return check
