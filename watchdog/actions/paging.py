"""Pages: the one path every alert to a human takes (trigger, resolve, the rollback marker).

I/O boundary: none of its own: every page goes into the
:class:`~watchdog.actions.outbox.OutboxWorker`, which stores it (fenced to the leader, never
twice under the same key) and delivers it in the background until the pager accepts it.
Building the page from a decision is pure (:func:`page_from_decision`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
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


class PageReason(enum.StrEnum):
    """Why a decision pages: the only news worth waking someone for (DESIGN §6)."""

    NEW_INCIDENT = "new_incident"
    ESCALATED = "escalated"  # more severe, or the same severity now rolling back
    REFUSED = "refused"  # a guard rail (named in the page) refused the rollback


#: at one severity, rolling back is the more urgent news than paging
_ACTION_RANK: dict[Action, int] = {Action.ROLLBACK: 0, Action.PAGE: 1}

#: refusals that are not news: the rollback runner paged the failure itself, with its why
_NOT_NEWS_REFUSALS = frozenset({"rollback_failed"})


@dataclass(frozen=True, slots=True)
class Paged:
    """What one chapter of an incident has been paged about so far."""

    #: (severity rank, action rank) of the most urgent page; lower is more urgent
    level: tuple[int, int] | None = None
    refusals: frozenset[str] = frozenset()


def level_of(action: Action, severity: Severity | None) -> tuple[int, int]:
    return ((severity or Severity.P0).rank, _ACTION_RANK.get(action, 2))


def page_news(paged: Paged | None, decision: Decision) -> PageReason | None:
    """Whether ``decision`` is news that pages, and which; None for a restatement.

    Pages go out on a new incident, an escalation, and a rollback refused by a guard rail
    not reported yet in this chapter. An open incident's standing level restated (the same
    or a calmer severity, another rule, a reworded reason) pages no one: its alert stays
    open under the same dedup key anyway.
    """
    if decision.incident is None or decision.action not in _ACTION_RANK:
        return None
    paged = paged or Paged()
    if decision.refused_by:
        if decision.refused_by in _NOT_NEWS_REFUSALS or decision.refused_by in paged.refusals:
            return None
        return PageReason.REFUSED
    if paged.level is None:
        return PageReason.NEW_INCIDENT
    if level_of(decision.action, decision.severity) < paged.level:
        return PageReason.ESCALATED
    return None


def after_page(paged: Paged | None, decision: Decision) -> Paged:
    """What the chapter has been paged about once ``decision``'s page is stored."""
    paged = paged or Paged()
    level = level_of(decision.action, decision.severity)
    best = level if paged.level is None else min(level, paged.level)
    refusals = paged.refusals | ({decision.refused_by} if decision.refused_by else set())
    return Paged(best, frozenset(refusals))


def page_key(decision: Decision) -> str:
    """The journal kind of a decision's page: its level, or the guard rail that refused, and
    the chapter, so a restart (which forgets what was paged) never sends the same news twice
    and two different pieces of news never share a key."""
    chapter = f"@{decision.chapter}" if decision.chapter > 1 else ""
    if decision.refused_by:
        return f"refused/{decision.refused_by}{chapter}"
    return f"{decision.action}/{decision.severity}{chapter}"


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
