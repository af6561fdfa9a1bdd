"""The health source: up/down is a measurement; the watchdog's own outage is not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from tests.sources.conftest import Build, by_signal
from watchdog.core.model import Signal, UnknownReason
from watchdog.sources import Source
from watchdog.sources.health import HEALTH_LATENCY_S
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_app import FakeApp
from watchdog.testing.server import Fault, closed_port_url


@pytest.fixture
async def app() -> AsyncIterator[FakeApp]:
    async with FakeApp() as fake:
        yield fake


def health(url: str, **extra: object) -> dict[str, object]:
    return {"kind": "health", "url": f"{url}/api/health", "timeout": 0.2, **extra}


class TestHealthSource:
    async def test_2xx_is_up_with_latency(self, app: FakeApp, build: Build) -> None:
        """A 200 within the timeout reads health_up=1 and reports the round-trip latency."""
        source = build(health(app.url))
        assert isinstance(source, Source)
        samples = by_signal(await source.poll())
        assert samples[Signal.HEALTH_UP].value == 1.0
        latency = samples[HEALTH_LATENCY_S].value
        assert isinstance(latency, float)
        assert 0.0 <= latency < 0.2
        assert samples[Signal.HEALTH_UP].source == "web/health"
        assert samples[Signal.HEALTH_UP].target == "web"
        assert [r.path for r in app.requests] == ["/api/health"]

    async def test_samples_are_stamped_by_the_injected_clock(
        self, app: FakeApp, build: Build, clock: FakeClock
    ) -> None:
        """Sample times come from the injected clock, not the wall clock."""
        clock.advance(3600)
        samples = await build(health(app.url)).poll()
        assert {s.at for s in samples} == {clock.now()}

    async def test_5xx_is_a_real_zero_not_unknown(self, app: FakeApp, build: Build) -> None:
        """A 500 is health_up=0 with a known value, and the status in the detail."""
        app.health_status = 500
        samples = by_signal(await build(health(app.url)).poll())
        up = samples[Signal.HEALTH_UP]
        assert up.value == 0.0
        assert up.unknown is None
        assert "500" in up.detail
        assert samples[HEALTH_LATENCY_S].unknown is UnknownReason.NO_DATA

    async def test_one_probe_per_poll_by_default(self, app: FakeApp, build: Build) -> None:
        """By default a failing probe is not retried: the rule's consecutive count is the retry."""
        app.fail_next(Fault(status=503))
        samples = by_signal(await build(health(app.url)).poll())
        assert samples[Signal.HEALTH_UP].value == 0.0
        assert len(app.requests) == 1

    async def test_retries_when_configured(self, app: FakeApp, build: Build) -> None:
        """With attempts=2 a 503 followed by a 200 reads as up."""
        app.fail_next(Fault(status=503))
        samples = by_signal(await build(health(app.url, attempts=2)).poll())
        assert samples[Signal.HEALTH_UP].value == 1.0
        assert len(app.requests) == 2

    async def test_expected_status_overrides_2xx(self, app: FakeApp, build: Build) -> None:
        """expected_status narrows what counts as up (here a 204 is required, 200 is down)."""
        samples = by_signal(await build(health(app.url, expected_status=[204])).poll())
        assert samples[Signal.HEALTH_UP].value == 0.0

    async def test_slow_beyond_timeout_is_down(self, app: FakeApp, build: Build) -> None:
        """An answer slower than the timeout is health_up=0 with a timeout detail."""
        app.latency = 2.0
        source = build(health(app.url))
        samples = by_signal(await source.poll())
        assert samples[Signal.HEALTH_UP].value == 0.0
        assert "did not answer within" in samples[Signal.HEALTH_UP].detail
        assert source.errors["timeout"] == 1

    async def test_connection_refused_is_down(self, build: Build) -> None:
        """A closed port is health_up=0 (no canary configured)."""
        source = build(health(closed_port_url()))
        samples = by_signal(await source.poll())
        assert samples[Signal.HEALTH_UP].value == 0.0
        assert "cannot connect" in samples[Signal.HEALTH_UP].detail
        assert source.errors["connect"] == 1

    async def test_app_down_with_canary_up_is_down(self, app: FakeApp, build: Build) -> None:
        """When the canary answers, an unreachable app is really down (health_up=0)."""
        source = build(health(closed_port_url(), canary_url=f"{app.url}/api/version"))
        samples = by_signal(await source.poll())
        assert samples[Signal.HEALTH_UP].value == 0.0
        assert len(app.requests) == 1

    async def test_canary_down_too_means_watchdog_network(self, build: Build) -> None:
        """When the canary fails too, health is unknown (watchdog_network), never 0."""
        source = build(health(closed_port_url(), canary_url=closed_port_url()))
        samples = by_signal(await source.poll())
        up = samples[Signal.HEALTH_UP]
        assert up.value is None
        assert up.unknown is UnknownReason.WATCHDOG_NETWORK
        assert "canary" in up.detail

    async def test_canary_not_consulted_on_http_error(self, app: FakeApp, build: Build) -> None:
        """An HTTP 500 proves the network works: it is down without asking the canary."""
        app.health_status = 500
        source = build(health(app.url, canary_url=closed_port_url()))
        samples = by_signal(await source.poll())
        assert samples[Signal.HEALTH_UP].value == 0.0

    async def test_logs_transitions_only(self, build: Build) -> None:
        """The watchdog-network failure is logged once when it starts and once on recovery."""
        async with FakeApp() as canary:
            source = build(health(closed_port_url(), canary_url=f"{canary.url}/api/health"))
            canary.fail_always(Fault(status=503))
            with capture_logs() as logs:
                await source.poll()
                await source.poll()
                canary.fail_always(None)
                await source.poll()
        events = [(e["event"], e["source"], e["target"]) for e in logs]
        assert events == [
            ("source_failed", "web/health", "web"),
            ("source_recovered", "web/health", "web"),
        ]


class TestHealthTls:
    async def test_tls_failure_is_down(self, app: FakeApp, build: Build) -> None:
        """A failed TLS handshake (https to a plain-HTTP server) is health_up=0, reason tls."""
        source = build(health(app.url.replace("http://", "https://")))
        samples = by_signal(await source.poll())
        assert samples[Signal.HEALTH_UP].value == 0.0
        assert "TLS" in samples[Signal.HEALTH_UP].detail
        assert source.errors["tls"] == 1
