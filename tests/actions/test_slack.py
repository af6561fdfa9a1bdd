"""Slack: the procedure's templates (exact text), the webhook call and its error handling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from pydantic import SecretStr

from watchdog.actions.slack import (
    SlackConfig,
    SlackNotifier,
    human_duration,
    render_page,
    render_resolved,
    render_rollback_complete,
    render_rollback_in_progress,
    render_update,
    webhook_body,
)
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_slack import FakeSlack
from watchdog.transport import CallError

AT = datetime(2026, 8, 20, 10, 5, tzinfo=UTC)
NOTE = "Vercel has stopped auto-assigning new deployments to production."


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def notifier(slack: FakeSlack, session: aiohttp.ClientSession, clock: FakeClock) -> SlackNotifier:
    return SlackNotifier(SlackConfig(webhook_url=SecretStr(slack.webhook_url)), session, clock)


class TestTemplates:
    def test_in_progress_exact(self) -> None:
        """ "Rollback in progress" follows the procedure's Immediate Alert template."""
        text = render_rollback_in_progress(
            issue="error rate 7.2% > 5%",
            severity="P1",
            impact="error_rate 0.072 > 0.05",
            target_deployment="dpl_old",
            target_created_at=datetime(2026, 8, 19, 16, 30, tzinfo=UTC),
            eta=AT + timedelta(minutes=3),
            commander="rollback-watchdog",
        )
        assert text == (
            "🚨 PRODUCTION ROLLBACK IN PROGRESS\n"
            "\n"
            "Issue: error rate 7.2% > 5%\n"
            "Severity: P1\n"
            "Impact: error_rate 0.072 > 0.05\n"
            "Action: Rolling back to deployment from 2026-08-19 16:30 UTC (dpl_old)\n"
            "ETA: 10:08 UTC\n"
            "Incident Commander: rollback-watchdog\n"
            "\n"
            "Updates will be posted here every 5 minutes."
        )

    def test_update_exact(self) -> None:
        """The status update follows the procedure's "⏱️ UPDATE [HH:MM]" template."""
        text = render_update(
            at=AT,
            status="In Progress",
            progress="rollback requested",
            next_step="verify",
            eta="10:08 UTC",
            notes=(NOTE,),
        )
        assert text == (
            "⏱️ UPDATE 10:05 UTC\n"
            "\n"
            "Status: In Progress\n"
            "Progress: rollback requested\n"
            "Next: verify\n"
            "ETA: 10:08 UTC\n"
            "\n"
            f"⚠️ {NOTE}"
        )

    def test_complete_exact(self) -> None:
        """ "Rollback complete" has method, duration and impact, and the undo note."""
        text = render_rollback_complete(
            issue="error rate 7.2% > 5%",
            method="Vercel Instant Rollback (Method 1)",
            duration=timedelta(minutes=4, seconds=12),
            impact="error_rate 0.072 > 0.05",
            contact="on-call",
            notes=(NOTE,),
        )
        assert text == (
            "✅ ROLLBACK COMPLETE\n"
            "\n"
            "Issue: error rate 7.2% > 5%\n"
            "Root Cause: not yet known: root cause analysis pending\n"
            "Rollback Method: Vercel Instant Rollback (Method 1)\n"
            "Duration: 4m 12s\n"
            "Impact: error_rate 0.072 > 0.05\n"
            "\n"
            "Current Status: System operational and stable\n"
            "Monitoring: Intensive monitoring for next 2 hours\n"
            "\n"
            "Next Steps:\n"
            "1. Root cause analysis (ETA: set by the incident commander)\n"
            "2. Fix implementation (ETA: set by the incident commander)\n"
            "3. Testing in staging (ETA: set by the incident commander)\n"
            "4. Next deployment attempt (ETA: set by the incident commander)\n"
            "\n"
            "Point of Contact: on-call\n"
            "\n"
            f"⚠️ {NOTE}"
        )

    def test_page_and_resolved(self) -> None:
        """The page-only and resolved messages name the issue, action and duration."""
        page = render_page(
            issue="feature down",
            severity="P1",
            impact="feature_up.login 0 == 0",
            action="Paged on-call; no automatic rollback",
            commander="ic",
        )
        assert page.startswith("📟 PRODUCTION INCIDENT: ON-CALL PAGED\n\nIssue: feature down\n")
        assert "Action: Paged on-call; no automatic rollback\n" in page
        done = render_resolved(
            issue="web: incident inc-1", duration=timedelta(hours=1, minutes=2), contact="on-call"
        )
        assert done.startswith(
            "✅ INCIDENT RESOLVED\n\nIssue: web: incident inc-1\nDuration: 1h 02m"
        )

    @pytest.mark.parametrize(
        ("seconds", "text"), [(0, "0s"), (59, "59s"), (61, "1m 01s"), (3600, "1h 00m")]
    )
    def test_human_duration(self, seconds: int, text: str) -> None:
        """Durations read like a human writes them."""
        assert human_duration(timedelta(seconds=seconds)) == text

    def test_body(self) -> None:
        """The webhook body is {"text": ...}."""
        assert webhook_body("hi") == {"text": "hi"}


class TestNotifier:
    async def test_ok(
        self, slack: FakeSlack, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A message is posted as JSON and "ok" is success."""
        await notifier(slack, session, clock).send("hello")
        assert slack.messages == ["hello"]
        assert slack.requests[0].headers["Content-Type"] == "application/json"

    @pytest.mark.parametrize(
        ("status", "code"),
        [
            (400, "invalid_payload"),
            (403, "action_prohibited"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
        ],
    )
    async def test_4xx_permanent(
        self,
        slack: FakeSlack,
        session: aiohttp.ClientSession,
        clock: FakeClock,
        status: int,
        code: str,
    ) -> None:
        """Plain-text 4xx errors are permanent, named, and never leak the webhook URL."""
        slack.fail_text(status, code)
        with pytest.raises(CallError) as info:
            await notifier(slack, session, clock).send("hello")
        assert not info.value.retryable
        assert code in str(info.value)
        assert slack.path not in str(info.value)
        assert "XXXXSECRETXXXX" not in str(info.value)

    async def test_500_retryable(
        self, slack: FakeSlack, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Slack's 500 rollup_error is retryable."""
        slack.fail_text(500, "rollup_error")
        with pytest.raises(CallError) as info:
            await notifier(slack, session, clock).send("hello")
        assert info.value.retryable

    async def test_429_retry_after(
        self, slack: FakeSlack, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 429 honours Retry-After when Slack sends it."""
        slack.fail(
            "webhook", 429, "rate_limited", content_type="text/plain", headers={"Retry-After": "2"}
        )
        with pytest.raises(CallError) as info:
            await notifier(slack, session, clock).send("hello")
        assert info.value.retryable
        assert info.value.retry_after == 2

    async def test_client_limit(
        self, slack: FakeSlack, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """After a burst of 3 the notifier holds back to ~1 message per second."""
        n = notifier(slack, session, clock)
        for i in range(3):
            await n.send(f"m{i}")
        with pytest.raises(CallError) as info:
            await n.send("m3")
        assert info.value.reason == "client_rate_limited"
        assert info.value.retry_after == pytest.approx(1.0)
        clock.advance(1)
        await n.send("m3")
        assert slack.messages == ["m0", "m1", "m2", "m3"]

    def test_url_secret(self, slack: FakeSlack) -> None:
        """The webhook URL is a secret and does not show in the config's repr."""
        cfg = SlackConfig(webhook_url=SecretStr("https://hooks.slack.com/services/T/B/SECRET"))
        assert "SECRET" not in repr(cfg)
