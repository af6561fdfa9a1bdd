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
from watchdog.actions.vercel_rolling import VercelRollingReleases
from watchdog.actions.verify import Verifier
from watchdog.clock import Clock
from watchdog.config import Settings, TargetConfig
from watchdog.core.engine import Engine
from watchdog.core.model import Signal
from watchdog.daemon.loops import SourceState
from watchdog.sources import Canary, ReleaseBoard, build_source


@dataclass
class Parts:
    sources: dict[str, SourceState] = field(default_factory=dict)
    deployers: dict[str, VercelDeployer] = field(default_factory=dict)
    actions: dict[str, TargetActions] = field(default_factory=dict)
    #: per target with rolling releases: Vercel's side, and the board its sources read
    rollouts: dict[str, VercelRollingReleases] = field(default_factory=dict)
    boards: dict[str, ReleaseBoard] = field(default_factory=dict)
    #: per target, each source's name and signals (the metrics declare their series up front)
    source_signals: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Gap:
    """Something the config leaves out, and what the watchdog therefore cannot do."""

    event: str
    consequence: str
    target: str | None = None


def config_gaps(settings: Settings) -> list[Gap]:
    """What a start-up warning must name: a P0 with no pager would otherwise leave no trace
    but a log line nobody reads, and a target without a deployer is never rolled back."""
    gaps: list[Gap] = []
    if settings.pager is None:
        gaps.append(Gap("pager_not_configured", "no pager: pages, P0 included, are only logged"))
    if settings.chat is None:
        gaps.append(Gap("chat_not_configured", "no chat: the procedure's messages are not sent"))
    for target in settings.targets:
        if target.deployer is None:
            gaps.append(
                Gap(
                    "deployer_not_configured",
                    f"rollbacks impossible for target {target.name}: it is paged only",
                    target.name,
                )
            )
        elif target.verify.health_url is None and target.verify.version_url is None:
            gaps.append(
                Gap(
                    "verification_not_configured",
                    f"rollbacks of target {target.name} are verified on Vercel's word only "
                    "(no verify.health_url or verify.version_url)",
                    target.name,
                )
            )
    if settings.shadow:
        gaps.append(Gap("shadow_mode_on", "shadow mode: rollbacks are recorded, never performed"))
    if settings.kill_switch:
        gaps.append(Gap("kill_switch_on", "kill switch on: no automatic actions, pages only"))
    return gaps


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
        signals = parts.source_signals[target.name] = {}
        # one canary per target, shared by its sources, so one poll cycle asks it once
        canary = (
            Canary(target.canary_url, session=session, clock=clock) if target.canary_url else None
        )
        deployer = rollouts = board = None
        if target.deployer is not None:
            deployer = VercelDeployer(target.deployer, session, clock)
            parts.deployers[target.name] = deployer
            if target.deployer.rolling_releases:
                rollouts = parts.rollouts[target.name] = VercelRollingReleases(deployer, clock)
                board = parts.boards[target.name] = ReleaseBoard()
        for config in target.sources:
            source = build_source(
                config,
                target=target.name,
                session=session,
                clock=clock,
                semaphore=semaphore,
                canary=canary,
                releases=board,
            )
            parts.sources[source.name] = SourceState(source)
            signals[source.name] = tuple(getattr(source, "signals", ()))
        parts.actions[target.name] = TargetActions(
            deployer=deployer,
            verifier=Verifier(target.verify, session, clock) if deployer else None,
            # verification waits for the error rate to fall only where one is measured
            error_rate=error_rate_probe(engine, target.name)
            if measures_error_rate(target)
            else None,
            # the reason goes to the flag service as the change's comment
            flags=[RedactingFlag(build_flag(f, session, clock), redactor) for f in target.flags],
            rollouts=rollouts,
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
