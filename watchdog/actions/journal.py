"""Write-ahead for one side effect: fence, record the intent, act with retries, record the outcome.

I/O boundary: the store's :class:`~watchdog.store.base.ActionJournal` and whatever ``effect``
the caller hands over (a feature-flag switch; notifications go through the outbox,
:mod:`watchdog.actions.outbox`, which keeps the same journal). The journal never decides
*whether* to act; it makes one decided action safe to repeat: a key already recorded is a
duplicate and is skipped, so a restarted daemon never does it twice.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from watchdog.clock import Clock
from watchdog.retry import Retrier
from watchdog.store.base import ActionJournal, ActionRecord, ActionStatus
from watchdog.transport import CallError

log = structlog.get_logger(__name__)

CanAct = Callable[[], Awaitable[bool]]


class Outcome(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"
    DUPLICATE = "duplicate"  # the journal says it was done already
    FENCED = "fenced"  # not the leader


class Journal:
    """The write-ahead wrapper for a side effect done in line (a feature-flag switch)."""

    def __init__(
        self,
        store: ActionJournal,
        clock: Clock,
        retrier: Retrier,
        can_act: CanAct | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.retrier = retrier
        self._can_act = can_act

    async def allowed(self) -> bool:
        """The fencing hook: only the leader acts, and only while it is not stopping."""
        return self._can_act is None or await self._can_act()

    async def run(
        self,
        key: str,
        kind: str,
        target: str,
        incident: str | None,
        effect: Callable[[], Awaitable[object]],
        *,
        detail: Mapping[str, Any] | None = None,
        retrier: Retrier | None = None,
    ) -> Outcome:
        """Write-ahead one side effect, once per key (notifications use the outbox instead)."""
        if not await self.allowed():
            log.info("action_fenced", key=key, kind=kind, target=target)
            return Outcome.FENCED
        journal_key = key
        record = ActionRecord(
            key=journal_key,
            kind=kind,
            target=target,
            created_at=self.clock.now(),
            incident=incident,
            detail=dict(detail or {}),
        )
        if not await self.store.record_intent(record):
            return Outcome.DUPLICATE
        try:
            await (retrier or self.retrier)(
                effect,
                on_retry=lambda exc, wait: log.info(
                    "action_retried", key=journal_key, error=str(exc), wait_s=wait
                ),
            )
        except CallError as exc:
            log.warning("action_failed", key=journal_key, kind=kind, error=str(exc))
            await self.store.record_outcome(
                journal_key, ActionStatus.FAILED, self.clock.now(), error=str(exc)
            )
            return Outcome.FAILED
        await self.store.record_outcome(journal_key, ActionStatus.SUCCEEDED, self.clock.now())
        return Outcome.DONE
