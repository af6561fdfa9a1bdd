"""The ingest pipeline: samples and events into the engine, decisions out to store and dispatcher.

I/O boundary: the store (the audit trail of decisions, and incident records) and the
dispatcher. Every sample a source returns and every event (human, deployment, rollback
outcome) passes :meth:`Pipeline.ingest` or :meth:`Pipeline.apply` exactly once; each decision
that changed is recorded, then handed to the dispatcher by the leader only. Store trouble is
logged and shown on ``/readyz``, never allowed to stop a page or a rollback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import structlog

from watchdog.actions.dispatcher import Dispatcher
from watchdog.actions.pagerduty import dedup_key
from watchdog.core.engine import Engine
from watchdog.core.model import Action, Decision, Event, Sample, Severity, Signal
from watchdog.daemon.leadership import Leadership
from watchdog.daemon.loops import SourceState
from watchdog.metrics import Metrics
from watchdog.store.base import DecisionRecord, FencedError, IncidentRecord, Store

log = structlog.get_logger(__name__)

#: called with each version a target's app reports (to learn a new deployment at once)
VersionSeen = Callable[[str, str], Awaitable[None]]


def jsonable(value: Any) -> Any:
    """Records hold JSON: datetimes become RFC 3339 strings, enums their values."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


@dataclass
class Health:
    """What ``/readyz`` reports: the store answered, and a first poll is done."""

    store_ok: bool = True


class Pipeline:
    def __init__(
        self,
        *,
        engine: Engine,
        store: Store,
        metrics: Metrics,
        leadership: Leadership,
        health: Health,
    ) -> None:
        self._engine = engine
        self._store = store
        self._metrics = metrics
        self._leadership = leadership
        self._health = health
        self.dispatcher: Dispatcher | None = None
        self.on_version: VersionSeen | None = None
        #: called with every decision that changed (the demo's timeline, tests)
        self.listeners: list[Callable[[Decision], None]] = []
        #: the latest decision per target (the status page)
        self.last: dict[str, Decision] = {}
        #: the open incidents' records, as last written
        self.incidents: dict[str, IncidentRecord] = {}
        #: rollback outcomes and deploy events the dispatcher sends back, applied in order
        self.events: asyncio.Queue[Event] = asyncio.Queue()

    def forget(self, incidents: Iterable[IncidentRecord]) -> None:
        """Start over from the store's open incidents (on becoming leader)."""
        self.last.clear()
        self.incidents = {i.id: i for i in incidents}

    # ----------------------------------------------------------------- inputs

    async def ingest(self, samples: Sequence[Sample]) -> None:
        for sample in samples:
            self._metrics.observe_sample(sample)
            if (
                self.on_version is not None
                and sample.signal == Signal.VERSION
                and isinstance(sample.value, str)
            ):
                await self.on_version(sample.target, sample.value)
            await self._handle(self._engine.observe(sample))

    async def apply(self, event: Event) -> list[Decision]:
        decisions = self._engine.apply(event)
        for decision in decisions:
            await self._handle(decision, force=True)
        return decisions

    async def redecide(self, targets: Iterable[str], now: datetime) -> None:
        """Decide again without a new sample: fix-forward windows, resolve periods, blindness."""
        for target in targets:
            await self._handle(self._engine.redecide(target, now))

    async def apply_queued(self) -> None:
        """Apply the dispatcher's events as they come (a background task for the daemon)."""
        while True:
            event = await self.events.get()
            try:
                await self.apply(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event_failed", event=type(event).__name__)
            finally:
                self.events.task_done()

    # ----------------------------------------------------------------- one decision

    async def _handle(self, decision: Decision, *, force: bool = False) -> None:
        previous = self.last.get(decision.target)
        self.last[decision.target] = decision
        if decision is previous and not decision.observations:
            # the engine's standing decision again (a quiet target's every sample): its action
            # is exported already, and no rule to export with it
            changed = False
            self._metrics.count_decision(decision)
        else:
            changed = (
                previous is None
                or previous.key != decision.key
                or previous.incident != decision.incident
                or previous.rule != decision.rule
                # a different guard rail now refuses: the audit trail must say which
                or previous.refused_by != decision.refused_by
            )
            self._metrics.record_decision(decision)
        if changed:
            log_decision(decision, leader=self._leadership.leader)
        if changed and decision.refused_by is not None and self._leadership.leader:
            # the engine's guard rails refuse without the dispatcher ever seeing a rollback;
            # counted once per decision that names a (new) guard rail, by the replica that acts
            self._metrics.count_refusal(decision.target, decision.refused_by)
            log.warning(
                "rollback_refused",
                target=decision.target,
                incident=decision.incident,
                guard=decision.refused_by,
                reason=decision.reason,
            )
        if not (changed or force or decision.execute_rollback or decision.resolved_incident):
            return
        self._export_rules(decision.target)
        if changed:
            for listener in self.listeners:
                listener(decision)
        incident = await self._record(decision, changed)
        # a new leader acts only once it has restored: before that its engine is a
        # follower's, whose incidents and rollbacks nobody acted on
        if self.dispatcher is not None and self._leadership.acting:
            try:
                await self.dispatcher.execute(decision, incident)
            except FencedError:
                log.warning("leadership_fenced", target=decision.target)
                self._leadership.fenced()
            except Exception:
                # e.g. the store failing the journal write: an exception escaping here would
                # end the poll loop that called ingest, and the watchdog would go deaf
                self._health.store_ok = False
                log.exception("dispatch_failed", target=decision.target)

    def _export_rules(self, target: str) -> None:
        for obs in self._engine.observations(target):
            self._metrics.rule_threshold.labels(
                target=target, rule=obs.rule, signal=obs.signal
            ).set(obs.threshold)
            self._metrics.rule_firing.labels(target=target, rule=obs.rule).set(
                1 if obs.firing else 0
            )

    async def _record(self, decision: Decision, changed: bool) -> IncidentRecord | None:
        """Audit the decision and keep the incident record current.

        Only the leader writes: a follower's engine opens its own incident for the same
        outage (its id is the second it saw it), which would be a duplicate incident record;
        a new leader starts writing once it has restored from the store.
        """
        if not self._leadership.acting:
            return None
        try:
            if changed:
                await self._store.append_decision(_decision_record(decision))
            if decision.resolved_incident:
                done = self.incidents.pop(decision.resolved_incident, None) or (
                    await self._store.load_incident(decision.resolved_incident)
                )
                if done is not None and done.open:
                    await self._store.save_incident(done.resolved(decision.at))
            incident_id = decision.incident
            if incident_id is None or decision.resolved_incident == incident_id:
                self._open_gauge()
                return None
            record = self.incidents.get(incident_id)
            live = self._engine.open_incident(decision.target)
            severity = live.severity.value if live else (decision.severity or Severity.P0).value
            if record is None or record.severity != severity:
                record = IncidentRecord(
                    id=incident_id,
                    target=decision.target,
                    opened_at=live.opened_at if live else decision.at,
                    severity=severity,
                    rule=decision.rule,
                    reason=decision.reason,
                    dedup_key=dedup_key(decision.target, incident_id),
                    deployment=live.deployment if live else decision.deployment,
                    declared=bool(live and live.declared),
                    first_detected_at=live.first_detected if live else decision.at,
                )
                await self._store.save_incident(record)
                self.incidents[incident_id] = record
            self._open_gauge()
            return record
        except FencedError:
            raise
        except Exception as exc:
            self._health.store_ok = False
            log.error("store_write_failed", target=decision.target, error=str(exc))
            return self.incidents.get(decision.incident or "")

    def _open_gauge(self) -> None:
        self._metrics.open_incidents.set(len(self.incidents))

    def export_blindness(self, sources: Iterable[SourceState], now: datetime) -> None:
        """watchdog_blind per source: every signal it produced is one the engine calls blind."""
        blind_by_target: dict[str, frozenset[str]] = {}
        for state in sources:
            target = state.source.target
            if not state.signals:
                continue
            blind = blind_by_target.get(target)
            if blind is None:
                blind = blind_by_target[target] = self._engine.blind_signals(target, now)
            self._metrics.set_blind(target, state.source.name, state.signals <= blind)


def log_decision(decision: Decision, *, leader: bool) -> None:
    """One JSON line per decision that changed: what, why, and the path that led there.

    Warning from ``page`` up, so a log-based alert on level catches every page and rollback
    even when no pager is configured; ``leader`` says whether this replica acts on it.
    """
    level = log.warning if decision.action.rank >= Action.PAGE.rank else log.info
    level(
        "decision_changed",
        target=decision.target,
        action=decision.action.value,
        severity=decision.severity.value if decision.severity else None,
        rule=decision.rule,
        reason=decision.reason,
        path=list(decision.path),
        incident=decision.incident,
        resolved_incident=decision.resolved_incident,
        refused_by=decision.refused_by,
        deployment=decision.deployment,
        execute_rollback=decision.execute_rollback,
        leader=leader,
    )


def _decision_record(decision: Decision) -> DecisionRecord:
    return DecisionRecord(
        target=decision.target,
        at=decision.at,
        action=decision.action.value,
        severity=decision.severity.value if decision.severity else None,
        rule=decision.rule,
        reason=decision.reason,
        path=decision.path,
        incident=decision.incident,
        data={
            "observations": [jsonable(asdict(o)) for o in decision.observations],
            "refused_by": decision.refused_by,
            "deployment": decision.deployment,
            "execute_rollback": decision.execute_rollback,
        },
    )
