"""The small interfaces the dispatcher talks to, and the plain data that crosses them.

Each protocol is one kind of side effect (pager, chat, deployer, feature flag). Every method
makes *one* attempt and raises ``watchdog.retry.CallError`` saying whether retrying can help;
the dispatcher owns retries, ordering and the write-ahead journal. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from watchdog.core.model import Observation, Severity
from watchdog.transport import CallError


class TargetGoneError(CallError):
    """The rollback target no longer exists (404/410): choose another target, once."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment as the deployer sees it (Vercel: ``uid`` in lists, ``id`` elsewhere)."""

    id: str
    created_at: datetime | None = None
    state: str | None = None
    substate: str | None = None
    target: str | None = None
    url: str | None = None
    rollback_candidate: bool | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    inspector_url: str | None = None

    @property
    def commit(self) -> str | None:
        return self.meta.get("githubCommitSha") or None


@dataclass(frozen=True, slots=True)
class TargetChoice:
    """The deployment to roll back to, or why there is none (``refused_by`` names the rule)."""

    target: Deployment | None
    reason: str
    refused_by: str | None = None


@dataclass(frozen=True, slots=True)
class RollbackRequest:
    """The deployer accepted (or, in shadow mode, would have sent) a rollback request."""

    target: Deployment
    method: str  # "rollback" or "promote"
    shadow: bool = False
    detail: str = ""


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
    @property
    def project(self) -> str: ...

    async def current_production(self) -> Deployment: ...

    async def list_candidates(self) -> list[Deployment]: ...

    def choose_target(
        self,
        current: Deployment,
        candidates: Sequence[Deployment],
        known_bad: frozenset[str],
        seen_healthy: frozenset[str],
    ) -> TargetChoice: ...

    async def request_rollback(self, target: Deployment) -> RollbackRequest:
        """One attempt; raises ``TargetGoneError`` when the target no longer exists."""
        ...

    async def await_rollback(self, target: Deployment) -> RollbackResult:
        """Wait (bounded) for the asynchronous job, then check what production serves."""
        ...

    async def alias_job(self) -> Mapping[str, Any] | None:
        """The latest rollback/promote job on the project (Vercel: ``lastAliasRequest``)."""
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
