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

from watchdog.core.model import Observation, Severity
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
    "TargetChoice",
    "TargetGoneError",
]
from watchdog.transport import CallError


class TargetGoneError(CallError):
    """The rollback target no longer exists (404/410): choose another target, once."""


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


class FeatureFlag(Protocol):
    @property
    def flags(self) -> Sequence[str]: ...

    async def disable(self, flag: str, reason: str) -> None: ...
