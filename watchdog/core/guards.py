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

from watchdog.core.events import compared
from watchdog.core.flowchart import FlowVerdict, format_value
from watchdog.core.model import Window
from watchdog.core.rules import COMPARATORS, Rule, RulePack, format_duration
from watchdog.core.state import ROLLBACK_BROKEN, ROLLED_BACK, Reading, TargetState, Track
from watchdog.core.stats import wilson_bounds, z_for


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
    live_at, deployment = ts.deployed_at, ts.deployment
    if ts.rollout is not None:
        # a rolling release: the canary went live when it started taking traffic
        live_at, deployment = ts.rollout.since, ts.rollout.canary
    if live_at is None:
        if flow.require_known_deployment:
            return Guard(
                "deploy_unknown",
                "rollback unlikely to help: no deployment known to correlate with",
            )
    else:
        age = now - live_at
        if age > flow.max_deploy_age:
            return Guard(
                "deploy_too_old",
                f"rollback unlikely to help: deployment {deployment} went live "
                f"{format_duration(age)} ago "
                f"(max_deploy_age {format_duration(flow.max_deploy_age)})",
            )
        track = verdict.track
        if track is not None:
            state = ts.signals.get(track.signal)
            gaps = tuple(state.gaps) if state is not None else ()
            held = predates(track, live_at, lookback(pack, track, gaps))
            if held is not None:
                return Guard(
                    "predates_deploy",
                    "rollback unlikely to help: condition predates deployment "
                    f"{deployment} (held since {held.isoformat()}, before it went live at "
                    f"{live_at.isoformat()})",
                )
            # sticky for the chapter: noise in the next sample must not acquit the deployment
            # it just cleared; only a baseline rule firing (new measurably worse) does
            standing = incident.not_the_deployment if incident is not None else ""
            as_bad = standing or baseline_as_bad(pack, ts, track, now)
            if as_bad and not any(
                t.firing and t.rule.baseline is not None for t in ts.tracks.values()
            ):
                return Guard("baseline_as_bad", as_bad)
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


def baseline_as_bad(pack: RulePack, ts: TargetState, track: Track, now: datetime) -> str | None:
    """Deploy correlation by comparison: if the old deployment breaks the same rule over the
    same minutes, the new one is not to blame (a dependency, the database, traffic)."""
    rule = track.rule
    if rule.baseline is not None:
        return None  # a baseline rule fires because the new one is worse than the old
    new, old = compared(ts)
    if new is None or old is None:
        return None
    mine = ts.tagged.get((track.signal, new))
    theirs = ts.tagged.get((track.signal, old))
    span = pack.flowchart.baseline_pairing
    if mine is None or theirs is None or now - theirs.at > span or abs(mine.at - theirs.at) > span:
        return None
    if not _as_bad(rule, mine, theirs):
        return None
    return (
        f"not the deployment: the old deployment {old} is as bad over the same minutes "
        f"({track.signal} {format_value(track.signal, theirs.value)} on {old}, "
        f"{format_value(track.signal, mine.value)} on {new})"
    )


def _as_bad(rule: Rule, new: Reading, old: Reading) -> bool:
    """Could the old deployment be as bad? Its reading crosses the rule's threshold, judged
    generously (the far end of its 95% Wilson interval when counts are known): a noisy
    borderline reading must not turn "a dependency failed" into "blame the canary". Only a
    baseline rule firing (the new one measurably and repeatedly worse) overrides it."""
    value = old.value
    if old.requests:
        low, high = wilson_bounds(value, old.requests, z_for(0.95))
        value = high if rule.worse_when_higher else low
    return COMPARATORS[rule.op](value, rule.threshold)


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
