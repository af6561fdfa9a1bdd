"""Telling the channel: chat messages in the background, and the procedure's status updates.

I/O boundary: none of its own: every message goes into the chat channel of the
:class:`~watchdog.actions.outbox.OutboxWorker` (stored, then delivered in order in the
background, given up after ``chat_max_age``), so a failing chat never delays a page or a
rollback. The open-incident table here is
the one place that knows each incident's status line ("In Progress", "Completed", "Blocked")
and when its next five-minute update is due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog

from watchdog.actions.base import Deployment
from watchdog.actions.outbox import OutboxWorker
from watchdog.actions.slack import (
    describe_impact,
    human_duration,
    render_page,
    render_rollback_complete,
    render_rollback_in_progress,
    render_update,
)
from watchdog.clock import Clock
from watchdog.core.model import Decision, Severity

log = structlog.get_logger(__name__)

Status = Literal["In Progress", "Completed", "Blocked"]
Notes = Callable[[str], tuple[str, ...]]


def _impact(decision: Decision) -> str:
    return describe_impact(decision.observations, decision.rule or "see the page")


@dataclass
class OpenIncident:
    target: str
    incident: str
    opened_at: datetime
    last_update: datetime
    status: Status = "In Progress"
    progress: str = "incident opened"
    next_step: str = "watching the signals"
    eta: str = "unknown"
    updates: int = 0


@dataclass(frozen=True)
class ChatSettings:
    update_interval: timedelta
    incident_commander: str
    point_of_contact: str
    rollback_method: str
    #: ETA quoted in "rollback in progress"
    rollback_eta: timedelta


class IncidentUpdates:
    def __init__(
        self,
        *,
        outbox: OutboxWorker,
        clock: Clock,
        settings: ChatSettings,
        notes: Notes,
    ) -> None:
        self._outbox = outbox
        self._clock = clock
        self._settings = settings
        self._notes = notes
        self._open: dict[str, OpenIncident] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------------- the incident table

    def opened(self, target: str, incident: str, opened_at: datetime) -> None:
        if incident not in self._open:
            self._open[incident] = OpenIncident(target, incident, opened_at, self._clock.now())

    def closed(self, incident: str) -> OpenIncident | None:
        return self._open.pop(incident, None)

    def set_status(
        self,
        incident: str,
        status: Status,
        progress: str,
        next_step: str,
        eta: str = "unknown",
    ) -> None:
        item = self._open.get(incident)
        if item is not None:
            item.status, item.progress, item.next_step, item.eta = status, progress, next_step, eta

    async def post_due(self) -> None:
        """Post the procedure's status update for every open incident that is due one."""
        now = self._clock.now()
        for item in list(self._open.values()):
            if now - item.last_update < self._settings.update_interval:
                continue
            item.last_update = now
            item.updates += 1
            self.chat(
                # keyed by its minute, not a counter: a restarted daemon counts from 1 again
                # and would find updates 1, 2, ... "sent already"
                f"{item.incident}/slack/update/{now.strftime('%Y%m%dT%H%M')}",
                item.target,
                item.incident,
                render_update(
                    at=now,
                    status=item.status,
                    progress=item.progress,
                    next_step=item.next_step,
                    eta=item.eta,
                    notes=self._notes(item.target),
                ),
            )

    # ----------------------------------------------------------------- chat

    def chat(self, key: str, target: str, incident: str | None, text: str) -> None:
        """Put ``text`` in the outbox under ``key``, in the background; never awaited."""
        if not self._outbox.configured("chat"):
            return

        async def run() -> None:
            try:
                await self._outbox.put("chat", key, target, incident, {"text": text})
            except Exception:  # the store failing: chat must never stop a caller
                log.exception("chat_failed", key=key)

        task = asyncio.create_task(run(), name=f"chat:{key}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def chat_page(self, decision: Decision, action: str | None = None) -> None:
        """The procedure's "incident" message for a page or a notification."""
        assert decision.incident is not None
        severity = str(decision.severity or Severity.P0)
        if action is None:
            action = (
                f"Paged on-call. Automatic rollback refused by {decision.refused_by}."
                if decision.refused_by
                else "Paged on-call; no automatic rollback"
            )
        self._about(
            decision,
            f"page/{decision.action}/{severity}",
            render_page(
                issue=decision.reason,
                severity=severity,
                impact=_impact(decision),
                action=action,
                commander=self._settings.incident_commander,
                notes=self._notes(decision.target),
            ),
        )

    def rollback_requested(
        self, decision: Decision, target: Deployment, method: str, action: str | None = None
    ) -> None:
        """The procedure's "rollback in progress" message, and the status line to match
        (``action``: what is done, in words other than "rolling back to ...")."""
        assert decision.incident is not None
        eta = self._clock.now() + self._settings.rollback_eta
        self.set_status(
            decision.incident,
            "In Progress",
            action or f"{method} to {target.id} requested",
            "waiting for Vercel, then verifying",
            eta.strftime("%H:%M UTC"),
        )
        self._about(
            decision,
            "rollback-in-progress",
            render_rollback_in_progress(
                issue=decision.reason,
                severity=str(decision.severity or Severity.P0),
                impact=_impact(decision),
                target_deployment=target.id,
                target_created_at=target.created_at,
                eta=eta,
                commander=self._settings.incident_commander,
                action=action,
            ),
        )

    def rollback_completed(
        self,
        decision: Decision,
        target: Deployment,
        *,
        took: timedelta,
        duration: timedelta,
        method: str | None = None,
        impact: str | None = None,
    ) -> None:
        """The procedure's "rollback complete" message (with the undo note while pinned);
        an abort names its own method and impact (only the canary's share was hit)."""
        assert decision.incident is not None
        self.set_status(
            decision.incident,
            "Completed",
            f"rolled back to {target.id} in {human_duration(took)}",
            "intensive monitoring for 2 hours",
        )
        self._about(
            decision,
            "rollback-complete",
            render_rollback_complete(
                issue=decision.reason,
                method=method or self._settings.rollback_method,
                duration=duration,
                impact=impact or _impact(decision),
                contact=self._settings.point_of_contact,
                notes=self._notes(decision.target),
            ),
        )

    def rollback_shadowed(self, decision: Decision, what: str) -> None:
        """Shadow mode's "would roll back" message: everything ran but the deployer call."""
        assert decision.incident is not None
        self._about(
            decision,
            "shadow",
            render_page(
                issue=decision.reason,
                severity=str(decision.severity or Severity.P0),
                impact=_impact(decision),
                action=f"SHADOW MODE: {what} (no change made)",
                commander=self._settings.incident_commander,
            ),
        )

    def _about(self, decision: Decision, kind: str, text: str) -> None:
        """Chat about the decision's incident, journaled as ``<incident>/slack/<kind>``."""
        assert decision.incident is not None
        self.chat(f"{decision.incident}/slack/{kind}", decision.target, decision.incident, text)

    def cancel(self) -> None:
        """Drop pending chat (shutdown: a rollback matters, a late Slack message does not)."""
        for task in list(self.tasks):
            task.cancel()
