"""Fault injection: upstreams failing every way they can, a failing store, a clock stepping.

The daemon must stay up, never roll back because it cannot see (a blind watchdog only pages
"watchdog-blind" once ``blind_after`` has passed), and recover on its own. Polls run for real
over HTTP against the fakes; time between them is a fake clock, so minutes pass instantly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from tests.daemon.support import TARGET, World, build_daemon, settings_for, settle
from watchdog.config import TargetConfig
from watchdog.daemon import Daemon
from watchdog.sources import SentrySourceConfig
from watchdog.store.base import ActionRecord, DecisionRecord, IncidentRecord
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_sentry import DEFAULT_TOKEN, FakeSentry
from watchdog.testing.server import Fault, closed_port_url

INTERVAL = 60.0


class FlakyStore(MemoryStore):
    """A store whose writes raise while ``broken`` (a full disk, a lost connection)."""

    broken = False

    def _check(self) -> None:
        if self.broken:
            raise OSError("disk I/O error")

    async def append_decision(self, record: DecisionRecord) -> None:
        self._check()
        await super().append_decision(record)

    async def save_incident(self, incident: IncidentRecord) -> None:
        self._check()
        await super().save_incident(incident)

    async def record_intent(self, action: ActionRecord) -> bool:
        self._check()
        return await super().record_intent(action)


@pytest.fixture
async def sentry() -> AsyncIterator[FakeSentry]:
    async with FakeSentry() as fake:
        yield fake


def sentry_settings(world: World, base_url: str) -> Any:
    base = settings_for(world)
    target = base.targets[0]
    source = SentrySourceConfig(
        org="acme",
        project=["web"],
        base_url=base_url,
        token=SecretStr(DEFAULT_TOKEN),
        interval=timedelta(seconds=INTERVAL),
        timeout=timedelta(seconds=0.3),
        attempts=1,
        window=timedelta(minutes=1),
    )
    targets = [TargetConfig(**{**dict(target), "sources": [source]})]
    return base.model_copy(update={"targets": targets})


async def make(world: World, clock: FakeClock, url: str, store: Any = None) -> Daemon:
    daemon = build_daemon(sentry_settings(world, url), store or MemoryStore(), clock)
    await daemon.start(loops=False)
    return daemon


async def run_polls(daemon: Daemon, clock: FakeClock, count: int) -> None:
    """``count`` poll cycles: the clock moves an interval, the source polls, the engine ticks."""
    state = next(iter(daemon.sources.values()))
    for _ in range(count):
        clock.advance(INTERVAL)
        await daemon.ingest(await daemon.poller.poll_once(state))
        await daemon.pipeline.redecide([TARGET], clock.now())
    await settle(daemon)


def pages(world: World) -> list[dict[str, Any]]:
    return [e for e in world.pagerduty.events if e["event_action"] == "trigger"]


FAULTS = {
    "500": Fault(status=500, body="Internal Server Error"),
    "429": FakeSentry.rate_limited(retry_after="30"),
    "garbage": Fault(status=200, body="<html>login</html>", content_type="text/html"),
    "bad-json-shape": Fault.json(200, {"data": "nope"}),
    "slow": Fault.slow(2.0),
}


class TestBlindUpstream:
    @pytest.mark.parametrize("fault", list(FAULTS))
    async def test_blind_pages_watchdog_blind_never_rolls_back_and_recovers(
        self, fault: str, world: World, clock: FakeClock, sentry: FakeSentry
    ) -> None:
        """With Sentry failing (5xx, 429, garbage, slow) the daemon keeps polling, pages only
        "watchdog-blind" once blind_after (5 min) has passed, never calls Vercel's rollback,
        and goes back to monitor and resolves when Sentry answers again."""
        daemon = await make(world, clock, sentry.url)
        try:
            await run_polls(daemon, clock, 1)  # one good poll: error rate known
            assert daemon.status()["targets"][0]["action"] == "monitor"
            sentry.fail_always(FAULTS[fault])
            await run_polls(daemon, clock, 4)
            assert pages(world) == []  # not blind for long enough yet
            await run_polls(daemon, clock, 3)
            assert world.rollback_posts() == []
            blind = pages(world)
            assert blind, "a blind watchdog must say so"
            assert {p["payload"]["severity"] for p in blind} == {"warning"}
            assert daemon.status()["targets"][0]["rule"] == "watchdog-blind"

            sentry.fail_always(None)
            await run_polls(daemon, clock, 7)
            assert daemon.status()["targets"][0]["action"] == "monitor"
            assert world.rollback_posts() == []
            incidents = await daemon.store.list_incidents()
            assert [i.resolved_at is not None for i in incidents] == [True]
            resolves = [e for e in world.pagerduty.events if e["event_action"] == "resolve"]
            assert resolves
        finally:
            await daemon.stop()

    async def test_connection_refused_is_blindness_not_an_outage(
        self, world: World, clock: FakeClock
    ) -> None:
        """A source nobody listens on is unknown data: a blind page, no rollback."""
        daemon = await make(world, clock, closed_port_url())
        try:
            await run_polls(daemon, clock, 8)
            assert world.rollback_posts() == []
            assert daemon.status()["targets"][0]["rule"] == "watchdog-blind"
            assert daemon.sources["web/sentry"].polls == 8
        finally:
            await daemon.stop()

    async def test_dns_failure_is_blindness_not_an_outage(
        self, world: World, clock: FakeClock
    ) -> None:
        """A host name that does not resolve (.invalid never does) is unknown data too."""
        daemon = await make(world, clock, "http://sentry.watchdog-test.invalid")
        try:
            await run_polls(daemon, clock, 8)
            assert world.rollback_posts() == []
            assert daemon.status()["targets"][0]["rule"] == "watchdog-blind"
            reasons = {s["last_error"] for s in daemon.status()["targets"][0]["sources"]}
            assert reasons == {"provider_error"}
        finally:
            await daemon.stop()


class TestStoreFailure:
    async def test_failing_store_writes_never_stop_the_pipeline(
        self, world: World, clock: FakeClock, sentry: FakeSentry
    ) -> None:
        """While every store write raises, polling and deciding go on without an exception
        escaping ingest (which would kill the poll loop) and readiness reports the store;
        once it heals the daemon records again."""
        store = FlakyStore()
        daemon = await make(world, clock, sentry.url, store)
        try:
            await run_polls(daemon, clock, 1)
            store.broken = True
            sentry.error_rate = 0.2  # > 5%: an incident the store cannot record
            await run_polls(daemon, clock, 3)
            assert "store unreachable" in daemon.readiness()
            assert daemon.status()["targets"][0]["incident"] is not None

            store.broken = False
            sentry.error_rate = 0.001
            await run_polls(daemon, clock, 8)  # past the 5 min resolve period
            assert daemon.status()["targets"][0]["action"] == "monitor"
            assert daemon.status()["targets"][0]["incident"] is None
            assert await store.list_decisions()
        finally:
            await daemon.stop()


class TestClockStep:
    async def test_wall_clock_stepping_back_neither_fires_nor_crashes(
        self, world: World, clock: FakeClock, sentry: FakeSentry
    ) -> None:
        """An NTP step of the wall clock back by two minutes makes the next samples stale
        (never a rollback), and the daemon decides normally once time catches up."""
        daemon = await make(world, clock, sentry.url)
        try:
            await run_polls(daemon, clock, 2)
            clock.jump_wall(-120)
            sentry.error_rate = 0.5
            await run_polls(daemon, clock, 2)  # stamped before what the engine saw: stale
            assert world.rollback_posts() == []
            sentry.error_rate = 0.001
            await run_polls(daemon, clock, 3)
            assert daemon.status()["targets"][0]["action"] == "monitor"
            assert json.dumps(daemon.status(), default=str)
        finally:
            await daemon.stop()


class TestBlindMetric:
    async def test_blind_gauge_follows_the_source(
        self, world: World, clock: FakeClock, sentry: FakeSentry
    ) -> None:
        """watchdog_blind is 1 while a source has been unknown past blind_after, then 0."""
        daemon = await make(world, clock, sentry.url)
        assert next(iter(daemon.sources)) == f"{TARGET}/sentry"

        def blind() -> float | None:
            return daemon.registry.get_sample_value(
                "watchdog_blind", {"target": TARGET, "source": "sentry"}
            )

        try:
            await run_polls(daemon, clock, 1)
            daemon.pipeline.export_blindness(daemon.sources.values(), clock.now())
            assert blind() == 0
            sentry.fail_always(FAULTS["500"])
            await run_polls(daemon, clock, 6)
            daemon.pipeline.export_blindness(daemon.sources.values(), clock.now())
            assert blind() == 1
            sentry.fail_always(None)
            await run_polls(daemon, clock, 1)
            daemon.pipeline.export_blindness(daemon.sources.values(), clock.now())
            assert blind() == 0
        finally:
            await daemon.stop()
