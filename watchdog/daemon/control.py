"""The control facade: what the HTTP API and the CLI may ask of, and tell, the running daemon.

I/O boundary: the store (human events are recorded before they are applied, so a restart
keeps them) and the pipeline, which applies each human event to the engine as an event:
hold, ack, declare, kill switch. Nothing here writes engine state directly. The status board
(page, ``/api/status``, ``watchdog status``) is :mod:`~watchdog.daemon.cockpit`'s.

Until the engine has taken its state back from the store (:class:`Phase`), human events are
refused with :class:`StartingError`: a hold applied before the restore would be overwritten by
the snapshot, and a declare would act on an engine that does not know the open incidents yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import structlog

from watchdog.actions.dispatcher import Dispatcher
from watchdog.clock import Clock
from watchdog.config import Settings
from watchdog.core.engine import Engine
from watchdog.core.model import AckDecision, AckEvent, DeclareEvent, HoldEvent, KillSwitchEvent
from watchdog.daemon.cockpit import LEVELS, Board, Cockpit, Phase
from watchdog.daemon.history import (
    IncidentPage,
    IncidentRow,
    deployed_at,
    incident_page,
    incident_rows,
)
from watchdog.daemon.loops import SourceState
from watchdog.daemon.pipeline import Health, Pipeline
from watchdog.daemon.production import ProductionWatcher
from watchdog.daemon.rollouts import RolloutSeen
from watchdog.metrics import Metrics
from watchdog.store.base import HumanEvent, Store

log = structlog.get_logger(__name__)

__all__ = ["Control", "Phase", "StartingError"]


class StartingError(Exception):
    """A human event arrived before the engine took its state back from the store."""


class Control:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        engine: Engine,
        clock: Clock,
        pipeline: Pipeline,
        metrics: Metrics,
        health: Health,
        sources: Callable[[], Iterable[SourceState]],
        leader: Callable[[], bool],
        polled_once: Callable[[], bool],
        phase: Callable[[], Phase] = lambda: Phase.RUNNING,
        production: Callable[[], ProductionWatcher] | None = None,
        dispatcher: Callable[[], Dispatcher | None] = lambda: None,
        rollouts: Callable[[str], RolloutSeen | None] = lambda _target: None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._engine = engine
        self._clock = clock
        self._pipeline = pipeline
        self._metrics = metrics
        self._health = health
        self._sources = sources
        self._leader = leader
        self._polled_once = polled_once
        self._phase = phase
        self._dispatcher = dispatcher
        empty = ProductionWatcher(
            {}, engine=engine, events=store, clock=clock, apply=pipeline.apply
        )
        self._cockpit = Cockpit(
            settings=settings,
            engine=engine,
            store=store,
            now=clock.now,
            phase=phase,
            leader=leader,
            sources=sources,
            production=production or (lambda: empty),
            seen_healthy=self._seen_healthy,
            notes=self._notes,
            rollouts=rollouts,
        )

    # ----------------------------------------------------------------- reads

    def now(self) -> datetime:
        return self._clock.now()

    def _seen_healthy(self, target: str) -> frozenset[str]:
        dispatcher = self._dispatcher()
        return dispatcher.seen_healthy(target) if dispatcher is not None else frozenset()

    def _notes(self, target: str) -> tuple[str, ...]:
        dispatcher = self._dispatcher()
        return dispatcher.notes(target) if dispatcher is not None else ()

    def readiness(self) -> list[str]:
        problems = []
        if self._phase() is not Phase.RUNNING:
            # not ready while the engine may hold less than the store: never a calm "ready"
            problems.append("restoring state from the store")
        if not self._health.store_ok:
            problems.append("store unreachable")
        if not self._polled_once() and any(True for _ in self._sources()):
            problems.append("no poll completed yet")
        return problems

    def status(self) -> dict[str, Any]:
        targets = []
        for target in self._settings.targets:
            last = self._pipeline.last.get(target.name)
            hold = self._engine.hold_until(target.name)
            targets.append(
                {
                    "name": target.name,
                    # no decision since start-up is not "monitor": the store may hold an incident
                    "action": last.action.value if last else None,
                    "severity": last.severity.value if last and last.severity else None,
                    "rule": last.rule if last else None,
                    "reason": last.reason if last else "no decision since start-up",
                    "path": list(last.path) if last else [],
                    "incident": last.incident if last else None,
                    "deployment": self._engine.deployment_of(target.name),
                    "hold_until": hold.isoformat() if hold else None,
                    "observations": [asdict(o) for o in self._engine.observations(target.name)],
                    "sources": [
                        {
                            "name": s.source.name,
                            "last_ok": s.last_ok.isoformat() if s.last_ok else None,
                            "last_error": s.last_error,
                            "skipped_polls": s.skipped,
                        }
                        for s in self._sources()
                        if s.source.target == target.name
                    ],
                }
            )
        return {
            "now": self._clock.now().isoformat(),
            "phase": self._phase().value,
            "leader": self._leader(),
            "kill_switch": self._engine.kill_switch,
            "shadow": self._settings.shadow,
            "targets": targets,
            # pages and chat the pager has not taken yet, and any given up on (the outbox)
            "notifications": (
                self._pipeline.dispatcher.outbox.summary()
                if self._pipeline.dispatcher is not None
                else {"pending": 0, "undelivered": []}
            ),
        }

    async def board(self) -> Board:
        """The status board (the page renders it; :meth:`cockpit` is its JSON)."""
        return await self._cockpit.board()

    async def cockpit(self) -> dict[str, Any]:
        """``/api/status``: the board, with the per-target keys :meth:`status` always had."""
        board = await self.board()
        legacy = self.status()
        old = {t["name"]: t for t in legacy["targets"]}
        data = asdict(board)
        targets = []
        for t in data["targets"]:
            merged = {**old.get(t["name"], {}), **t, "open_incident": t.pop("incident")}
            # the last decision may be calmer than the open incident (restored, clearing):
            # "action" is never calmer than the headline, "decision_action" is the decision
            merged["decision_action"] = merged.get("action")
            level = t["headline"]["level"]
            if level in LEVELS and LEVELS.index(level) > LEVELS.index(
                merged["action"] or "unknown"
            ):
                merged["action"] = level
            targets.append(merged)
        data["targets"] = targets
        return {**legacy, **data}

    async def history(self, limit: int = 100) -> list[IncidentRow]:
        """The incident history page: newest first, what was done, how long it lasted."""
        return await incident_rows(self._store, self._clock.now(), limit)

    async def incident_page(self, incident_id: str) -> IncidentPage | None:
        """One incident: its record, timeline and post-mortem draft."""
        return await incident_page(self._store, incident_id, self._clock.now())

    async def incidents(self, *, open_only: bool) -> list[dict[str, Any]]:
        return [asdict(i) for i in await self._store.list_incidents(open_only=open_only)]

    async def incident(self, incident_id: str) -> dict[str, Any] | None:
        record = await self._store.load_incident(incident_id)
        if record is None:
            return None
        return {
            **asdict(record),
            "decisions": [
                asdict(d) for d in await self._store.list_decisions(incident=incident_id)
            ],
            "actions": [asdict(a) for a in await self._store.list_actions(incident=incident_id)],
        }

    async def deployed_at(self, target: str, deployment: str | None) -> datetime | None:
        """When ``deployment`` went live on ``target``, from the recorded deploy events."""
        return await deployed_at(self._store, target, deployment)

    # ----------------------------------------------------------------- human events

    def _known(self, target: str) -> None:
        self._started()
        if target not in {t.name for t in self._settings.targets}:
            raise ValueError(f"unknown target {target!r}")

    def _started(self) -> None:
        if self._phase() is not Phase.RUNNING:
            raise StartingError(
                "the watchdog is restoring its state from the store: try again in a few seconds"
            )

    async def hold(self, target: str, duration: timedelta, reason: str, by: str) -> dict[str, Any]:
        """Hold automatic rollback for ``duration``; a zero duration releases the hold."""
        self._known(target)
        now = self._clock.now()
        until = now + duration
        if duration <= timedelta(0):
            # a release, recorded as one: a restart must not bring back the hold it ended
            await self._store.append_event(HumanEvent("release", target, now, by, reason))
            await self._pipeline.apply(HoldEvent(target, now, now, reason or "released", by))
            log.info("hold_released", target=target, by=by)
            return {"target": target, "hold_until": None}
        await self._store.append_event(HumanEvent("hold", target, now, by, reason, until))
        await self._pipeline.apply(HoldEvent(target, now, until, reason, by))
        log.info("hold_placed", target=target, until=until.isoformat(), by=by)
        return {"target": target, "hold_until": until.isoformat()}

    async def ack(self, target: str, decision: str, by: str) -> dict[str, Any]:
        self._known(target)
        now = self._clock.now()
        await self._store.append_event(
            HumanEvent("ack", target, now, by, data={"decision": decision})
        )
        decisions = await self._pipeline.apply(AckEvent(target, now, AckDecision(decision), by=by))
        return {
            "target": target,
            "action": decisions[-1].action.value,
            "reason": decisions[-1].reason,
        }

    async def declare(self, target: str, reason: str, by: str) -> dict[str, Any]:
        self._known(target)
        now = self._clock.now()
        await self._store.append_event(HumanEvent("declare", target, now, by, reason))
        decisions = await self._pipeline.apply(DeclareEvent(target, now, reason=reason, by=by))
        last = decisions[-1]
        return {
            "target": target,
            "incident": last.incident,
            "action": last.action.value,
            "reason": last.reason,
        }

    async def kill_switch(self, on: bool, reason: str, by: str) -> dict[str, Any]:
        self._started()
        now = self._clock.now()
        await self._store.append_event(
            HumanEvent("kill_switch", "*", now, by, reason, data={"on": on})
        )
        await self._pipeline.apply(KillSwitchEvent(now, on, reason))
        self._metrics.set_flag(self._metrics.kill_switch, on)
        log.warning("kill_switch_set", on=on, by=by)
        return {"kill_switch": on}
