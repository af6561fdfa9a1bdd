"""The guard rails of DESIGN §5, as a pure function of the target's state.

A rollback the flowchart wants passes these first. A refusal names the rail and says why in
a sentence for the page; a *wait* (the live deployment is being looked up) is not a refusal,
it delays the decision a few seconds instead of blaming the wrong deployment.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from watchdog.core.flowchart import FlowVerdict
from watchdog.core.model import Window
from watchdog.core.rules import RulePack, format_duration
from watchdog.core.state import ROLLBACK_BROKEN, ROLLED_BACK, TargetState, Track


@dataclass(frozen=True, slots=True)
class Guard:
    """A guard rail's refusal (or, with ``wait``, its request to wait): which one, and why."""

    name: str
    reason: str
    wait: bool = False


def guard_rollback(
    pack: RulePack,
    ts: TargetState,
    verdict: FlowVerdict,
    now: datetime,
    *,
    kill_switch: bool,
    freezes: Sequence[Window],
    human: bool,
) -> Guard | None:
    """The guard rails, in order. None means the rollback may go ahead.

    ``human`` rollbacks (declared, or acked "rollback") skip the rails that only limit
    *automatic* action: kill switch, freezes, holds, deploy correlation, cooldown, budget.
    """
    flow = pack.flowchart
    incident = ts.incident
    if incident is not None and incident.rollback in ROLLBACK_BROKEN:
        return Guard(
            "rollback_failed",
            "the incident's rollback did not take; no further automatic rollback",
        )
    if incident is not None and incident.rollback in ROLLED_BACK:
        return Guard(
            "already_rolled_back",
            f"deployment {incident.deployment} was already rolled back in this incident and "
            "the condition still holds: rollback did not help",
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
        by = f" by {ts.hold_by}" if ts.hold_by else ""
        return Guard("hold", f"automatic rollback held{by} until {ts.hold_until.isoformat()}{why}")
    if ts.unknown_version_since is not None:
        waited = now - ts.unknown_version_since
        if waited < flow.deploy_wait:
            return Guard(
                "deploy_unknown",
                f"the app serves version {ts.version}, which no known deployment carries: "
                "waiting for the live deployment to be looked up (until "
                f"{(ts.unknown_version_since + flow.deploy_wait).isoformat()})",
                wait=True,
            )
        return Guard(
            "deploy_unknown",
            f"rollback unlikely to help: the app serves version {ts.version}, which no known "
            f"deployment carries (looked up for {format_duration(waited)})",
        )
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
        if track is not None:
            state = ts.signals.get(track.signal)
            gaps = tuple(state.gaps) if state is not None else ()
            held = predates(track, ts.deployed_at, lookback(pack, track, gaps))
            if held is not None:
                return Guard(
                    "predates_deploy",
                    "rollback unlikely to help: condition predates deployment "
                    f"{ts.deployment} (held since {held.isoformat()}, before it went live at "
                    f"{ts.deployed_at.isoformat()})",
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


def lookback(pack: RulePack, track: Track, gaps: tuple[float, ...] = ()) -> timedelta:
    """How far before go-live deploy correlation looks: the configured span, and never less
    than the rule's own sustain span (its ``for``, or its consecutive count at the cadence
    the track has seen)."""
    rule = track.rule
    span = rule.predates_lookback or pack.flowchart.predates_lookback
    sustain = rule.sustain
    if sustain.for_ is not None:
        span = max(span, sustain.for_)
    if gaps:
        cadence = sorted(gaps)[len(gaps) // 2]
        span = max(span, timedelta(seconds=cadence * sustain.consecutive))
    return span


def predates(track: Track, live_at: datetime, span: timedelta) -> datetime | None:
    """When the condition already held before go-live, if it did (None: it did not).

    It did if the current run of satisfying samples began before go-live, or if a run that
    made the rule fire ended within ``span`` before go-live and the current run began within
    ``span`` after it: one good sample at the moment of go-live does not acquit the old
    deployment (a condition that came back long after go-live is the new deployment's own).
    """
    start = track.streak_start
    if start is None:
        return None
    if start < live_at:
        return start
    if start - live_at > span:
        return None
    horizon = live_at - span
    for episode in track.episodes:
        if episode.fired and episode.start < live_at and episode.last >= horizon:
            return episode.start
    return None
