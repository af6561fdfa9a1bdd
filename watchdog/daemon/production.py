"""What production serves: the one place the daemon learns it, and tells the engine.

I/O boundary: the targets' deployers (``current_production``) and the store's event log (the
``deploy`` audit lines that ``watchdog postmortem`` reads). Production is looked up on a timer
(``scheduler.deploy_poll``) and at once when the app reports a version not seen before, so
deploy correlation gets the go-live time as soon as possible. Each change becomes one
``DeployEvent``; a rollback's own ``DeployEvent(rollback=True)`` comes from the rollback runner
(:mod:`watchdog.actions.rollback`), which is the only other sender.

What each look-up found is kept (:attr:`ProductionWatcher.seen`) with the rollback candidates,
listed again when production changes and every :data:`CANDIDATES_EVERY`: the status page shows
recent deployments without calling Vercel on the request path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

import structlog

from watchdog.actions.base import Deployer, Deployment
from watchdog.clock import Clock
from watchdog.core.engine import Engine
from watchdog.core.model import Decision, DeployEvent, Event
from watchdog.store.base import EventLog, HumanEvent

log = structlog.get_logger(__name__)

Apply = Callable[[Event], Awaitable[list[Decision]]]

#: how often the rollback candidates are listed again while production stays the same
CANDIDATES_EVERY: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class ProductionSeen:
    """What the latest look-ups of one target's production found (for the status page)."""

    current: Deployment | None = None
    looked_up_at: datetime | None = None
    #: READY production deployments, newest first, as the deployer lists them
    candidates: tuple[Deployment, ...] = ()
    candidates_at: datetime | None = None
    #: why the latest look-up failed (None when it worked)
    error: str | None = None


class ProductionWatcher:
    def __init__(
        self,
        deployers: Mapping[str, Deployer],
        *,
        engine: Engine,
        events: EventLog,
        clock: Clock,
        apply: Apply,
    ) -> None:
        self._deployers = deployers
        self._engine = engine
        self._events = events
        self._clock = clock
        self._apply = apply
        self._versions: dict[str, str] = {}
        #: per target, what the latest look-ups found
        self.seen: dict[str, ProductionSeen] = {}

    @property
    def deployers(self) -> Mapping[str, Deployer]:
        return self._deployers

    async def version_seen(self, target: str, version: str) -> None:
        """The app serves a new (or a first-seen) version: learn the deployment now."""
        seen = self._versions.get(target)
        self._versions[target] = version
        if seen != version and target in self._deployers:
            # confirm even an unchanged deployment: the engine holds a rollback while the
            # app's version matches no deployment it knows
            await self.refresh(confirm=True)

    async def refresh(self, *, confirm: bool = False) -> None:
        """Learn what production serves, so deploy correlation has a go-live time."""
        for target, deployer in self._deployers.items():
            try:
                current = await deployer.current_production()
            except Exception as exc:
                log.warning("deployment_lookup_failed", target=target, error=str(exc))
                seen = self.seen.get(target, ProductionSeen())
                self.seen[target] = replace(seen, error=str(exc) or type(exc).__name__)
                continue
            await self._tell_engine(target, current, confirm=confirm)
            # after the engine heard: deploy correlation must not wait for a listing
            await self._remember(target, deployer, current)

    async def _tell_engine(self, target: str, current: Deployment, *, confirm: bool) -> None:
        versions = tuple(v for v in (current.id, current.commit) if v)
        if self._engine.deployment_of(target) == current.id:
            if confirm:
                now = self._clock.now()
                await self._apply(DeployEvent(target, now, current.id, versions=versions))
            return
        # the deployment's own creation time, not when we noticed: a deploy learnt late
        # must not make its own errors look as if they predated it
        now = self._clock.now()
        live = min(current.created_at, now) if current.created_at else None
        log.info("deployment_went_live", target=target, deployment=current.id)
        try:
            await self._events.append_event(
                HumanEvent("deploy", target, live or now, "vercel", data={"deployment": current.id})
            )
        except Exception as exc:  # the audit line must not block the event
            log.warning("deployment_audit_failed", target=target, error=str(exc))
        await self._apply(DeployEvent(target, now, current.id, live_since=live, versions=versions))

    async def _remember(self, target: str, deployer: Deployer, current: Deployment) -> None:
        """Keep what production serves, and list the candidates when they may have changed."""
        now = self._clock.now()
        before = self.seen.get(target, ProductionSeen())
        moved = before.current is None or before.current.id != current.id
        stale = before.candidates_at is None or now - before.candidates_at >= CANDIDATES_EVERY
        seen = replace(before, current=current, looked_up_at=now, error=None)
        if moved or stale:
            try:
                found = await deployer.list_candidates()
            except Exception as exc:  # the page says so; the next look-up tries again
                log.warning("candidates_lookup_failed", target=target, error=str(exc))
                seen = replace(seen, error=f"listing candidates: {exc}")
            else:
                seen = replace(seen, candidates=tuple(found), candidates_at=now)
        self.seen[target] = seen
