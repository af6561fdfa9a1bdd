"""Every vendor's error, built from an error body that quotes the request back, is redacted.

An upstream can only echo the secrets it was sent. Each fake here answers with
:meth:`Fault.echoing`: an error body quoting the request's URL, credentials and body in every
field a vendor's error parser reads. The error the watchdog builds from it (a ``CallError``
for an action, an unknown sample's detail for a source) names the secret by its label and
carries it in no form (raw, URL-encoded, base64 as in HTTP Basic).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr, TypeAdapter

from watchdog.actions.alertmanager import AlertmanagerConfig, AlertmanagerPager
from watchdog.actions.base import Page
from watchdog.actions.flags import LaunchDarklyConfig, LaunchDarklyFlag, UnleashConfig, UnleashFlag
from watchdog.actions.pagerduty import PagerDutyConfig, PagerDutyPager
from watchdog.actions.slack import SlackConfig, SlackNotifier
from watchdog.actions.vercel import VercelConfig, VercelDeployer
from watchdog.core.model import Severity
from watchdog.core.targeting import Deployment
from watchdog.sources import SourceConfig, build_source
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_alertmanager import FakeAlertmanager
from watchdog.testing.fake_app import FakeApp
from watchdog.testing.fake_flags import FakeLaunchDarkly, FakeUnleash
from watchdog.testing.fake_pagerduty import FakePagerDuty
from watchdog.testing.fake_prometheus import FakePrometheus
from watchdog.testing.fake_sentry import FakeSentry
from watchdog.testing.fake_slack import FakeSlack
from watchdog.testing.fake_supabase import FakeSupabase
from watchdog.testing.fake_vercel import FakeVercel
from watchdog.testing.leaks import find_leaks
from watchdog.testing.server import Fault
from watchdog.transport import CallError

#: distinctive, and with characters that URL encoding and JSON escaping change
CANARY = "canary+Secret/9f3e=c1"
PAGE = Page("web", "inc-1", Severity.P0, "[P0] web: down", datetime(2026, 8, 20, tzinfo=UTC))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def assert_redacted(text: str, label: str) -> None:
    assert not find_leaks([("error", text)], {label: CANARY}), text
    assert f"[redacted:{label}]" in text, text


async def call_error(work: Any) -> str:
    with pytest.raises(CallError) as caught:
        await work
    return str(caught.value)


class TestActions:
    async def test_vercel(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        """A Vercel 500 quoting the bearer token, on a read and on the rollback POST."""
        async with FakeVercel(token=CANARY) as fake:
            fake.add_deployment("dpl_a", created_ms=1, production=True)
            config = VercelConfig(
                token=SecretStr(CANARY),
                project_id=fake.project_id,
                production_domain=fake.production_domain,
                base_url=fake.url,
            )
            deployer = VercelDeployer(config, session, clock)
            fake.fail_next(Fault.echoing(500, route="project"))
            assert_redacted(await call_error(deployer.current_production()), "vercel_token")
            fake.fail_next(Fault.echoing(400, path="/v1/projects"))
            message = await call_error(deployer.request_rollback(Deployment("dpl_a")))
            assert_redacted(message, "vercel_token")

    async def test_pagerduty(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        """A PagerDuty 400 whose errors quote the event, routing key included."""
        async with FakePagerDuty() as fake:
            config = PagerDutyConfig(routing_key=SecretStr(CANARY), base_url=fake.url)
            fake.fail_next(Fault.echoing(400))
            message = await call_error(PagerDutyPager(config, session, clock).trigger(PAGE))
            assert_redacted(message, "pagerduty_routing_key")

    async def test_alertmanager(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        """An Alertmanager 500 quoting its bearer token."""
        async with FakeAlertmanager() as fake:
            config = AlertmanagerConfig(base_url=fake.url, bearer_token=SecretStr(CANARY))
            fake.fail_next(Fault.echoing(500))
            message = await call_error(AlertmanagerPager(config, session, clock).trigger(PAGE))
            assert_redacted(message, "alertmanager_bearer_token")

    async def test_slack(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        """A Slack 500 or 404 quoting the webhook URL (the URL is the secret)."""
        async with FakeSlack(path=f"/services/T0/B0/{CANARY.replace('/', '-')}") as fake:
            webhook = fake.webhook_url
            notifier = SlackNotifier(SlackConfig(webhook_url=SecretStr(webhook)), session, clock)
            for status in (500, 404):
                fake.fail_next(Fault.echoing(status))
                message = await call_error(notifier.send("hello"))
                assert webhook not in message
                assert fake.path not in message
                assert "[redacted:slack_webhook_url]" in message

    async def test_flags(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        """Unleash and LaunchDarkly 401s quoting their tokens."""
        async with FakeUnleash(token=CANARY) as unleash, FakeLaunchDarkly(token=CANARY) as ld:
            unleash.fail_next(Fault.echoing(401))
            flag = UnleashFlag(
                UnleashConfig(base_url=unleash.url, token=SecretStr(CANARY), features=["f"]),
                session,
                clock,
            )
            assert_redacted(await call_error(flag.disable("f", "r")), "unleash_token")
            ld.fail_next(Fault.echoing(401))
            switch = LaunchDarklyFlag(
                LaunchDarklyConfig(
                    base_url=ld.url, token=SecretStr(CANARY), project_key="p", flags=["f"]
                ),
                session,
                clock,
            )
            assert_redacted(await call_error(switch.disable("f", "r")), "launchdarkly_token")


_SOURCES: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)


async def detail_of(raw: dict[str, Any], session: aiohttp.ClientSession) -> str:
    source = build_source(
        _SOURCES.validate_python(raw),
        target="web",
        session=session,
        clock=FakeClock(),
        semaphore=asyncio.Semaphore(4),
    )
    samples = await source.poll()
    assert samples
    return " ".join(s.detail for s in samples)


class TestSources:
    async def test_sentry(self, session: aiohttp.ClientSession) -> None:
        """A Sentry 500 quoting the bearer token."""
        async with FakeSentry(token=CANARY) as fake:
            fake.fail_always(Fault.echoing(500))
            raw = {
                "kind": "sentry",
                "base_url": fake.url,
                "org": "acme",
                "project": "web",
                "token": CANARY,
            }
            assert_redacted(await detail_of(raw, session), "sentry_token")

    async def test_supabase_basic_auth(self, session: aiohttp.ClientSession) -> None:
        """A Supabase 401 quoting the Basic-auth header: the key only ever travels base64
        encoded, after ``service_role:``."""
        async with FakeSupabase(secret_key=CANARY) as fake:
            fake.fail_always(Fault.echoing(401))
            raw = {"kind": "supabase", "base_url": fake.url, "secret_key": CANARY}
            assert_redacted(await detail_of(raw, session), "supabase_secret_key")

    async def test_prometheus(self, session: aiohttp.ClientSession) -> None:
        """A Prometheus 403 quoting its Basic-auth password."""
        async with FakePrometheus(basic=("watchdog", CANARY)) as fake:
            fake.fail_always(Fault.echoing(403))
            raw = {
                "kind": "prometheus",
                "base_url": fake.url,
                "username": "watchdog",
                "password": CANARY,
                "queries": [{"signal": "error_rate", "query": "x"}],
            }
            assert_redacted(await detail_of(raw, session), "prometheus_password")

    async def test_smoke_secret_header(self, session: aiohttp.ClientSession) -> None:
        """A smoke check's 500 quoting its secret header."""
        async with FakeApp() as app:
            app.fail_always(Fault.echoing(500))
            raw = {
                "kind": "smoke",
                "checks": [
                    {
                        "name": "login",
                        "url": f"{app.url}/api/health",
                        "secret_headers": {"Authorization": f"Bearer {CANARY}"},
                    }
                ],
            }
            assert_redacted(await detail_of(raw, session), "smoke_checks_secret_headers")
