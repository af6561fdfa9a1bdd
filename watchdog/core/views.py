"""What the engine knows about a target, for the person woken at 3 a.m. (status page, CLI).

Pure and read-only: :func:`target_view` turns a target's state into frozen data, the
decision and since when, the open incident and where its rollback stands, what the watchdog
will do next and when, the guard rails' state, and each rule as ok / pending / firing /
unknown / blind. The shell adds what only it knows (the incident's stored timeline, recent
deployments from Vercel) and renders it.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from watchdog.core.flowchart import format_value
from watchdog.core.model import Action, Severity, UnknownReason, Window
from watchdog.core.rules import RulePack, format_duration
from watchdog.core.state import ROLLED_BACK, Incident, RollbackPhase, TargetState, Track
from watchdog.core.stats import wilson_bounds, z_for
from watchdog.core.tracks import active, quiet_track

RuleState = Literal["ok", "pending", "firing", "unknown", "blind", "inactive"]


@dataclass(frozen=True, slots=True)
class RuleView:
    """One rule on one signal. ``needs`` says what is missing before a pending rule fires."""

    rule: str
    signal: str
    state: RuleState
    condition: str
    value: str | None
    severity: Severity
    since: datetime | None = None
    needs: str | None = None
    unknown: UnknownReason | None = None
    rollback: bool = False


@dataclass(frozen=True, slots=True)
class NextStep:
    """Something the watchdog will do (or stop doing), at ``at`` if the time is known (a
    consecutive sustain waits for samples, not for a time)."""

    at: datetime | None
    what: str


@dataclass(frozen=True, slots=True)
class IncidentState:
    id: str
    opened_at: datetime
    severity: Severity
    rule: str
    first_detected: datetime
    chapter: int
    deployment: str | None
    declared: bool
    declared_reason: str
    rollback: str
    rollback_at: datetime | None
    rollback_done_at: datetime | None
    rollback_to: str | None
    rollback_detail: str
    fix_forward_until: datetime | None
    ack_until: datetime | None
    ack_by: str
    clear_since: datetime | None
    resolves_at: datetime | None


@dataclass(frozen=True, slots=True)
class Guards:
    kill_switch: bool
    hold_until: datetime | None
    hold_reason: str
    hold_by: str
    active_freeze: Window | None
    next_freeze: Window | None
    cooldown_until: datetime | None
    budget_used: int
    budget: int
    budget_window: timedelta
    intensive_until: datetime | None
    known_bad: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TargetView:
    name: str
    at: datetime
    action: Action
    severity: Severity | None
    since: datetime | None
    reason: str
    #: the last decision's rule and flowchart path
    rule: str | None
    path: tuple[str, ...]
    deployment: str | None
    deployed_at: datetime | None
    incident: IncidentState | None
    guards: Guards
    rules: tuple[RuleView, ...]
    next: tuple[NextStep, ...]


def target_view(
    pack: RulePack,
    ts: TargetState,
    now: datetime,
    *,
    kill_switch: bool,
    freezes: Sequence[Window],
) -> TargetView:
    flow = pack.flowchart
    last = ts.last
    incident = _incident(pack, ts.incident)
    guards = _guards(pack, ts, now, kill_switch, freezes)
    rules = tuple(_rule(ts, t, now) for t in sorted(ts.tracks.values(), key=_order))
    steps: list[NextStep] = []
    if incident is not None:
        steps += _incident_steps(pack, incident, now)
    if guards.hold_until is not None and guards.hold_until > now:
        steps.append(NextStep(guards.hold_until, "the hold ends: automatic rollback allowed again"))
    if guards.cooldown_until is not None and guards.cooldown_until > now:
        steps.append(NextStep(guards.cooldown_until, "the cooldown ends"))
    if guards.active_freeze is not None:
        steps.append(NextStep(guards.active_freeze.end, "the freeze window ends"))
    elif guards.next_freeze is not None:
        steps.append(NextStep(guards.next_freeze.start, "a freeze window begins: page only"))
    if ts.unknown_version_since is not None:
        steps.append(
            NextStep(
                ts.unknown_version_since + flow.deploy_wait,
                "a rollback stops waiting for the live deployment to be looked up",
            )
        )
    for name, state in ts.signals.items():
        if state.unknown is not None:
            blind_at = (state.last_known or state.first_seen) + flow.blind_after
            if blind_at > now:
                steps.append(NextStep(blind_at, f"pages 'watchdog blind' if {name} stays unknown"))
    for track in ts.tracks.values():
        if track.streak > 0 and not track.firing and active(track.rule, ts, now):
            sustain = track.rule.sustain
            fires_at = (
                track.streak_start + sustain.for_
                if sustain.for_ is not None and track.streak_start is not None
                else None
            )
            what = f"{track.rule.name} fires after {_needs(track, now)} over its threshold"
            steps.append(NextStep(fires_at, what))
    steps.sort(key=lambda s: (s.at is None, s.at or now))
    return TargetView(
        name=ts.name,
        at=now,
        action=last.action if last else Action.MONITOR,
        severity=last.severity if last else None,
        since=ts.key_since,
        reason=last.reason if last else "no data yet",
        rule=last.rule if last else None,
        path=last.path if last else (),
        deployment=ts.deployment,
        deployed_at=ts.deployed_at,
        incident=incident,
        guards=guards,
        rules=rules,
        next=tuple(steps),
    )


def _order(track: Track) -> tuple[int, str]:
    return (track.rule.severity.rank, track.rule.name)


def _rule(ts: TargetState, track: Track, now: datetime) -> RuleView:
    rule = track.rule
    raw = track.value
    state = ts.signals.get(track.signal)
    if quiet_track(track) and state is not None and isinstance(state.value, float):
        raw = state.value  # quiet samples pass quiet tracks unseen: the signal has it
    shown = None if raw is None else format_value(track.signal, raw)
    if shown is not None and rule.confidence is not None and track.requests:
        # computed here: the engine only computes a bound when the raw rate could fire
        low, high = wilson_bounds(raw or 0.0, track.requests, z_for(rule.confidence))
        bound = low if rule.worse_when_higher else high
        shown += f" (bound {format_value(track.signal, bound)}, {track.requests:,} requests)"
    view = RuleView(
        rule=rule.name,
        signal=track.signal,
        state="ok",
        condition=f"{track.signal} {rule.op} {format_value(track.signal, rule.threshold)}",
        value=shown,
        severity=rule.severity,
        rollback=rule.rollback,
    )
    if not active(rule, ts, now):
        return replace(view, state="inactive")
    if track.firing:
        return replace(view, state="firing", since=track.streak_start)
    if track.blind_firing:
        needs = _needs(track, now, clean=True)
        return replace(view, state="blind", since=track.streak_start, needs=needs)
    if track.unknown is not None:
        return replace(view, state="unknown", since=track.unknown_since, unknown=track.unknown)
    if track.streak > 0:
        return replace(view, state="pending", since=track.streak_start, needs=_needs(track, now))
    return view


def _needs(track: Track, now: datetime, *, clean: bool = False) -> str:
    """'1 more sample', '45s more', or both, before the rule's sustain is met."""
    sustain = track.rule.sustain
    count = track.clean if clean else track.streak
    start = track.clean_start if clean else track.streak_start
    parts = []
    more = sustain.consecutive - count
    if more > 0:
        parts.append(f"{more} more sample{'s' if more != 1 else ''}")
    if sustain.for_ is not None:
        held = now - start if start is not None else timedelta(0)
        left = sustain.for_ - held
        if left > timedelta(0):
            seconds = math.ceil(left.total_seconds())
            parts.append(f"{format_duration(timedelta(seconds=seconds))} more")
    return " and ".join(parts) if parts else "the next sample"


def _incident(pack: RulePack, incident: Incident | None) -> IncidentState | None:
    if incident is None:
        return None
    flow = pack.flowchart
    window_end = (
        incident.fix_forward_start + flow.fix_forward_window
        if incident.fix_forward_start is not None
        else None
    )
    resolves = (
        incident.clear_since + flow.resolve_period if incident.clear_since is not None else None
    )
    return IncidentState(
        id=incident.id,
        opened_at=incident.opened_at,
        severity=incident.severity,
        rule=incident.rule,
        first_detected=incident.first_detected,
        chapter=incident.chapter,
        deployment=incident.deployment,
        declared=incident.declared,
        declared_reason=incident.declared_reason,
        rollback=incident.rollback,
        rollback_at=incident.rollback_at,
        rollback_done_at=incident.rollback_done_at,
        rollback_to=incident.rollback_to,
        rollback_detail=incident.rollback_detail,
        fix_forward_until=window_end if incident.rollback == RollbackPhase.NONE else None,
        ack_until=incident.ack_until,
        ack_by=incident.ack_by,
        clear_since=incident.clear_since,
        resolves_at=resolves,
    )


def _incident_steps(pack: RulePack, incident: IncidentState, now: datetime) -> list[NextStep]:
    steps = []
    if incident.ack_until is not None and incident.ack_until > now:
        by = f" ({incident.ack_by})" if incident.ack_by else ""
        steps.append(NextStep(incident.ack_until, f"the fix-forward ack{by} ends"))
    if incident.fix_forward_until is not None and incident.fix_forward_until > now:
        until = max(incident.fix_forward_until, incident.ack_until or incident.fix_forward_until)
        steps.append(NextStep(until, "rolls back if the P1 condition still holds"))
    if incident.rollback in ROLLED_BACK and incident.rollback_done_at is not None:
        settle = incident.rollback_done_at + pack.flowchart.verify_timeout
        if settle > now:
            steps.append(
                NextStep(settle, "verification ends: if the condition still holds, pages P0")
            )
    if incident.resolves_at is not None:
        waits = (
            ", once the rollback reports" if incident.rollback == RollbackPhase.IN_FLIGHT else ""
        )
        steps.append(
            NextStep(
                max(incident.resolves_at, now),
                f"incident {incident.id} resolves if nothing fires again{waits}",
            )
        )
    return steps


def _guards(
    pack: RulePack,
    ts: TargetState,
    now: datetime,
    kill_switch: bool,
    freezes: Sequence[Window],
) -> Guards:
    flow = pack.flowchart
    mine = [w for w in freezes if any(fnmatch.fnmatchcase(ts.name, p) for p in w.targets)]
    active_freeze = next((w for w in mine if w.contains(now)), None)
    upcoming = sorted((w for w in mine if w.start > now), key=lambda w: w.start)
    recent = [t for t in ts.auto_rollbacks if now - t < flow.budget_window]
    cooldown = ts.auto_rollbacks[-1] + flow.cooldown if ts.auto_rollbacks else None
    hold = ts.hold_until if ts.hold_until is not None and ts.hold_until > now else None
    intensive = ts.intensive_until if ts.intensive_until and ts.intensive_until > now else None
    return Guards(
        kill_switch=kill_switch,
        hold_until=hold,
        hold_reason=ts.hold_reason if hold else "",
        hold_by=ts.hold_by if hold else "",
        active_freeze=active_freeze,
        next_freeze=upcoming[0] if upcoming else None,
        cooldown_until=cooldown if cooldown is not None and cooldown > now else None,
        budget_used=len(recent),
        budget=flow.rollback_budget,
        budget_window=flow.budget_window,
        intensive_until=intensive,
        known_bad=tuple(sorted(ts.known_bad)),
    )
