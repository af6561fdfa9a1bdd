"""The outbox: every page, resolve, change event and chat message is stored before it is sent.

I/O boundary: the store's :class:`~watchdog.store.base.Outbox` table and journal, the
configured :class:`~watchdog.actions.base.Pager` and :class:`~watchdog.actions.base.Notifier`.
Deciding to notify costs one durable store write (:meth:`OutboxWorker.put`); delivery runs in
background passes, so a slow or failing pager never holds up a poll, a decision, a rollback
or a lease renewal. A pass delivers each ``(channel, incident)`` strictly in order (a resolve
never overtakes its trigger) and the incidents side by side (one incident's failing page
does not delay another's); a message the pager does not take is tried again with backoff
until it is accepted or older than its channel's maximum age, and then it is given up *loudly*
(``watchdog_page_undelivered``, a log line, the status page). A restart resumes whatever is
pending. Re-delivery is safe: PagerDuty dedups on the incident's key and Alertmanager
identifies an alert by its labels.

The pager and chat are separate channels, each with its own pass: a Slack outage never delays
a page. The codecs turning a :class:`~watchdog.actions.base.Page` or
:class:`~watchdog.actions.base.Change` into stored JSON and back are pure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import structlog

from watchdog.actions.base import Change, Notifier, Page, Pager
from watchdog.actions.journal import CanAct, Outcome
from watchdog.clock import Clock
from watchdog.core.model import Observation, Severity, UnknownReason
from watchdog.metrics import Metrics
from watchdog.retry import Retrier
from watchdog.store.base import (
    ActionJournal,
    ActionRecord,
    ActionStatus,
    FencedError,
    IncidentRecord,
    OutboxMessage,
    OutboxStatus,
)
from watchdog.store.base import Outbox as OutboxStore
from watchdog.transport import CallError

log = structlog.get_logger(__name__)

Channel = Literal["pager", "chat"]
CHANNELS: tuple[Channel, ...] = ("pager", "chat")
CHANNEL_OF: Mapping[str, Channel] = {
    "page": "pager",
    "resolve": "pager",
    "change": "pager",
    "chat": "chat",
}


class Store(OutboxStore, ActionJournal, Protocol):
    """What the outbox needs of the store: its table, and the journal it keeps in step."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """How long a message is tried, and how fast."""

    #: a page (resolve, change) not accepted within this is given up, loudly
    page_max_age: timedelta = timedelta(hours=24)
    #: a chat message this old is news no more (the 5-minute update from an hour ago)
    chat_max_age: timedelta = timedelta(minutes=30)
    #: one HTTP attempt, whatever the vendor's own timeout says
    attempt_timeout: timedelta = timedelta(seconds=15)
    #: the backoff between passes that failed: doubling from ``initial`` up to ``maximum``
    backoff_initial: timedelta = timedelta(seconds=1)
    backoff_maximum: timedelta = timedelta(seconds=60)

    def max_age(self, channel: Channel) -> timedelta:
        return self.page_max_age if channel == "pager" else self.chat_max_age


def backoff(attempts: int, policy: DeliveryPolicy, retry_after: float | None = None) -> float:
    """Seconds before the next pass tries a message that failed ``attempts`` times.

    A server's Retry-After wins when it is longer (a 429 means "not ingested, wait"), capped
    by the maximum so a silly hint cannot park a page for a day.
    """
    top = policy.backoff_maximum.total_seconds()
    wait = min(top, policy.backoff_initial.total_seconds() * 2.0 ** max(0, attempts - 1))
    if retry_after is not None:
        wait = max(wait, min(top, retry_after))
    return wait


# --------------------------------------------------------------------------- pure codecs


def _iso_opt(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _dt_opt(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def page_payload(page: Page) -> dict[str, Any]:
    """A page as stored JSON (:func:`page_from_payload` reads it back, equal)."""
    return {
        "target": page.target,
        "incident": page.incident,
        "severity": page.severity.value,
        "summary": page.summary,
        "at": page.at.isoformat(),
        "reason": page.reason,
        "path": list(page.path),
        "rule": page.rule,
        "deployment": page.deployment,
        "observations": [
            {
                "rule": o.rule,
                "signal": o.signal,
                "value": o.value,
                "op": o.op,
                "threshold": o.threshold,
                "firing": o.firing,
                "unknown": None if o.unknown is None else o.unknown.value,
                "since": _iso_opt(o.since),
            }
            for o in page.observations
        ],
        "refused_by": page.refused_by,
        "event_class": page.event_class,
        "notes": list(page.notes),
    }


def page_from_payload(data: Mapping[str, Any]) -> Page:
    return Page(
        target=data["target"],
        incident=data["incident"],
        severity=Severity(data["severity"]),
        summary=data["summary"],
        at=datetime.fromisoformat(data["at"]),
        reason=data.get("reason", ""),
        path=tuple(data.get("path", ())),
        rule=data.get("rule"),
        deployment=data.get("deployment"),
        observations=tuple(
            Observation(
                rule=o["rule"],
                signal=o["signal"],
                value=o["value"],
                op=o["op"],
                threshold=o["threshold"],
                firing=o["firing"],
                unknown=None if o.get("unknown") is None else UnknownReason(o["unknown"]),
                since=_dt_opt(o.get("since")),
            )
            for o in data.get("observations", ())
        ),
        refused_by=data.get("refused_by"),
        event_class=data.get("event_class", "deploy-regression"),
        notes=tuple(data.get("notes", ())),
    )


def change_payload(change: Change) -> dict[str, Any]:
    return {
        "target": change.target,
        "summary": change.summary,
        "at": change.at.isoformat(),
        "deployment": change.deployment,
        "details": dict(change.details),
    }


def change_from_payload(data: Mapping[str, Any]) -> Change:
    return Change(
        target=data["target"],
        summary=data["summary"],
        at=datetime.fromisoformat(data["at"]),
        deployment=data.get("deployment"),
        details=dict(data.get("details", {})),
    )


def page_for_incident(record: IncidentRecord) -> Page:
    """The page an open incident stands for, when no page of it is in the outbox (an
    upgrade from before the outbox): its severity and reason as recorded, since it opened."""
    severity = Severity(record.severity)
    return Page(
        target=record.target,
        incident=record.id,
        severity=severity,
        summary=f"[{severity}] {record.target}: {record.reason}",
        at=record.opened_at,
        reason=record.reason,
        path=("restart", "reassert"),
        rule=record.rule,
        deployment=record.deployment,
    )


# --------------------------------------------------------------------------- the worker


class OutboxWorker:
    """Puts notifications in the store and delivers them in background passes."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        policy: DeliveryPolicy,
        pager: Pager | None,
        notifier: Notifier | None,
        pager_retrier: Retrier,
        chat_retrier: Retrier,
        can_act: CanAct | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy
        self._pager = pager
        self._notifier = notifier
        self._retriers: dict[Channel, Retrier] = {"pager": pager_retrier, "chat": chat_retrier}
        self._can_act = can_act
        self._metrics = metrics
        self._locks: dict[Channel, asyncio.Lock] = {c: asyncio.Lock() for c in CHANNELS}
        self._again: dict[Channel, bool] = dict.fromkeys(CHANNELS, False)
        self.tasks: set[asyncio.Task[None]] = set()
        #: what the status page shows: pending count and the messages given up on
        self.pending = 0
        self.undelivered: list[OutboxMessage] = []

    def summary(self) -> dict[str, Any]:
        """What the status page shows: how many wait, and every message given up on."""
        return {
            "pending": self.pending,
            "undelivered": [
                {
                    "key": m.key,
                    "kind": m.kind,
                    "target": m.target,
                    "incident": m.incident,
                    "created_at": m.created_at.isoformat(),
                    "status": str(m.status),
                    "attempts": m.attempts,
                    "error": m.error,
                }
                for m in self.undelivered
            ],
        }

    def configured(self, kind: str) -> bool:
        return (self._notifier if CHANNEL_OF[kind] == "chat" else self._pager) is not None

    async def _allowed(self) -> bool:
        return self._can_act is None or await self._can_act()

    # ----------------------------------------------------------------- putting

    async def put(
        self,
        kind: str,
        key: str,
        target: str,
        incident: str | None,
        payload: dict[str, Any],
        *,
        detail: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Store one notification (durably, before anything is sent) and start delivering.

        DUPLICATE when ``key`` was put before (by this run or an earlier one): a decision
        is never notified twice. DONE means stored, not yet accepted by the vendor.
        """
        if not self.configured(kind):
            return Outcome.DONE
        if not await self._allowed():
            log.info("action_fenced", key=key, kind=kind, target=target)
            return Outcome.FENCED
        now = self._clock.now()
        message = OutboxMessage(key, kind, target, now, payload, incident=incident)
        if not await self._store.enqueue(message):
            return Outcome.DUPLICATE
        # the journal keeps its record of every notification, as before the outbox
        await self._store.record_intent(
            ActionRecord(key, kind, target, now, incident=incident, detail=dict(detail or {}))
        )
        self.kick(CHANNEL_OF[kind])
        return Outcome.DONE

    async def reassert(self, incidents: Sequence[IncidentRecord]) -> int:
        """On becoming leader: send every open incident's standing alert again, first.

        The latest page of each incident is put again as it was (same dedup key, same
        labels and ``startsAt``), so PagerDuty keeps one incident and Alertmanager keeps the
        alert firing, and the new leader's pager re-posts it from then on. Returns how many.
        """
        if self._pager is None:
            return 0
        count = 0
        stamp = self._clock.now().isoformat()
        for record in incidents:
            pages = [
                m for m in await self._store.list_outbox(incident=record.id) if m.kind == "page"
            ]
            if pages and pages[-1].status is OutboxStatus.PENDING:
                continue  # still to be delivered: that delivery is the re-assertion
            if pages:
                base, payload = pages[-1].key, pages[-1].payload
            else:
                base, payload = f"{record.id}/page", page_payload(page_for_incident(record))
            outcome = await self.put(
                "page",
                f"{base}#reassert@{stamp}",
                record.target,
                record.id,
                payload,
                detail={"severity": payload.get("severity"), "reassert": True},
            )
            count += outcome is Outcome.DONE
        if count:
            log.info("incidents_reasserted", count=count)
        return count

    # ----------------------------------------------------------------- delivering

    def kick(self, channel: Channel | None = None) -> None:
        """Start a delivery pass in the background (a pass already running goes round again)."""
        for ch in (channel,) if channel else CHANNELS:
            task = asyncio.create_task(self._pass(ch), name=f"outbox:{ch}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def deliver_due(self) -> None:
        """One pass of each channel, awaited (the daemon's chore kicks instead)."""
        for ch in CHANNELS:
            await self._pass(ch)

    def cancel(self) -> None:
        """Shutdown: stop delivering; what is pending stays in the store for the next run."""
        for task in list(self.tasks):
            task.cancel()

    async def _pass(self, channel: Channel) -> None:
        lock = self._locks[channel]
        if lock.locked():
            self._again[channel] = True
            return
        async with lock:
            try:
                while True:
                    self._again[channel] = False
                    if not await self._allowed():
                        return
                    await self._round(channel)
                    if not self._again[channel]:
                        break
                await self._refresh()
            except FencedError:
                log.warning("leadership_fenced", component="outbox")
            except asyncio.CancelledError:
                raise
            except Exception:  # the store failing: the next pass tries again
                log.exception("outbox_pass_failed", channel=channel)

    async def _round(self, channel: Channel) -> None:
        groups: dict[str, list[OutboxMessage]] = {}
        for m in await self._store.list_outbox(status=OutboxStatus.PENDING, limit=5000):
            if CHANNEL_OF.get(m.kind) == channel:
                groups.setdefault(m.incident or m.key, []).append(m)
        await asyncio.gather(*(self._group(channel, msgs) for msgs in groups.values()))

    async def _group(self, channel: Channel, messages: list[OutboxMessage]) -> None:
        for message in messages:
            if not await self._one(channel, message):
                return  # the head was not accepted: the rest of the incident waits for it

    async def _one(self, channel: Channel, m: OutboxMessage) -> bool:
        """Try ``m`` if it is due; True when the group may go on past it."""
        now = self._clock.now()
        if now - m.created_at > self._policy.max_age(channel):
            await self._give_up(m, OutboxStatus.EXPIRED, m.error or "never accepted")
            return True
        if m.next_at is not None and m.next_at > now:
            return False
        try:
            await self._retriers[channel](
                lambda: self._attempt(m),
                on_retry=lambda exc, wait: log.info(
                    "action_retried", key=m.key, error=str(exc), wait_s=wait
                ),
            )
        except CallError as exc:
            if not exc.retryable:
                await self._give_up(m, OutboxStatus.REJECTED, str(exc))
                return True
            attempts = m.attempts + 1
            wait = backoff(attempts, self._policy, exc.retry_after)
            log.warning("action_failed", key=m.key, kind=m.kind, error=str(exc), next_s=wait)
            await self._store.mark_outbox(
                m.key,
                OutboxStatus.PENDING,
                attempts=attempts,
                next_at=self._clock.now() + timedelta(seconds=wait),
                error=str(exc),
            )
            self._count(m, "failed")
            return False
        done = self._clock.now()
        await self._store.mark_outbox(
            m.key, OutboxStatus.DELIVERED, attempts=m.attempts + 1, finished_at=done
        )
        await self._journal(m, ActionStatus.SUCCEEDED, done)
        self._count(m, "sent")
        return True

    async def _attempt(self, m: OutboxMessage) -> None:
        """One delivery attempt, bounded whatever the vendor's client does."""
        timeout = self._policy.attempt_timeout.total_seconds()
        try:
            async with asyncio.timeout(timeout):
                await self._send(m)
        except TimeoutError:
            raise CallError(
                f"{m.kind} delivery took longer than {timeout:g} s",
                retryable=True,
                reason="timeout",
            ) from None

    def _send(self, m: OutboxMessage) -> Awaitable[None]:
        data = m.payload
        if m.kind == "chat":
            assert self._notifier is not None
            return self._notifier.send(str(data["text"]))
        assert self._pager is not None
        if m.kind == "page":
            return self._pager.trigger(page_from_payload(data))
        if m.kind == "resolve":
            return self._pager.resolve(
                data["target"], data["incident"], datetime.fromisoformat(data["at"])
            )
        return self._pager.change(change_from_payload(data))

    async def _give_up(self, m: OutboxMessage, status: OutboxStatus, why: str) -> None:
        now = self._clock.now()
        await self._store.mark_outbox(
            m.key, status, attempts=m.attempts, finished_at=now, error=why
        )
        await self._journal(m, ActionStatus.FAILED, now, error=why)
        self._count(m, "failed")
        log.error(
            "notification_undelivered",
            key=m.key,
            kind=m.kind,
            target=m.target,
            incident=m.incident,
            status=str(status),
            attempts=m.attempts,
            error=why,
        )

    async def _journal(
        self, m: OutboxMessage, status: ActionStatus, at: datetime, error: str | None = None
    ) -> None:
        # the intent may be missing if the previous run died between the two writes
        await self._store.record_intent(
            ActionRecord(m.key, m.kind, m.target, m.created_at, incident=m.incident)
        )
        await self._store.record_outcome(m.key, status, at, error=error)

    def _count(self, m: OutboxMessage, result: str) -> None:
        if result == "sent":
            text = str(m.payload.get("text", "")).strip() if m.kind == "chat" else ""
            # a chat message's first line is the procedure template's heading
            heading = text.splitlines()[0] if text else ""
            log.info(
                f"{m.kind}_sent", key=m.key, target=m.target, incident=m.incident, heading=heading
            )
        if self._metrics is None:
            return
        if m.kind == "page":
            self._metrics.pages.labels(target=m.target, result=result).inc()
        elif m.kind == "chat":
            self._metrics.notifications.labels(result=result).inc()

    async def _refresh(self) -> None:
        """The gauges and the status page's view of what is pending and given up."""
        pending = await self._store.list_outbox(status=OutboxStatus.PENDING, limit=5000)
        lost = [
            *await self._store.list_outbox(status=OutboxStatus.EXPIRED, limit=200),
            *await self._store.list_outbox(status=OutboxStatus.REJECTED, limit=200),
        ]
        lost.sort(key=lambda m: m.seq)
        self.pending, self.undelivered = len(pending), lost
        if self._metrics is not None:
            self._metrics.outbox_pending.set(len(pending))
            for kind in CHANNEL_OF:
                self._metrics.page_undelivered.labels(kind=kind).set(
                    sum(1 for m in lost if m.kind == kind)
                )
