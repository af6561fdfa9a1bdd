"""The status board: what the status page, ``/api/status`` and ``watchdog status`` show.

I/O boundary: the store, read on each request and bounded (:data:`STORE_BOUND`): the open
incidents and their records (the timeline), the latest resolved incident, the recent human
events. Everything else is in memory: the engine's frozen view (``Engine.view``), what the
production chore last learnt (``ProductionWatcher.seen``; Vercel is never called on the request
path) and the dispatcher's deployments seen healthy.

The board is never calmer than the store: before the engine has taken the stored incidents
back (start-up, or a failover's restore) it says it is restoring and shows the store's open
incidents; a follower shows the incident the leader recorded, not only its own engine's.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from watchdog.config import Settings, TargetConfig
from watchdog.core.engine import Engine
from watchdog.core.model import Action, Severity
from watchdog.core.targeting import Deployment
from watchdog.core.views import IncidentState, NextStep, TargetView
from watchdog.daemon.loops import SourceState
from watchdog.daemon.production import ProductionSeen, ProductionWatcher
from watchdog.daemon.rollouts import RolloutSeen
from watchdog.store.base import (
    HumanEvent,
    IncidentRecord,
    RollbackRecord,
    RollbackState,
    Store,
)
from watchdog.timeline import Entry, duration, incident_timeline, what_was_done

#: a store read on the request path gets this long before the board says it is unreachable
STORE_BOUND: Final = 3.0
#: how far back the board reads human events (holds, acks, the kill switch, deploys)
EVENTS_BACK: Final = timedelta(days=7)
#: records read per incident for its timeline
RECORDS: Final = 1000


class Phase(enum.StrEnum):
    """Where the daemon is in taking its state back from the store."""

    #: the store is not open yet
    STARTING = "starting"
    #: electing a leader, or re-seeding the engine from the store
    RESTORING = "restoring"
    RUNNING = "running"


#: what a level means, mildest first (the badge's colour follows it)
LEVELS: Final = ("unknown", "monitor", "notify", "page", "rollback")
_INCIDENT_LEVEL: Final = {
    Severity.P0: "page",
    Severity.P1: "page",
    Severity.INVESTIGATE: "page",
    Severity.P2: "notify",
    Severity.P3: "monitor",
}
_PHASE_LABEL: Final = {
    "in_flight": "ROLLING BACK",
    "succeeded": "ROLLED BACK · VERIFYING",
    "verified": "ROLLED BACK · VERIFIED",
    "failed": "ROLLBACK FAILED",
    "verify_failed": "ROLLBACK DID NOT TAKE",
    "shadow": "WOULD ROLL BACK (SHADOW MODE)",
}
_STORED_PHASE: Final = {
    RollbackState.INTENT: "in_flight",
    RollbackState.REQUESTED: "in_flight",
    RollbackState.SUCCEEDED: "succeeded",
    RollbackState.VERIFIED: "verified",
    RollbackState.FAILED: "failed",
    RollbackState.VERIFY_FAILED: "verify_failed",
    RollbackState.SHADOW: "shadow",
}


@dataclass(frozen=True, slots=True)
class Headline:
    """The badge: ``level`` (one of :data:`LEVELS`, or "restoring"), its words, since when."""

    level: str
    label: str
    since: datetime | None
    summary: str


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    """One recent deployment and what it is to the watchdog (live, known bad, ...)."""

    id: str
    created_at: datetime | None
    commit: str | None
    url: str | None
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Deployments:
    live: str | None
    live_since: datetime | None
    rows: tuple[DeploymentRow, ...]
    #: where an automatic rollback would go now (None: nowhere, ``next_reason`` says why)
    next_target: str | None
    next_reason: str
    looked_up_at: datetime | None
    error: str | None
    #: while a rollback pins production: how to undo it once a fix is ready
    undo: tuple[str, ...]
    #: the project's rolling release as last read ("dpl_b serves 10%, ..."), None: none
    rollout: str | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """How to hold or stop the watchdog: the CLI line and the HTTP call (bearer token)."""

    what: str
    cli: str
    http: str


@dataclass(frozen=True, slots=True)
class SourceRow:
    name: str
    last_ok: datetime | None
    last_error: str | None
    skipped_polls: int


@dataclass(frozen=True, slots=True)
class PastIncident:
    record: IncidentRecord
    done: str
    duration: str


@dataclass(frozen=True, slots=True)
class TargetBoard:
    name: str
    headline: Headline
    view: TargetView | None
    #: the store's open incident for the target (the one pages and the timeline are about)
    incident: IncidentRecord | None
    timeline: tuple[Entry, ...]
    next: tuple[NextStep, ...]
    last_incident: PastIncident | None
    deployments: Deployments
    sources: tuple[SourceRow, ...]
    commands: tuple[Command, ...]
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Board:
    now: datetime
    phase: Phase
    leader: bool
    kill_switch: bool
    #: the latest kill-switch event (who, why, when), if the store has one
    kill_switch_event: HumanEvent | None
    shadow: bool
    #: why the store's facts are missing (None when they were read)
    store_error: str | None
    targets: tuple[TargetBoard, ...]


@dataclass
class _Stored:
    """What one request read from the store."""

    open: dict[str, IncidentRecord] = field(default_factory=dict)
    timelines: dict[str, list[Entry]] = field(default_factory=dict)
    last: dict[str, PastIncident] = field(default_factory=dict)
    rollbacks: dict[str, list[RollbackRecord]] = field(default_factory=dict)
    kill_switch: HumanEvent | None = None
    error: str | None = None


class Cockpit:
    """Builds the :class:`Board`; one per daemon, reading what the daemon's parts expose."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        store: Store,
        now: Callable[[], datetime],
        phase: Callable[[], Phase],
        leader: Callable[[], bool],
        sources: Callable[[], Iterable[SourceState]],
        production: Callable[[], ProductionWatcher],
        seen_healthy: Callable[[str], frozenset[str]],
        notes: Callable[[str], tuple[str, ...]],
        rollouts: Callable[[str], RolloutSeen | None] = lambda _target: None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._store = store
        self._now = now
        self._phase = phase
        self._leader = leader
        self._sources = sources
        self._production = production
        self._seen_healthy = seen_healthy
        self._notes = notes
        self._rollouts = rollouts

    async def board(self) -> Board:
        now = self._now()
        phase = self._phase()
        stored = _Stored(error="the store is not open yet") if phase is Phase.STARTING else None
        if stored is None:
            try:
                async with asyncio.timeout(STORE_BOUND):
                    stored = await self._read(now)
            except Exception as exc:  # the page must render even with the store down
                stored = _Stored(error=f"the store did not answer: {type(exc).__name__} {exc}")
        return Board(
            now=now,
            phase=phase,
            leader=self._leader(),
            kill_switch=self._engine.kill_switch,
            kill_switch_event=stored.kill_switch,
            shadow=self._settings.shadow,
            store_error=stored.error,
            targets=tuple(self._target(t, now, phase, stored) for t in self._settings.targets),
        )

    # ----------------------------------------------------------------- the store

    async def _read(self, now: datetime) -> _Stored:
        stored = _Stored()
        store = self._store
        events = await store.list_events(since=now - EVENTS_BACK)
        switches = [e for e in events if e.kind == "kill_switch"]
        stored.kill_switch = switches[-1] if switches else None
        for incident in await store.list_incidents(open_only=True):
            stored.open.setdefault(incident.target, incident)
        recent = await store.list_incidents(limit=50)
        for target in {t.name for t in self._settings.targets}:
            rollbacks = await store.list_rollbacks(target=target)
            stored.rollbacks[target] = rollbacks
            current = stored.open.get(target)
            if current is not None:
                decisions = await store.list_decisions(incident=current.id, limit=RECORDS)
                actions = await store.list_actions(incident=current.id, limit=RECORDS)
                stored.timelines[target] = incident_timeline(
                    current, decisions, actions, rollbacks, events
                )
            past = next((i for i in recent if i.target == target and not i.open), None)
            if past is not None:
                decisions = await store.list_decisions(incident=past.id, limit=RECORDS)
                actions = await store.list_actions(incident=past.id, limit=RECORDS)
                done = what_was_done(past, decisions, actions, rollbacks)
                stored.last[target] = PastIncident(past, done, duration(past, now))
        return stored

    # ----------------------------------------------------------------- one target

    def _target(
        self, target: TargetConfig, now: datetime, phase: Phase, stored: _Stored
    ) -> TargetBoard:
        name = target.name
        view = self._engine.view(name, now) if phase is Phase.RUNNING else None
        record = stored.open.get(name)
        rollbacks = stored.rollbacks.get(name, [])
        latest = next((r for r in reversed(rollbacks) if record and r.incident == record.id), None)
        headline = _headline(view, record, latest, phase, self._leader())
        entries = stored.timelines.get(name, ())
        steps = list(view.next) if view is not None else []
        steps += self._shell_steps(target, view, phase)
        steps.sort(key=lambda s: (s.at is None, s.at or now))
        sources = tuple(
            SourceRow(s.source.name, s.last_ok, s.last_error, s.skipped)
            for s in self._sources()
            if s.source.target == name
        )
        links = tuple(
            (label, url)
            for label, url in (("dashboard", target.dashboard_url), ("runbook", target.runbook_url))
            if url and url.startswith(("https://", "http://"))
        )
        return TargetBoard(
            name=name,
            headline=headline,
            view=view,
            incident=record,
            timeline=tuple(entries),
            next=tuple(steps),
            last_incident=stored.last.get(name),
            deployments=self._deployments(target, view),
            sources=sources,
            commands=commands(name),
            links=links,
        )

    def _shell_steps(
        self, target: TargetConfig, view: TargetView | None, phase: Phase
    ) -> list[NextStep]:
        """What only the shell knows will happen: the restore, Vercel's job timeout."""
        if phase is not Phase.RUNNING:
            return [NextStep(None, "the engine takes the stored state back, then decides again")]
        incident = view.incident if view is not None else None
        if (
            incident is not None
            and incident.rollback == "in_flight"
            and incident.rollback_at is not None
            and target.deployer is not None
        ):
            limit = incident.rollback_at + target.deployer.job_timeout
            return [NextStep(limit, "gives up waiting for Vercel's job and pages P0")]
        return []

    def _deployments(self, target: TargetConfig, view: TargetView | None) -> Deployments:
        name = target.name
        watcher = self._production()
        seen = watcher.seen.get(name, ProductionSeen())
        deployer = watcher.deployers.get(name)
        known_bad = set(view.guards.known_bad) if view is not None else set()
        healthy = self._seen_healthy(name)
        live = view.deployment if view is not None and view.deployment else None
        current = seen.current
        live = live or (current.id if current else None)
        choice_to: str | None = None
        if deployer is None:
            choice_why = "no deployer is configured: the watchdog only pages"
        elif current is None:
            choice_why = "production has not been looked up yet"
        else:
            # the core's own choice, on what the production chore last listed
            choice = deployer.policy.choose(current, seen.candidates, known_bad, healthy)
            choice_to = choice.target.id if choice.target else None
            choice_why = choice.reason
        rows = _rows(current, seen.candidates, live, known_bad, healthy, choice_to)
        return Deployments(
            live=live,
            live_since=view.deployed_at if view is not None else None,
            rows=rows,
            next_target=choice_to,
            next_reason=choice_why,
            looked_up_at=seen.looked_up_at,
            error=seen.error,
            undo=self._notes(name),
            rollout=rollout_line(self._rollouts(name)),
        )


def rollout_line(seen: RolloutSeen | None) -> str | None:
    """The rolling release in a sentence, as the rollout chore last read it (None: none)."""
    if seen is None:
        return None
    release = seen.release
    failed = f" (the last read failed: {seen.error})" if seen.error else ""
    if release is None or not release.active_for(None) or release.canary is None:
        return f"Rolling release: not readable{failed}." if release is None and failed else None
    rest = f", {release.base.id} the rest" if release.base is not None else ""
    stage = (
        f"stage {release.active.index + 1} of {len(release.stages)}"
        if release.active is not None and release.stages
        else "stage unknown"
    )
    if release.awaiting_approval:
        stage += ", waiting for approval"
    elif release.paused:
        stage += ", paused"
    return f"Rolling release: {release.canary.id} serves {release.share()}{rest} ({stage}){failed}."


def _rows(
    current: Deployment | None,
    candidates: Sequence[Deployment],
    live: str | None,
    known_bad: set[str],
    healthy: frozenset[str],
    next_target: str | None,
) -> tuple[DeploymentRow, ...]:
    """The live deployment first, then the newest candidates, then known-bad ones not listed."""
    listed: dict[str, Deployment] = {}
    if current is not None:
        listed[current.id] = current
    for dep in candidates[:6]:
        listed.setdefault(dep.id, dep)
    for dep_id in sorted(known_bad):
        listed.setdefault(dep_id, Deployment(dep_id))
    if live is not None:
        listed.setdefault(live, Deployment(live))
    rows = []
    for dep in listed.values():
        roles = []
        if dep.id == live:
            roles.append("live")
        if dep.id == next_target:
            roles.append("next rollback target")
        if dep.id in known_bad:
            roles.append("known bad")
        if dep.id in healthy and dep.id not in known_bad:
            # healthy before it went bad: known bad is what counts now
            roles.append("seen healthy")
        if dep.rollback_candidate and dep.id != live and dep.id not in known_bad:
            roles.append("candidate")
        rows.append(DeploymentRow(dep.id, dep.created_at, dep.commit, dep.url, tuple(roles)))
    order = {d: i for i, d in enumerate(listed)}
    rows.sort(key=lambda r: (r.id != live, order[r.id]))
    return tuple(rows)


def _headline(
    view: TargetView | None,
    record: IncidentRecord | None,
    latest: RollbackRecord | None,
    phase: Phase,
    leader: bool,
) -> Headline:
    """Never calmer than the store: the worst of the decision, the engine's incident and the
    store's open incident."""
    incident = view.incident if view is not None else None
    stored_phase = _STORED_PHASE.get(latest.state) if latest is not None else None
    if incident is not None and (record is None or record.id == incident.id):
        assert view is not None
        if incident.rollback == "none" and stored_phase is not None and latest is not None:
            # after a restart the engine may judge the rolled-back deployment as a new
            # chapter of the incident: the store still says what the rollback did
            return _stored_rollback(latest, stored_phase, record or latest)
        return _engine_headline(view, incident)
    if record is not None:
        label = _PHASE_LABEL.get(stored_phase or "", "INCIDENT OPEN")
        level = "rollback" if stored_phase else _INCIDENT_LEVEL[Severity(record.severity)]
        if phase is not Phase.RUNNING:
            why = "restoring: the engine has not taken the stored incident back yet"
        elif not leader:
            why = "this replica follows: the leader acts on it"
        else:
            why = "this replica's engine does not hold it"
        return Headline(
            level,
            f"{label} · {record.severity}",
            record.opened_at,
            f"incident {record.id} is open in the store ({why}): {record.reason}",
        )
    if phase is not Phase.RUNNING:
        return Headline("restoring", "RESTORING", None, "restoring state from the store")
    if view is None:
        return Headline("unknown", "NO DATA YET", None, "no sample or event seen yet")
    return _decision_headline(view)


def _stored_rollback(
    rb: RollbackRecord, phase: str, about: IncidentRecord | RollbackRecord
) -> Headline:
    severity = about.severity if isinstance(about, IncidentRecord) else "P0"
    since = rb.verified_at or rb.finished_at or rb.requested_at
    moved = f"{rb.from_deployment or '?'} → {rb.to_deployment or '?'}"
    return Headline(
        "rollback",
        f"{_PHASE_LABEL[phase]} · {severity}",
        since,
        f"rollback {moved}: {phase.replace('_', ' ')} (as the store records it). {rb.detail}",
    )


def _decision_headline(view: TargetView) -> Headline:
    sev = f" · {view.severity}" if view.severity else ""
    label = {
        Action.MONITOR: "OK · MONITORING",
        Action.NOTIFY: f"NOTIFIED{sev}",
        Action.PAGE: f"PAGED{sev}",
        Action.ROLLBACK: f"ROLLBACK{sev}",
    }[view.action]
    return Headline(view.action.value, label, view.since, view.reason)


def _engine_headline(view: TargetView, incident: IncidentState) -> Headline:
    phase = incident.rollback
    if phase in _PHASE_LABEL:
        since = incident.rollback_done_at if phase != "in_flight" else incident.rollback_at
        to = f" to {incident.rollback_to}" if incident.rollback_to else ""
        detail = f" ({incident.rollback_detail})" if incident.rollback_detail else ""
        summary = f"rollback{to}: {phase.replace('_', ' ')}{detail}. {view.reason}"
        return Headline("rollback", f"{_PHASE_LABEL[phase]} · {incident.severity}", since, summary)
    level = max(view.action.value, _INCIDENT_LEVEL[incident.severity], key=LEVELS.index)
    if level == view.action.value and view.action is not Action.MONITOR:
        return _decision_headline(view)
    # the decision is calmer than the open incident (clearing, or restored before a poll)
    return Headline(
        level,
        f"INCIDENT OPEN · {incident.severity}",
        incident.opened_at,
        view.reason
        if view.reason != "no data yet"
        else "restored from the store; waiting for the first poll",
    )


def commands(target: str) -> tuple[Command, ...]:
    """The lines that hold or stop the watchdog for ``target`` (control calls need the token)."""

    def post(path: str, body: str) -> str:
        return (
            f'curl -X POST -H "Authorization: Bearer $WATCHDOG_API_TOKEN" '
            f"-H 'Content-Type: application/json' -d '{body}' \"$WATCHDOG_URL{path}\""
        )

    return (
        Command(
            "hold automatic rollback (pages still go out)",
            f'watchdog hold {target} 30m --reason "<why>"',
            post("/api/hold", f'{{"target": "{target}", "duration": "30m", "reason": "<why>"}}'),
        ),
        Command(
            "end a hold early",
            f"watchdog hold {target} 0s",
            post("/api/hold", f'{{"target": "{target}", "duration": "0s"}}'),
        ),
        Command(
            "acknowledge a P1 page: fix forward",
            f"watchdog ack {target} --decision fix_forward",
            post("/api/ack", f'{{"target": "{target}", "decision": "fix_forward"}}'),
        ),
        Command(
            "kill switch: no automatic actions anywhere",
            'watchdog kill-switch on --reason "<why>"',
            post("/api/kill-switch", '{"on": true, "reason": "<why>"}'),
        ),
        Command(
            "kill switch off",
            "watchdog kill-switch off",
            post("/api/kill-switch", '{"on": false}'),
        ),
        Command(
            "declare an incident: roll back now",
            f'watchdog declare {target} --reason "<why>"',
            post("/api/declare", f'{{"target": "{target}", "reason": "<why>"}}'),
        ),
    )
