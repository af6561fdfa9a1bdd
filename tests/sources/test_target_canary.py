"""The target's reachability canary: every HTTP source of the target asks it before blaming
the app for not answering, so a partition reads as "blind", never as "down"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.sources.conftest import by_signal, parse_config
from watchdog.core.model import Signal, UnknownReason
from watchdog.sources import Canary, HttpSource, base, build_source
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_app import FakeApp
from watchdog.testing.server import closed_port_url

#: one config per HTTP source kind of a target's app, all pointed at ``{app}``
KINDS: dict[str, dict[str, Any]] = {
    "health": {"kind": "health", "url": "{app}/api/health"},
    "smoke": {
        "kind": "smoke",
        "checks": [{"name": "checkout", "url": "{app}/api/health"}],
    },
    "detailed": {
        "kind": "detailed",
        "url": "{app}/api/health/detailed",
        "db_connection": {"path": "db.status"},
    },
    "version": {"kind": "version", "url": "{app}/api/version"},
}


def config_for(kind: str, app: str) -> dict[str, Any]:
    raw = dict(KINDS[kind])
    if "url" in raw:
        raw["url"] = raw["url"].format(app=app)
    if "checks" in raw:
        raw["checks"] = [{**c, "url": c["url"].format(app=app)} for c in raw["checks"]]
    return raw


@pytest.fixture
async def app() -> AsyncIterator[FakeApp]:
    async with FakeApp() as fake:
        yield fake


class _CountingCanary(Canary):
    asked = 0

    async def reachable(self) -> bool:
        type(self).asked += 1
        return await super().reachable()


def build_with(
    raw: dict[str, Any],
    canary: Canary | None,
    session: aiohttp.ClientSession,
    clock: FakeClock,
) -> HttpSource[Any]:
    return build_source(
        parse_config(raw),
        target="web",
        session=session,
        clock=clock,
        semaphore=asyncio.Semaphore(8),
        canary=canary,
    )


class TestTargetCanary:
    @pytest.mark.parametrize("kind", sorted(KINDS))
    async def test_app_and_canary_unreachable_is_watchdog_network(
        self, kind: str, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """App and canary both give no answer: every signal of every HTTP source kind is
        unknown ``watchdog_network`` (never health_up=0 or feature_up=0)."""
        canary = Canary(closed_port_url(), session=session, clock=clock)
        source = build_with(config_for(kind, closed_port_url()), canary, session, clock)
        samples = await source.poll()
        assert samples
        for sample in samples:
            assert sample.value is None, sample
            assert sample.unknown is UnknownReason.WATCHDOG_NETWORK, sample
            assert "canary" in sample.detail

    @pytest.mark.parametrize("kind", sorted(KINDS))
    async def test_canary_answering_means_the_app_is_blamed(
        self, kind: str, app: FakeApp, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """The canary answers: an unreachable app is the app's problem as before (health and
        smoke measure it down; detailed and version are provider errors)."""
        canary = Canary(f"{app.url}/api/version", session=session, clock=clock)
        source = build_with(config_for(kind, closed_port_url()), canary, session, clock)
        samples = by_signal(await source.poll())
        if kind == "health":
            assert samples[Signal.HEALTH_UP].value == 0.0
        elif kind == "smoke":
            assert samples[Signal.feature_up("checkout")].value == 0.0
        else:
            assert all(s.unknown is UnknownReason.PROVIDER_ERROR for s in samples.values())

    async def test_an_http_error_never_asks_the_canary(
        self, app: FakeApp, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 500 is the app talking: the canary is not consulted and health is down."""
        app.health_status = 500
        _CountingCanary.asked = 0
        canary = _CountingCanary(closed_port_url(), session=session, clock=clock)
        source = build_with(config_for("health", app.url), canary, session, clock)
        assert by_signal(await source.poll())[Signal.HEALTH_UP].value == 0.0
        assert _CountingCanary.asked == 0

    async def test_the_sources_of_one_cycle_share_one_answer(
        self, session: aiohttp.ClientSession, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Four sources failing together ask the canary over HTTP once, and agree."""
        calls: list[str] = []
        original = base.canary_answers

        async def spy(http: aiohttp.ClientSession, url: str, **kw: Any) -> bool:
            calls.append(url)
            return await original(http, url, **kw)

        monkeypatch.setattr(base, "canary_answers", spy)
        dead = closed_port_url()
        canary = Canary(dead, session=session, clock=clock)
        # one attempt each: a retry's (fake) sleep would age the shared answer
        sources = [
            build_with({**config_for(k, dead), "attempts": 1}, canary, session, clock)
            for k in KINDS
        ]
        results = await asyncio.gather(*(s.poll() for s in sources))
        assert calls == [dead]
        assert all(s.unknown is UnknownReason.WATCHDOG_NETWORK for r in results for s in r)

    async def test_a_source_canary_wins_over_the_targets(
        self, app: FakeApp, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A source's own ``canary_url`` still works, and is the one asked."""
        target_canary = Canary(closed_port_url(), session=session, clock=clock)
        raw = {**config_for("health", closed_port_url()), "canary_url": f"{app.url}/api/version"}
        source = build_with(raw, target_canary, session, clock)
        assert by_signal(await source.poll())[Signal.HEALTH_UP].value == 0.0
