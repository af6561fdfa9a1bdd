"""Pages: the one path every alert to a human takes (trigger, resolve, the rollback marker).

I/O boundary: the configured :class:`~watchdog.actions.base.Pager`, always through the
:class:`~watchdog.actions.journal.Journal`, so a page is written ahead, fenced to the leader and
never sent twice under the same key. Building the page from a decision is pure
(:func:`page_from_decision`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watchdog.actions.base import Change, Page, Pager
from watchdog.actions.journal import Journal, Outcome
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
    """Sends pages through the journal and counts them; without a pager every call is a no-op."""

    def __init__(self, pager: Pager | None, journal: Journal, metrics: Metrics | None) -> None:
        self._pager = pager
        self._journal = journal
        self._metrics = metrics

    async def page(self, page: Page, kind: str) -> bool:
        """Trigger (or update: same dedup key) the incident's alert; ``kind`` keys the journal.

        True when the pager has it (sent now or before), so the caller may stop re-sending.
        """
        if self._pager is None:
            return True
        pager = self._pager
        outcome = await self._journal.run(
            f"{page.incident}/page/{kind}",
            "page",
            page.target,
            page.incident,
            lambda: pager.trigger(page),
            detail={"severity": str(page.severity), "summary": page.summary},
            retry_failed=True,
        )
        if self._metrics is not None and outcome is not Outcome.FENCED:
            result = {Outcome.DONE: "sent", Outcome.DUPLICATE: "deduplicated"}.get(
                outcome, "failed"
            )
            self._metrics.pages.labels(target=page.target, result=result).inc()
        return outcome in (Outcome.DONE, Outcome.DUPLICATE)

    async def resolve(self, target: str, incident: str, at: datetime) -> None:
        if self._pager is None:
            return
        pager = self._pager
        await self._journal.run(
            f"{incident}/resolve",
            "resolve",
            target,
            incident,
            lambda: pager.resolve(target, incident, at),
            retry_failed=True,
        )

    async def change(self, incident: str, change: Change) -> None:
        """The "rollback executed" marker on the service's timeline (pages no one)."""
        if self._pager is None:
            return
        pager = self._pager
        await self._journal.run(
            f"{incident}/change/{change.deployment}",
            "change",
            change.target,
            incident,
            lambda: pager.change(change),
        )
