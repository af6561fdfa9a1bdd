"""What the dispatcher knows about each target's production, with one writer per fact.

No I/O. Two facts live here and nowhere else in the actions:

- the deployments the watchdog watched and found healthy (the best rollback targets), learnt
  from the engine's quiet decisions;
- the deployment a rollback *pinned* production to. After a Vercel rollback, Vercel stops
  auto-assigning new deployments to production until someone promotes one, so every message
  carries the undo note while the pin holds.

Only :meth:`ProductionView.pinned` (called by the rollback runner once production serves the
target) sets a pin, and only :meth:`ProductionView.saw` lifts it: when a decision shows a
deployment that is neither the pinned one nor the one rolled back from. A decision still
showing the old deployment only means the engine has not applied the rollback's deploy event
yet; it must not erase the note (that race erased it before).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from watchdog.core.model import Action, Decision


@dataclass
class _Pin:
    to: str
    frm: str | None


@dataclass
class _Target:
    healthy: set[str] = field(default_factory=set)
    pin: _Pin | None = None


class ProductionView:
    def __init__(self) -> None:
        self._targets: dict[str, _Target] = {}

    def _of(self, target: str) -> _Target:
        return self._targets.setdefault(target, _Target())

    def saw(self, decision: Decision) -> None:
        """Learn from a decision: a quiet one vouches for its deployment; a new one unpins."""
        state = self._of(decision.target)
        if decision.action is Action.MONITOR and decision.incident is None and decision.deployment:
            # a deployment the watchdog watched and found healthy is the best rollback target
            state.healthy.add(decision.deployment)
        pin = state.pin
        if pin is not None and decision.deployment and decision.deployment not in (pin.to, pin.frm):
            # someone promoted another deployment: auto-assignment is back on
            state.pin = None

    def pinned(self, target: str, to: str, frm: str | None) -> None:
        """A rollback moved production from ``frm`` to ``to``."""
        self._of(target).pin = _Pin(to, frm)

    def healthy(self, target: str) -> frozenset[str]:
        return frozenset(self._of(target).healthy)

    def pinned_to(self, target: str) -> str | None:
        pin = self._of(target).pin
        return pin.to if pin is not None else None
