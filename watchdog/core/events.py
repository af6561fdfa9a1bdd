"""How each event changes a target's state: deployments (and chapters), acks, declarations,
rollback outcomes, the app's reported version.

Pure functions over :class:`~watchdog.core.state.TargetState`; the engine calls them from
``apply`` (and ``observe``, for version samples), then decides.
"""

from __future__ import annotations

from datetime import datetime

from watchdog.core.flowchart import DECLARED_RULE
from watchdog.core.model import (
    AckDecision,
    AckEvent,
    DeclareEvent,
    DeployEvent,
    RollbackOutcome,
    RollbackResultEvent,
    RolloutEvent,
    RolloutState,
    Severity,
)
from watchdog.core.rules import RulePack
from watchdog.core.state import Incident, RollbackPhase, Rollout, TargetState


def version_seen(ts: TargetState, version: str, at: datetime) -> None:
    """The app reported ``version``: does the live deployment carry it?"""
    ts.version = version
    if ts.deployment is None:
        return
    if ts.deploy_version is None:
        # not anchored yet (the deployment was just learnt): this is its version, if it
        # can be
        if not ts.versions or matches(version, ts.versions):
            ts.deploy_version = version
        ts.unknown_version_since = None
    elif version == ts.deploy_version or matches(version, ts.versions):
        ts.unknown_version_since = None
    elif ts.unknown_version_since is None:
        # the app serves a version the live deployment does not: production changed and
        # the new deployment is not known yet
        ts.unknown_version_since = at


def switch(ts: TargetState, event: DeployEvent, at: datetime) -> str | None:
    """Production now serves ``event.deployment``; returns what it served before."""
    previous = ts.deployment
    ts.deployment = event.deployment
    ts.previous_deployment = previous
    ts.deployed_at = event.live_since or at
    ts.versions = frozenset(event.versions)
    # the version the app reports now belongs to the new deployment only if the event
    # says so; otherwise the next version sample tells (the app may still serve the old)
    matched = ts.version is not None and bool(ts.versions) and matches(ts.version, ts.versions)
    ts.deploy_version = ts.version if matched else None
    ts.unknown_version_since = None
    return previous


def anchor_version(ts: TargetState) -> None:
    """The live deployment was confirmed: the app's current version is its, if it can be."""
    if ts.version is not None and (not ts.versions or matches(ts.version, ts.versions)):
        ts.deploy_version = ts.version
    else:
        ts.deploy_version = None
    ts.unknown_version_since = None


def deployed(pack: RulePack, ts: TargetState, event: DeployEvent, at: datetime) -> None:
    """Production serves ``event.deployment``: a landing rollback, or a new chapter."""
    if event.deployment == ts.deployment:
        # the same deployment again (a repeated look-up, a replayed line): one fact,
        # counted once; it still confirms which version the app serves for it
        if event.live_since is not None and (
            ts.deployed_at is None or event.live_since < ts.deployed_at
        ):
            ts.deployed_at = event.live_since
        if event.versions:
            ts.versions = frozenset(event.versions)
        anchor_version(ts)
        return
    incident = ts.incident
    in_flight = incident is not None and incident.rollback == RollbackPhase.IN_FLIGHT
    previous = switch(ts, event, at)
    if event.rollback or in_flight:
        # a rollback landed (ours, or a human's): the deployment it left is known bad
        if previous:
            ts.known_bad.add(previous)
        ts.intensive_until = at + pack.flowchart.intensive_watch
        if incident is not None:
            if incident.rollback in (RollbackPhase.IN_FLIGHT, RollbackPhase.NONE):
                incident.rollback = RollbackPhase.SUCCEEDED
                incident.rollback_done_at = at
            incident.rollback_to = event.deployment
        return
    if incident is not None:
        chapter = incident.deployment
        if chapter == event.deployment:
            return  # the chapter's own deployment, learnt again (e.g. after a restart)
        if chapter is None and (event.live_since is None or event.live_since <= incident.opened_at):
            incident.deployment = event.deployment  # it served all along: now known
            return
        # a new deployment during an open incident starts a new chapter, judged on its
        # own: its own deploy correlation, rollback and fix-forward window
        incident.chapter += 1
        incident.deployment = event.deployment
        incident.declared = False
        incident.declared_reason = ""
        incident.fix_forward_start = None
        incident.ack_until = None
        incident.ack_by = ""
        incident.rollback = RollbackPhase.NONE
        incident.rollback_at = incident.rollback_done_at = None
        incident.rollback_to = None
        incident.rollback_detail = ""
        incident.standing = None
        incident.standing_rule = None


def acknowledged(pack: RulePack, ts: TargetState, event: AckEvent, at: datetime) -> None:
    incident = ts.incident
    if incident is None:
        return
    if event.decision is AckDecision.ROLLBACK:
        incident.declared = True
        incident.declared_reason = f"acknowledged with 'rollback'{_by(event.by)}"
        return
    window = event.window or pack.flowchart.fix_forward_window
    incident.ack_until = at + window
    incident.ack_by = event.by


def declared(ts: TargetState, event: DeclareEvent, at: datetime) -> None:
    incident = ts.incident
    if incident is None:
        incident = ts.incident = open_incident(ts, at, event.severity, DECLARED_RULE, at)
    incident.declared = True
    incident.declared_reason = (event.reason or "declared") + _by(event.by)
    incident.severity = min(incident.severity, event.severity, key=lambda s: s.rank)


def rollback_result(
    pack: RulePack, ts: TargetState, event: RollbackResultEvent, at: datetime
) -> None:
    """What became of the chapter's rollback (the dispatcher, or replay, says)."""
    incident = ts.incident
    outcome = event.outcome
    if (
        outcome is RollbackOutcome.SUCCEEDED
        and event.deployment
        and event.deployment != ts.deployment
    ):
        # the rollback switched production: one event says both facts
        previous = switch(ts, DeployEvent(ts.name, at, event.deployment), at)
        if previous:
            ts.known_bad.add(previous)
    if outcome is RollbackOutcome.SUCCEEDED and event.aborted:
        # the abort of a rolling release landed: the canary is known bad, and that rollout
        # over (only that one: an older rollback settled late must not end a newer rollout,
        # which Vercel's next read would not restate)
        ts.known_bad.add(event.aborted)
        if ts.rollout is not None and ts.rollout.canary == event.aborted:
            ts.rollout = None
            _approval(pack, ts)
    if incident is None:
        return
    if outcome is RollbackOutcome.SUCCEEDED:
        if incident.rollback in (RollbackPhase.IN_FLIGHT, RollbackPhase.NONE):
            incident.rollback = RollbackPhase.SUCCEEDED
            incident.rollback_done_at = at
            ts.intensive_until = at + pack.flowchart.intensive_watch
        if event.deployment:
            incident.rollback_to = event.deployment
    elif outcome is RollbackOutcome.FAILED:
        incident.rollback = RollbackPhase.FAILED
        incident.rollback_detail = event.detail
    elif outcome is RollbackOutcome.VERIFIED:
        incident.rollback = RollbackPhase.VERIFIED
        if incident.rollback_done_at is None:
            incident.rollback_done_at = at
    elif outcome is RollbackOutcome.VERIFY_FAILED:
        incident.rollback = RollbackPhase.VERIFY_FAILED
        incident.rollback_detail = event.detail
    elif outcome is RollbackOutcome.ABANDONED:
        # it never happened: the chapter may roll back again, and it spent no budget
        if incident.rollback_at is not None and incident.rollback_at in ts.auto_rollbacks:
            ts.auto_rollbacks.remove(incident.rollback_at)
        incident.rollback = RollbackPhase.NONE
        incident.rollback_at = incident.rollback_done_at = None
        incident.rollback_detail = event.detail
    elif outcome is RollbackOutcome.SHADOWED:
        incident.rollback = RollbackPhase.SHADOW
        incident.rollback_done_at = at
        incident.rollback_to = event.deployment or None


def open_incident(
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
        # during a rolling release the canary is what changed: the chapter is its
        deployment=ts.rollout.canary if ts.rollout is not None else ts.deployment,
    )


def rollout(pack: RulePack, ts: TargetState, event: RolloutEvent, at: datetime) -> None:
    """The project's rolling release as Vercel reports it: active (which stage), or over."""
    if event.state is RolloutState.ACTIVE and event.canary:
        current = ts.rollout
        if current is None or current.canary != event.canary:
            current = ts.rollout = Rollout(event.canary, event.base, since=at)
        if event.stage != current.stage or current.stage_since is None:
            current.stage = event.stage
            current.stage_since = at
            current.approved = None
        current.base = event.base or current.base
        current.percent = event.percent
        current.requires_approval = event.requires_approval
        current.next_stage = event.next_stage
    else:
        ts.rollout = None
    _approval(pack, ts)


def compared(ts: TargetState) -> tuple[str | None, str | None]:
    """(new, old): the deployments a baseline rule compares. During a rolling release the
    canary against its base; otherwise the live deployment against the one before it."""
    if ts.rollout is not None:
        return (ts.rollout.canary, ts.rollout.base)
    return (ts.deployment, ts.previous_deployment)


def _approval(pack: RulePack, ts: TargetState) -> None:
    current = ts.rollout
    ts.approval_pending = (
        pack.flowchart.approve_stages
        and current is not None
        and current.requires_approval
        and current.next_stage is not None
        and current.approved != current.next_stage
    )


def matches(version: str, versions: frozenset[str]) -> bool:
    """A reported version names a deployment: equal, or a short SHA of its full SHA."""
    if version in versions:
        return True
    return len(version) >= 7 and any(
        len(v) >= 7 and (v.startswith(version) or version.startswith(v)) for v in versions
    )


def _by(who: str) -> str:
    return f" by {who}" if who else ""
