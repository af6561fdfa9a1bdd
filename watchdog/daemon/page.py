"""The status page: the :class:`~watchdog.daemon.cockpit.Board` as HTML, for the person woken
at 3 a.m.

Pure: a board in, a page out. Every string that came from a config, a source, a vendor or a
human goes through :func:`esc`; URLs are only linked when they are http(s). The page works
with JavaScript off (a ``<noscript>`` refresh); ``static/page.js`` swaps the board in place
instead. It shows commands, never buttons: control calls need the bearer token. No glyph
needs an emoji font: states are words in coloured boxes. CSS, script and favicon are package
data served by :mod:`~watchdog.daemon.server` (the Content-Security-Policy forbids inline
ones).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib import resources
from urllib.parse import quote

from watchdog.core.views import Guards, IncidentState, NextStep, RuleView, TargetView
from watchdog.daemon.cockpit import (
    Board,
    Command,
    Deployments,
    Headline,
    PastIncident,
    Phase,
    TargetBoard,
)
from watchdog.humanize import relative, span, times_in
from watchdog.timeline import Entry

#: seconds between refreshes with JavaScript off (page.js refreshes every 5 s)
REFRESH_S = 10


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def asset(name: str) -> bytes:
    """A static file shipped with the package (``watchdog/daemon/static``)."""
    return resources.files("watchdog.daemon").joinpath("static", name).read_bytes()


def when(at: datetime | None, now: datetime, none: str = "—") -> str:
    """A ``<time>`` reading "3 min ago (09:12:40 UTC)"; the exact instant is its datetime."""
    if at is None:
        return esc(none)
    iso = at.isoformat(timespec="seconds")
    return f'<time datetime="{esc(iso)}">{esc(relative(at, now))}</time>'


def layout(title: str, body: str, now: datetime, *, refresh: bool = True) -> str:
    head_refresh = (
        f'<noscript><meta http-equiv="refresh" content="{REFRESH_S}"></noscript>'
        '<script src="/static/page.js" defer></script>'
        if refresh
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        '<link rel="icon" href="/favicon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="/static/page.css">{head_refresh}</head><body>'
        '<header class="top"><h1>rollback-watchdog</h1>'
        '<nav><a href="/">Status</a> · <a href="/incidents">Incident history</a> · '
        '<a href="/api/status">/api/status</a></nav>'
        f'<span class="meta">as of {esc(relative(now, now))}</span></header>'
        f"<main>{body}</main></body></html>"
    )


def render_status(board: Board) -> str:
    now = board.now
    live = (
        '<p id="live" class="live" data-testid="live">'
        f"<noscript>Refreshes every {REFRESH_S} s.</noscript></p>"
    )
    sections = "".join(_target(t, board) for t in board.targets)
    body = f'{live}<div id="board">{_banners(board)}{sections}</div>'
    worst = max((t.headline for t in board.targets), key=_rank, default=None)
    title = f"{worst.label} · rollback-watchdog" if worst else "rollback-watchdog"
    return layout(title, body, now)


def _rank(headline: Headline) -> int:
    order = ("monitor", "unknown", "restoring", "notify", "page", "rollback")
    return order.index(headline.level) if headline.level in order else 0


def _banners(board: Board) -> str:
    now = board.now
    out = []
    if board.kill_switch:
        event = board.kill_switch_event
        who = ""
        if event is not None and event.data.get("on"):
            why = f": {esc(event.reason)}" if event.reason else ""
            who = f" Turned on {when(event.at, now)} by {esc(event.by or 'someone')}{why}."
        out.append(
            '<p class="banner kill" data-testid="kill-switch">Kill switch ON: no automatic '
            f"actions on any target; the watchdog only pages.{who} Turn it off with "
            "<code>watchdog kill-switch off</code>.</p>"
        )
    if board.shadow:
        out.append(
            '<p class="banner warn" data-testid="shadow">Shadow mode: rollbacks are recorded '
            "as &quot;would roll back&quot;, never performed.</p>"
        )
    if board.phase is not Phase.RUNNING:
        out.append(
            '<p class="banner warn" data-testid="restoring">Restoring: the watchdog is taking '
            "its state back from the store. Incidents below are read from the store; "
            "control calls answer 503 until it is done.</p>"
        )
    elif not board.leader:
        out.append(
            '<p class="banner info" data-testid="follower">This replica follows: another '
            "replica leads and acts. Open incidents below are read from the shared store.</p>"
        )
    if board.store_error:
        out.append(
            f'<p class="banner warn" data-testid="store-error">Store: {esc(board.store_error)}. '
            "Timelines and stored incidents are missing from this page.</p>"
        )
    return "".join(out)


def _target(t: TargetBoard, board: Board) -> str:
    now = board.now
    h = t.headline
    since = f'<p class="since">since {when(h.since, now)}</p>' if h.since else ""
    links = "".join(
        f' <a href="{esc(url)}" rel="noreferrer">{esc(label)}</a>' for label, url in t.links
    )
    view = t.view
    cards = [
        _incident(view.incident if view else None, t, now),
        _next(t.next, now),
        _guards(view.guards if view else None, board, now),
    ]
    return (
        f'<section class="target level-{esc(h.level)}" id="target-{esc(t.name)}" '
        f'data-target="{esc(t.name)}" data-level="{esc(h.level)}">'
        f'<h2><span>{esc(t.name)}</span> <span class="badge level-{esc(h.level)}" '
        f'data-testid="state">{esc(h.label)}</span></h2>{since}'
        f'<p class="summary" data-testid="summary">{esc(times_in(h.summary, now))}{links}</p>'
        f'<div class="grid">{"".join(cards)}</div>'
        f"{timeline_table(t.timeline, now, 'timeline', 'Open incident: timeline')}"
        f"{_deployments(t.deployments, now)}"
        f"{_rules(view, now)}{_last(t.last_incident, now)}{_sources(t, now)}"
        f"{_commands(t.name, t.commands)}</section>"
    )


def _facts(rows: Iterable[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _incident(incident: IncidentState | None, t: TargetBoard, now: datetime) -> str:
    record = t.incident
    if incident is None and record is None:
        return (
            '<div class="card" data-testid="incident"><h3>Open incident</h3>'
            '<p class="muted">None.</p></div>'
        )
    rows: list[tuple[str, str]] = []
    if incident is not None:
        kind = "declared by a human" if incident.declared else f"rule {esc(incident.rule)}"
        rows += [
            (
                "incident",
                f'<a href="/incidents/{quote(incident.id, safe="")}">{esc(incident.id)}</a>',
            ),
            ("severity", esc(incident.severity)),
            ("opened", when(incident.opened_at, now)),
            ("first detected", when(incident.first_detected, now)),
            (
                "why",
                kind + (f": {esc(incident.declared_reason)}" if incident.declared_reason else ""),
            ),
            ("blamed deployment", f"<code>{esc(incident.deployment or 'unknown')}</code>"),
        ]
        if incident.chapter > 1:
            rows.append(("chapter", f"{incident.chapter} (a deployment went live during it)"))
        rows.append(("rollback", _rollback(incident, now)))
        if incident.fix_forward_until is not None:
            rows.append(("fix-forward window ends", when(incident.fix_forward_until, now)))
        if incident.ack_until is not None:
            by = f" by {esc(incident.ack_by)}" if incident.ack_by else ""
            rows.append(
                ("acknowledged", f"fix forward{by}, hold ends {when(incident.ack_until, now)}")
            )
        if incident.resolves_at is not None:
            rows.append(("clear since", when(incident.clear_since, now)))
            rows.append(("resolves", when(incident.resolves_at, now)))
    elif record is not None:
        rows += [
            ("incident", f'<a href="/incidents/{quote(record.id, safe="")}">{esc(record.id)}</a>'),
            ("severity", esc(record.severity)),
            ("opened", when(record.opened_at, now)),
            ("why", esc(times_in(record.reason, now))),
            ("blamed deployment", f"<code>{esc(record.deployment or 'unknown')}</code>"),
            ("source", "read from the store (this replica's engine does not hold it)"),
        ]
    return f'<div class="card" data-testid="incident"><h3>Open incident</h3>{_facts(rows)}</div>'


def _rollback(incident: IncidentState, now: datetime) -> str:
    phase = incident.rollback
    if phase == "none":
        return "none"
    to = f" to <code>{esc(incident.rollback_to)}</code>" if incident.rollback_to else ""
    words = {
        "in_flight": "in flight",
        "succeeded": "production switched; verifying",
        "verified": "verified",
        "failed": "failed",
        "verify_failed": "did not take (verification failed)",
        "shadow": "shadow mode: recorded, not performed",
    }.get(phase, phase)
    out = f'<span data-testid="rollback-phase" data-phase="{esc(phase)}">{esc(words)}</span>{to}'
    out += f", requested {when(incident.rollback_at, now)}"
    if incident.rollback_done_at is not None:
        out += f", done {when(incident.rollback_done_at, now)}"
    if incident.rollback_detail:
        out += f" <span class='muted'>({esc(incident.rollback_detail)})</span>"
    return out


def _next(steps: Sequence[NextStep], now: datetime) -> str:
    items = "".join(
        f"<li>{when(s.at, now, 'when the next sample comes')}: {esc(s.what)}</li>" for s in steps
    )
    body = (
        f'<ul class="steps">{items}</ul>'
        if items
        else '<p class="muted">Nothing scheduled: it keeps watching.</p>'
    )
    return f'<div class="card" data-testid="next"><h3>What happens next</h3>{body}</div>'


def _guards(g: Guards | None, board: Board, now: datetime) -> str:
    rows: list[tuple[str, str]] = [
        ("kill switch", "<strong>ON</strong>" if board.kill_switch else "off")
    ]
    if g is None:
        return f'<div class="card" data-testid="guards"><h3>Guard rails</h3>{_facts(rows)}</div>'
    if g.hold_until is not None:
        who = f" by {esc(g.hold_by)}" if g.hold_by else ""
        why = f": {esc(g.hold_reason)}" if g.hold_reason else ""
        rows.append(
            (
                "hold",
                f'<span data-testid="hold">held{who}, ends {when(g.hold_until, now)}{why}</span>',
            )
        )
    else:
        rows.append(("hold", "none"))
    if g.active_freeze is not None:
        w = g.active_freeze
        rows.append(
            ("freeze", f"<strong>active</strong>, ends {when(w.end, now)}: {esc(w.reason)}")
        )
    elif g.next_freeze is not None:
        w = g.next_freeze
        rows.append(("next freeze", f"{when(w.start, now)} to {when(w.end, now)}: {esc(w.reason)}"))
    else:
        rows.append(("freeze", "none scheduled"))
    rows.append(("cooldown", f"ends {when(g.cooldown_until, now)}" if g.cooldown_until else "none"))
    left = max(0, g.budget - g.budget_used)
    rows.append(
        (
            "budget",
            f'<span data-testid="budget">{g.budget_used} of {g.budget} automatic rollbacks used '
            f"in {esc(span(g.budget_window))}; {left} left</span>",
        )
    )
    if g.intensive_until is not None:
        rows.append(
            ("intensive watch", f"ends {when(g.intensive_until, now)} (tighter thresholds)")
        )
    rows.append(("shadow mode", "on" if board.shadow else "off"))
    return f'<div class="card" data-testid="guards"><h3>Guard rails</h3>{_facts(rows)}</div>'


def _deployments(d: Deployments, now: datetime) -> str:
    rows = "".join(
        f'<tr data-deployment="{esc(r.id)}"><td><code>{esc(r.id)}</code>'
        + (f' <span class="muted mono">{esc(r.commit[:7])}</span>' if r.commit else "")
        + "<div>"
        + "".join(
            f'<span class="role role-{esc(x.replace(" ", "-"))}">{esc(x)}</span>' for x in r.roles
        )
        + f'</div></td><td class="when">{when(r.created_at, now)}</td></tr>'
        for r in d.rows
    )
    table = (
        '<div class="scroll"><table class="stack"><thead><tr><th>deployment</th>'
        f"<th>created</th></tr></thead><tbody>{rows}</tbody></table></div>"
        if rows
        else '<p class="muted">Not looked up yet.</p>'
    )
    target = (
        f"<code>{esc(d.next_target)}</code> ({esc(d.next_reason)})"
        if d.next_target
        else f"none: {esc(d.next_reason)}"
    )
    extra = f'<p class="banner" data-testid="rollout">{esc(d.rollout)}</p>' if d.rollout else ""
    extra += f"<p>A rollback now would go to: {target}.</p>"
    if d.live_since is not None:
        extra += f"<p>The live deployment went live {when(d.live_since, now)}.</p>"
    extra += "".join(f'<p class="banner warn">{esc(n)}</p>' for n in d.undo)
    looked = f"Looked up {when(d.looked_up_at, now, 'never')}"
    looked += f"; last look-up failed: {esc(d.error)}" if d.error else ""
    return (
        f'<div class="card wide" data-testid="deployments"><h3>Recent deployments</h3>{table}'
        f'{extra}<p class="muted">{looked}.</p></div>'
    )


def timeline_table(entries: Sequence[Entry], now: datetime, testid: str, title: str) -> str:
    if not entries:
        return ""
    rows = "".join(
        f'<tr data-kind="{esc(e.kind)}"><td class="when">{when(e.at, now)}</td>'
        f"<td>{esc(e.kind)}</td><td"
        + (f' class="outcome-{esc(e.outcome)}"' if e.outcome in ("failed", "pending") else "")
        + f">{esc(times_in(e.text, now))}"
        + (f'<div class="path">path: {esc(" → ".join(e.path))}</div>' if e.path else "")
        + "</td></tr>"
        for e in entries
    )
    return (
        f'<div class="card wide" data-testid="{esc(testid)}"><h3>{esc(title)}</h3>'
        '<div class="scroll"><table class="stack"><thead><tr><th>when</th><th>what</th>'
        f"<th>detail</th></tr></thead><tbody>{rows}</tbody></table></div></div>"
    )


def _rules(view: TargetView | None, now: datetime) -> str:
    if view is None or not view.rules:
        return ""
    order = {"firing": 0, "blind": 1, "pending": 2, "unknown": 3, "ok": 4, "inactive": 5}
    rules = sorted(view.rules, key=lambda r: order.get(r.state, 9))
    rows = "".join(_rule(r, now) for r in rules)
    return (
        '<div class="card wide" data-testid="rules"><h3>Rules</h3><div class="scroll">'
        '<table class="stack"><thead><tr><th>state</th><th>rule</th><th>condition</th>'
        f"<th>value</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table></div></div>"
    )


def _rule(r: RuleView, now: datetime) -> str:
    detail = []
    if r.state == "pending" and r.needs:
        detail.append(f"fires after {esc(r.needs)}")
    if r.state == "blind" and r.needs:
        detail.append(f"seen through a broken network; needs {esc(r.needs)} clean")
    if r.unknown is not None:
        detail.append(f"unknown: {esc(str(r.unknown).replace('_', ' '))}")
    if r.since is not None and r.state != "ok":
        detail.append(f"since {when(r.since, now)}")
    if r.state == "inactive":
        detail.append("not in force now")
    sev = f"{esc(r.severity)}{', rolls back' if r.rollback else ''}"
    return (
        f'<tr class="{esc(r.state)}" data-rule="{esc(r.rule)}" data-signal="{esc(r.signal)}" '
        f'data-state="{esc(r.state)}"><td><span class="state state-{esc(r.state)}">'
        f"{esc(r.state)}</span></td><td>{esc(r.rule)} <span class='muted'>({sev})</span></td>"
        f"<td><code>{esc(r.condition)}</code></td><td>{esc(r.value or 'no value')}</td>"
        f"<td>{'; '.join(detail)}</td></tr>"
    )


def _last(past: PastIncident | None, now: datetime) -> str:
    if past is None:
        return ""
    r = past.record
    link = f'<a href="/incidents/{quote(r.id, safe="")}">{esc(r.id)}</a>'
    return (
        f'<div class="card wide" data-testid="last-incident"><h3>Last incident</h3>'
        f"<p>{link} ({esc(r.severity)}): resolved {when(r.resolved_at, now)} after "
        f"{esc(past.duration)}: {esc(past.done)}.</p></div>"
    )


def _sources(t: TargetBoard, now: datetime) -> str:
    if not t.sources:
        return ""
    rows = "".join(
        f"<tr><td>{esc(s.name)}</td><td>{when(s.last_ok, now, 'never')}</td>"
        f"<td>{esc(s.last_error or 'none')}</td><td>{s.skipped_polls}</td></tr>"
        for s in t.sources
    )
    return (
        f'<details class="card wide" id="sources-{esc(t.name)}" data-testid="sources">'
        "<summary>Sources</summary><div class='scroll'><table><thead><tr><th>source</th>"
        "<th>last answer</th><th>last error</th><th>skipped polls</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></details>"
    )


def _commands(target: str, commands: Sequence[Command]) -> str:
    items = "".join(
        f"<tr><td>{esc(c.what)}</td><td><div class='cmd'>{esc(c.cli)}</div>"
        f"<div class='cmd'>{esc(c.http)}</div></td></tr>"
        for c in commands
    )
    return (
        f'<details class="card wide" id="stop-{esc(target)}" data-testid="commands" open>'
        "<summary>How to hold or stop it</summary><p>Control calls need the API token: "
        "<code>export WATCHDOG_URL=&lt;this page's address&gt; "
        "WATCHDOG_API_TOKEN=&lt;token&gt;</code>. This page offers no buttons.</p>"
        f"<div class='scroll'><table class='stack'><tbody>"
        f"{items}</tbody></table></div></details>"
    )
