"""Which deployments a release-scoped source measures apart: a rolling release's base and canary.

No I/O. A source that can scope its signals to a release (Sentry's ``release:`` filter) reads
a :class:`ReleaseView`; the daemon's rolling-release chore is the one writer of the
:class:`ReleaseBoard` behind it, keeping it current from what Vercel reports. The view says
*which deployments* and *their commits*; how a deployment's release is named in the
vendor (``{commit}``, ``web@{commit}``) is the source's own configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["base", "canary"]


@dataclass(frozen=True, slots=True)
class ScopedDeployment:
    """One deployment to measure on its own: its id, its commit SHA (None: unknown), and
    which side of the rolling release it is."""

    deployment: str
    commit: str | None
    role: Role


class ReleaseView(Protocol):
    def scoped(self) -> tuple[ScopedDeployment, ...]:
        """The deployments to measure apart now, the base first; empty when none."""
        ...


class ReleaseBoard:
    """The writable :class:`ReleaseView` of one target (written by the daemon only)."""

    def __init__(self) -> None:
        self._scoped: tuple[ScopedDeployment, ...] = ()

    def scoped(self) -> tuple[ScopedDeployment, ...]:
        return self._scoped

    def show(self, base: ScopedDeployment, canary: ScopedDeployment) -> None:
        """A rolling release is active: measure its base and its canary apart."""
        self._scoped = (base, canary)

    def clear(self) -> None:
        self._scoped = ()
