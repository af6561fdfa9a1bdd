"""One target's decision at one moment: flowchart, guard rails, incident bookkeeping.

Pure: :func:`decide` reads the target's state (tracks, incident, deployment) and returns the
:class:`~watchdog.core.model.Decision`, updating only the incident it opens, escalates or
resolves. Reasons say what was done about the chapter's deployment
(:func:`rollback_note`), so every page and record can explain itself.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import datetime

from watchdog.core import events
from watchdog.core.flowchart import QUIET_PATH, FlowVerdict, describe, walk_flowchart
from watchdog.core.guards import guard_rollback
from watchdog.core.model import Action, Decision, Observation, Severity, UnknownReason, Window
from watchdog.core.rules import RulePack, format_duration
from watchdog.core.state import (
    ROLLED_BACK,
    Incident,
    RollbackPhase,
    SignalState,
    TargetState,
    Track,
)
from watchdog.core.tracks import active, quiet_track


def firing(ts: TargetState, now: datetime) -> list[Track]:
    """Firing tracks whose rule is active in the target's current phase, worst first."""
    out = [t for t in ts.tracks.values() if t.firing and active(t.rule, ts, now)]
    out.sort(key=lambda t: (t.rule.severity.rank, not t.rule.rollback))
    return out


def blind(pack: RulePack, ts: TargetState, now: datetime) -> list[str]:
    """What the watchdog cannot see, in sentences: signals unknown for ``blind_after``,
    rules that cannot be judged for lack of a request count as long, and rules firing on
    a streak the reachability canary says the watchdog partly saw through its own
    broken network."""
    limit = pack.flowchart.blind_after
    out: list[str] = []
    unseen = []
    # the next moment something not yet blind would be: the quiet path waits for it
    upcoming: datetime | None = None
    for name, state in ts.signals.items():
        if state.unknown is None:
            continue
        at = (state.last_known or state.first_seen) + limit
        if now >= at:
            unseen.append(f"{name} ({state.unknown.value})")
        elif upcoming is None or at < upcoming:
            upcoming = at
    if unseen:
        out.append(
            "no usable data for " + ", ".join(unseen) + f" for at least {format_duration(limit)}"
        )
    if ts.blind_firing_count or ts.waiting_count:
        for track in ts.tracks.values():
            if track.blind_firing and active(track.rule, ts, now):
                out.append(
                    f"{describe(track)}, but the reachability canary failed during it: "
                    "the watchdog's own network may be down"
                )
            elif track.unknown is UnknownReason.NO_REQUEST_COUNT:
                at = (track.unknown_since or now) + limit
                if now >= at:
                    out.append(
                        f"rule {track.rule.name} cannot judge {track.signal}: no request "
                        f"count ({UnknownReason.NO_REQUEST_COUNT.value}) for at least "
                        f"{format_duration(limit)}"
                    )
                elif upcoming is None or at < upcoming:
                    upcoming = at
    ts.blind_at = now if out else upcoming
    return out


def quiet(ts: TargetState, now: datetime) -> bool:
    """Nothing firing, nothing open, and nothing unknown long enough to be blind: the
    decision is "monitor" whatever else the state holds, so :func:`decide` skips the
    flowchart. ``test_quiet_path_agrees`` proves it decides as the full path does."""
    if ts.firing_count or ts.blind_firing_count or ts.incident is not None:
        return False
    if ts.approval_pending:
        return False  # a rolling release's stage may be approved: the full path decides
    if not (ts.unknown_count or ts.waiting_count):
        return True
    return ts.blind_at is not None and now < ts.blind_at


def decide(
    pack: RulePack,
    ts: TargetState,
    now: datetime,
    *,
    kill_switch: bool,
    freezes: Sequence[Window],
) -> Decision:
    """The target's decision at ``now``: the flowchart, guard rails and the incident's
    bookkeeping (open, standing level, resolve)."""
    if quiet(ts, now):
        return quiet_decision(ts, now)
    return _decide_fully(pack, ts, now, kill_switch, freezes)


def standing_quiet(ts: TargetState, now: datetime) -> Decision | None:
    """The quiet decision if the target is quiet (:func:`quiet`), else None: one call on
    the engine's hot path."""
    if not quiet(ts, now):
        return None
    return quiet_decision(ts, now)


def quiet_decision(ts: TargetState, now: datetime) -> Decision:
    """The quiet target's decision: the standing one, reused while it holds (no objects
    per quiet sample), or a fresh "monitor"."""
    last = ts.last
    if (
        last is not None
        and last.path is QUIET_PATH
        and last.incident is None
        and last.deployment == ts.deployment
    ):
        return last
    if last is None or last.action is not Action.MONITOR or last.severity is not None:
        ts.key_since = now
    decision = Decision(
        ts.name,
        now,
        Action.MONITOR,
        None,
        None,
        "nothing firing",
        QUIET_PATH,
        deployment=ts.deployment,
    )
    ts.last = decision
    return decision


def _decide_fully(
    pack: RulePack,
    ts: TargetState,
    now: datetime,
    kill_switch: bool,
    freezes: Sequence[Window],
) -> Decision:
    firing_now = firing(ts, now)
    unseen = blind(pack, ts, now) if ts.signals else []
    verdict = walk_flowchart(pack, ts, firing_now, unseen, now)
    incident = ts.incident
    resolved: str | None = None
    execute = False
    refused: str | None = None
    action, severity, reason = verdict.action, verdict.severity, verdict.reason
    rule = verdict.rule
    path = verdict.path
    blamed = incident.deployment if incident is not None else ts.deployment
    rollout = ts.rollout
    if rollout is not None:
        blamed = rollout.canary  # during a rolling release the canary is what changed
    approve: int | None = None

    if verdict.action in (Action.MONITOR, Action.NOTIFY):
        if incident is None and ts.approval_pending:
            approve, why = _approval(pack, ts, now, kill_switch, freezes)
            if approve is not None:
                reason, path = why, (*path, "rollout:approve")
        if incident is not None:
            since = incident.clear_since or now
            incident.clear_since = since
            until = since + pack.flowchart.resolve_period
            note = rollback_note(incident, pack, now)
            if now >= until and incident.rollback != RollbackPhase.IN_FLIGHT:
                resolved = incident.id
                ts.incident = None
                done = f" ({note})" if note else ""
                reason = f"{reason}; incident {resolved} resolved{done}"
                path = (*path, "resolved")
                incident = None
            else:
                # still open: restate its standing level rather than a calmer one
                if incident.standing is not None:
                    action, severity = incident.standing
                    rule = rule or incident.standing_rule
                waits = (
                    ", once the rollback reports"
                    if incident.rollback == RollbackPhase.IN_FLIGHT
                    else ""
                )
                prefix = f"{note}; " if note else ""
                reason = (
                    f"{prefix}{reason}; incident {incident.id} resolves at "
                    f"{until.isoformat()}{waits}"
                )
                path = (*path, "resolving")
    else:
        first = verdict.track.streak_start if verdict.track else None
        if incident is None:
            assert verdict.severity is not None
            incident = ts.incident = events.open_incident(
                ts, now, verdict.severity, verdict.rule or "", first or now
            )
            blamed = incident.deployment
        incident.clear_since = None
        if (
            verdict.severity is Severity.P1
            and not verdict.wants_rollback
            and incident.fix_forward_start is None
        ):
            incident.fix_forward_start = now
        if verdict.wants_rollback:
            action, severity, reason, path, execute, refused = _rollback(
                pack, ts, incident, verdict, now, kill_switch, freezes
            )
            if path[-1].endswith(":waiting"):
                blamed = None  # the live deployment is not known yet: blame nobody
        if severity is not None and severity.rank < incident.severity.rank:
            incident.severity = severity
        standing = incident.standing
        if standing is None or (severity is not None and severity.rank <= standing[1].rank):
            if severity is not None:
                incident.standing = (action, severity)
                incident.standing_rule = rule
        else:
            # milder than what this chapter reached (a flap, a lesser rule): restate
            # the standing level; the reason says what is firing now
            action, severity = standing
            note = rollback_note(incident, pack, now)
            if note and not verdict.wants_rollback:
                reason = f"{note}; now {reason}"

    decision = Decision(
        target=ts.name,
        at=now,
        action=action,
        severity=severity,
        rule=rule,
        reason=reason,
        path=path,
        incident=incident.id if incident else resolved,
        execute_rollback=execute,
        refused_by=refused,
        deployment=blamed,
        observations=tuple(observe_track(t) for t in firing_now) if firing_now else (),
        resolved_incident=resolved,
        chapter=incident.chapter if incident else 1,
        scope="canary" if rollout is not None else "production",
        approve_stage=approve,
    )
    if ts.last is None or ts.last.key != decision.key:
        ts.key_since = now
    ts.last = decision
    return decision


def _rollback(
    pack: RulePack,
    ts: TargetState,
    incident: Incident,
    verdict: FlowVerdict,
    now: datetime,
    kill_switch: bool,
    freezes: Sequence[Window],
) -> tuple[Action, Severity | None, str, tuple[str, ...], bool, str | None]:
    """Where the chapter's rollback stands, or the guard rails' word on a new one."""
    path = verdict.path
    note = rollback_note(incident, pack, now)
    if incident.rollback == RollbackPhase.IN_FLIGHT:
        return (
            Action.ROLLBACK,
            verdict.severity,
            f"{verdict.reason}; {note}",
            (*path, "rollback:in_flight"),
            False,
            None,
        )
    if incident.rollback == RollbackPhase.SHADOW:
        # shadow mode said what it would have done; production is as it was, and the
        # chapter never asks again (a real rollback would be judged "did not help")
        return (
            Action.ROLLBACK,
            verdict.severity,
            f"{verdict.reason}; {note}",
            (*path, "rollback:shadow"),
            False,
            None,
        )
    if incident.rollback in ROLLED_BACK and incident.rollback_done_at is not None:
        settle = incident.rollback_done_at + pack.flowchart.verify_timeout
        if now < settle:
            # signals lag (trailing windows): give the rollback time to show before judging
            return (
                Action.ROLLBACK,
                verdict.severity,
                f"{verdict.reason}; {note}",
                (*path, "rollback:verifying"),
                False,
                None,
            )
    human = incident.declared
    guard = guard_rollback(
        pack,
        ts,
        verdict,
        now,
        kill_switch=kill_switch,
        freezes=freezes,
        human=human,
    )
    if guard is not None and guard.wait:
        # not a refusal: the live deployment is being looked up; blame nobody yet
        return (
            Action.PAGE,
            verdict.severity,
            f"{verdict.reason}; rollback waits: {guard.reason}",
            (*path, f"guard:{guard.name}:waiting"),
            False,
            None,
        )
    if guard is not None:
        if guard.name == "baseline_as_bad":
            incident.not_the_deployment = guard.reason
        incident.severity = Severity.P0
        prefix = f"{note}; " if note and guard.name != "already_rolled_back" else ""
        return (
            Action.PAGE,
            Severity.P0,
            f"{verdict.reason}; {prefix}rollback refused: {guard.reason}",
            (*path, f"guard:{guard.name}:refused"),
            False,
            guard.name,
        )
    incident.rollback = RollbackPhase.IN_FLIGHT
    incident.rollback_at = now
    incident.deployment = incident.deployment or ts.deployment
    if not human:
        ts.auto_rollbacks.append(now)
        horizon = now - pack.flowchart.budget_window
        ts.auto_rollbacks = [t for t in ts.auto_rollbacks if t > horizon]
    blamed = incident.deployment or ts.deployment
    what = f"; rolling back deployment {blamed}" if blamed else ""
    if ts.rollout is not None:
        share = f" ({ts.rollout.percent:g}% of users)" if ts.rollout.percent is not None else ""
        base = ts.rollout.base or "its base"
        what = (
            f"; aborting the rolling release of {ts.rollout.canary}: only the canary's share"
            f"{share} was affected; production goes back to {base}"
        )
    return (
        Action.ROLLBACK,
        verdict.severity,
        f"{verdict.reason}{what}",
        (*path, "guards:passed", "rollback"),
        True,
        None,
    )


def _approval(
    pack: RulePack,
    ts: TargetState,
    now: datetime,
    kill_switch: bool,
    freezes: Sequence[Window],
) -> tuple[int | None, str]:
    """May the watchdog approve the rolling release's next stage now? (the stage, why)."""
    rollout = ts.rollout
    assert rollout is not None
    flow = pack.flowchart
    healthy = now - (rollout.stage_since or rollout.since)
    if healthy < flow.approve_after or rollout.next_stage is None:
        return (None, "")
    if kill_switch or (ts.hold_until is not None and now < ts.hold_until):
        return (None, "")
    if any(
        w.contains(now) and any(fnmatch.fnmatchcase(ts.name, p) for p in w.targets) for w in freezes
    ):
        return (None, "")
    # evidence: the canary's own traffic was seen lately (release-scoped samples)
    seen = [r for (_, dep), r in ts.tagged.items() if dep == rollout.canary]
    if not seen or now - max(r.at for r in seen) > flow.baseline_pairing:
        return (None, "")
    rollout.approved = rollout.next_stage
    ts.approval_pending = False
    share = f" at {rollout.percent:g}%" if rollout.percent is not None else ""
    return (
        rollout.next_stage,
        f"nothing firing; the canary {rollout.canary} has been healthy{share} for "
        f"{format_duration(healthy)}: approving stage {rollout.next_stage} of its rolling "
        "release",
    )


def rollback_note(incident: Incident, pack: RulePack, now: datetime) -> str:
    """What was done about the chapter's deployment, in one clause for every later reason."""
    phase = incident.rollback
    if phase == RollbackPhase.NONE:
        return ""
    dep = incident.deployment or "the deployment"
    to = f" -> {incident.rollback_to}" if incident.rollback_to else ""
    detail = f": {incident.rollback_detail}" if incident.rollback_detail else ""
    if phase == RollbackPhase.IN_FLIGHT:
        return f"rollback of {dep} requested at {_iso(incident.rollback_at)}, in flight"
    if phase == RollbackPhase.SUCCEEDED:
        done = incident.rollback_done_at
        until = done + pack.flowchart.verify_timeout if done else None
        if until is not None and now >= until:
            return f"rolled back {dep}{to} at {_iso(done)}"
        return f"rolled back {dep}{to} at {_iso(done)}, verifying until {_iso(until)}"
    if phase == RollbackPhase.VERIFIED:
        return f"rolled back {dep}{to} at {_iso(incident.rollback_done_at)}, verified"
    if phase == RollbackPhase.FAILED:
        return f"rollback of {dep} failed{detail}"
    if phase == RollbackPhase.SHADOW:
        return (
            f"shadow mode: would have rolled back {dep}{to} at "
            f"{_iso(incident.rollback_done_at)}; nothing changed"
        )
    return f"rollback of {dep}{to} did not take (verification failed{detail})"


def observe_track(track: Track, state: SignalState | None = None) -> Observation:
    """A track as pages, records and the status page show it. A quiet track shows its
    signal's latest value (the engine lets quiet samples pass quiet tracks unseen)."""
    rule = track.rule
    value = track.judged if track.unknown is None else None
    if state is not None and quiet_track(track) and isinstance(state.value, float):
        value = state.value
    return Observation(
        rule=rule.name,
        signal=track.signal,
        value=value,
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
