"""Telling the channel: chat messages in the background, and the procedure's status updates.

I/O boundary: the configured :class:`~watchdog.actions.base.Notifier` (Slack), always through
the :class:`~watchdog.actions.journal.Journal` and always in a background task with a short
deadline, so a failing chat never delays a page or a rollback. The open-incident table here is
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

from watchdog.actions.base import Deployment, Notifier
from watchdog.actions.journal import Journal, Outcome
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
from watchdog.metrics import Metrics
from watchdog.retry import Retrier

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
    chat_deadline: timedelta
    incident_commander: str
    point_of_contact: str
    rollback_method: str
    #: ETA quoted in "rollback in progress"
    rollback_eta: timedelta


class IncidentUpdates:
    def __init__(
        self,
        *,
        notifier: Notifier | None,
        journal: Journal,
        retrier: Retrier,
        clock: Clock,
        settings: ChatSettings,
        notes: Notes,
        metrics: Metrics | None,
    ) -> None:
        self._notifier = notifier
        self._journal = journal
        # a chat message gets ``chat_deadline`` for all its retries, then it is dropped
        self._retrier = retrier.with_deadline(settings.chat_deadline.total_seconds())
        self._clock = clock
        self._settings = settings
        self._notes = notes
        self._metrics = metrics
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
                f"{item.incident}/slack/update/{item.updates}",
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
        """Send ``text`` in the background, journaled under ``key``; never awaited by callers."""
        if self._notifier is None:
            return
        notifier = self._notifier
        deadline = self._settings.chat_deadline.total_seconds()

        async def run() -> None:
            try:
                async with asyncio.timeout(deadline):
                    outcome = await self._journal.run(
                        key,
                        "chat",
                        target,
                        incident,
                        lambda: notifier.send(text),
                        retrier=self._retrier,
                    )
            except TimeoutError:
                log.warning("chat_dropped", key=key, reason="deadline")
                outcome = Outcome.FAILED
            if outcome is Outcome.DONE:
                # the message's first line is the procedure template's heading
                heading = text.strip().splitlines()[0] if text.strip() else ""
                log.info("chat_sent", key=key, target=target, incident=incident, heading=heading)
            if self._metrics is not None and outcome in (Outcome.DONE, Outcome.FAILED):
                result = "sent" if outcome is Outcome.DONE else "failed"
                self._metrics.notifications.labels(result=result).inc()

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

    def rollback_requested(self, decision: Decision, target: Deployment, method: str) -> None:
        """The procedure's "rollback in progress" message, and the status line to match."""
        assert decision.incident is not None
        eta = self._clock.now() + self._settings.rollback_eta
        self.set_status(
            decision.incident,
            "In Progress",
            f"{method} to {target.id} requested",
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
            ),
        )

    def rollback_completed(
        self, decision: Decision, target: Deployment, *, took: timedelta, duration: timedelta
    ) -> None:
        """The procedure's "rollback complete" message (with the undo note while pinned)."""
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
                method=self._settings.rollback_method,
                duration=duration,
                impact=_impact(decision),
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
