"""PagerDuty Events v2: exact payloads, responses, the client-side limiter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
import pytest
from pydantic import ValidationError

from watchdog.actions.base import Change, Page
from watchdog.actions.pagerduty import (
    PagerDutyConfig,
    PagerDutyPager,
    change_event,
    dedup_key,
    resolve_event,
    trigger_event,
)
from watchdog.core.model import Observation, Severity
from watchdog.retry import RetryPolicy, call_with_retries
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_pagerduty import FakePagerDuty
from watchdog.transport import CallError

KEY = "R0UTINGKEY0123456789abcdef012345"
AT = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
PAGE = Page(
    target="web",
    incident="inc-1",
    severity=Severity.P1,
    summary="[P1] web: rolling back: error rate 7.2% > 5%",
    at=AT,
    reason="error rate 7.2% > 5%",
    path=("p0-firing?no", "rollback-threshold?yes", "rollback"),
    rule="error-rate-critical",
    deployment="dpl_new",
    observations=(
        Observation("error-rate-critical", "error_rate", 0.072, ">", 0.05, True, since=AT),
    ),
)


@pytest.fixture
async def pd() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty() as fake:
        yield fake


def make_pager(
    pd: FakePagerDuty, session: aiohttp.ClientSession, clock: FakeClock, **kw: object
) -> PagerDutyPager:
    cfg = PagerDutyConfig.model_validate(
        {
            "routing_key": KEY,
            "base_url": pd.url,
            "runbook_url": "https://runbooks.example.com/rollback",
            "dashboard_url": "https://grafana.example.com/d/web",
            "deployment_url": "https://vercel.com/acme/web/{deployment}",
            **kw,
        }
    )
    return PagerDutyPager(cfg, session, clock)


class TestPayloads:
    def test_trigger_exact(self) -> None:
        """A trigger carries summary, source, severity, component, class, details and links."""
        links = [{"href": "https://vercel.com/acme/web/dpl_new", "text": "Deployment"}]
        assert trigger_event(KEY, PAGE, source="rollback-watchdog", links=links) == {
            "routing_key": KEY,
            "event_action": "trigger",
            "dedup_key": "watchdog/web/inc-1",
            "payload": {
                "summary": "[P1] web: rolling back: error rate 7.2% > 5%",
                "source": "rollback-watchdog",
                "severity": "error",
                "timestamp": "2026-08-20T10:00:00Z",
                "component": "web",
                "class": "deploy-regression",
                "custom_details": {
                    "priority": "P1",
                    "reason": "error rate 7.2% > 5%",
                    "flowchart_path": ["p0-firing?no", "rollback-threshold?yes", "rollback"],
                    "rule": "error-rate-critical",
                    "deployment": "dpl_new",
                    "incident": "inc-1",
                    "signals": [
                        {
                            "rule": "error-rate-critical",
                            "signal": "error_rate",
                            "value": 0.072,
                            "op": ">",
                            "threshold": 0.05,
                            "firing": True,
                            "since": "2026-08-20T10:00:00Z",
                        }
                    ],
                },
            },
            "links": links,
        }

    def test_refused_by_and_notes(self) -> None:
        """A refused rollback's page names the guard rail; notes ride along."""

        page = replace(PAGE, severity=Severity.P0, refused_by="cooldown", notes=("undo: x",))
        event = trigger_event(KEY, page, source="s")
        assert event["payload"]["severity"] == "critical"
        assert event["payload"]["custom_details"]["refused_by"] == "cooldown"
        assert event["payload"]["custom_details"]["notes"] == ["undo: x"]
        assert "links" not in event

    def test_summary_truncated(self) -> None:
        """Summaries are cut to PagerDuty's 1024 characters."""

        event = trigger_event(KEY, replace(PAGE, summary="x" * 5000), source="s")
        assert len(event["payload"]["summary"]) == 1024

    def test_resolve_exact(self) -> None:
        """A resolve needs only the routing key, the action and the same dedup key."""
        assert resolve_event(KEY, "web", "inc-1") == {
            "routing_key": KEY,
            "event_action": "resolve",
            "dedup_key": "watchdog/web/inc-1",
        }

    def test_change_exact(self) -> None:
        """A change event marks the rollback on the service timeline."""
        change = Change("web", "rolled back", AT, "dpl_old", {"from": "dpl_new", "to": "dpl_old"})
        assert change_event(KEY, change, source="rollback-watchdog") == {
            "routing_key": KEY,
            "payload": {
                "summary": "rolled back",
                "source": "rollback-watchdog",
                "timestamp": "2026-08-20T10:00:00Z",
                "custom_details": {"target": "web", "from": "dpl_new", "to": "dpl_old"},
            },
        }

    def test_dedup_key_stable_and_bounded(self) -> None:
        """The dedup key is the same for the same incident and at most 255 characters."""
        assert dedup_key("web", "inc-1") == dedup_key("web", "inc-1") == "watchdog/web/inc-1"
        assert len(dedup_key("w" * 300, "i")) == 255


class TestSeverity:
    @pytest.mark.parametrize(
        ("severity", "expected"),
        [
            (Severity.P0, "critical"),
            (Severity.P1, "error"),
            (Severity.INVESTIGATE, "warning"),
            (Severity.P2, "info"),
        ],
    )
    def test_default_mapping(self, severity: Severity, expected: str) -> None:
        """The Events v2 defaults give each paging level of the procedure its own severity."""
        cfg = PagerDutyConfig.model_validate({"routing_key": KEY})
        event = trigger_event(
            KEY, replace(PAGE, severity=severity), source="s", severity=cfg.severity
        )
        assert event["payload"]["severity"] == expected

    async def test_configured_mapping_is_sent(
        self, pd: FakePagerDuty, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """``severity: {P1: critical}`` pages a P1 as critical; details keep the P1."""
        await make_pager(pd, session, clock, severity={"P1": "critical"}).trigger(PAGE)
        (event,) = pd.events
        assert event["payload"]["severity"] == "critical"
        assert event["payload"]["custom_details"]["priority"] == "P1"

    def test_value_outside_events_v2_is_rejected(self) -> None:
        """PagerDuty would answer 400 to any other severity, so the config refuses it first."""
        with pytest.raises(ValidationError) as info:
            PagerDutyConfig.model_validate({"routing_key": KEY, "severity": {"P1": "page"}})
        assert "'critical', 'error', 'warning' or 'info'" in str(info.value)


class TestPager:
    async def test_trigger_and_resolve(
        self, pd: FakePagerDuty, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Trigger opens the alert under the dedup key, resolve closes it; links are built."""
        pager = make_pager(pd, session, clock)
        await pager.trigger(PAGE)
        assert (KEY, "watchdog/web/inc-1") in pd.open_alerts
        assert pd.events[0]["links"] == [
            {"href": "https://vercel.com/acme/web/dpl_new", "text": "Deployment"},
            {"href": "https://runbooks.example.com/rollback", "text": "Runbook"},
            {"href": "https://grafana.example.com/d/web", "text": "Dashboard"},
        ]
        await pager.resolve("web", "inc-1", AT)
        assert pd.open_alerts == {}

    async def test_change(
        self, pd: FakePagerDuty, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Change events go to /v2/change/enqueue."""
        pager = make_pager(pd, session, clock)
        await pager.change(Change("web", "rolled back", AT, "dpl_old"))
        assert pd.changes[0]["payload"]["summary"] == "rolled back"
        assert pd.requests[0].path == "/v2/change/enqueue"

    async def test_429_then_202(
        self, pd: FakePagerDuty, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 429 is retried (honouring Retry-After) and the event then gets through."""
        pd.fail("enqueue", 429, '{"status":"throttled"}', headers={"Retry-After": "3"})
        pager = make_pager(pd, session, clock)

        async def attempt() -> None:
            await pager.trigger(PAGE)

        await call_with_retries(
            attempt, RetryPolicy(attempts=3), sleep=clock.sleep, monotonic=clock.monotonic
        )
        assert len(pd.requests) == 2
        assert clock.slept == [3]
        assert len(pd.events) == 1

    async def test_400_not_retried(
        self, pd: FakePagerDuty, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 400 is a bad event: not retried, and the message says to fix the configuration."""
        pd.fail(
            "enqueue",
            400,
            '{"status":"invalid event","message":"Event object is invalid",'
            '"errors":["Length of \'routing_key\' is incorrect (should be 32 characters)"]}',
        )
        pager = make_pager(pd, session, clock)

        async def attempt() -> None:
            await pager.trigger(PAGE)

        with pytest.raises(CallError) as info:
            await call_with_retries(
                attempt, RetryPolicy(attempts=3), sleep=clock.sleep, monotonic=clock.monotonic
            )
        assert not info.value.retryable
        assert "fix the configuration" in str(info.value)
        assert "routing_key" in str(info.value)
        assert KEY not in str(info.value)
        assert len(pd.requests) == 1

    async def test_fake_validates(
        self, pd: FakePagerDuty, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """The fake itself rejects a trigger without a summary (so the fake cannot lie)."""
        async with session.post(
            pd.url + "/v2/enqueue",
            json={"routing_key": KEY, "event_action": "trigger", "payload": {"source": "s"}},
        ) as resp:
            assert resp.status == 400
            body = await resp.json()
        assert "'payload.summary' is missing or blank" in body["errors"]

    async def test_503_retryable(
        self, pd: FakePagerDuty, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 5xx is retryable."""
        pd.fail("enqueue", 503, "unavailable", content_type="text/plain")
        with pytest.raises(CallError) as info:
            await make_pager(pd, session, clock).trigger(PAGE)
        assert info.value.retryable

    async def test_client_limiter(
        self, pd: FakePagerDuty, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Past the per-key budget the pager refuses locally with the wait until a token frees."""
        pager = make_pager(pd, session, clock, events_per_minute=2)
        await pager.resolve("web", "a", AT)
        await pager.resolve("web", "b", AT)
        with pytest.raises(CallError) as info:
            await pager.resolve("web", "c", AT)
        assert info.value.reason == "client_rate_limited"
        assert info.value.retry_after == pytest.approx(30)
        assert len(pd.requests) == 2
        clock.advance(30)
        await pager.resolve("web", "c", AT)
        assert len(pd.requests) == 3

    def test_eu_base_url(self) -> None:
        """The base URL is configurable (EU service region) and loses a trailing slash."""
        cfg = PagerDutyConfig.model_validate(
            {"routing_key": KEY, "base_url": "https://events.eu.pagerduty.com/"}
        )
        assert cfg.base_url == "https://events.eu.pagerduty.com"
        assert KEY not in repr(cfg)
