"""The running daemon: sources → engine → store and dispatcher, on one event loop.

This is the async shell around the pure engine (DESIGN §2). It owns every I/O boundary the
engine must not see: the scheduler's poll tasks, the shared aiohttp session, the store, the
dispatcher, leadership, the HTTP server, and restart recovery.

Restart safety: incidents, rollbacks, holds and the kill switch live in the store. On start
(and on becoming leader) the engine is re-seeded from them, so an open incident keeps its id
(and its pager dedup key), a rollback already made is never made again, and cooldowns and
budgets survive; in-flight rollbacks are reconciled against Vercel, never re-issued.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from watchdog.actions.alertmanager import AlertmanagerPager
from watchdog.actions.base import Pager
from watchdog.actions.dispatcher import Dispatcher, TargetActions
from watchdog.actions.flags import build_flag
from watchdog.actions.pagerduty import PagerDutyConfig, PagerDutyPager, dedup_key
from watchdog.actions.slack import SlackNotifier
from watchdog.actions.vercel import VercelDeployer
from watchdog.actions.verify import Verifier
from watchdog.clock import Clock
from watchdog.config import Settings, TargetConfig
from watchdog.core.engine import Engine, RollbackPhase
from watchdog.core.model import (
    AckDecision,
    AckEvent,
    Decision,
    DeclareEvent,
    DeployEvent,
    Event,
    HoldEvent,
    KillSwitchEvent,
    Sample,
    Severity,
    Signal,
    UnknownReason,
)
from watchdog.core.rules import RulePack
from watchdog.daemon.scheduling import next_slot, phase
from watchdog.metrics import Metrics
from watchdog.sources import Source, build_source
from watchdog.store.base import (
    DecisionRecord,
    FencedError,
    HumanEvent,
    IncidentRecord,
    RollbackState,
    Store,
)

log = structlog.get_logger(__name__)

_PHASES = {
    RollbackState.INTENT: RollbackPhase.IN_FLIGHT,
    RollbackState.REQUESTED: RollbackPhase.IN_FLIGHT,
    RollbackState.SHADOW: RollbackPhase.IN_FLIGHT,
    RollbackState.SUCCEEDED: RollbackPhase.SUCCEEDED,
    RollbackState.VERIFIED: RollbackPhase.VERIFIED,
    RollbackState.FAILED: RollbackPhase.FAILED,
    RollbackState.VERIFY_FAILED: RollbackPhase.VERIFY_FAILED,
}


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


def _measures_error_rate(target: TargetConfig) -> bool:
    for source in target.sources:
        if source.kind == "sentry":
            return True
        if source.kind == "prometheus" and any(
            q.signal == Signal.ERROR_RATE for q in source.queries
        ):
            return True
    return False


@dataclass
class SourceState:
    source: Source
    signals: set[str] = field(default_factory=set)
    polls: int = 0
    skipped: int = 0
    last_ok: datetime | None = None
    last_error: str | None = None


class Daemon:
    """Wires everything for ``watchdog run`` (and the demo, which runs the same code)."""

    def __init__(
        self,
        settings: Settings,
        pack: RulePack,
        store: Store,
        *,
        clock: Clock,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.pack = pack
        self.store = store
        self.clock = clock
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.engine = Engine(
            pack,
            freezes=[f.window() for f in settings.freezes],
            kill_switch=settings.kill_switch,
        )
        self.sources: dict[str, SourceState] = {}
        self.deployers: dict[str, VercelDeployer] = {}
        self.dispatcher: Dispatcher | None = None
        self._pager: Pager | None = None
        self.leader = False
        self.epoch = 0
        self.polled_once = False
        self.store_ok = True
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last: dict[str, Decision] = {}
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._incidents: dict[str, IncidentRecord] = {}
        self._stopping = asyncio.Event()
        self._versions: dict[str, str] = {}
        #: called with every decision that changed (the demo's timeline, tests)
        self.listeners: list[Callable[[Decision], None]] = []

    # ----------------------------------------------------------------- lifecycle

    async def start(
        self, session: aiohttp.ClientSession | None = None, *, loops: bool = True
    ) -> None:
        """Open the store, wire the actions, take leadership, and start the loops.

        ``loops=False`` starts only the event loop (rollback outcomes flowing back to the
        engine), not the poll and tick loops: tests then drive ``ingest``/``apply`` with a
        fake clock without background loops moving that clock under them.
        """
        self._session = session or aiohttp.ClientSession()
        self._own_session = session is None
        await self.store.open()
        self.metrics.set_flag(self.metrics.kill_switch, self.engine.kill_switch)
        semaphore = asyncio.Semaphore(self.settings.scheduler.max_concurrency)
        targets: dict[str, TargetActions] = {}
        for target in self.settings.targets:
            names = []
            for config in target.sources:
                source = build_source(
                    config,
                    target=target.name,
                    session=self._session,
                    clock=self.clock,
                    semaphore=semaphore,
                )
                self.sources[source.name] = SourceState(source)
                names.append(source.name)
            self.metrics.declare_target(target.name, names)
            deployer = None
            if target.deployer is not None:
                deployer = VercelDeployer(target.deployer, self._session, self.clock)
                self.deployers[target.name] = deployer
            verifier = Verifier(target.verify, self._session, self.clock) if deployer else None
            flags = [build_flag(f, self._session, self.clock) for f in target.flags]
            targets[target.name] = TargetActions(
                deployer=deployer,
                verifier=verifier,
                # verification waits for the error rate to fall only where one is measured
                error_rate=self._error_rate_probe(target.name)
                if _measures_error_rate(target)
                else None,
                flags=flags,
            )
        self._pager = self._build_pager()
        self.dispatcher = Dispatcher(
            store=self.store,
            clock=self.clock,
            config=self.settings.dispatcher.model_copy(update={"shadow": self.settings.shadow})
            if self.settings.shadow
            else self.settings.dispatcher,
            pager=self._pager,
            notifier=SlackNotifier(self.settings.chat, self._session, self.clock)
            if self.settings.chat
            else None,
            targets=targets,
            on_event=self._events.put_nowait,
            can_act=self._can_act,
            metrics=self.metrics,
        )
        await self._elect()
        await self._export_last_drill()
        if loops:
            for state in self.sources.values():
                self._tasks.append(asyncio.create_task(self._poll_loop(state)))
            self._tasks.append(asyncio.create_task(self._tick_loop()))
        self._tasks.append(asyncio.create_task(self._event_loop()))
        log.info("watchdog_started", targets=len(self.settings.targets), sources=len(self.sources))

    async def stop(self) -> None:
        """Graceful shutdown: stop polling, let in-flight actions finish (bounded), close."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.dispatcher is not None:
            grace = self.settings.scheduler.shutdown_grace.total_seconds()
            try:
                await asyncio.wait_for(self.dispatcher.aclose(), timeout=grace)
            except TimeoutError:
                log.error("shutdown_grace_exceeded", grace_s=grace)
        if self.leader:
            with contextlib.suppress(Exception):
                await self.store.release(self.settings.leader.holder)  # type: ignore[attr-defined]
        await self.store.close()
        if self._session is not None and self._own_session:
            await self._session.close()
        log.info("watchdog_stopped")

    # ----------------------------------------------------------------- building

    def _build_pager(self) -> Pager | None:
        config = self.settings.pager
        assert self._session is not None
        if config is None:
            return None
        if isinstance(config, PagerDutyConfig):
            return PagerDutyPager(config, self._session, self.clock)
        return AlertmanagerPager(config, self._session, self.clock)

    def _error_rate_probe(self, target: str) -> Callable[[], float | None]:
        engine = self.engine

        def probe() -> float | None:
            ts = engine.targets.get(target)
            if ts is None:
                return None
            state = ts.signals.get(Signal.ERROR_RATE)
            if state is None or state.unknown is not None or not isinstance(state.value, float):
                return None
            return state.value

        return probe

    # ----------------------------------------------------------------- leadership

    async def _can_act(self) -> bool:
        return self.leader and not self._stopping.is_set()

    async def _elect(self) -> None:
        """Take or renew the lease; a new leader restores state and reconciles rollbacks."""
        acquire = getattr(self.store, "acquire", None)
        was = self.leader
        if acquire is None:
            self.leader = True
        else:
            try:
                lease = await acquire(
                    self.settings.leader.holder, self.settings.leader.ttl, self.clock.now()
                )
            except Exception as exc:  # the store is down: not leader until proven otherwise
                log.error("leader_election_failed", error=str(exc))
                lease = None
            self.leader = lease is not None
            if lease is not None:
                self.epoch = lease.epoch
        self.metrics.set_flag(self.metrics.is_leader, self.leader)
        if self.leader and not was:
            log.info("became_leader", holder=self.settings.leader.holder, epoch=self.epoch)
            await self._restore()
            if self.dispatcher is not None:
                for record in await self.dispatcher.reconcile():
                    log.info("rollback_reconciled", rollback=record.id, state=record.state.value)
        elif was and not self.leader:
            log.warning("lost_leadership", holder=self.settings.leader.holder)

    async def _restore(self) -> None:
        """Re-seed the engine from the store: incidents, rollbacks, holds, kill switch."""
        now = self.clock.now()
        window = self.pack.flowchart.budget_window
        # the store is the truth: an incident this replica opened while following was never
        # acted on (its engine may even believe a rollback in flight that nobody made)
        self._incidents.clear()
        self._last.clear()
        for target in self.settings.targets:
            self.engine.target(target.name).incident = None
            rollbacks = await self.store.list_rollbacks(target=target.name, since=now - window)
            self.engine.restore_rollbacks(
                target.name, [r.requested_at for r in rollbacks if r.automatic]
            )
        for incident in await self.store.list_incidents(open_only=True):
            self._incidents[incident.id] = incident
            mine = [
                r
                for r in await self.store.list_rollbacks(target=incident.target)
                if r.incident == incident.id
            ]
            latest = mine[-1] if mine else None
            phase_ = _PHASES[latest.state] if latest else RollbackPhase.NONE
            if (
                latest is None
                and self.dispatcher is not None
                and await self.dispatcher.settle_orphan(incident.id)
            ):
                phase_ = RollbackPhase.FAILED
            self.engine.restore_incident(
                incident.target,
                incident.id,
                opened_at=incident.opened_at,
                severity=Severity(incident.severity),
                rule=incident.rule or "",
                first_detected=incident.first_detected_at or incident.opened_at,
                deployment=incident.deployment,
                declared=incident.declared,
                rollback=phase_,
                rollback_at=latest.requested_at if latest else None,
                rollback_done_at=latest.finished_at if latest else None,
            )
        for event in await self.store.list_events():
            if event.kind == "hold" and event.until is not None and event.until > now:
                self.engine.restore_hold(event.target, event.until, event.reason)
            elif event.kind == "release":
                self.engine.restore_hold(event.target, event.at, "released")
            elif event.kind == "kill_switch":
                self.engine.kill_switch = bool(event.data.get("on"))
        self.metrics.set_flag(self.metrics.kill_switch, self.engine.kill_switch)
        await self._refresh_deployments()

    async def _refresh_deployments(self) -> None:
        """Learn what production serves, so deploy correlation has a go-live time."""
        for target, deployer in self.deployers.items():
            try:
                current = await deployer.current_production()
            except Exception as exc:
                log.warning("deployment_lookup_failed", target=target, error=str(exc))
                continue
            ts = self.engine.targets.get(target)
            if ts is not None and ts.deployment == current.id:
                continue
            # the deployment's own creation time, not when we noticed: a deploy learnt late
            # must not make its own errors look as if they predated it
            now = self.clock.now()
            live = min(current.created_at, now) if current.created_at else None
            log.info("deployment_live", target=target, deployment=current.id)
            with contextlib.suppress(Exception):  # the audit line must not block the event
                await self.store.append_event(
                    HumanEvent(
                        "deploy", target, live or now, "vercel", data={"deployment": current.id}
                    )
                )
            await self.apply(DeployEvent(target, now, current.id, live_since=live))

    # ----------------------------------------------------------------- loops

    async def _poll_loop(self, state: SourceState) -> None:
        source = state.source
        interval = source.interval.total_seconds()
        planned = self.clock.monotonic() + phase(
            source.name, interval, self.settings.scheduler.jitter
        )
        while not self._stopping.is_set():
            delay = planned - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
            started = self.clock.monotonic()
            self.metrics.scheduling_lag.observe(max(0.0, started - planned))
            samples = await self._poll_once(state, interval)
            self.metrics.record_poll(
                target=source.target,
                source=source.name,
                duration_s=self.clock.monotonic() - started,
                at_epoch_s=self.clock.now().timestamp(),
                error_reason=state.last_error,
            )
            await self.ingest(samples)
            slot = next_slot(planned, interval, self.clock.monotonic())
            if slot.skipped:
                state.skipped += slot.skipped
                log.warning("polls_skipped", source=source.name, skipped=slot.skipped)
            planned = slot.at

    async def _poll_once(self, state: SourceState, interval: float) -> list[Sample]:
        """One poll, bounded by the interval; a poll that raises or hangs yields unknowns."""
        source = state.source
        state.polls += 1
        try:
            samples = await asyncio.wait_for(source.poll(), timeout=interval)
        except TimeoutError:
            samples = self._unknowns(state, "poll overran its interval")
        except Exception as exc:  # a bug in a source must not stop the watchdog
            log.exception("source_crashed", source=source.name)
            samples = self._unknowns(state, f"source error: {type(exc).__name__}")
        errors = [s for s in samples if s.value is None]
        state.last_error = errors[0].unknown.value if errors and errors[0].unknown else None
        if not errors:
            state.last_ok = self.clock.now()
        state.signals.update(s.signal for s in samples)
        self.polled_once = True
        return samples

    def _unknowns(self, state: SourceState, detail: str) -> list[Sample]:
        now = self.clock.now()
        signals = state.signals or set(getattr(state.source, "signals", ()))
        return [
            Sample(
                state.source.target,
                signal,
                None,
                now,
                unknown=UnknownReason.PROVIDER_ERROR,
                source=state.source.name,
                detail=detail,
            )
            for signal in sorted(signals)
        ]

    async def _tick_loop(self) -> None:
        tick = self.settings.scheduler.tick.total_seconds()
        heartbeat_every = self.settings.heartbeat.interval.total_seconds()
        last_heartbeat = -1e18
        last_deploy_check = self.clock.monotonic()
        last_prune = self.clock.monotonic()
        while not self._stopping.is_set():
            await self.clock.sleep(tick)
            try:
                await self._elect()
                now = self.clock.now()
                for target in self.settings.targets:
                    await self._handle(self.engine.tick(target.name, now))
                if self.dispatcher is not None and self.leader:
                    await self.dispatcher.post_updates()
                    if isinstance(self._pager, AlertmanagerPager):
                        # Alertmanager forgets alerts that are not re-sent
                        await self._pager.repost(now)
                mono = self.clock.monotonic()
                if mono - last_deploy_check >= self.settings.scheduler.deploy_poll.total_seconds():
                    last_deploy_check = mono
                    await self._refresh_deployments()
                if mono - last_prune >= 3600:
                    last_prune = mono
                    await self.store.prune(now - self.settings.store.retention)
                self._export_blindness(now)
                self.metrics.heartbeat.set(time.time())
                if mono - last_heartbeat >= heartbeat_every:
                    last_heartbeat = mono
                    await self._ping_heartbeat()
                self.store_ok = await self.store.ping()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tick_failed")

    def _export_blindness(self, now: datetime) -> None:
        """watchdog_blind per source: every signal it produced unknown past blind_after."""
        limit = self.pack.flowchart.blind_after
        for state in self.sources.values():
            ts = self.engine.targets.get(state.source.target)
            if ts is None or not state.signals:
                continue
            blind = all(
                (sig := ts.signals.get(name)) is not None
                and sig.unknown is not None
                and now - (sig.last_known or sig.first_seen) >= limit
                for name in state.signals
            )
            self.metrics.blind.labels(target=state.source.target, source=state.source.name).set(
                1 if blind else 0
            )

    async def _export_last_drill(self) -> None:
        try:
            drills = await self.store.list_drills(limit=1)
        except Exception:  # metrics must never stop the daemon
            return
        if drills:
            drill = drills[0]
            self.metrics.drill_success.set(1 if drill.succeeded else 0)
            if drill.duration_s is not None:
                self.metrics.drill_duration.set(drill.duration_s)
            finished = drill.finished_at or drill.started_at
            self.metrics.last_drill.set(finished.timestamp())

    async def _event_loop(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self.apply(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event_failed", event=type(event).__name__)
            finally:
                self._events.task_done()

    async def _ping_heartbeat(self) -> None:
        url = self.settings.heartbeat.url
        if url is None or self._session is None or not self.leader:
            return
        try:
            async with self._session.get(
                url.get_secret_value(), timeout=aiohttp.ClientTimeout(total=10)
            ) as resp:
                if resp.status >= 300:
                    log.warning("heartbeat_rejected", status=resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("heartbeat_failed", error=type(exc).__name__)

    # ----------------------------------------------------------------- the pipeline

    async def ingest(self, samples: Sequence[Sample]) -> None:
        for sample in samples:
            self.metrics.observe_sample(sample)
            if sample.signal == Signal.VERSION and isinstance(sample.value, str):
                seen = self._versions.get(sample.target)
                self._versions[sample.target] = sample.value
                if seen != sample.value and sample.target in self.deployers:
                    # the app serves a new (or a first-seen) version: learn the deployment
                    # now, not at the next deploy_poll
                    await self._refresh_deployments()
            await self._handle(self.engine.observe(sample))

    async def apply(self, event: Event) -> list[Decision]:
        decisions = self.engine.apply(event)
        for decision in decisions:
            await self._handle(decision, force=True)
        return decisions

    async def _handle(self, decision: Decision, *, force: bool = False) -> None:
        previous = self._last.get(decision.target)
        self._last[decision.target] = decision
        changed = (
            previous is None
            or previous.key != decision.key
            or previous.incident != decision.incident
            or previous.rule != decision.rule
            # a different guard rail now refuses: the audit trail must say which
            or previous.refused_by != decision.refused_by
        )
        self.metrics.record_decision(decision)
        if not (changed or force or decision.execute_rollback or decision.resolved_incident):
            return
        self._export_rules(decision.target)
        if changed:
            for listener in self.listeners:
                listener(decision)
        incident = await self._record(decision, changed)
        if self.dispatcher is not None and self.leader:
            try:
                await self.dispatcher.execute(decision, incident)
            except FencedError:
                log.warning("fenced", target=decision.target)
                self.leader = False
                self.metrics.set_flag(self.metrics.is_leader, False)
            except Exception:
                # e.g. the store failing the journal write: an exception escaping here would
                # end the poll loop that called ingest, and the watchdog would go deaf
                self.store_ok = False
                log.exception("dispatch_failed", target=decision.target)

    def _export_rules(self, target: str) -> None:
        for obs in self.engine.observations(target):
            self.metrics.rule_threshold.labels(target=target, rule=obs.rule, signal=obs.signal).set(
                obs.threshold
            )
            self.metrics.rule_firing.labels(target=target, rule=obs.rule).set(
                1 if obs.firing else 0
            )

    async def _record(self, decision: Decision, changed: bool) -> IncidentRecord | None:
        """Audit the decision and keep the incident record current. Store trouble is logged,
        never allowed to stop a page or a rollback.

        Only the leader writes: a follower's engine opens its own incident for the same
        outage (its id is the second it saw it), which would be a duplicate incident record.
        """
        if not self.leader:
            return None
        try:
            if changed:
                await self.store.append_decision(
                    DecisionRecord(
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
                )
            if decision.resolved_incident:
                done = self._incidents.pop(decision.resolved_incident, None) or (
                    await self.store.load_incident(decision.resolved_incident)
                )
                if done is not None and done.open:
                    await self.store.save_incident(done.resolved(decision.at))
            incident_id = decision.incident
            if incident_id is None or decision.resolved_incident == incident_id:
                self._open_gauge()
                return None
            record = self._incidents.get(incident_id)
            ts = self.engine.targets[decision.target]
            live = ts.incident
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
                await self.store.save_incident(record)
                self._incidents[incident_id] = record
            self._open_gauge()
            return record
        except FencedError:
            raise
        except Exception as exc:
            self.store_ok = False
            log.error("store_write_failed", target=decision.target, error=str(exc))
            return self._incidents.get(decision.incident or "")

    def _open_gauge(self) -> None:
        self.metrics.open_incidents.set(len(self._incidents))

    async def deployed_at(self, target: str, deployment: str | None) -> datetime | None:
        """When ``deployment`` went live on ``target``, from the recorded deploy events."""
        if deployment is None:
            return None
        for event in reversed(await self.store.list_events(target=target)):
            if event.kind == "deploy" and event.data.get("deployment") == deployment:
                return event.at
        return None

    # ----------------------------------------------------------------- control (HTTP / CLI)

    def now(self) -> datetime:
        return self.clock.now()

    def readiness(self) -> list[str]:
        problems = []
        if not self.store_ok:
            problems.append("store unreachable")
        if not self.polled_once and self.sources:
            problems.append("no poll completed yet")
        return problems

    def status(self) -> dict[str, Any]:
        targets = []
        for target in self.settings.targets:
            last = self._last.get(target.name)
            ts = self.engine.targets.get(target.name)
            targets.append(
                {
                    "name": target.name,
                    "action": last.action.value if last else "monitor",
                    "severity": last.severity.value if last and last.severity else None,
                    "rule": last.rule if last else None,
                    "reason": last.reason if last else "no data yet",
                    "path": list(last.path) if last else [],
                    "incident": last.incident if last else None,
                    "deployment": ts.deployment if ts else None,
                    "hold_until": ts.hold_until.isoformat() if ts and ts.hold_until else None,
                    "observations": [asdict(o) for o in self.engine.observations(target.name)],
                    "sources": [
                        {
                            "name": s.source.name,
                            "last_ok": s.last_ok.isoformat() if s.last_ok else None,
                            "last_error": s.last_error,
                            "skipped_polls": s.skipped,
                        }
                        for s in self.sources.values()
                        if s.source.target == target.name
                    ],
                }
            )
        return {
            "now": self.clock.now().isoformat(),
            "leader": self.leader,
            "kill_switch": self.engine.kill_switch,
            "shadow": self.settings.shadow,
            "targets": targets,
        }

    async def incidents(self, *, open_only: bool) -> list[dict[str, Any]]:
        return [asdict(i) for i in await self.store.list_incidents(open_only=open_only)]

    async def incident(self, incident_id: str) -> dict[str, Any] | None:
        record = await self.store.load_incident(incident_id)
        if record is None:
            return None
        return {
            **asdict(record),
            "decisions": [asdict(d) for d in await self.store.list_decisions(incident=incident_id)],
            "actions": [asdict(a) for a in await self.store.list_actions(incident=incident_id)],
        }

    def _known(self, target: str) -> None:
        if target not in {t.name for t in self.settings.targets}:
            raise ValueError(f"unknown target {target!r}")

    async def hold(self, target: str, duration: timedelta, reason: str, by: str) -> dict[str, Any]:
        self._known(target)
        now = self.clock.now()
        until = now + duration
        await self.store.append_event(HumanEvent("hold", target, now, by, reason, until))
        await self.apply(HoldEvent(target, now, until, reason, by))
        log.info("hold", target=target, until=until.isoformat(), by=by)
        return {"target": target, "hold_until": until.isoformat()}

    async def ack(self, target: str, decision: str, by: str) -> dict[str, Any]:
        self._known(target)
        now = self.clock.now()
        await self.store.append_event(
            HumanEvent("ack", target, now, by, data={"decision": decision})
        )
        decisions = await self.apply(AckEvent(target, now, AckDecision(decision), by=by))
        return {
            "target": target,
            "action": decisions[-1].action.value,
            "reason": decisions[-1].reason,
        }

    async def declare(self, target: str, reason: str, by: str) -> dict[str, Any]:
        self._known(target)
        now = self.clock.now()
        await self.store.append_event(HumanEvent("declare", target, now, by, reason))
        decisions = await self.apply(DeclareEvent(target, now, reason=reason, by=by))
        last = decisions[-1]
        return {
            "target": target,
            "incident": last.incident,
            "action": last.action.value,
            "reason": last.reason,
        }

    async def kill_switch(self, on: bool, reason: str, by: str) -> dict[str, Any]:
        now = self.clock.now()
        await self.store.append_event(
            HumanEvent("kill_switch", "*", now, by, reason, data={"on": on})
        )
        await self.apply(KillSwitchEvent(now, on, reason))
        self.metrics.set_flag(self.metrics.kill_switch, on)
        log.warning("kill_switch", on=on, by=by)
        return {"kill_switch": on}
