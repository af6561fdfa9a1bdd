"""Pages: the one path every alert to a human takes (trigger, resolve, the rollback marker).

I/O boundary: none of its own: every page goes into the
:class:`~watchdog.actions.outbox.OutboxWorker`, which stores it (fenced to the leader, never
twice under the same key) and delivers it in the background until the pager accepts it.
Building the page from a decision is pure (:func:`page_from_decision`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watchdog.actions.base import Change, Page
from watchdog.actions.journal import Outcome
from watchdog.actions.outbox import OutboxWorker, change_payload, page_payload
from watchdog.core.model import Action, Decision, Severity
from watchdog.metrics import Metrics


def page_from_decision(decision: Decision, notes: Sequence[str] = ()) -> Page:
    """The page a decision asks for; a refused rollback's page names the guard rail."""
    assert decision.incident is not None
    severity = decision.severity or Severity.P0
    if decision.refused_by:
        summary = (
            f"[{severity}] {decision.target}: automatic rollback refused by "
            f"{decision.refused_by}: {decision.reason}"
        )
    elif decision.action is Action.ROLLBACK:
        summary = f"[{severity}] {decision.target}: rolling back: {decision.reason}"
    else:
        summary = f"[{severity}] {decision.target}: {decision.reason}"
    return Page(
        target=decision.target,
        incident=decision.incident,
        severity=severity,
        summary=summary,
        at=decision.at,
        reason=decision.reason,
        path=decision.path,
        rule=decision.rule,
        deployment=decision.deployment,
        observations=decision.observations,
        refused_by=decision.refused_by,
        notes=tuple(notes),
    )


class Paging:
    """Puts pages in the outbox and counts duplicates; without a pager every call is a no-op."""

    def __init__(self, outbox: OutboxWorker, metrics: Metrics | None) -> None:
        self._outbox = outbox
        self._metrics = metrics

    async def page(self, page: Page, kind: str) -> bool:
        """Trigger (or update: same dedup key) the incident's alert; ``kind`` keys the journal
        and says why this page goes out (the decision's level, a guard rail, a failure), so
        two different reasons never share a key.

        True once the page is stored (now or before): delivery is the outbox's job from here.
        """
        outcome = await self._outbox.put(
            "page",
            f"{page.incident}/page/{kind}",
            page.target,
            page.incident,
            page_payload(page),
            detail={"severity": str(page.severity), "summary": page.summary},
        )
        if self._metrics is not None and outcome is Outcome.DUPLICATE:
            self._metrics.pages.labels(target=page.target, result="deduplicated").inc()
        return outcome in (Outcome.DONE, Outcome.DUPLICATE)

    async def resolve(self, target: str, incident: str, at: datetime) -> None:
        await self._outbox.put(
            "resolve",
            f"{incident}/resolve",
            target,
            incident,
            {"target": target, "incident": incident, "at": at.isoformat()},
        )

    async def change(self, incident: str, change: Change) -> None:
        """The "rollback executed" marker on the service's timeline (pages no one)."""
        await self._outbox.put(
            "change",
            f"{incident}/change/{change.deployment}",
            change.target,
            incident,
            change_payload(change),
        )
