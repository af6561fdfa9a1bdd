"""Alertmanager v2 pager: exact alerts, resolve by endsAt, re-posting while active."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from watchdog.actions.alertmanager import (
    AlertmanagerConfig,
    AlertmanagerPager,
    build_alert,
    due_for_repost,
)
from watchdog.actions.base import Change, Page
from watchdog.core.model import Observation, Severity
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_alertmanager import FakeAlertmanager
from watchdog.transport import CallError

AT = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
PAGE = Page(
    target="web",
    incident="inc-1",
    severity=Severity.P0,
    summary="[P0] web: health down",
    at=AT,
    reason="health_up == 0 for 3 polls",
    path=("p0-firing?yes", "rollback"),
    rule="system-down",
    deployment="dpl_new",
    observations=(Observation("system-down", "health_up", 0.0, "==", 0.0, True),),
)


def config(url: str = "http://am:9093/", **kw: object) -> AlertmanagerConfig:
    return AlertmanagerConfig.model_validate(
        {
            "base_url": url,
            "labels": {"team": "web"},
            "generator_url": "https://watchdog.internal/incidents/{incident}",
            "runbook_url": "https://runbooks/rollback",
            **kw,
        }
    )


@pytest.fixture
async def am() -> AsyncIterator[FakeAlertmanager]:
    async with FakeAlertmanager() as fake:
        yield fake


class TestPayloads:
    def test_alert_exact(self) -> None:
        """The alert carries identifying labels, readable annotations, startsAt and generatorURL."""
        assert build_alert(PAGE, config()) == {
            "labels": {
                "team": "web",
                "alertname": "WatchdogIncident",
                "target": "web",
                "incident": "inc-1",
                "severity": "critical",
            },
            "annotations": {
                "summary": "[P0] web: health down",
                "description": "health_up == 0 for 3 polls",
                "flowchart_path": "p0-firing?yes → rollback",
                "deployment": "dpl_new",
                "signals": "health_up=0.0 == 0.0",
                "runbook_url": "https://runbooks/rollback",
            },
            "startsAt": "2026-08-20T10:00:00Z",
            "generatorURL": "https://watchdog.internal/incidents/inc-1",
        }

    @pytest.mark.parametrize(
        ("elapsed_s", "due"), [(0, False), (59, False), (60, True), (600, True)]
    )
    def test_due_for_repost(self, elapsed_s: int, due: bool) -> None:
        """An alert is due for re-posting once the repost interval has passed."""
        assert due_for_repost(AT, AT + timedelta(seconds=elapsed_s), timedelta(seconds=60)) is due


class TestPager:
    async def test_trigger_repost_resolve(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Trigger posts an array, repost re-sends while active, resolve sets endsAt."""
        pager = AlertmanagerPager(config(am.url), session, clock)
        await pager.trigger(PAGE)
        assert len(am.posts) == 1
        assert "endsAt" not in am.posts[0][0]
        assert pager.due_for_repost(clock.now()) == []
        assert await pager.repost(clock.now()) == 0
        clock.advance(60)
        assert pager.due_for_repost(clock.now()) == [("web", "inc-1")]
        assert await pager.repost(clock.now()) == 1
        assert am.posts[1] == am.posts[0]
        await pager.resolve("web", "inc-1", clock.now())
        assert am.posts[2][0]["endsAt"] == "2026-08-20T10:01:00Z"
        assert pager.active == {}

    async def test_severity_change_resolves_old_labels(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A new severity is a new label set, so the old alert is ended in the same post."""
        pager = AlertmanagerPager(config(am.url), session, clock)
        await pager.trigger(replace(PAGE, severity=Severity.P1))
        await pager.trigger(PAGE)
        new, old = am.posts[1]
        assert new["labels"]["severity"] == "critical"
        assert old["labels"]["severity"] == "error"
        assert old["endsAt"] == "2026-08-20T10:00:00Z"

    async def test_resolve_after_restart(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Without memory of the alert, resolve ends every severity variant of its labels."""
        pager = AlertmanagerPager(config(am.url), session, clock)
        await pager.resolve("web", "inc-9", AT)
        sev = sorted(a["labels"]["severity"] for a in am.posts[0])
        assert sev == ["critical", "error", "info", "warning"]
        assert all(a["endsAt"] == "2026-08-20T10:00:00Z" for a in am.posts[0])

    async def test_400_not_retried(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 400 (plain string body) is not retryable."""
        am.fail("alerts", 400, '"bad alert"', content_type="text/plain")
        with pytest.raises(CallError) as info:
            await AlertmanagerPager(config(am.url), session, clock).trigger(PAGE)
        assert not info.value.retryable
        assert "bad alert" in str(info.value)

    async def test_500_retryable(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 500 is retryable."""
        am.fail("alerts", 500, '"boom"', content_type="text/plain")
        with pytest.raises(CallError) as info:
            await AlertmanagerPager(config(am.url), session, clock).trigger(PAGE)
        assert info.value.retryable

    async def test_change_is_noop(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Alertmanager has no change events: nothing is posted."""
        await AlertmanagerPager(config(am.url), session, clock).change(Change("web", "x", AT))
        assert am.requests == []
