"""The decision engine: samples and events in, one decision per target out.

Pure and synchronous (no I/O, no asyncio, no clock): time arrives with the data, so the same
engine decides live, in ``watchdog replay`` and in tests, and a backtest can never disagree
with production. The same inputs in the same order give the same decisions.

**One writer.** The engine's state (``watchdog.core.state``) changes only through the
methods below, fed by samples and events; nothing else assigns into it. The events and who
sends them:

==========================  ===============================================================
``Sample``                  sources, through the daemon's pipeline; trace lines in replay
``DeployEvent``             the daemon, when it learns what production serves (Vercel), and
                            the dispatcher, when its rollback switched production
``RollbackResultEvent``     the dispatcher (succeeded / failed / verified / verify_failed);
                            in replay, the replay driver stands in for a deployer
``AckEvent`` ``HoldEvent``  humans, through the control API / CLI (and trace lines)
``DeclareEvent``            humans, likewise
``KillSwitchEvent``         config at start, humans through the control API
restore_* methods           the daemon after a restart or on becoming leader (the store's
                            incidents, rollbacks, holds)
==========================  ===============================================================

The rollback phase of an incident therefore has exactly one writer, this class: it commits
a rollback (``execute_rollback``) and learns its fate only from those events.

Per (rule, signal) the engine keeps a :class:`~watchdog.core.state.Track`: the run of
samples satisfying the rule; an unknown sample neither extends nor breaks a run (DESIGN §3).
The flowchart (``watchdog.core.flowchart``) and guard rails (``watchdog.core.guards``) are
pure functions of that state.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from watchdog.core import decide as deciding
from watchdog.core import events
from watchdog.core import tracks as tracking
from watchdog.core.decide import (
    blind,
    decide,
    firing,
    observe_track,
    rollback_note,
)
from watchdog.core.flowchart import (
    BLIND_RULE,
    DECLARED_RULE,
    FlowVerdict,
)
from watchdog.core.guards import Guard
from watchdog.core.model import (
    AckEvent,
    Action,
    Decision,
    DeclareEvent,
    DeployEvent,
    EngineSnapshot,
    Event,
    HoldEvent,
    IncidentView,
    KillSwitchEvent,
    Observation,
    RollbackResultEvent,
    RolloutEvent,
    Sample,
    Severity,
    Signal,
    SignalReading,
    UnknownReason,
    Window,
)
from watchdog.core.rules import Rule, RulePack
from watchdog.core.state import (
    PLAIN,
    REQUESTS,
    TREND,
    VERSION,
    Incident,
    Reading,
    RollbackPhase,
    SignalState,
    TargetState,
    Track,
)
from watchdog.core.tracks import Tracker
from watchdog.core.views import TargetView, target_view

__all__ = [
    "BLIND_RULE",
    "DECLARED_RULE",
    "Engine",
    "FlowVerdict",
    "Guard",
    "RollbackPhase",
    "rollback_note",
]


class Engine:
    """Holds per-target state and turns samples and events into decisions."""

    def __init__(
        self,
        pack: RulePack,
        *,
        freezes: Sequence[Window] = (),
        kill_switch: bool = False,
    ) -> None:
        self.pack = pack
        self.freezes = tuple(freezes)
        self.kill_switch = kill_switch
        self.targets: dict[str, TargetState] = {}
        self._rules_for: dict[tuple[str, str], tuple[Rule, ...]] = {}
        trends = [r.trend for r in pack.rules if r.trend is not None]
        self._history_window = max(
            (max(t.window, t.baseline) for t in trends), default=timedelta(0)
        ).total_seconds()
        self._trend_signals = {
            (r.trend.signal or r.signal) for r in pack.rules if r.trend is not None
        }
        self._tracker = Tracker(pack)
        self._blind_after = pack.flowchart.blind_after

    # ----------------------------------------------------------------- inputs

    def target(self, name: str) -> TargetState:
        ts = self.targets.get(name)
        if ts is None:
            ts = self.targets[name] = TargetState(name)
        return ts

    def observe(self, sample: Sample) -> Decision:
        """Take one sample, update the target's state, and decide."""
        return self.observe_value(
            sample.target,
            sample.signal,
            sample.value,
            sample.at,
            sample.unknown,
            sample.requests,
            sample.deployment,
        )

    def observe_value(
        self,
        target: str,
        signal: str,
        value: float | str | None,
        at: datetime,
        unknown: UnknownReason | None = None,
        requests: int | None = None,
        deployment: str | None = None,
    ) -> Decision:
        """:meth:`observe` without building a :class:`Sample` (replay's hot path)."""
        ts = self.targets.get(target)
        if ts is None:
            ts = self.target(target)
        if deployment is not None:
            return self._tagged(ts, signal, deployment, value, requests, at)
        state = ts.signals.get(signal)
        if state is None:
            state = ts.signals[signal] = SignalState(at, at, self._role(signal))
        elif at == state.last_at:
            # every input counts once: the same (target, signal, time) again is a replayed
            # line or a retried poll, not a second consecutive observation
            return ts.last if ts.last is not None else self._decide(ts, ts.now or at)
        elif at < state.last_at:
            # older than what this signal already showed (the clock stepped back, or a slow
            # source answered late): never let it move a streak
            at = state.last_at
            value = None
            unknown = UnknownReason.STALE
        state.last_at = at
        # sources stamp their own samples, so targets see slightly interleaved times: the
        # target's clock is the latest time seen on any of its signals
        if ts.now is not None and at < ts.now:
            at = ts.now
        ts.now = at
        kind = type(value)
        if kind is float:
            numeric: float | None = value  # type: ignore[assignment]
        elif kind is int or kind is bool:
            value = numeric = float(value)  # type: ignore[arg-type]
        else:
            numeric = None
        if numeric is not None and not math.isfinite(numeric):
            # NaN/Inf is "no data" (e.g. a quantile over no traffic), never a measurement
            value = numeric = None
            unknown = UnknownReason.NO_DATA
        if value is None:
            if state.unknown is None:
                ts.unknown_count += 1
                # when this one would make the target blind: the quiet path stays quiet
                # until then
                blind_at = (state.last_known or state.first_seen) + self._blind_after
                if ts.blind_at is None or blind_at < ts.blind_at:
                    ts.blind_at = blind_at
            state.unknown = unknown or UnknownReason.NO_DATA
        else:
            if state.unknown is not None:
                ts.unknown_count -= 1
            state.unknown = None
            if state.last_known is not None and at > state.last_known:
                state.gaps.append((at - state.last_known).total_seconds())
            state.last_known = at
            state.value = value
            role = state.role
            if role == TREND and numeric is not None:
                stamp = at.timestamp()
                history = state.history
                history.append(stamp, numeric)
                history.drop_before(stamp - self._history_window)
            elif role == VERSION and isinstance(value, str):
                events.version_seen(ts, value, at)
            elif role == REQUESTS and numeric is not None:
                ts.requests = (int(numeric), at)
                if ts.waiting_count:
                    self._tracker.pair_awaiting(ts, int(numeric), at)
        tracks = ts.tracks_for.get(signal)
        if tracks is None:
            tracks = ts.tracks_for[signal] = self._tracks(ts, signal)
        gate = state.gate
        if (
            gate is None
            or numeric is None
            or not tracking.gate_admits(gate, ts, numeric, requests, at)
        ):
            update = self._tracker.update
            for track in tracks:
                update(ts, track, requests, numeric, unknown, at)
            state.gate = tracking.quiet_gate(ts, tracks, at) if numeric is not None else None
        standing = deciding.standing_quiet(ts, at)
        if standing is not None:
            return standing
        return decide(self.pack, ts, at, kill_switch=self.kill_switch, freezes=self.freezes)

    def _role(self, signal: str) -> int:
        if signal in self._trend_signals:
            return TREND
        if signal == Signal.VERSION:
            return VERSION
        if signal == Signal.REQUEST_COUNT:
            return REQUESTS
        return PLAIN

    def apply(self, event: Event) -> list[Decision]:
        """Take a deployment or human event; return the decisions it changes."""
        if isinstance(event, KillSwitchEvent):
            self.kill_switch = event.on
            return [
                self._decide(ts, max(event.at, ts.now or event.at))
                for ts in self.targets.values()
                if fnmatch.fnmatchcase(ts.name, event.target)
            ]
        ts = self.target(event.target)
        at = max(event.at, ts.now) if ts.now is not None else event.at
        ts.now = at
        # an abort that landed or a rollout Vercel ended: the comparison stands down below
        before = ts.rollout.canary if ts.rollout is not None else None
        if isinstance(event, DeployEvent):
            events.deployed(self.pack, ts, event, at)
        elif isinstance(event, HoldEvent):
            ts.hold_until = event.until if event.until > at else None
            ts.hold_reason = event.reason
            ts.hold_by = event.by
        elif isinstance(event, AckEvent):
            events.acknowledged(self.pack, ts, event, at)
        elif isinstance(event, DeclareEvent):
            events.declared(ts, event, at)
        elif isinstance(event, RollbackResultEvent):
            events.rollback_result(self.pack, ts, event, at)
        elif isinstance(event, RolloutEvent):
            events.rollout(self.pack, ts, event, at)
        after = ts.rollout.canary if ts.rollout is not None else None
        if before is not None and after != before:
            self._rollout_over(ts, at)
        return [self._decide(ts, at)]

    def _tagged(
        self,
        ts: TargetState,
        signal: str,
        deployment: str,
        value: float | str | None,
        requests: int | None,
        at: datetime,
    ) -> Decision:
        """A release-scoped sample: kept per deployment, compared by the baseline rules when
        it is the new deployment's; never fed to the ordinary rules."""
        key = (signal, deployment)
        previous = ts.tagged.get(key)
        if previous is not None and previous.at == at:
            return ts.last if ts.last is not None else self._decide(ts, ts.now or at)
        numeric: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            numeric = float(value) if math.isfinite(value) else None
        reading = Reading(numeric, requests, at) if numeric is not None else None
        if reading is None:
            ts.tagged.pop(key, None)
        else:
            ts.tagged[key] = reading
        new, old = events.compared(ts)
        if deployment == new:
            tracks = ts.baseline_tracks_for.get(signal)
            if tracks is None:
                tracks = ts.baseline_tracks_for[signal] = self._tracks(ts, signal, baseline=True)
            for track in tracks:
                if reading is None:
                    self._tracker.update(ts, track, None, None, UnknownReason.NO_DATA, at)
                else:
                    other = ts.tagged.get((signal, old)) if old is not None else None
                    self._tracker.compare(ts, track, reading, other, (new, old or "the old one"))
        now = max(at, ts.now) if ts.now is not None else at
        ts.now = now
        return self._decide(ts, now)

    def _rollout_over(self, ts: TargetState, at: datetime) -> None:
        """The rolling release ended (aborted, complete, or another canary replaced it): its
        canary/base comparison cannot go on, so the baseline rules stand down and the
        deployments' release-scoped readings are dropped. Without this a canary aborted
        while its rule fired would keep firing on its last reading for ever."""
        for tracks in ts.baseline_tracks_for.values():
            for track in tracks:
                self._tracker.stand_down(ts, track, at)
        ts.tagged.clear()

    def redecide(self, target: str, now: datetime) -> Decision:
        """Re-decide without a new sample: fix-forward windows, resolve periods, blindness."""
        ts = self.target(target)
        at = max(now, ts.now) if ts.now is not None else now
        ts.now = at
        return self._decide(ts, at)

    # ----------------------------------------------------------------- rules

    def _tracks(self, ts: TargetState, signal: str, *, baseline: bool = False) -> tuple[Track, ...]:
        """The tracks of every rule on ``signal`` for this target, made on first sight:
        the ordinary rules, or (``baseline``) the ones comparing deployments."""
        key = (ts.name, signal)
        rules = self._rules_for.get(key)
        if rules is None:
            rules = tuple(
                r for r in self.pack.rules if r.matches_signal(signal) and r.applies_to(ts.name)
            )
            self._rules_for[key] = rules
        out = []
        for rule in rules:
            if (rule.baseline is not None) != baseline:
                continue
            track = ts.tracks.get((rule.name, signal))
            if track is None:
                track = ts.tracks[(rule.name, signal)] = Track(
                    rule, signal, phase_bound=rule.during != "always"
                )
            out.append(track)
        return tuple(out)

    # ----------------------------------------------------------------- deciding

    def firing(self, ts: TargetState, now: datetime) -> list[Track]:
        """Firing tracks whose rule is active in the target's current phase, worst first."""
        return firing(ts, now)

    def blind(self, ts: TargetState, now: datetime) -> list[str]:
        """What the watchdog cannot see for ``ts``, in sentences (see ``core.decide``)."""
        return blind(self.pack, ts, now)

    def _decide(self, ts: TargetState, now: datetime) -> Decision:
        return decide(self.pack, ts, now, kill_switch=self.kill_switch, freezes=self.freezes)

    # ----------------------------------------------------------------- introspection

    def observations(self, target: str) -> list[Observation]:
        """Every rule's current value against its threshold, for the status page."""
        ts = self.targets.get(target)
        if ts is None:
            return []
        return [observe_track(t, ts.signals.get(t.signal)) for t in ts.tracks.values()]

    def restore_rollbacks(self, target: str, times: Iterable[datetime]) -> None:
        """Seed cooldown and budget from stored rollbacks after a restart."""
        ts = self.target(target)
        ts.auto_rollbacks = sorted(times)

    def restore_incident(
        self,
        target: str,
        incident_id: str,
        *,
        opened_at: datetime,
        severity: Severity,
        rule: str,
        first_detected: datetime,
        deployment: str | None,
        declared: bool = False,
        rollback: str = RollbackPhase.NONE,
        rollback_at: datetime | None = None,
        rollback_done_at: datetime | None = None,
        rollback_to: str | None = None,
        chapter: int = 1,
        standing: str | None = None,
    ) -> None:
        """Reopen a stored incident after a restart, so it keeps its id (and pager dedup key)
        and a rollback already made for it is never made again."""
        ts = self.target(target)
        ts.incident = Incident(
            id=incident_id,
            opened_at=opened_at,
            severity=severity,
            rule=rule,
            first_detected=first_detected,
            deployment=deployment,
            declared=declared,
            rollback=rollback,
            rollback_at=rollback_at,
            rollback_done_at=rollback_done_at,
            rollback_to=rollback_to,
            chapter=chapter,
        )
        known = {a.value for a in Action}
        if standing in known:  # an action this version does not know: no standing, as before
            ts.incident.standing = (Action(standing), severity)

    def restore_hold(self, target: str, until: datetime, reason: str = "") -> None:
        ts = self.target(target)
        ts.hold_until = until
        ts.hold_reason = reason

    # ----------------------------------------------------------------- shell-facing API
    # The async shell never assigns into engine state: it sends samples and events
    # (``observe``, ``apply``, ``redecide``), restores a stored snapshot with
    # ``restore_snapshot``, and reads through the frozen views below.

    def view(self, target: str, now: datetime) -> TargetView | None:
        """Everything the engine knows about ``target`` for the status page (None: unseen)."""
        ts = self.targets.get(target)
        if ts is None:
            return None
        return target_view(self.pack, ts, now, kill_switch=self.kill_switch, freezes=self.freezes)

    def restore_snapshot(self, snapshot: EngineSnapshot) -> None:
        """Re-seed from the store after a restart or on becoming leader (see EngineSnapshot)."""
        for name in snapshot.targets:
            self.target(name).incident = None
        for name, times in snapshot.automatic_rollbacks:
            self.restore_rollbacks(name, times)
        for inc in snapshot.incidents:
            self.restore_incident(
                inc.target,
                inc.id,
                opened_at=inc.opened_at,
                severity=inc.severity,
                rule=inc.rule,
                first_detected=inc.first_detected,
                deployment=inc.deployment,
                declared=inc.declared,
                rollback=inc.rollback,
                rollback_at=inc.rollback_at,
                rollback_done_at=inc.rollback_done_at,
                chapter=inc.chapter,
                rollback_to=inc.rollback_to,
                standing=inc.standing,
            )
        for hold in snapshot.holds:
            self.restore_hold(hold.target, hold.until, hold.reason)
        if snapshot.kill_switch is not None:
            self.kill_switch = snapshot.kill_switch

    def reading(self, target: str, signal: str) -> SignalReading | None:
        """The signal's last known value and current unknown reason; None if never seen."""
        ts = self.targets.get(target)
        state = ts.signals.get(signal) if ts is not None else None
        if state is None:
            return None
        return SignalReading(state.value, state.unknown)

    def blind_signals(self, target: str, now: datetime) -> frozenset[str]:
        """Names of the signals :meth:`blind` reports for ``target`` (unknown past blind_after)."""
        ts = self.targets.get(target)
        if ts is None:
            return frozenset()
        limit = self.pack.flowchart.blind_after
        return frozenset(
            name
            for name, state in ts.signals.items()
            if state.unknown is not None and now - (state.last_known or state.first_seen) >= limit
        )

    def deployment_of(self, target: str) -> str | None:
        """The deployment the engine believes production serves (from DeployEvents)."""
        ts = self.targets.get(target)
        return ts.deployment if ts is not None else None

    def hold_until(self, target: str) -> datetime | None:
        ts = self.targets.get(target)
        return ts.hold_until if ts is not None else None

    def open_incident(self, target: str) -> IncidentView | None:
        ts = self.targets.get(target)
        incident = ts.incident if ts is not None else None
        if incident is None:
            return None
        return IncidentView(
            id=incident.id,
            opened_at=incident.opened_at,
            severity=incident.severity,
            first_detected=incident.first_detected,
            deployment=incident.deployment,
            declared=incident.declared,
        )
