"""Signal sources: one module per kind, each a config model plus a :class:`Source`.

The daemon's config holds, per target, a list ``sources:`` of :data:`SourceConfig` (the
``kind`` field picks the model); :func:`build_source` turns one into a running source with
the daemon's shared HTTP session, clock and concurrency bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, Final

import aiohttp
from pydantic import Field

from watchdog.clock import Clock
from watchdog.sources.base import Canary, HttpSource, Source, SourceContext
from watchdog.sources.detailed import DetailedSource, DetailedSourceConfig
from watchdog.sources.health import HealthSource, HealthSourceConfig
from watchdog.sources.prometheus import PrometheusSource, PrometheusSourceConfig
from watchdog.sources.releases import ReleaseBoard, ReleaseView, ScopedDeployment
from watchdog.sources.sentry import SentrySource, SentrySourceConfig
from watchdog.sources.smoke import SmokeSource, SmokeSourceConfig
from watchdog.sources.supabase import SupabaseSource, SupabaseSourceConfig
from watchdog.sources.version import VersionSource, VersionSourceConfig

__all__ = [
    "BUILDERS",
    "Canary",
    "DetailedSourceConfig",
    "HealthSourceConfig",
    "HttpSource",
    "PrometheusSourceConfig",
    "ReleaseBoard",
    "ReleaseView",
    "ScopedDeployment",
    "SentrySourceConfig",
    "SmokeSourceConfig",
    "Source",
    "SourceConfig",
    "SourceContext",
    "SupabaseSourceConfig",
    "VersionSourceConfig",
    "build_source",
]

SourceConfig = Annotated[
    HealthSourceConfig
    | VersionSourceConfig
    | DetailedSourceConfig
    | SmokeSourceConfig
    | SentrySourceConfig
    | PrometheusSourceConfig
    | SupabaseSourceConfig,
    Field(discriminator="kind"),
]

#: kind → source class (each takes its config and the shared context); a new vendor is one
#: module and one line here
BUILDERS: Final[dict[str, Callable[[Any, SourceContext], HttpSource[Any]]]] = {
    "health": HealthSource,
    "version": VersionSource,
    "detailed": DetailedSource,
    "smoke": SmokeSource,
    "sentry": SentrySource,
    "prometheus": PrometheusSource,
    "supabase": SupabaseSource,
}


def build_source(
    config: SourceConfig,
    *,
    target: str,
    session: aiohttp.ClientSession,
    clock: Clock,
    semaphore: asyncio.Semaphore,
    canary: Canary | None = None,
    releases: ReleaseView | None = None,
) -> HttpSource[Any]:
    """Build the source for ``config``; its name is ``<target>/<name or kind>``.
    ``releases`` is the target's rolling release as a release-scoped source measures it."""
    context = SourceContext(
        target=target,
        session=session,
        clock=clock,
        semaphore=semaphore,
        canary=canary,
        releases=releases,
    )
    return BUILDERS[config.kind](config, context)
