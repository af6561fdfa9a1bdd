"""The outbox on its own: pure codecs and backoff, order per incident, channels apart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from pydantic import SecretStr

from watchdog.actions.base import Change, Page
from watchdog.actions.outbox import (
    DeliveryPolicy,
    OutboxWorker,
    backoff,
    change_from_payload,
    change_payload,
    page_from_payload,
    page_payload,
)
from watchdog.actions.pagerduty import PagerDutyConfig, PagerDutyPager
from watchdog.actions.slack import SlackConfig, SlackNotifier
from watchdog.core.model import Observation, Severity, UnknownReason
from watchdog.retry import Retrier, RetryPolicy
from watchdog.store.base import ActionStatus, OutboxStatus
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_pagerduty import FakePagerDuty
from watchdog.testing.fake_slack import FakeSlack
from watchdog.testing.server import Fault

T = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
KEY = "R0UTINGKEY0123456789abcdef012345"


def page(incident: str = "inc-1", severity: Severity = Severity.P0) -> Page:
    return Page(
        target="web",
        incident=incident,
        severity=severity,
        summary=f"[{severity}] web: down",
        at=T,
        reason="health_up == 0 for 3 polls",
        path=("p0:system-down", "rollback"),
        rule="system-down",
        deployment="dpl_bad",
        observations=(
            Observation("system-down", "health_up", 0.0, "==", 0.0, True, since=T),
            Observation("error-rate", "error_rate", None, ">", 0.05, False, UnknownReason.STALE),
        ),
        refused_by="cooldown",
        notes=("Vercel stopped auto-assigning production; promote to undo",),
    )


class TestCodecs:
    def test_a_page_survives_the_store(self) -> None:
        """A page written as JSON reads back equal, observations, reasons and notes included."""
        assert page_from_payload(page_payload(page())) == page()

    def test_a_change_survives_the_store(self) -> None:
        change = Change("web", "rolled back", T, "dpl_good", {"from": "dpl_bad"})
        assert change_from_payload(change_payload(change)) == change


class TestBackoff:
    @pytest.mark.parametrize(
        ("attempts", "retry_after", "wait"),
        [
            (1, None, 1.0),
            (2, None, 2.0),
            (5, None, 16.0),
            (9, None, 60.0),
            (1, 30.0, 30.0),
            (1, 3600.0, 60.0),
            (6, 2.0, 32.0),
        ],
    )
    def test_doubles_to_the_maximum_and_honours_retry_after(
        self, attempts: int, retry_after: float | None, wait: float
    ) -> None:
        """1 s doubling to 60 s; a longer Retry-After wins, capped by the maximum."""
        assert backoff(attempts, DeliveryPolicy(), retry_after) == wait


def worker(
    store: MemoryStore,
    clock: FakeClock,
    session: aiohttp.ClientSession,
    pd: FakePagerDuty,
    slack: FakeSlack,
) -> OutboxWorker:
    retrier = Retrier(RetryPolicy(attempts=1), clock)
    return OutboxWorker(
        store=store,
        clock=clock,
        policy=DeliveryPolicy(attempt_timeout=timedelta(seconds=2)),
        pager=PagerDutyPager(
            PagerDutyConfig(routing_key=SecretStr(KEY), base_url=pd.url), session, clock
        ),
        notifier=SlackNotifier(
            SlackConfig(webhook_url=SecretStr(slack.webhook_url)), session, clock
        ),
        pager_retrier=retrier,
        chat_retrier=retrier,
    )


async def settle(outbox: OutboxWorker) -> None:
    while outbox.tasks:
        for task in list(outbox.tasks):
            await task


class TestDelivery:
    async def test_a_resolve_never_overtakes_its_trigger(
        self, clock: FakeClock, session: aiohttp.ClientSession, pd: FakePagerDuty, slack: FakeSlack
    ) -> None:
        """The trigger fails, the resolve is put behind it: nothing of the incident goes until
        the trigger is accepted, then both, in order. Another incident is not held up."""
        store = MemoryStore()
        outbox = worker(store, clock, session, pd, slack)
        pd.fail("enqueue", 503, times=1)
        await outbox.put("page", "inc-1/page/P0", "web", "inc-1", page_payload(page()))
        await settle(outbox)
        resolve = {"target": "web", "incident": "inc-1", "at": T.isoformat()}
        await outbox.put("resolve", "inc-1/resolve", "web", "inc-1", resolve)
        await outbox.put("page", "inc-2/page/P0", "web", "inc-2", page_payload(page("inc-2")))
        await settle(outbox)
        assert [(e["event_action"], e["dedup_key"]) for e in pd.events] == [
            ("trigger", "watchdog/web/inc-2")
        ]
        clock.advance(5)
        await outbox.deliver_due()
        assert [(e["event_action"], e["dedup_key"]) for e in pd.events] == [
            ("trigger", "watchdog/web/inc-2"),
            ("trigger", "watchdog/web/inc-1"),
            ("resolve", "watchdog/web/inc-1"),
        ]
        assert store.actions["inc-1/resolve"].status is ActionStatus.SUCCEEDED

    async def test_a_failing_chat_never_delays_a_page(
        self, clock: FakeClock, session: aiohttp.ClientSession, pd: FakePagerDuty, slack: FakeSlack
    ) -> None:
        """Slack hangs; the page of the same incident goes at once (separate channels)."""
        store = MemoryStore()
        outbox = worker(store, clock, session, pd, slack)
        slack.fail_always(Fault.slow(1.5))
        await outbox.put("chat", "inc-1/slack/page", "web", "inc-1", {"text": "paged"})
        await outbox.put("page", "inc-1/page/P0", "web", "inc-1", page_payload(page()))
        for _ in range(100):
            if pd.events:
                break
            await _tick()
        assert pd.events, "the page waited for Slack"
        outbox.cancel()

    async def test_a_rejected_page_is_given_up_at_once(
        self, clock: FakeClock, session: aiohttp.ClientSession, pd: FakePagerDuty, slack: FakeSlack
    ) -> None:
        """A 400 cannot be fixed by retrying: the message is REJECTED, said so, and the next
        message of the incident is not held behind it."""
        store = MemoryStore()
        outbox = worker(store, clock, session, pd, slack)
        pd.fail("enqueue", 400, '{"status":"invalid event","errors":["bad"]}', times=1)
        await outbox.put("page", "inc-1/page/P0", "web", "inc-1", page_payload(page()))
        await outbox.put(
            "page", "inc-1/page/refused", "web", "inc-1", page_payload(page(severity=Severity.P1))
        )
        await settle(outbox)
        assert store.outbox["inc-1/page/P0"].status is OutboxStatus.REJECTED
        assert store.outbox["inc-1/page/refused"].status is OutboxStatus.DELIVERED
        assert outbox.summary()["undelivered"][0]["key"] == "inc-1/page/P0"


async def _tick() -> None:
    await asyncio.sleep(0.02)
