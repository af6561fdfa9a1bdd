"""Each project's rolling release: the one place the daemon reads it, and tells the engine.

I/O boundary: the targets' :class:`~watchdog.actions.base.RollingReleases` (Vercel's
``GET /v1/projects/{id}/rolling-release`` and, once per deployment, its ``meta`` for the commit
a Sentry release is named after). Read on the deployment-poll timer. This watcher is the one
writer of two facts: the engine's view of the rollout (a ``RolloutEvent`` whenever what Vercel
reports changes, so the core judges the canary against its base and may approve a stage), and
each target's :class:`~watchdog.sources.ReleaseBoard` (which deployments a release-scoped
source measures apart). The dispatcher never writes either: it re-reads Vercel itself right
before it acts.

A failed read changes nothing: the engine keeps the rollout it knew (the canary is most likely
still there) and the board keeps measuring it; the failure is logged and shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import structlog

from watchdog.actions.base import (
    Deployment,
    RollingRelease,
    RollingReleases,
    rollout_event,
    with_commit,
)
from watchdog.clock import Clock
from watchdog.core.model import Decision, Event, RolloutEvent
from watchdog.sources import ReleaseBoard, ScopedDeployment

log = structlog.get_logger(__name__)

Apply = Callable[[Event], Awaitable[list[Decision]]]

#: commits remembered per deployment id (a deployment's commit never changes)
COMMITS_KEPT: Final = 64
#: rolling-release reads in flight at once
READS_AT_ONCE: Final = 8


@dataclass(frozen=True, slots=True)
class RolloutSeen:
    """What the latest read of one target's rolling release found (for the status page)."""

    release: RollingRelease | None = None
    read_at: datetime | None = None
    #: why the latest read failed (None when it worked)
    error: str | None = None


def _same(a: RolloutEvent, b: RolloutEvent | None) -> bool:
    """Does ``a`` say what ``b`` said (their times aside)?"""
    return b is not None and replace(a, at=b.at) == b


class RolloutWatcher:
    def __init__(
        self,
        rollouts: Mapping[str, RollingReleases],
        boards: Mapping[str, ReleaseBoard],
        *,
        clock: Clock,
        apply: Apply,
    ) -> None:
        self._rollouts = rollouts
        self._boards = boards
        self._clock = clock
        self._apply = apply
        self._told: dict[str, RolloutEvent] = {}
        self._commits: dict[str, str | None] = {}
        #: per target, what the latest read found
        self.seen: dict[str, RolloutSeen] = {}

    async def refresh(self) -> None:
        """Read every target's rolling release (side by side, a few at a time, so one slow or
        rate-limited project does not starve the others of the chore's time); then tell the
        engine and the board what changed, target by target."""
        gate = asyncio.Semaphore(READS_AT_ONCE)

        async def read(rollouts: RollingReleases) -> RollingRelease | Exception | None:
            async with gate:
                try:
                    return await rollouts.read()
                except Exception as exc:  # shown and logged below; the others go on
                    return exc

        targets = list(self._rollouts.items())
        answers = await asyncio.gather(*(read(r) for _, r in targets))
        for (target, rollouts), release in zip(targets, answers, strict=True):
            now = self._clock.now()
            if isinstance(release, Exception):
                log.warning("rolling_release_read_failed", target=target, error=str(release))
                before = self.seen.get(target, RolloutSeen())
                why = str(release) or type(release).__name__
                self.seen[target] = RolloutSeen(before.release, before.read_at, why)
                continue
            self.seen[target] = RolloutSeen(release, now)
            await self._show(target, rollouts, release)
            event = rollout_event(target, now, release)
            if not _same(event, self._told.get(target)):
                self._told[target] = event
                log.info(
                    "rolling_release_seen",
                    target=target,
                    state=event.state.value,
                    canary=event.canary,
                    base=event.base,
                    stage=event.stage,
                    percent=event.percent,
                )
                await self._apply(event)

    async def _show(
        self, target: str, rollouts: RollingReleases, release: RollingRelease | None
    ) -> None:
        board = self._boards.get(target)
        if board is None:
            return
        if release is None or not release.active_for(None) or release.base is None:
            board.clear()
            return
        assert release.canary is not None
        board.show(
            ScopedDeployment(release.base.id, await self._commit(rollouts, release.base), "base"),
            ScopedDeployment(
                release.canary.id, await self._commit(rollouts, release.canary), "canary"
            ),
        )

    async def _commit(self, rollouts: RollingReleases, deployment: Deployment) -> str | None:
        """The deployment's commit SHA: as reported, else looked up once (its ``meta``); a
        failed look-up is unknown for now, asked again on the next read."""
        if deployment.id in self._commits:
            return self._commits[deployment.id]
        found = await with_commit(rollouts, deployment)
        if found is not deployment:  # Vercel answered: a deployment's commit never changes
            if len(self._commits) >= COMMITS_KEPT:
                self._commits.pop(next(iter(self._commits)))
            self._commits[deployment.id] = found.commit
        return found.commit
