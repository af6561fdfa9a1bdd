"""The daemon's clocks: one poll loop per source, and each chore on its own periodic task.

I/O boundary: a source's ``poll`` (bounded by its interval) and whatever a chore does; this
module only decides *when*. Polls run on a fixed grid (:mod:`watchdog.daemon.scheduling`) and a
late one is skipped, not stacked. Chores (lease renewal, re-deciding, status updates,
deployment look-ups, pruning, the heartbeat, the store ping ...) each have their own interval
and timeout, so a slow one cannot hold up another: a hung heartbeat URL never delays the lease
renewal that keeps this replica the leader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from watchdog.clock import Clock
from watchdog.core.model import Sample, UnknownReason
from watchdog.daemon.scheduling import next_slot, phase
from watchdog.metrics import Metrics
from watchdog.sources import Source
from watchdog.sources.base import FAILING_REASONS

log = structlog.get_logger(__name__)

Ingest = Callable[[Sequence[Sample]], Awaitable[None]]


@dataclass
class SourceState:
    """One source and what the status page says about its polls."""

    source: Source
    signals: set[str] = field(default_factory=set)
    polls: int = 0
    skipped: int = 0
    last_ok: datetime | None = None
    last_error: str | None = None
    #: why the last poll could not reach or read its provider (None: it could)
    failing: str | None = None


class Poller:
    """Polls each source on its grid and hands every batch of samples to ``ingest``."""

    def __init__(self, clock: Clock, metrics: Metrics, jitter: float, ingest: Ingest) -> None:
        self._clock = clock
        self._metrics = metrics
        self._jitter = jitter
        self._ingest = ingest
        self.polled_once = False

    async def run(self, state: SourceState, stopping: asyncio.Event) -> None:
        source = state.source
        clock = self._clock
        interval = source.interval.total_seconds()
        planned = clock.monotonic() + phase(source.name, interval, self._jitter)
        poll = self._metrics.poll_series(source.target, source.name)
        while not stopping.is_set():
            delay = planned - clock.monotonic()
            if delay > 0:
                await clock.sleep(delay)
            started = clock.monotonic()
            self._metrics.scheduling_lag.observe(max(0.0, started - planned))
            samples, now = await self._poll(state, interval)
            poll.record(clock.monotonic() - started, now.timestamp(), state.failing)
            await self._ingest(samples)
            slot = next_slot(planned, interval, clock.monotonic())
            if slot.skipped:
                state.skipped += slot.skipped
                log.warning("polls_skipped", source=source.name, skipped=slot.skipped)
            planned = slot.at

    async def poll_once(self, state: SourceState) -> list[Sample]:
        """One poll, bounded by the interval; a poll that raises or hangs yields unknowns."""
        samples, _ = await self._poll(state, state.source.interval.total_seconds())
        return samples

    async def _poll(self, state: SourceState, bound: float) -> tuple[list[Sample], datetime]:
        """:meth:`poll_once`, and the one wall-clock reading the poll takes (for its metrics)."""
        source = state.source
        state.polls += 1
        try:
            # inline, not a task per poll as wait_for would make
            async with asyncio.timeout(bound):
                samples = await source.poll()
        except TimeoutError:
            samples = self._unknowns(state, "poll overran its interval")
        except Exception as exc:  # a bug in a source must not stop the watchdog
            log.exception("source_crashed", source=source.name)
            samples = self._unknowns(state, f"source error: {type(exc).__name__}")
        now = self._clock.now()
        # a rolling release's per-release readings are extra: a canary without events, or a
        # failed per-release query, does not make the source's own answer a failure
        overall = [s for s in samples if s.deployment is None]
        error = next((s for s in overall if s.value is None), None)
        state.last_error = error.unknown.value if error is not None and error.unknown else None
        # "no data in the window" is the provider's answer; only a poll that did not get
        # one counts against the source (watchdog_source_up, watchdog_source_errors_total)
        failing = next((s.unknown for s in overall if s.unknown in FAILING_REASONS), None)
        state.failing = failing.value if failing is not None else None
        if error is None:
            state.last_ok = now
        state.signals.update(s.signal for s in samples)
        self.polled_once = True
        return samples, now

    def _unknowns(self, state: SourceState, detail: str) -> list[Sample]:
        now = self._clock.now()
        signals = state.signals or set(getattr(state.source, "signals", ()))
        return [
            Sample(
                state.source.target,
                signal,
                None,
                now,
                unknown=UnknownReason.PROVIDER_ERROR,
                source=state.source.name,
                detail=detail,
            )
            for signal in sorted(signals)
        ]


@dataclass(frozen=True)
class Chore:
    """Periodic work: ``run`` every ``every``, first after ``first_after``, cut at ``timeout``."""

    name: str
    every: timedelta
    timeout: timedelta
    run: Callable[[], Awaitable[None]]
    first_after: timedelta | None = None
    #: called instead of logging a failure when the chore overruns its timeout
    on_timeout: Callable[[], None] | None = None


async def run_chore(chore: Chore, clock: Clock, stopping: asyncio.Event) -> None:
    """Run ``chore`` until ``stopping``; a failure or an overrun is logged, never fatal."""
    wait = (chore.first_after or chore.every).total_seconds()
    while not stopping.is_set():
        await clock.sleep(wait)
        wait = chore.every.total_seconds()
        try:
            async with asyncio.timeout(chore.timeout.total_seconds()):
                await chore.run()
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            if chore.on_timeout is not None:
                chore.on_timeout()
            log.warning(
                "chore_timed_out", chore=chore.name, timeout_s=chore.timeout.total_seconds()
            )
        except Exception:
            log.exception("chore_failed", chore=chore.name)
