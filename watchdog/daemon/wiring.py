"""Wiring: from settings to running parts (sources, deployers, actions), nothing started yet.

No I/O here: every part is built around the one shared aiohttp session and the clock, and
does its own I/O later. A new source kind, pager or deployer is wired by its config's ``kind``
(``watchdog.sources.BUILDERS``, :func:`build_pager`), not by editing the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from watchdog.actions.alertmanager import AlertmanagerPager
from watchdog.actions.base import Notifier, Pager
from watchdog.actions.dispatcher import TargetActions
from watchdog.actions.flags import build_flag
from watchdog.actions.pagerduty import PagerDutyConfig, PagerDutyPager
from watchdog.actions.redacting import RedactingFlag
from watchdog.actions.slack import SlackNotifier
from watchdog.actions.vercel import VercelDeployer
from watchdog.actions.verify import Verifier
from watchdog.clock import Clock
from watchdog.config import Settings, TargetConfig
from watchdog.core.engine import Engine
from watchdog.core.model import Signal
from watchdog.daemon.loops import SourceState
from watchdog.sources import build_source


@dataclass
class Parts:
    sources: dict[str, SourceState] = field(default_factory=dict)
    deployers: dict[str, VercelDeployer] = field(default_factory=dict)
    actions: dict[str, TargetActions] = field(default_factory=dict)
    #: source names per target (the metrics declare their series up front)
    source_names: dict[str, list[str]] = field(default_factory=dict)


def measures_error_rate(target: TargetConfig) -> bool:
    for source in target.sources:
        if source.kind == "sentry":
            return True
        if source.kind == "prometheus" and any(
            q.signal == Signal.ERROR_RATE for q in source.queries
        ):
            return True
    return False


def error_rate_probe(engine: Engine, target: str) -> Callable[[], float | None]:
    """The target's latest known error rate, for verifying a rollback (None while unknown)."""

    def probe() -> float | None:
        reading = engine.reading(target, Signal.ERROR_RATE)
        if reading is None or reading.unknown is not None or not isinstance(reading.value, float):
            return None
        return reading.value

    return probe


def build_parts(
    settings: Settings, session: aiohttp.ClientSession, clock: Clock, engine: Engine
) -> Parts:
    parts = Parts()
    redactor = settings.redactor()
    semaphore = asyncio.Semaphore(settings.scheduler.max_concurrency)
    for target in settings.targets:
        names = []
        for config in target.sources:
            source = build_source(
                config, target=target.name, session=session, clock=clock, semaphore=semaphore
            )
            parts.sources[source.name] = SourceState(source)
            names.append(source.name)
        parts.source_names[target.name] = names
        deployer = None
        if target.deployer is not None:
            deployer = VercelDeployer(target.deployer, session, clock)
            parts.deployers[target.name] = deployer
        parts.actions[target.name] = TargetActions(
            deployer=deployer,
            verifier=Verifier(target.verify, session, clock) if deployer else None,
            # verification waits for the error rate to fall only where one is measured
            error_rate=error_rate_probe(engine, target.name)
            if measures_error_rate(target)
            else None,
            # the reason goes to the flag service as the change's comment
            flags=[RedactingFlag(build_flag(f, session, clock), redactor) for f in target.flags],
        )
    return parts


def build_pager(settings: Settings, session: aiohttp.ClientSession, clock: Clock) -> Pager | None:
    config = settings.pager
    if config is None:
        return None
    if isinstance(config, PagerDutyConfig):
        return PagerDutyPager(config, session, clock)
    return AlertmanagerPager(config, session, clock)


def build_notifier(
    settings: Settings, session: aiohttp.ClientSession, clock: Clock
) -> Notifier | None:
    return SlackNotifier(settings.chat, session, clock) if settings.chat else None
