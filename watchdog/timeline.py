"""An incident's timeline, and a one-line account of what was done, from the store's records.

Pure: records in, entries out; no store, clock or I/O (the daemon's status page and incident
history load the records). Every entry is something a record proves, at the time the record
says: detections, the decisions with their flowchart path, pages and Slack posts as journaled,
the rollback from request through Vercel's job and the production switch to verification, and
what humans did (holds, acks, declares, the kill switch). A step the records do not show is
left out, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from watchdog.humanize import span, utc
from watchdog.store.base import (
    ActionRecord,
    ActionStatus,
    DecisionRecord,
    HumanEvent,
    IncidentRecord,
    RollbackRecord,
    RollbackState,
)

Kind = Literal[
    "deploy", "detected", "opened", "decision", "page", "chat", "rollback", "verify", "human",
    "resolved",
]  # fmt: skip
Outcome = Literal["ok", "failed", "pending", "skipped"]

_SWITCHED: Final = (RollbackState.SUCCEEDED, RollbackState.VERIFIED, RollbackState.VERIFY_FAILED)
#: Slack message kinds (the journal key's tail) in the procedure's words
_CHAT: Final = {
    "rollback-in-progress": '"rollback in progress"',
    "rollback-complete": '"rollback complete"',
    "resolved": '"incident resolved"',
    "shadow": '"would roll back" (shadow mode)',
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the timeline: when, what kind of step, what happened, how it ended."""

    at: datetime
    kind: Kind
    text: str
    path: tuple[str, ...] = ()
    outcome: Outcome | None = None


def incident_timeline(
    incident: IncidentRecord,
    decisions: Iterable[DecisionRecord],
    actions: Iterable[ActionRecord],
    rollbacks: Iterable[RollbackRecord],
    events: Iterable[HumanEvent],
) -> list[Entry]:
    """The incident's steps in time order; records of other incidents and targets are ignored.

    ``events`` may be the whole event log: humans' events count from the first detection to
    the resolve (the kill switch is global, so it counts whatever target it names), and the
    go-live of the blamed deployment however long before.
    """
    start = utc(incident.first_detected_at or incident.opened_at)
    end = utc(incident.resolved_at) if incident.resolved_at is not None else None
    entries: list[Entry] = []
    entries += _human(incident, events, start, end)
    if incident.first_detected_at is not None:
        rule = f"rule {incident.rule}" if incident.rule else "a rule"
        entries.append(
            Entry(utc(incident.first_detected_at), "detected", f"{rule} crossed its threshold")
        )
    declared = "declared by a human" if incident.declared else "opened by the watchdog"
    entries.append(
        Entry(
            utc(incident.opened_at),
            "opened",
            f"incident {incident.id} {declared} ({incident.severity}): {incident.reason}",
        )
    )
    entries += (_decision(d) for d in decisions if d.incident == incident.id)
    mine = [r for r in rollbacks if r.incident == incident.id]
    entries += (e for a in actions if a.incident == incident.id for e in _action(a, mine))
    for rb in mine:
        entries += _rollback(rb)
    if incident.resolved_at is not None:
        entries.append(
            Entry(utc(incident.resolved_at), "resolved", "incident resolved", outcome="ok")
        )
    # stable: steps recorded at the same moment keep the order they happened in
    return sorted(entries, key=lambda e: e.at)


def what_was_done(
    incident: IncidentRecord,
    decisions: Sequence[DecisionRecord],
    actions: Sequence[ActionRecord],
    rollbacks: Sequence[RollbackRecord],
) -> str:
    """One line for the incident history: the rollback and how it ended, else who was paged."""
    mine = [r for r in rollbacks if r.incident == incident.id]
    real = [r for r in mine if r.state is not RollbackState.SHADOW]
    parts: list[str] = []
    if real:
        rb = real[-1]
        moved = f"{rb.from_deployment or '?'} → {rb.to_deployment or '?'}"
        how = "rolled back" if rb.automatic else "rolled back (manual)"
        parts.append(
            {
                RollbackState.VERIFIED: f"{how} {moved}, verified",
                RollbackState.VERIFY_FAILED: f"{how} {moved}, verification failed",
                RollbackState.SUCCEEDED: f"{how} {moved}, not verified",
                RollbackState.FAILED: f"rollback to {rb.to_deployment or '?'} failed: {rb.detail}",
            }.get(rb.state, f"rollback {moved} requested, not finished")
        )
    elif mine:
        parts.append(f"shadow mode: {mine[-1].detail}")
    refused = [str(d.data["refused_by"]) for d in decisions if d.data.get("refused_by")]
    if refused:
        parts.append(f"automatic rollback refused by {refused[-1]}")
    pages = [a for a in actions if a.kind == "page" and a.incident == incident.id]
    if pages and not real:
        parts.append("paged on-call" if any(_sent(a) for a in pages) else "page not delivered")
    return "; ".join(parts) or "no action recorded"


def duration(incident: IncidentRecord, now: datetime) -> str:
    """From the first detection to the resolve (or to ``now``, while it is open)."""
    start = utc(incident.first_detected_at or incident.opened_at)
    end = utc(incident.resolved_at) if incident.resolved_at is not None else utc(now)
    text = span(end - start)
    return text if incident.resolved_at is not None else f"{text} so far"


# --------------------------------------------------------------------------- parts


def _sent(action: ActionRecord) -> bool:
    return action.status is ActionStatus.SUCCEEDED


def _outcome(action: ActionRecord) -> Outcome:
    if action.status is ActionStatus.SUCCEEDED:
        return "ok"
    if action.status is ActionStatus.FAILED:
        return "failed"
    return "skipped" if action.status is ActionStatus.SKIPPED else "pending"


def _decision(d: DecisionRecord) -> Entry:
    level = f"{d.action} {d.severity}" if d.severity else d.action
    refused = d.data.get("refused_by")
    extra = f" (automatic rollback refused by {refused})" if refused else ""
    return Entry(utc(d.at), "decision", f"decided {level}{extra}: {d.reason}", path=d.path)


def _action(a: ActionRecord, rollbacks: Sequence[RollbackRecord]) -> list[Entry]:
    at = utc(a.created_at)
    failed = f": {a.error}" if a.error else ""
    if a.kind == "page":
        summary = str(a.detail.get("summary") or a.detail.get("severity") or "")
        return [Entry(at, "page", f"paged on-call: {summary}{failed}", outcome=_outcome(a))]
    if a.kind == "resolve":
        return [Entry(at, "page", f"page resolved{failed}", outcome=_outcome(a))]
    if a.kind == "change":
        return [
            Entry(
                at, "page", f"rollback marked on the pager's timeline{failed}", outcome=_outcome(a)
            )
        ]
    if a.kind == "chat":
        tail = a.key.split("/slack/", 1)[-1].split("#", 1)[0]
        what = _CHAT.get(tail) or (
            "5-minute status update"
            if tail.startswith("update/")
            else f"about the {tail.split('/')[0]}"
        )
        return [Entry(at, "chat", f"Slack: {what}{failed}", outcome=_outcome(a))]
    if a.kind == "flag":
        flag = a.key.rsplit("/flag/", 1)[-1]
        return [
            Entry(at, "rollback", f"feature flag {flag} switched off{failed}", outcome=_outcome(a))
        ]
    if (
        a.kind == "rollback"
        and a.status is ActionStatus.FAILED
        and not any(r.id == a.key for r in rollbacks)
    ):
        # refused before any rollback record existed (no target, a migration in the way)
        return [
            Entry(at, "rollback", f"rollback not started: {a.error or 'refused'}", outcome="failed")
        ]
    return []


def _rollback(rb: RollbackRecord) -> list[Entry]:
    """Request, Vercel's answer and job, the production switch, verification: as far as the
    record has got."""
    out: list[Entry] = []

    def step(at: datetime, text: str, outcome: Outcome | None, kind: Kind = "rollback") -> None:
        out.append(Entry(utc(at), kind, text, outcome=outcome))

    ended = rb.finished_at or rb.requested_at
    moved = f"{rb.from_deployment or '?'} → {rb.to_deployment or '?'}"
    step(
        rb.requested_at,
        f"rollback requested ({'automatic' if rb.automatic else 'manual'}): {moved}",
        None,
    )
    accepted = "Vercel accepted it: the rollback job is running"
    waiting: dict[RollbackState, tuple[datetime, str, Outcome]] = {
        RollbackState.INTENT: (
            rb.requested_at,
            "waiting for Vercel to accept the request",
            "pending",
        ),
        RollbackState.REQUESTED: (rb.requested_at, accepted, "pending"),
        RollbackState.SHADOW: (ended, f"shadow mode, not executed: {rb.detail}", "skipped"),
        RollbackState.FAILED: (ended, f"rollback failed: {rb.detail}", "failed"),
    }
    if rb.state in waiting:
        at, text, outcome = waiting[rb.state]
        step(at, text, outcome)
    if rb.state in _SWITCHED and rb.finished_at is not None:
        step(
            rb.finished_at,
            f"Vercel's job finished: production serves {rb.to_deployment or '?'}",
            "ok",
        )
        if rb.state is RollbackState.SUCCEEDED:
            step(rb.finished_at, "verifying health, version and error rate", "pending", "verify")
    if rb.state is RollbackState.VERIFIED and rb.verified_at is not None:
        step(rb.verified_at, "verified: health, version and error rate as expected", "ok", "verify")
    elif rb.state is RollbackState.VERIFY_FAILED:
        step(rb.verified_at or ended, f"verification failed: {rb.detail}", "failed", "verify")
    return out


def _human(
    incident: IncidentRecord, events: Iterable[HumanEvent], start: datetime, end: datetime | None
) -> list[Entry]:
    out: list[Entry] = []
    went_live: Entry | None = None
    for e in events:
        at = utc(e.at)
        if e.target not in (incident.target, "*"):
            continue
        if e.kind == "deploy":
            deployment = str(e.data.get("deployment", "?"))
            entry = Entry(at, "deploy", f"deployment {deployment} went live on production")
            if deployment == incident.deployment and at <= start:
                went_live = entry  # the latest go-live of the blamed deployment
            elif start <= at and (end is None or at <= end):
                out.append(entry)
            continue
        if at < start or (end is not None and at > end):
            continue
        by = e.by or "someone"
        why = f": {e.reason}" if e.reason else ""
        if e.kind == "hold":
            if e.until is not None and utc(e.until) > at:
                text = f"{by} held automatic rollback for {span(utc(e.until) - at)}{why}"
            else:
                text = f"{by} released the hold{why}"
        elif e.kind == "release":
            text = f"{by} released the hold{why}"
        elif e.kind == "ack":
            text = f"{by} acknowledged: {e.data.get('decision', 'fix_forward')}{why}"
        elif e.kind == "declare":
            text = f"{by} declared an incident{why}"
        elif e.kind == "kill_switch":
            text = f"{by} turned the kill switch {'on' if e.data.get('on') else 'off'}{why}"
        else:
            text = f"{by}: {e.kind}{why}"
        out.append(Entry(at, "human", text))
    return ([went_live] if went_live else []) + out
