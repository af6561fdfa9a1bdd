"""The small interfaces the dispatcher talks to, and the plain data that crosses them.

Each protocol is one kind of side effect (pager, chat, deployer, feature flag). Every method
makes *one* attempt and raises ``watchdog.transport.CallError`` saying whether retrying can
help; the dispatcher owns retries, ordering and the write-ahead journal. Nothing here does I/O,
and nothing here is shaped like a vendor's API: a deployer answers in :class:`Deployment`,
:class:`DeployJob` and :class:`RollbackResult`, and the choice of target is the core's
(:mod:`watchdog.core.targeting`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from watchdog.core.model import Observation, RolloutEvent, RolloutState, Severity
from watchdog.core.targeting import Deployment, TargetChoice, TargetPolicy

__all__ = [
    "Change",
    "DeployJob",
    "Deployer",
    "Deployment",
    "FeatureFlag",
    "Notifier",
    "Page",
    "Pager",
    "RollbackRequest",
    "RollbackResult",
    "RollingRelease",
    "RollingReleases",
    "RolloutStage",
    "StageApproval",
    "TargetChoice",
    "TargetGoneError",
    "rollout_event",
    "with_commit",
]
from watchdog.transport import CallError


class TargetGoneError(CallError):
    """The rollback target no longer exists (404/410): choose another target, once."""


log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RollbackRequest:
    """The deployer accepted (or, in shadow mode, would have sent) a rollback request."""

    target: Deployment
    method: str  # "rollback" or "promote"
    shadow: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DeployJob:
    """The project's latest rollback or promote job (Vercel: ``lastAliasRequest``)."""

    to_deployment: str | None
    requested_at: datetime | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class RollbackResult:
    """How the deployer's asynchronous job ended and what production serves afterwards."""

    ok: bool
    detail: str
    serving: str | None = None
    job_status: str | None = None


@dataclass(frozen=True, slots=True)
class RolloutStage:
    """One stage of a rolling release: the canary's share of traffic and how it advances."""

    index: int
    #: the share of production traffic the canary serves in this stage (0-100)
    percent: float | None = None
    #: the stage waits for someone to approve the next one (no timed advance)
    requires_approval: bool = False
    final: bool = False
    #: as the vendor reports it, for display only: Vercel documents it both in seconds and
    #: in minutes, so no deadline is ever computed from it (the watchdog re-reads instead)
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class RollingRelease:
    """A project's rolling release as the vendor reports it now (typed, nothing vendor-shaped).

    ``canary`` is the deployment being rolled out, ``base`` the one serving the rest of
    production (the one an abort goes back to). ``percent`` is the canary's share now.
    """

    state: RolloutState
    canary: Deployment | None
    base: Deployment | None
    stages: tuple[RolloutStage, ...] = ()
    active: RolloutStage | None = None
    next: RolloutStage | None = None
    #: frozen at its current share until someone continues it (a human, or the vendor's gate)
    paused: bool = False
    percent: float | None = None
    #: every stage advances by approval (Vercel: ``advancementType: manual-approval``)
    manual: bool = False
    #: a deployment waiting for this rollout to end before its own starts
    queued: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None

    def active_for(self, canary: str | None) -> bool:
        """Is this rollout still running, for ``canary`` (any canary when None)?"""
        if self.state is not RolloutState.ACTIVE or self.canary is None:
            return False
        return canary is None or self.canary.id == canary

    @property
    def awaiting_approval(self) -> bool:
        """The active stage waits for an approval of the next one. A paused rollout does
        not: someone (or the vendor's gate) stopped it, and approving must not undo that."""
        return (
            self.active_for(None)
            and not self.paused
            and self.active is not None
            and self.next is not None
            and (self.active.requires_approval or self.manual)
        )

    def share(self) -> str:
        """``10%`` (or ``an unknown share``) for messages."""
        return f"{self.percent:g}%" if self.percent is not None else "an unknown share"

    def event(self, target: str, at: datetime) -> RolloutEvent:
        """What the engine hears of this rollout."""
        if not self.active_for(None):
            return RolloutEvent(target, at, self.state)
        assert self.canary is not None
        return RolloutEvent(
            target,
            at,
            RolloutState.ACTIVE,
            canary=self.canary.id,
            base=self.base.id if self.base is not None else None,
            stage=self.active.index if self.active is not None else None,
            percent=self.percent,
            requires_approval=self.awaiting_approval,
            next_stage=self.next.index if self.next is not None else None,
        )


def rollout_event(target: str, at: datetime, release: RollingRelease | None) -> RolloutEvent:
    """The engine's event for a project's rolling release (None: there is none at all)."""
    if release is None:
        return RolloutEvent(target, at, RolloutState.NONE)
    return release.event(target, at)


@dataclass(frozen=True, slots=True)
class StageApproval:
    """The vendor approved (or, in shadow mode, would have approved) a rollout's next stage."""

    stage: int
    #: the rollout as the vendor answered it (None in shadow mode, or no body)
    release: RollingRelease | None = None
    shadow: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Page:
    """What a pager needs to open or update an alert; built from a Decision by the dispatcher."""

    target: str
    incident: str
    severity: Severity
    summary: str
    at: datetime
    reason: str = ""
    path: tuple[str, ...] = ()
    rule: str | None = None
    deployment: str | None = None
    observations: tuple[Observation, ...] = ()
    refused_by: str | None = None
    event_class: str = "deploy-regression"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """A "rollback executed" marker: pages no one, shows on the service's timeline."""

    target: str
    summary: str
    at: datetime
    deployment: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class Pager(Protocol):
    async def trigger(self, page: Page) -> None: ...

    async def resolve(self, target: str, incident: str, at: datetime) -> None: ...

    async def change(self, change: Change) -> None: ...


class Notifier(Protocol):
    async def send(self, text: str) -> None: ...


class Deployer(Protocol):
    """Production for one project: what it serves, what it could serve, and moving it."""

    @property
    def project(self) -> str: ...

    @property
    def policy(self) -> TargetPolicy:
        """The project's limits on the rollback target (the core makes the choice)."""
        ...

    async def current_production(self) -> Deployment: ...

    async def list_candidates(self) -> list[Deployment]: ...

    async def request_rollback(self, target: Deployment) -> RollbackRequest:
        """One attempt; raises ``TargetGoneError`` when the target no longer exists."""
        ...

    async def await_rollback(self, target: Deployment) -> RollbackResult:
        """Wait (bounded) for the asynchronous job, then check what production serves."""
        ...

    async def last_job(self) -> DeployJob | None:
        """The latest rollback/promote job on the project; None when there is none.

        Raises ``CallError`` when it cannot be read (restart recovery needs the difference).
        """
        ...

    async def serving(self) -> str | None:
        """The deployment id the production domain serves right now."""
        ...

    def undo_hint(self, deployment: str | None = None) -> str:
        """How a human undoes the rollback's side effects once a fix is ready."""
        ...


class RollingReleases(Protocol):
    """A project's progressive delivery: read its rolling release, approve a stage, abort it.

    Each method makes one attempt (the look-ups inside ``await_abort`` aside) and raises
    ``CallError``; the rollback runner re-reads before every call that changes traffic.
    """

    async def read(self) -> RollingRelease | None:
        """The project's rolling release, whatever its state; None when it has none."""
        ...

    async def approve(self, canary: str, next_stage: int) -> StageApproval:
        """Move the rollout of ``canary`` on to ``next_stage``."""
        ...

    async def abort(self, release: RollingRelease) -> RollbackRequest:
        """Send all production traffic back to the rollout's base (the canary leaves)."""
        ...

    async def await_abort(self, release: RollingRelease) -> RollbackResult:
        """Wait (bounded) until production serves the base and the rollout is over."""
        ...

    async def deployment(self, deployment_id: str) -> Deployment:
        """One deployment with its ``meta`` (the commit SHA a release is named after)."""
        ...


class FeatureFlag(Protocol):
    @property
    def flags(self) -> Sequence[str]: ...

    async def disable(self, flag: str, reason: str) -> None: ...


async def with_commit(rollouts: RollingReleases, deployment: Deployment) -> Deployment:
    """``deployment`` with its commit SHA: a rolling release names its deployments without
    ``meta``, and both the abort's verification (an app's version endpoint usually reports
    the commit) and the Sentry release names need it. Returns the looked-up deployment when
    Vercel answered (with or without a commit), else ``deployment`` itself (it had a commit
    already, or the look-up failed)."""
    if deployment.commit:
        return deployment
    try:
        return await rollouts.deployment(deployment.id)
    except Exception as exc:
        log.warning("deployment_lookup_failed", deployment=deployment.id, error=str(exc))
        return deployment
