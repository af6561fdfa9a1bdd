"""The procedure's "Incident Post-Mortem Template", drafted from the watchdog's records.

Pure: records in, Markdown out; no store, clock or I/O (the CLI loads the records). The draft
keeps the template's headings and order exactly, fills in only what the records prove
(times, rule, reason, signal values, rollback from/to, the guard rail that refused), and
leaves the sections that need human judgement as the template's own prompts. An event the
records do not show is written as "—", never guessed: a post-mortem with an invented time is
worse than one with a gap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from watchdog.postmortem_template import HUMAN_REVIEW, HUMAN_SECTIONS
from watchdog.redact import NO_SECRETS, Redactor
from watchdog.store.base import (
    ActionRecord,
    ActionStatus,
    DecisionRecord,
    IncidentRecord,
    RollbackRecord,
    RollbackState,
)

METHOD: Final = "Vercel Instant Rollback"
NONE: Final = "—"
#: the Vercel job finished and production served the target (verification may still fail)
_COMPLETED: Final = frozenset(
    {RollbackState.SUCCEEDED, RollbackState.VERIFIED, RollbackState.VERIFY_FAILED}
)


def _utc(at: datetime) -> datetime:
    # a backend that drops the offset still stored UTC: read a naive time as UTC, never local
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _iso(at: datetime) -> str:
    return _utc(at).isoformat(timespec="seconds").replace("+00:00", "Z")


def _hhmm(at: datetime, day: str) -> str:
    """HH:MM as the template asks, with the date prepended when it is not the incident's day."""
    at = _utc(at)
    return at.strftime("%H:%M") if at.date().isoformat() == day else at.strftime("%Y-%m-%d %H:%M")


def _span(delta: timedelta) -> str:
    seconds = max(0, round(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _cell(text: str) -> str:
    """A table cell: a pipe or newline in a reason must not break the row."""
    return " ".join(text.split()).replace("|", "\\|")


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:g}"
    return str(value)


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class _Signal:
    """One firing signal across the incident: its first firing value (and since when), its worst."""

    rule: str
    signal: str
    op: str
    threshold: Any
    first: Any
    first_at: datetime
    worst: Any
    unknown: str | None


def _when(value: Any) -> datetime | None:
    """An observation's ``since``: a datetime in memory, an ISO string once stored as JSON."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _worse(op: str, a: Any, b: Any) -> bool:
    """Is ``b`` further past the threshold than ``a``? Direction follows the rule's operator."""
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return False
    return b < a if op.startswith("<") else b > a


def _firing_signals(decisions: Sequence[DecisionRecord]) -> list[_Signal]:
    found: dict[tuple[str, str], _Signal] = {}
    for dec in decisions:
        raw = dec.data.get("observations")
        if not isinstance(raw, list):
            continue
        for obs in raw:
            if not isinstance(obs, Mapping) or not obs.get("firing"):
                continue
            key = (str(obs.get("rule", "")), str(obs.get("signal", "")))
            value = obs.get("value")
            unknown = obs.get("unknown")
            since = _when(obs.get("since")) or dec.at
            seen = found.get(key)
            if seen is None:
                found[key] = _Signal(
                    rule=key[0],
                    signal=key[1],
                    op=str(obs.get("op", "")),
                    threshold=obs.get("threshold"),
                    first=value,
                    first_at=since,
                    worst=value,
                    unknown=str(unknown) if unknown else None,
                )
            elif _worse(seen.op, seen.worst, value) or (seen.worst is None and value is not None):
                found[key] = _Signal(
                    seen.rule,
                    seen.signal,
                    seen.op,
                    seen.threshold,
                    seen.first,
                    seen.first_at,
                    value,
                    seen.unknown,
                )
    return list(found.values())


def _describe_signal(sig: _Signal, day: str) -> str:
    threshold = f"{sig.op} {_number(sig.threshold)}".strip()
    if sig.first is None:
        value = f"unknown: {sig.unknown}" if sig.unknown else "unknown"
    else:
        value = _number(sig.first)
    text = f"`{sig.signal}` {value} (threshold {threshold}, rule `{sig.rule}`)"
    text += f" since {_hhmm(sig.first_at, day)} UTC"
    if sig.worst is not None and sig.worst != sig.first:
        text += f", worst {_number(sig.worst)}"
    return text


def _refusal(
    decisions: Sequence[DecisionRecord], actions: Sequence[ActionRecord]
) -> tuple[str, str] | None:
    """``(guard rail, reason)`` of the first refused rollback: the engine's or the dispatcher's."""
    events: list[tuple[datetime, str, str]] = []
    for dec in decisions:
        refused_by = dec.data.get("refused_by")
        if isinstance(refused_by, str) and refused_by:
            events.append((dec.at, refused_by, dec.reason))
    for act in actions:
        refused_by = act.detail.get("refused_by")
        if act.kind == "rollback" and isinstance(refused_by, str) and refused_by:
            events.append((act.finished_at or act.created_at, refused_by, act.error or ""))
    if not events:
        return None
    _, by, reason = min(events, key=lambda e: _utc(e[0]))
    return by, reason


def _first_page(actions: Iterable[ActionRecord]) -> datetime | None:
    pages = [
        a.finished_at or a.created_at
        for a in actions
        if a.kind == "page" and a.status is ActionStatus.SUCCEEDED
    ]
    return min(pages, key=_utc) if pages else None


def _title(incident: IncidentRecord) -> str:
    what = incident.rule or ("declared incident" if incident.declared else "incident")
    title = f"{incident.target}: {what}"
    if incident.deployment:
        title += f" after deployment {incident.deployment}"
    return title


# --------------------------------------------------------------------------- render


def render_postmortem(
    incident: IncidentRecord,
    decisions: Sequence[DecisionRecord],
    actions: Sequence[ActionRecord],
    rollbacks: Sequence[RollbackRecord],
    *,
    deployed_at: datetime | None = None,
    redactor: Redactor = NO_SECRETS,
) -> str:
    """The post-mortem draft for ``incident`` as Markdown.

    Records of other incidents are ignored (the caller may pass a target's whole history);
    shadow-mode rollbacks never count as rollbacks that happened. ``redactor`` scrubs the
    whole draft: records written before redaction existed may still quote a secret, and a
    draft is pasted into documents and tickets.
    """
    decisions = sorted(
        (d for d in decisions if d.incident == incident.id), key=lambda d: _utc(d.at)
    )
    actions = [a for a in actions if a.incident == incident.id]
    ours = sorted(
        (r for r in rollbacks if r.incident == incident.id), key=lambda r: _utc(r.requested_at)
    )
    real = [r for r in ours if r.state is not RollbackState.SHADOW]
    shadow = [r for r in ours if r.state is RollbackState.SHADOW]
    initiated = real[0] if real else None
    completed = next((r for r in real if r.state in _COMPLETED and r.finished_at), None)
    failed = next((r for r in real if r.state is RollbackState.FAILED), None)
    refusal = _refusal(decisions, actions)
    signals = _firing_signals(decisions)

    start = incident.first_detected_at or incident.opened_at
    day = _utc(start).date().isoformat()
    end = incident.resolved_at
    duration = (
        f"{_span(_utc(end) - _utc(start))} ({_hhmm(start, day)} – {_hhmm(end, day)} UTC)"
        if end is not None
        else f"ongoing (since {_hhmm(start, day)} UTC)"
    )
    impact_span = (
        f"{_hhmm(start, day)} – {_hhmm(end, day)} UTC"
        if end is not None
        else f"{_hhmm(start, day)} UTC – ongoing"
    )

    out: list[str] = [
        f"# Incident Post-Mortem: {_title(incident)}",
        "",
        f"**Date**: {day} (incident `{incident.id}`, opened {_iso(incident.opened_at)})",
        f"**Duration**: {duration}",
        f"**Severity**: {incident.severity}",
        "**Incident Commander**: [Name]",
        "",
        "## Summary",
        "",
        _summary(incident, refusal, initiated, completed, failed, shadow, day),
        "",
        "## Impact",
        "",
        "- **Users Affected**: [Number or percentage]",
        "- **Features Affected**: [List]",
        "- **Financial Impact**: [If applicable]",
        f"- **Duration**: {impact_span}",
    ]
    if signals:
        out.append("- **Signals at detection**:")
        out.extend(f"  - {_describe_signal(s, day)}" for s in signals)
    out += [
        "",
        "## Timeline",
        "",
        "| Time | Event |",
        "|------|-------|",
    ]
    out += [
        f"| {time} | {_cell(event)} |"
        for time, event in _timeline(
            incident, actions, initiated, completed, failed, refusal, shadow, deployed_at, day
        )
    ]
    out += [
        "",
        HUMAN_SECTIONS,
        "## Resolution",
        "",
        _resolution(incident, refusal, initiated, completed, failed, shadow, day),
        "",
        HUMAN_REVIEW,
        "---",
        "",
        f"**Prepared By**: [Name] (draft from rollback-watchdog's records of `{incident.id}`)",
        "**Reviewed By**: [Name, Name]",
        "**Date**: [Date]",
        "",
    ]
    return redactor.text("\n".join(out))


def _summary(
    incident: IncidentRecord,
    refusal: tuple[str, str] | None,
    initiated: RollbackRecord | None,
    completed: RollbackRecord | None,
    failed: RollbackRecord | None,
    shadow: Sequence[RollbackRecord],
    day: str,
) -> str:
    opened = _hhmm(incident.opened_at, day)
    if incident.declared:
        first = (
            f"A human declared a {incident.severity} incident on {incident.target} at {opened} UTC"
        )
    else:
        first = (
            f"The watchdog opened a {incident.severity} incident on {incident.target} at "
            f"{opened} UTC"
        )
    if incident.rule:
        first += f" (rule `{incident.rule}`)"
    sentences = [f"{first}: {incident.reason.rstrip('.')}."]
    if incident.deployment:
        sentences.append(f"Production was serving deployment `{incident.deployment}`.")
    if completed is not None:
        how = "An automatic" if completed.automatic else "A manual"
        sentences.append(
            f"{how} {METHOD} moved production from `{completed.from_deployment or '?'}` "
            f"to `{completed.to_deployment or '?'}`"
            + (
                ", and verification passed."
                if completed.state is RollbackState.VERIFIED
                else ", but verification did not confirm it."
                if completed.state is RollbackState.VERIFY_FAILED
                else "."
            )
        )
    elif failed is not None:
        sentences.append(
            f"A {METHOD} to `{failed.to_deployment or '?'}` was attempted and did not take: "
            f"{failed.detail.rstrip('.') or 'no detail recorded'}."
        )
    elif initiated is not None:
        sentences.append(
            f"A {METHOD} to `{initiated.to_deployment or '?'}` was requested; the records do "
            "not show it finishing."
        )
    if refusal is not None:
        by, reason = refusal
        sentences.append(
            f"Automatic rollback was refused by the `{by}` guard rail"
            + (f": {reason.rstrip('.')}." if reason else ".")
        )
    if shadow and initiated is None:
        sentences.append(
            f"The watchdog ran in shadow mode and only recorded: {shadow[0].detail.rstrip('.')}."
        )
    if incident.resolved_at is None:
        sentences.append("The incident is still open.")
    return " ".join(sentences)


def _timeline(
    incident: IncidentRecord,
    actions: Sequence[ActionRecord],
    initiated: RollbackRecord | None,
    completed: RollbackRecord | None,
    failed: RollbackRecord | None,
    refusal: tuple[str, str] | None,
    shadow: Sequence[RollbackRecord],
    deployed_at: datetime | None,
    day: str,
) -> list[tuple[str, str]]:
    def at(when: datetime | None) -> str:
        return _hhmm(when, day) if when is not None else NONE

    deploy = "Deployment to production"
    if incident.deployment:
        deploy += f" (`{incident.deployment}`)"
    if deployed_at is None:
        deploy += ": go-live time not recorded"

    detected = "First error detected"
    if incident.first_detected_at is None:
        detected += ": not recorded"
    elif incident.rule:
        detected += f" (rule `{incident.rule}`)"

    declared = "Incident declared"
    if incident.declared:
        declared += " by a human"
    else:
        declared += f" automatically by the watchdog ({incident.severity})"
    paged = _first_page(actions)
    if paged is not None:
        declared += f"; on-call paged at {at(paged)}"

    if initiated is not None:
        how = "automatic" if initiated.automatic else "manual"
        started = (
            f"Rollback initiated ({how}, {METHOD}: `{initiated.from_deployment or '?'}` → "
            f"`{initiated.to_deployment or '?'}`)"
        )
    elif refusal is not None:
        started = f"Rollback initiated: none (automatic rollback refused by `{refusal[0]}`)"
    elif shadow:
        started = "Rollback initiated: none (shadow mode: recorded, not executed)"
    else:
        started = "Rollback initiated: none"

    if completed is not None:
        done = f"Rollback completed (production serves `{completed.to_deployment or '?'}`)"
        if completed.state is RollbackState.VERIFY_FAILED:
            done += "; verification then failed"
    elif failed is not None:
        when = f" at {at(failed.finished_at)}" if failed.finished_at is not None else ""
        done = f"Rollback completed: none (the rollback failed{when}: {failed.detail or '?'})"
    else:
        done = "Rollback completed: none"

    stable_at: datetime | None = None
    stable = "System verified stable"
    if completed is not None and completed.verified_at is not None:
        stable_at = completed.verified_at
        stable += " (rollback verification passed)"
    elif incident.resolved_at is not None:
        stable_at = incident.resolved_at
        stable += " (incident resolved)"
    elif completed is not None and completed.state is RollbackState.VERIFY_FAILED:
        stable += f": verification failed: {completed.detail or 'no detail'}"
    else:
        stable += ": not yet"

    return [
        (at(deployed_at), deploy),
        (at(incident.first_detected_at), detected),
        (at(incident.opened_at), declared),
        (at(initiated.requested_at if initiated else None), started),
        (at(completed.finished_at if completed else None), done),
        (at(stable_at), stable),
    ]


def _resolution(
    incident: IncidentRecord,
    refusal: tuple[str, str] | None,
    initiated: RollbackRecord | None,
    completed: RollbackRecord | None,
    failed: RollbackRecord | None,
    shadow: Sequence[RollbackRecord],
    day: str,
) -> str:
    prompt = "[How the issue was resolved - rollback method, fix implemented, etc.]"
    lines: list[str] = []
    if completed is not None and completed.finished_at is not None:
        took = _span(_utc(completed.finished_at) - _utc(completed.requested_at))
        line = (
            f"{METHOD} (Method 1) from `{completed.from_deployment or '?'}` to "
            f"`{completed.to_deployment or '?'}`: requested {_hhmm(completed.requested_at, day)} "
            f"UTC, production served the target at {_hhmm(completed.finished_at, day)} UTC "
            f"({took})."
        )
        if completed.verified_at is not None:
            line += f" Verification passed at {_hhmm(completed.verified_at, day)} UTC."
        elif completed.state is RollbackState.VERIFY_FAILED:
            line += f" Verification failed: {completed.detail or 'no detail recorded'}."
        lines.append(line)
        lines.append(
            "After a rollback Vercel stops assigning new deployments to production: promote "
            'the fixed deployment (dashboard "Undo Rollback" or `vercel promote`) once it is '
            "ready."
        )
    elif failed is not None:
        lines.append(
            f"The {METHOD} to `{failed.to_deployment or '?'}` did not take "
            f"({failed.state}): {failed.detail or 'no detail recorded'}."
        )
    elif initiated is not None:
        lines.append(
            f"A {METHOD} to `{initiated.to_deployment or '?'}` was requested "
            f"({initiated.state}); the records do not show how it ended."
        )
    if refusal is not None:
        by, reason = refusal
        lines.append(
            f"No automatic rollback: the `{by}` guard rail refused it"
            + (f" ({reason.rstrip('.')})." if reason else ".")
            + " On-call was paged to decide."
        )
    if shadow and initiated is None:
        lines.append(f"Shadow mode: {shadow[0].detail.rstrip('.')} (not executed).")
    if incident.resolved_at is None:
        lines.append("Not resolved yet: the incident is still open.")
    else:
        lines.append(f"Incident resolved at {_iso(incident.resolved_at)}.")
    lines.append(prompt)
    return "\n\n".join(lines)
