"""Past incidents for the incident history page: what was done, how long, the post-mortem draft.

I/O boundary: the store's records, read when a page is asked for; the timeline and the draft
are the pure :mod:`watchdog.timeline` and :mod:`watchdog.postmortem` over those records, so
the page, ``/api/incidents/{id}`` and ``watchdog postmortem`` tell the same story.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from watchdog.postmortem import render_postmortem
from watchdog.redact import NO_SECRETS, Redactor
from watchdog.store.base import EventLog, IncidentRecord, RollbackRecord, Store
from watchdog.timeline import Entry, duration, incident_timeline, what_was_done

#: records read per incident (a long, flapping incident has many decisions)
RECORDS = 10_000


@dataclass(frozen=True, slots=True)
class IncidentRow:
    record: IncidentRecord
    done: str
    duration: str


@dataclass(frozen=True, slots=True)
class IncidentPage:
    row: IncidentRow
    timeline: tuple[Entry, ...]
    postmortem: str


async def deployed_at(events: EventLog, target: str, deployment: str | None) -> datetime | None:
    """When ``deployment`` went live on ``target``, from the recorded deploy events."""
    if deployment is None:
        return None
    for event in reversed(await events.list_events(target=target)):
        if event.kind == "deploy" and event.data.get("deployment") == deployment:
            return event.at
    return None


async def incident_rows(store: Store, now: datetime, limit: int = 100) -> list[IncidentRow]:
    """Newest first, each with a line of what was done and its duration."""
    rows = []
    rollbacks: dict[str, list[RollbackRecord]] = {}
    for record in await store.list_incidents(limit=limit):
        if record.target not in rollbacks:
            rollbacks[record.target] = await store.list_rollbacks(target=record.target)
        decisions = await store.list_decisions(incident=record.id, limit=RECORDS)
        actions = await store.list_actions(incident=record.id, limit=RECORDS)
        done = what_was_done(record, decisions, actions, rollbacks[record.target])
        rows.append(IncidentRow(record, done, duration(record, now)))
    return rows


async def incident_page(store: Store, incident_id: str, now: datetime) -> IncidentPage | None:
    record = await store.load_incident(incident_id)
    if record is None:
        return None
    decisions = await store.list_decisions(incident=record.id, limit=RECORDS)
    actions = await store.list_actions(incident=record.id, limit=RECORDS)
    rollbacks = await store.list_rollbacks(target=record.target)
    events = await store.list_events(target=None)
    timeline = incident_timeline(record, decisions, actions, rollbacks, events)
    live = await deployed_at(store, record.target, record.deployment)
    draft = render_postmortem(record, decisions, actions, rollbacks, deployed_at=live)
    done = what_was_done(record, decisions, actions, rollbacks)
    return IncidentPage(IncidentRow(record, done, duration(record, now)), tuple(timeline), draft)


async def postmortem_of(
    store: Store, incident_id: str, redactor: Redactor = NO_SECRETS
) -> str | None:
    """The post-mortem draft of one incident, or None when the store has no such incident."""
    record = await store.load_incident(incident_id)
    if record is None:
        return None
    return render_postmortem(
        record,
        await store.list_decisions(incident=record.id, limit=RECORDS),
        await store.list_actions(incident=record.id, limit=RECORDS),
        await store.list_rollbacks(target=record.target),
        deployed_at=await deployed_at(store, record.target, record.deployment),
        redactor=redactor,
    )
