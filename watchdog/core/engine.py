"""The decision engine: samples and events in, one decision per target out.

Pure and synchronous (no I/O, no asyncio, no clock): time arrives with the data, so the same
engine decides live, in ``watchdog replay`` and in tests, and a backtest can never disagree
with production. The engine is deterministic: the same inputs in the same order give the same
decisions.

State is per target. Per (rule, signal) the engine tracks the current streak of samples that
satisfy the rule; an unknown sample neither extends nor breaks a streak (DESIGN §3). The
flowchart itself (:func:`walk_flowchart`) and the guard rails (:func:`guard_rollback`) are
pure functions of that state, so each decision can explain itself through its ``path``.
"""

from __future__ import annotations

import fnmatch
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from watchdog.core.model import (
    AckDecision,
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
    RollbackOutcome,
    RollbackResultEvent,
    Sample,
    Severity,
    Signal,
    SignalReading,
    UnknownReason,
    Window,
)
from watchdog.core.rules import COMPARATORS, Rule, RulePack, format_duration
from watchdog.core.stats import slope, wilson_bounds, z_for

BLIND_RULE: Final = "watchdog-blind"
DECLARED_RULE: Final = "declared"
_QUIET_PATH: Final = ("nothing_firing",)


class RollbackPhase:
    """Where an incident's rollback stands (plain strings: they end up in records)."""

    NONE: Final = "none"
    IN_FLIGHT: Final = "in_flight"
    SUCCEEDED: Final = "succeeded"
    VERIFIED: Final = "verified"
    FAILED: Final = "failed"
    VERIFY_FAILED: Final = "verify_failed"


@dataclass(slots=True)
class Track:
    """The state of one rule on one signal of one target."""

    rule: Rule
    signal: str
    streak: int = 0
    streak_start: datetime | None = None
    value: float | None = None
    judged: float | None = None
    unknown: UnknownReason | None = None
    last_at: datetime | None = None
    firing: bool = False


@dataclass(slots=True)
class SignalState:
    first_seen: datetime
    last_at: datetime
    last_known: datetime | None = None
    unknown: UnknownReason | None = None
    value: float | str | None = None
    history: deque[tuple[float, float]] = field(default_factory=deque)


@dataclass(slots=True)
class Incident:
    id: str
    opened_at: datetime
    severity: Severity
    rule: str
    first_detected: datetime
    deployment: str | None
    declared: bool = False
    declared_reason: str = ""
    fix_forward_start: datetime | None = None
    ack_until: datetime | None = None
    ack_by: str = ""
    rollback: str = RollbackPhase.NONE
    rollback_at: datetime | None = None
    rollback_done_at: datetime | None = None
    clear_since: datetime | None = None


@dataclass(slots=True)
class TargetState:
    name: str
    tracks: dict[tuple[str, str], Track] = field(default_factory=dict)
    signals: dict[str, SignalState] = field(default_factory=dict)
    deployment: str | None = None
    deployed_at: datetime | None = None
    hold_until: datetime | None = None
    hold_reason: str = ""
    incident: Incident | None = None
    auto_rollbacks: list[datetime] = field(default_factory=list)
    intensive_until: datetime | None = None
    requests: tuple[int, datetime] | None = None
    now: datetime | None = None
    #: kept in step with tracks/signals so a quiet target decides without scanning them
    firing_count: int = 0
    unknown_count: int = 0
    rules_for: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    last: Decision | None = None
    known_bad: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------- pure helpers


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the flowchart concluded before guard rails and incident bookkeeping."""

    action: Action
    severity: Severity | None
    rule: str | None
    reason: str
    path: tuple[str, ...]
    wants_rollback: bool = False
    #: the firing track behind a rollback (for deploy correlation); None for declared
    track: Track | None = None


@dataclass(frozen=True, slots=True)
class Guard:
    """A guard rail's refusal: which one, and a sentence for the page."""

    name: str
    reason: str


def is_trending_worse(
    rule: Rule, signals: dict[str, SignalState], track_signal: str, now: datetime
) -> bool:
    """Least-squares slope over the rule's trend window points the bad way."""
    trend = rule.trend
    if trend is None:
        return False
    name = trend.signal or track_signal
    state = signals.get(name)
    if state is None:
        return False
    horizon = _secs(now) - trend.window.total_seconds()
    points = [(t, v) for t, v in state.history if t >= horizon]
    rise, count = slope(points)
    if count < trend.min_samples:
        return False
    direction = trend.direction or (
        ("up" if rule.worse_when_higher else "down") if trend.signal is None else "up"
    )
    signed = rise if direction == "up" else -rise
    if signed <= trend.min_slope:
        return False
    # a flat series has a slope of rounding noise: the fitted change over the window must
    # also be material next to the level it starts from
    span = points[-1][0] - points[0][0]
    level = sum(abs(v) for _, v in points) / count
    return signed * span > max(trend.min_change * level, 1e-12)


def _secs(at: datetime) -> float:
    return at.timestamp()


def guard_rollback(
    pack: RulePack,
    ts: TargetState,
    verdict: Verdict,
    now: datetime,
    *,
    kill_switch: bool,
    freezes: Sequence[Window],
    human: bool,
) -> Guard | None:
    """The guard rails of DESIGN §5, in order. None means the rollback may go ahead.

    ``human`` rollbacks (declared, or acked "rollback") skip the rails that only limit
    *automatic* action: kill switch, freezes, holds, deploy correlation, cooldown, budget.
    """
    flow = pack.flowchart
    incident = ts.incident
    if incident is not None and incident.rollback in (
        RollbackPhase.FAILED,
        RollbackPhase.VERIFY_FAILED,
    ):
        return Guard(
            "rollback_failed",
            "the incident's rollback did not take; no further automatic rollback",
        )
    if incident is not None and incident.rollback in (
        RollbackPhase.SUCCEEDED,
        RollbackPhase.VERIFIED,
    ):
        return Guard(
            "already_rolled_back",
            "this incident was already rolled back and the condition still holds: "
            "rollback did not help",
        )
    if human:
        return None
    if kill_switch:
        return Guard("kill_switch", "the kill switch is on: no automatic actions")
    for window in freezes:
        if window.contains(now) and any(fnmatch.fnmatchcase(ts.name, p) for p in window.targets):
            why = f" ({window.reason})" if window.reason else ""
            return Guard("freeze", f"freeze window until {window.end.isoformat()}{why}: page only")
    if ts.hold_until is not None and now < ts.hold_until:
        why = f" ({ts.hold_reason})" if ts.hold_reason else ""
        return Guard("hold", f"automatic rollback held until {ts.hold_until.isoformat()}{why}")
    if ts.deployed_at is None:
        if flow.require_known_deployment:
            return Guard(
                "deploy_unknown",
                "rollback unlikely to help: no deployment known to correlate with",
            )
    else:
        age = now - ts.deployed_at
        if age > flow.max_deploy_age:
            return Guard(
                "deploy_too_old",
                f"rollback unlikely to help: deployment {ts.deployment} went live "
                f"{format_duration(age)} ago "
                f"(max_deploy_age {format_duration(flow.max_deploy_age)})",
            )
        track = verdict.track
        if (
            track is not None
            and track.streak_start is not None
            and track.streak_start < ts.deployed_at
        ):
            return Guard(
                "predates_deploy",
                "rollback unlikely to help: condition predates deployment "
                f"{ts.deployment} (held since {track.streak_start.isoformat()})",
            )
    if ts.auto_rollbacks:
        last = ts.auto_rollbacks[-1]
        if now - last < flow.cooldown:
            return Guard(
                "cooldown",
                f"cooldown: last automatic rollback at {last.isoformat()}, "
                f"next allowed after {(last + flow.cooldown).isoformat()}",
            )
    recent = [t for t in ts.auto_rollbacks if now - t < flow.budget_window]
    if len(recent) >= flow.rollback_budget:
        return Guard(
            "budget",
            f"rollback budget spent: {len(recent)} automatic rollbacks in the last "
            f"{format_duration(flow.budget_window)} (budget {flow.rollback_budget})",
        )
    return None


def walk_flowchart(
    pack: RulePack,
    ts: TargetState,
    firing: Sequence[Track],
    blind: Sequence[str],
    now: datetime,
) -> Verdict:
    """The procedure's Appendix A flowchart as DESIGN §4 reads it, without guard rails."""
    incident = ts.incident
    path: list[str] = ["issue_detected"]
    if (
        incident is not None
        and incident.declared
        and incident.rollback not in (RollbackPhase.SUCCEEDED, RollbackPhase.VERIFIED)
    ):
        path += ["declared"]
        return Verdict(
            Action.ROLLBACK,
            Severity.P0,
            DECLARED_RULE,
            f"incident declared by a human: {incident.declared_reason or 'no reason given'}",
            tuple(path),
            wants_rollback=True,
        )
    if not firing and not blind:
        return Verdict(Action.MONITOR, None, None, "nothing firing", _QUIET_PATH)

    p0 = [t for t in firing if t.rule.severity is Severity.P0]
    if p0:
        track = p0[0]
        path.append("p0:yes")
        return Verdict(
            Action.ROLLBACK,
            Severity.P0,
            track.rule.name,
            f"P0: {_describe(track)}",
            tuple(path),
            wants_rollback=True,
            track=track,
        )
    path.append("p0:no")

    marked = [t for t in firing if t.rule.rollback]
    for track in marked:
        rule = track.rule
        if rule.require_trend and not is_trending_worse(rule, ts.signals, track.signal, now):
            continue
        path.append("rollback_threshold:yes")
        if rule.require_trend:
            path.append("trending:yes")
        return Verdict(
            Action.ROLLBACK,
            rule.severity,
            rule.name,
            f"{rule.severity.value}: {_describe(track)} (procedure: rollback threshold)",
            tuple(path),
            wants_rollback=True,
            track=track,
        )
    path.append("rollback_threshold:no")

    p1 = [t for t in firing if t.rule.severity is Severity.P1]
    if p1:
        return _fix_forward(pack, ts, p1, path, now)

    lesser = sorted(firing, key=lambda t: t.rule.severity.rank)
    if lesser and lesser[0].rule.severity is Severity.INVESTIGATE:
        track = lesser[0]
        path.append("investigate")
        return Verdict(
            Action.PAGE,
            Severity.INVESTIGATE,
            track.rule.name,
            f"investigate: {_describe(track)}",
            tuple(path),
        )
    if blind:
        path.append("blind")
        return Verdict(
            Action.PAGE,
            Severity.INVESTIGATE,
            BLIND_RULE,
            "watchdog blind: no usable data for "
            + ", ".join(blind)
            + f" for at least {format_duration(pack.flowchart.blind_after)}"
            + "; never rolls back blind",
            tuple(path),
        )
    track = lesser[0]
    if track.rule.severity is Severity.P2:
        path.append("p2:notify")
        return Verdict(
            Action.NOTIFY, Severity.P2, track.rule.name, f"P2: {_describe(track)}", tuple(path)
        )
    path.append("p3:monitor")
    return Verdict(
        Action.MONITOR, Severity.P3, track.rule.name, f"P3: {_describe(track)}", tuple(path)
    )


def _fix_forward(
    pack: RulePack, ts: TargetState, p1: Sequence[Track], path: list[str], now: datetime
) -> Verdict:
    """Flowchart: "Can fix forward in <15 min?" then "Is it getting worse?"."""
    track = p1[0]
    rule = track.rule
    incident = ts.incident
    window = rule.fix_forward_window or pack.flowchart.fix_forward_window
    start = incident.fix_forward_start if incident and incident.fix_forward_start else now
    window_end = start + window
    ack_until = incident.ack_until if incident else None
    if ack_until is not None and now < ack_until:
        path.append("fix_forward:acked")
        by = f" by {incident.ack_by}" if incident and incident.ack_by else ""
        return Verdict(
            Action.PAGE,
            Severity.P1,
            rule.name,
            f"P1: {_describe(track)}; fix forward acknowledged{by} until {ack_until.isoformat()}",
            tuple(path),
        )
    worse = next((t for t in p1 if is_trending_worse(t.rule, ts.signals, t.signal, now)), None)
    if worse is not None and ack_until is None:
        path += ["fix_forward:unacked", "getting_worse:yes"]
        return Verdict(
            Action.ROLLBACK,
            Severity.P1,
            worse.rule.name,
            f"P1: {_describe(worse)} and getting worse",
            tuple(path),
            wants_rollback=True,
            track=worse,
        )
    expired_at = max(window_end, ack_until) if ack_until is not None else window_end
    if now >= expired_at:
        path.append("fix_forward:window_expired")
        return Verdict(
            Action.ROLLBACK,
            Severity.P1,
            rule.name,
            f"P1: {_describe(track)}; not fixed within the fix-forward window "
            f"({format_duration(window)})",
            tuple(path),
            wants_rollback=True,
            track=track,
        )
    path.append("fix_forward:window_open")
    return Verdict(
        Action.PAGE,
        Severity.P1,
        rule.name,
        f"P1: {_describe(track)}; fix-forward window open until {expired_at.isoformat()}, "
        "then rollback if still failing (ack 'fix_forward' to hold)",
        tuple(path),
    )


def _describe(track: Track) -> str:
    rule = track.rule
    value = "unknown" if track.judged is None else f"{track.judged:g}"
    signal = track.signal
    return f"{signal} = {value} {rule.op} {rule.threshold:g} ({rule.sustain_text})"


# --------------------------------------------------------------------------- the engine


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
        self._history_window = max(
            (r.trend.window for r in pack.rules if r.trend is not None), default=timedelta(0)
        ).total_seconds()
        self._trend_signals = {
            (r.trend.signal or r.signal) for r in pack.rules if r.trend is not None
        }

    # ----------------------------------------------------------------- inputs

    def target(self, name: str) -> TargetState:
        ts = self.targets.get(name)
        if ts is None:
            ts = self.targets[name] = TargetState(name)
        return ts

    def observe(self, sample: Sample) -> Decision:
        """Take one sample, update the target's state, and decide."""
        ts = self.target(sample.target)
        at = sample.at
        unknown = sample.unknown
        value = sample.value
        signal = sample.signal
        state = ts.signals.get(signal)
        if state is None:
            state = ts.signals[signal] = SignalState(first_seen=at, last_at=at)
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
            state.unknown = unknown or UnknownReason.NO_DATA
        else:
            if state.unknown is not None:
                ts.unknown_count -= 1
            state.unknown = None
            state.last_known = at
            state.value = value
            if numeric is not None and signal in self._trend_signals:
                stamp = _secs(at)
                state.history.append((stamp, float(numeric)))
                horizon = stamp - self._history_window
                while state.history and state.history[0][0] < horizon:
                    state.history.popleft()
        if signal == Signal.REQUEST_COUNT and numeric is not None:
            ts.requests = (int(numeric), at)
        rules = ts.rules_for.get(signal)
        if rules is None:
            rules = ts.rules_for[signal] = self._rules(ts.name, signal)
        for rule in rules:
            self._update_track(ts, rule, sample, numeric, unknown, at)
        return self._decide(ts, at)

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
        if isinstance(event, DeployEvent):
            self._deployed(ts, event, at)
        elif isinstance(event, HoldEvent):
            ts.hold_until = event.until if event.until > at else None
            ts.hold_reason = event.reason
        elif isinstance(event, AckEvent):
            self._ack(ts, event, at)
        elif isinstance(event, DeclareEvent):
            self._declare(ts, event, at)
        elif isinstance(event, RollbackResultEvent):
            self._rollback_result(ts, event, at)
        return [self._decide(ts, at)]

    def tick(self, target: str, now: datetime) -> Decision:
        """Re-decide without a new sample: fix-forward windows, resolve periods, blindness."""
        ts = self.target(target)
        at = max(now, ts.now) if ts.now is not None else now
        ts.now = at
        return self._decide(ts, at)

    # ----------------------------------------------------------------- state updates

    def _rules(self, target: str, signal: str) -> tuple[Rule, ...]:
        key = (target, signal)
        rules = self._rules_for.get(key)
        if rules is None:
            rules = tuple(
                r for r in self.pack.rules if r.matches_signal(signal) and r.applies_to(target)
            )
            self._rules_for[key] = rules
        return rules

    def _update_track(
        self,
        ts: TargetState,
        rule: Rule,
        sample: Sample,
        numeric: float | None,
        unknown: UnknownReason | None,
        at: datetime,
    ) -> None:
        key = (rule.name, sample.signal)
        track = ts.tracks.get(key)
        if track is None:
            track = ts.tracks[key] = Track(rule, sample.signal)
        track.last_at = at
        was_firing = track.firing
        if rule.during != "always" and not self._active(rule, ts, at):
            # a phase-bound rule only counts samples taken in its phase
            track.streak, track.streak_start, track.firing = 0, None, False
            ts.firing_count -= was_firing
            return
        if numeric is None:
            # unknown never satisfies and never clears a rule (DESIGN §3)
            track.unknown = unknown or UnknownReason.NO_DATA
            return
        judged = float(numeric)
        if rule.min_requests is not None:
            n = sample.requests
            if n is None and ts.requests is not None and ts.requests[1] == at:
                n = ts.requests[0]
            if n is None or n < rule.min_requests:
                track.unknown = UnknownReason.TOO_FEW_REQUESTS
                track.value = judged
                return
            if rule.confidence is not None:
                low, high = wilson_bounds(judged, n, z_for(rule.confidence))
                judged = low if rule.worse_when_higher else high
        track.unknown = None
        track.value = float(numeric)
        track.judged = judged
        if COMPARATORS[rule.op](judged, rule.threshold):
            if track.streak == 0:
                track.streak_start = at
            track.streak += 1
            sustain = rule.sustain
            track.firing = track.streak >= sustain.consecutive and (
                sustain.for_ is None
                or (track.streak_start is not None and at - track.streak_start >= sustain.for_)
            )
        else:
            track.streak = 0
            track.streak_start = None
            track.firing = False
        ts.firing_count += track.firing - was_firing

    def _deployed(self, ts: TargetState, event: DeployEvent, at: datetime) -> None:
        previous = ts.deployment
        ts.deployment = event.deployment
        ts.deployed_at = event.live_since or at
        incident = ts.incident
        in_flight = incident is not None and incident.rollback == RollbackPhase.IN_FLIGHT
        if event.rollback or in_flight:
            if previous:
                ts.known_bad.add(previous)
            ts.intensive_until = at + self.pack.flowchart.intensive_watch
            if incident is not None and incident.rollback in (
                RollbackPhase.IN_FLIGHT,
                RollbackPhase.NONE,
            ):
                incident.rollback = RollbackPhase.SUCCEEDED
                incident.rollback_done_at = at

    def _ack(self, ts: TargetState, event: AckEvent, at: datetime) -> None:
        incident = ts.incident
        if incident is None:
            return
        if event.decision is AckDecision.ROLLBACK:
            incident.declared = True
            incident.declared_reason = f"acknowledged with 'rollback'{_by(event.by)}"
            return
        window = event.window or self.pack.flowchart.fix_forward_window
        incident.ack_until = at + window
        incident.ack_by = event.by

    def _declare(self, ts: TargetState, event: DeclareEvent, at: datetime) -> None:
        incident = ts.incident
        if incident is None:
            incident = ts.incident = self._open(ts, at, event.severity, DECLARED_RULE, at)
        incident.declared = True
        incident.declared_reason = (event.reason or "declared") + _by(event.by)
        incident.severity = min(incident.severity, event.severity, key=lambda s: s.rank)

    def _rollback_result(self, ts: TargetState, event: RollbackResultEvent, at: datetime) -> None:
        incident = ts.incident
        if incident is None:
            return
        outcome = event.outcome
        if outcome is RollbackOutcome.SUCCEEDED:
            if incident.rollback == RollbackPhase.IN_FLIGHT:
                incident.rollback = RollbackPhase.SUCCEEDED
                incident.rollback_done_at = at
                ts.intensive_until = at + self.pack.flowchart.intensive_watch
        elif outcome is RollbackOutcome.FAILED:
            incident.rollback = RollbackPhase.FAILED
        elif outcome is RollbackOutcome.VERIFIED:
            incident.rollback = RollbackPhase.VERIFIED
            if incident.rollback_done_at is None:
                incident.rollback_done_at = at
        elif outcome is RollbackOutcome.VERIFY_FAILED:
            incident.rollback = RollbackPhase.VERIFY_FAILED

    def _open(
        self,
        ts: TargetState,
        at: datetime,
        severity: Severity,
        rule: str,
        first: datetime,
    ) -> Incident:
        stamp = at.strftime("%Y%m%dT%H%M%S")
        return Incident(
            id=f"{ts.name}-{stamp}",
            opened_at=at,
            severity=severity,
            rule=rule,
            first_detected=first,
            deployment=ts.deployment,
        )

    # ----------------------------------------------------------------- deciding

    @staticmethod
    def _active(rule: Rule, ts: TargetState, now: datetime) -> bool:
        during = rule.during
        if during == "always":
            return True
        intensive = ts.intensive_until is not None and now < ts.intensive_until
        return intensive if during == "intensive_watch" else not intensive

    def firing(self, ts: TargetState, now: datetime) -> list[Track]:
        """Firing tracks whose rule is active in the target's current phase, worst first."""
        out = [t for t in ts.tracks.values() if t.firing and self._active(t.rule, ts, now)]
        out.sort(key=lambda t: (t.rule.severity.rank, not t.rule.rollback))
        return out

    def blind(self, ts: TargetState, now: datetime) -> list[str]:
        """Signals unknown for at least ``blind_after`` (since last known, or first seen)."""
        limit = self.pack.flowchart.blind_after
        out = []
        for name, state in ts.signals.items():
            if state.unknown is None:
                continue
            since = state.last_known or state.first_seen
            if now - since >= limit:
                out.append(f"{name} ({state.unknown.value})")
        return out

    def _decide(self, ts: TargetState, now: datetime) -> Decision:
        if ts.firing_count == 0 and ts.unknown_count == 0 and ts.incident is None:
            # the common case, kept cheap: nothing firing, nothing unknown, nothing open
            decision = Decision(
                ts.name,
                now,
                Action.MONITOR,
                None,
                None,
                "nothing firing",
                _QUIET_PATH,
                deployment=ts.deployment,
            )
            ts.last = decision
            return decision
        firing = self.firing(ts, now)
        blind = self.blind(ts, now) if ts.signals else []
        verdict = walk_flowchart(self.pack, ts, firing, blind, now)
        incident = ts.incident
        resolved: str | None = None
        execute = False
        refused: str | None = None
        action, severity, reason = verdict.action, verdict.severity, verdict.reason
        path = verdict.path

        if verdict.action in (Action.MONITOR, Action.NOTIFY):
            if incident is not None:
                # replay never hears back from a deployer: conditions clearing is the sign
                if incident.rollback == RollbackPhase.IN_FLIGHT:
                    incident.rollback = RollbackPhase.SUCCEEDED
                    incident.rollback_done_at = now
                since = incident.clear_since or now
                incident.clear_since = since
                until = since + self.pack.flowchart.resolve_period
                if now >= until:
                    resolved = incident.id
                    ts.incident = incident = None
                    reason = f"{reason}; incident {resolved} resolved"
                    path = (*path, "resolved")
                else:
                    reason = f"{reason}; incident {incident.id} resolves at {until.isoformat()}"
                    path = (*path, "resolving")
        else:
            first = verdict.track.streak_start if verdict.track else None
            if incident is None:
                assert verdict.severity is not None
                incident = ts.incident = self._open(
                    ts, now, verdict.severity, verdict.rule or "", first or now
                )
            incident.clear_since = None
            if verdict.severity is not None and verdict.severity.rank < incident.severity.rank:
                incident.severity = verdict.severity
            if (
                verdict.severity is Severity.P1
                and not verdict.wants_rollback
                and incident.fix_forward_start is None
            ):
                incident.fix_forward_start = now
            if verdict.wants_rollback:
                action, severity, reason, path, execute, refused = self._rollback(
                    ts, incident, verdict, now
                )

        decision = Decision(
            target=ts.name,
            at=now,
            action=action,
            severity=severity,
            rule=verdict.rule,
            reason=reason,
            path=path,
            incident=incident.id if incident else resolved,
            execute_rollback=execute,
            refused_by=refused,
            deployment=ts.deployment,
            observations=tuple(_observe(t) for t in firing) if firing else (),
            resolved_incident=resolved,
        )
        ts.last = decision
        return decision

    def _rollback(
        self, ts: TargetState, incident: Incident, verdict: Verdict, now: datetime
    ) -> tuple[Action, Severity | None, str, tuple[str, ...], bool, str | None]:
        path = verdict.path
        if incident.rollback == RollbackPhase.IN_FLIGHT:
            return (
                Action.ROLLBACK,
                verdict.severity,
                f"{verdict.reason}; rollback in flight since {_iso(incident.rollback_at)}",
                (*path, "rollback:in_flight"),
                False,
                None,
            )
        if (
            incident.rollback in (RollbackPhase.SUCCEEDED, RollbackPhase.VERIFIED)
            and incident.rollback_done_at is not None
        ):
            settle = incident.rollback_done_at + self.pack.flowchart.verify_timeout
            if now < settle:
                # signals lag (trailing windows): give the rollback time to show before judging
                return (
                    Action.ROLLBACK,
                    verdict.severity,
                    f"{verdict.reason}; rolled back, verifying until {settle.isoformat()}",
                    (*path, "rollback:verifying"),
                    False,
                    None,
                )
        human = incident.declared
        guard = guard_rollback(
            self.pack,
            ts,
            verdict,
            now,
            kill_switch=self.kill_switch,
            freezes=self.freezes,
            human=human,
        )
        if guard is not None:
            incident.severity = Severity.P0
            return (
                Action.PAGE,
                Severity.P0,
                f"{verdict.reason}; rollback refused: {guard.reason}",
                (*path, f"guard:{guard.name}:refused"),
                False,
                guard.name,
            )
        incident.rollback = RollbackPhase.IN_FLIGHT
        incident.rollback_at = now
        if not human:
            ts.auto_rollbacks.append(now)
            horizon = now - self.pack.flowchart.budget_window
            ts.auto_rollbacks = [t for t in ts.auto_rollbacks if t > horizon]
        return (
            Action.ROLLBACK,
            verdict.severity,
            verdict.reason,
            (*path, "guards:passed", "rollback"),
            True,
            None,
        )

    # ----------------------------------------------------------------- introspection

    def observations(self, target: str) -> list[Observation]:
        """Every rule's current value against its threshold, for the status page."""
        ts = self.targets.get(target)
        if ts is None:
            return []
        return [_observe(t) for t in ts.tracks.values()]

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
        )

    def restore_hold(self, target: str, until: datetime, reason: str = "") -> None:
        ts = self.target(target)
        ts.hold_until = until
        ts.hold_reason = reason

    # ---- shell-facing API
    # The async shell never assigns into engine state. It sends events (``observe``, ``apply``
    # with DeployEvent, HoldEvent, AckEvent, DeclareEvent, KillSwitchEvent,
    # RollbackResultEvent; ``tick``), restores a stored snapshot with ``restore_snapshot``,
    # and reads through the frozen views below. Who sends which event: sources' samples and the
    # chores' re-decisions come from ``daemon/pipeline.py`` and ``daemon/loops.py``; DeployEvent
    # from ``daemon/production.py`` (what production serves) and, for a rollback,
    # ``actions/rollback.py``, which alone sends RollbackResultEvent; human events from
    # ``daemon/control.py``.

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


def _observe(track: Track) -> Observation:
    rule = track.rule
    return Observation(
        rule=rule.name,
        signal=track.signal,
        value=track.judged if track.unknown is None else None,
        op=rule.op,
        threshold=rule.threshold,
        firing=track.firing,
        unknown=track.unknown,
        since=track.streak_start,
    )


def _iso(at: datetime | None) -> str:
    return at.isoformat() if at else "unknown"


def _by(who: str) -> str:
    return f" by {who}" if who else ""
