"""The daemon's metrics as a scrape sees them: declared at start, refusals counted by guard
rail wherever they happen, the drill gauges following the store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from tests.daemon.conftest import Start
from tests.daemon.support import (
    TARGET,
    World,
    build_daemon,
    ingest_each,
    outage,
    settings_for,
    settle,
    wait_for,
)
from watchdog.clock import SystemClock
from watchdog.core.model import Sample, UnknownReason
from watchdog.daemon import Daemon
from watchdog.daemon.loops import Poller, SourceState
from watchdog.metrics import Metrics
from watchdog.store.base import DrillRecord
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock


def value(daemon: Daemon, name: str, **labels: str) -> float | None:
    return daemon.registry.get_sample_value(name, labels)


class TestDeclaredAtStart:
    async def test_healthy_daemon_has_every_panel_series(
        self, world: World, clock: FakeClock, started: Start
    ) -> None:
        """Before anything happens, the source-error, unknown-sample, refusal and decision
        series a dashboard reads exist at 0, under the source's name within its target."""
        daemon = await started(build_daemon(settings_for(world), MemoryStore(), clock))
        assert (
            value(
                daemon,
                "watchdog_source_errors_total",
                target=TARGET,
                source="health",
                reason="provider_error",
            )
            == 0
        )
        assert value(daemon, "watchdog_polls_total", target=TARGET, source="health") == 0
        assert (
            value(
                daemon,
                "watchdog_signal_unknown_total",
                target=TARGET,
                signal="health_up",
                reason="provider_error",
            )
            == 0
        )
        assert (
            value(daemon, "watchdog_rollback_refusals_total", target=TARGET, guard="cooldown") == 0
        )
        assert (
            value(
                daemon, "watchdog_decisions_total", target=TARGET, action="rollback", severity="P0"
            )
            == 0
        )
        assert value(daemon, "process_cpu_seconds_total") is not None


class TestRefusals:
    async def test_engine_refusal_counts_once_by_guard_rail(
        self, world: World, clock: FakeClock, started: Start
    ) -> None:
        """The kill switch refusing the outage's rollback counts once under guard="kill_switch"
        and as a refused rollback, however many failed probes restate it."""
        daemon = await started(build_daemon(settings_for(world), MemoryStore(), clock))
        await daemon.kill_switch(True, "maintenance", "bob")
        samples = outage(clock.now(), count=6)
        await ingest_each(daemon, samples, clock)
        await settle(daemon)
        assert world.rollback_posts() == []
        guard = {"target": TARGET, "guard": "kill_switch"}
        assert value(daemon, "watchdog_rollback_refusals_total", **guard) == 1
        assert value(daemon, "watchdog_rollbacks_total", target=TARGET, result="refused") == 1

    async def test_runner_refusal_counts_by_guard_rail(
        self, world: World, clock: FakeClock, started: Start
    ) -> None:
        """A declared incident's rollback the runner cannot run (no deployer) counts under
        guard="no_deployer"; refused rollbacks always equal the refusals by guard rail."""
        settings = settings_for(world)
        target = settings.targets[0].model_copy(update={"deployer": None})
        settings = settings.model_copy(update={"targets": [target]})
        daemon = await started(build_daemon(settings, MemoryStore(), clock))
        await daemon.declare(TARGET, "security vulnerability", "alice")
        await settle(daemon)
        guard = {"target": TARGET, "guard": "no_deployer"}
        assert value(daemon, "watchdog_rollback_refusals_total", **guard) == 1
        refused = value(daemon, "watchdog_rollbacks_total", target=TARGET, result="refused")
        by_guard = sum(
            s.value
            for f in daemon.registry.collect()
            if f.name == "watchdog_rollback_refusals"
            for s in f.samples
            if s.labels["target"] == TARGET
        )
        assert refused == by_guard

    async def test_a_follower_does_not_count(
        self, world: World, clock: FakeClock, started: Start
    ) -> None:
        """Only the replica that acts counts refusals: two replicas never double a panel."""
        daemon = await started(build_daemon(settings_for(world), MemoryStore(), clock))
        daemon.leadership.fenced()
        await daemon.kill_switch(True, "maintenance", "bob")
        await ingest_each(daemon, outage(clock.now()), clock)
        guard = {"target": TARGET, "guard": "kill_switch"}
        assert value(daemon, "watchdog_rollback_refusals_total", **guard) == 0


class TestDrills:
    async def test_gauges_follow_the_store_while_running(self, world: World) -> None:
        """No drill gauge until a drill is recorded; one recorded while the daemon runs (by
        `watchdog drill` in another process) shows within a tick."""
        store = MemoryStore()
        daemon = build_daemon(
            settings_for(
                world,
                tick=timedelta(seconds=0.1),
                health_interval=timedelta(seconds=1),
                health_timeout=timedelta(seconds=0.5),
            ),
            store,
            SystemClock(),
        )
        await daemon.start()
        try:
            labels = {"target": "web-staging"}
            assert value(daemon, "watchdog_drill_success", **labels) is None
            now = datetime.now(UTC)
            await store.save_drill(DrillRecord("d1", "web-staging", now, now, True, 95.0))
            await wait_for(
                lambda: value(daemon, "watchdog_drill_success", **labels) == 1, 5, "drill gauge"
            )
            assert value(daemon, "watchdog_drill_duration_seconds", **labels) == 95.0
            stamp = value(daemon, "watchdog_last_drill_timestamp_seconds", **labels)
            assert stamp == pytest.approx(now.timestamp())
        finally:
            await daemon.stop()


class _OneSignal:
    """A source whose every poll reports ``error_rate`` unknown for ``unknown``'s reason."""

    name = f"{TARGET}/sentry"
    target = TARGET
    interval = timedelta(seconds=10)
    signals = ("error_rate",)

    def __init__(self, clock: FakeClock, unknown: UnknownReason) -> None:
        self._clock = clock
        self._unknown = unknown

    async def poll(self) -> list[Sample]:
        now = self._clock.now()
        return [Sample(TARGET, "error_rate", None, now, unknown=self._unknown, source=self.name)]


async def poll_once(clock: FakeClock, unknown: UnknownReason) -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = Metrics(registry, standard=False)
    stopping = asyncio.Event()

    async def ingest(samples: Sequence[Sample]) -> None:
        stopping.set()

    poller = Poller(clock, metrics, 0.0, ingest)
    await poller.run(SourceState(_OneSignal(clock, unknown)), stopping)  # type: ignore[arg-type]
    return registry


class TestSourceHealth:
    async def test_no_data_is_an_answer_not_an_error(self, clock: FakeClock) -> None:
        """Sentry answering "no events in the window" (a quiet night) leaves the source up,
        stamps a successful poll and counts no error."""
        registry = await poll_once(clock, UnknownReason.NO_DATA)
        labels = {"target": TARGET, "source": "sentry"}
        assert registry.get_sample_value("watchdog_source_up", labels) == 1
        assert registry.get_sample_value(
            "watchdog_last_successful_poll_timestamp_seconds", labels
        ) == pytest.approx(clock.now().timestamp())
        errors = [
            s
            for f in registry.collect()
            if f.name == "watchdog_source_errors"
            for s in f.samples
            if s.value
        ]
        assert errors == []

    async def test_provider_error_marks_the_source_down(self, clock: FakeClock) -> None:
        """A poll that could not reach its provider is down and counted by reason."""
        registry = await poll_once(clock, UnknownReason.PROVIDER_ERROR)
        labels = {"target": TARGET, "source": "sentry"}
        assert registry.get_sample_value("watchdog_source_up", labels) == 0
        errors = {**labels, "reason": "provider_error"}
        assert registry.get_sample_value("watchdog_source_errors_total", errors) == 1
