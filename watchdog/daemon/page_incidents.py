"""The incident history pages: every past incident, and one incident with its timeline and
post-mortem draft (Markdown, also served raw for pasting into the team's post-mortem doc).

Pure: rows in, HTML out, escaped as on the status page (:mod:`~watchdog.daemon.page`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from watchdog.daemon.history import IncidentPage, IncidentRow
from watchdog.daemon.page import esc, layout, timeline_table, when


def _link(incident_id: str, text: str | None = None) -> str:
    return f'<a href="/incidents/{quote(incident_id, safe="")}">{esc(text or incident_id)}</a>'


def render_history(rows: Sequence[IncidentRow], now: datetime) -> str:
    body_rows = "".join(
        f'<tr data-incident="{esc(r.record.id)}" data-open="{str(r.record.open).lower()}">'
        f"<td>{_link(r.record.id)}</td><td>{esc(r.record.target)}</td>"
        f"<td>{esc(r.record.severity)}</td><td class='when'>{when(r.record.opened_at, now)}</td>"
        f"<td class='when'>{when(r.record.resolved_at, now, 'open')}</td>"
        f"<td>{esc(r.duration)}</td><td>{esc(r.done)}</td></tr>"
        for r in rows
    )
    table = (
        '<div class="scroll"><table class="stack" data-testid="history"><thead><tr>'
        "<th>incident</th><th>target</th><th>severity</th><th>opened</th><th>resolved</th>"
        f"<th>duration</th><th>what was done</th></tr></thead><tbody>{body_rows}</tbody>"
        "</table></div>"
        if rows
        else '<p class="muted" data-testid="history">No incidents recorded.</p>'
    )
    body = (
        '<section class="target level-monitor"><h2>Incident history</h2>'
        "<p>Newest first. Each incident links to its timeline and post-mortem draft.</p>"
        f"{table}</section>"
    )
    return layout("Incident history · rollback-watchdog", body, now, refresh=False)


def render_incident(page: IncidentPage, now: datetime) -> str:
    r = page.row.record
    state = "open" if r.open else f"resolved {when(r.resolved_at, now)}"
    md = f"/incidents/{quote(r.id, safe='')}/postmortem.md"
    body = (
        f'<section class="target level-{"page" if r.open else "monitor"}" '
        f'data-incident="{esc(r.id)}"><h2><span>{esc(r.id)}</span> '
        f'<span class="badge level-{"page" if r.open else "monitor"}">{esc(r.severity)}</span></h2>'
        f"<p class='summary'>{esc(r.target)}: {esc(r.reason)}</p>"
        f"<p>Opened {when(r.opened_at, now)}; {state}; lasted {esc(page.row.duration)}. "
        f"What was done: {esc(page.row.done)}.</p>"
        f"{timeline_table(page.timeline, now, 'timeline', 'Timeline')}"
        '<div class="card wide" data-testid="postmortem"><h3>Post-mortem draft (Markdown)</h3>'
        f'<p><a href="{md}">Download as Markdown</a> · or '
        f"<code>watchdog postmortem {esc(r.id)} --config CONFIG</code></p>"
        f'<pre class="markdown">{esc(page.postmortem)}</pre></div></section>'
    )
    return layout(f"{r.id} · rollback-watchdog", body, now, refresh=r.open)
