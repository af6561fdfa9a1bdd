"""``watchdog status`` as text: one block per target with the status page's facts.

Pure: the JSON ``/api/status`` answers in, lines out (the CLI fetches it). Times are read
against the answer's own ``now``, so a slow terminal does not shift them. ``--json`` prints
the answer itself instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from watchdog.humanize import parse, relative, span, times_in

#: timeline lines shown per open incident (the page and ``--json`` have all of them)
TIMELINE = 12
_INDENT = " " * 13


def render_status_text(data: Mapping[str, Any], url: str) -> str:
    now = parse(data.get("now")) or datetime.now().astimezone()
    role = "leader" if data.get("leader") else "follower (another replica acts)"
    out = [f"rollback-watchdog at {url}, as of {relative(now, now)}: {role}"]
    if data.get("phase", "running") != "running":
        out.append("RESTORING: the watchdog is taking its state back from the store")
    if data.get("kill_switch"):
        event = data.get("kill_switch_event") or {}
        who = ""
        if event.get("data", {}).get("on"):
            why = f": {event['reason']}" if event.get("reason") else ""
            who = f" since {_at(event.get('at'), now)} by {event.get('by') or 'someone'}{why}"
        out.append(f"KILL SWITCH ON{who}: no automatic actions, pages only")
    if data.get("shadow"):
        out.append("SHADOW MODE: rollbacks are recorded, not performed")
    if data.get("store_error"):
        out.append(f"STORE: {data['store_error']} (timelines missing)")
    for target in data.get("targets", []):
        out.append("")
        out += _target(target, now)
    return "\n".join(out) + "\n"


def _at(value: object, now: datetime, none: str = "—") -> str:
    at = parse(value)
    return relative(at, now) if at is not None else none


def _row(label: str, lines: Sequence[str]) -> list[str]:
    out = []
    for i, line in enumerate(lines):
        out.append(f"  {label:<10} {line}" if i == 0 else f"{_INDENT}{line}")
    return out


def _target(t: Mapping[str, Any], now: datetime) -> list[str]:
    head = t.get("headline") or {}
    since = f" since {_at(head.get('since'), now)}" if head.get("since") else ""
    out = [f"{t['name']}: {head.get('label', '?')}{since}"]
    if head.get("summary"):
        out.append(f"  {times_in(str(head['summary']), now)}")
    view = t.get("view") or {}
    out += _incident(view.get("incident"), t.get("open_incident"), now)
    out += _row(
        "next",
        [f"{_at(s.get('at'), now, 'next sample')}: {s['what']}" for s in t.get("next", [])]
        or ["nothing scheduled"],
    )
    if view:
        out += _row("guards", _guards(view["guards"], now))
    out += _row("deploys", _deployments(t.get("deployments") or {}, now))
    if view:
        out += _row("rules", _rules(view.get("rules", []), now))
    timeline = t.get("timeline") or []
    if timeline:
        shown = timeline[-TIMELINE:]
        lines = [f"{_at(e['at'], now)}  {e['kind']}: {times_in(e['text'], now)}" for e in shown]
        if len(timeline) > len(shown):
            lines.insert(0, f"({len(timeline) - len(shown)} earlier lines on the status page)")
        out += _row("timeline", lines)
    last = t.get("last_incident")
    if last:
        r = last["record"]
        out += _row(
            "last",
            [f"{r['id']} ({r['severity']}) resolved {_at(r.get('resolved_at'), now)} after "
             f"{last['duration']}: {last['done']}"],
        )  # fmt: skip
    commands = t.get("commands") or []
    out += _row("stop it", [c["cli"] for c in commands if "hold" in c["cli"] or "kill" in c["cli"]])
    return out


def _incident(
    incident: Mapping[str, Any] | None, stored: Mapping[str, Any] | None, now: datetime
) -> list[str]:
    if incident:
        why = "declared by a human" if incident.get("declared") else f"rule {incident['rule']}"
        lines = [
            f"{incident['id']} ({incident['severity']}), opened {_at(incident['opened_at'], now)}, "
            f"{why}, blamed deployment {incident.get('deployment') or 'unknown'}"
        ]
        if incident.get("rollback", "none") != "none":
            to = f" to {incident['rollback_to']}" if incident.get("rollback_to") else ""
            lines.append(
                f"rollback {incident['rollback'].replace('_', ' ')}{to}, requested "
                f"{_at(incident.get('rollback_at'), now)}"
                + (
                    f", done {_at(incident['rollback_done_at'], now)}"
                    if incident.get("rollback_done_at")
                    else ""
                )
            )
        if incident.get("fix_forward_until"):
            lines.append(f"fix-forward window ends {_at(incident['fix_forward_until'], now)}")
        if incident.get("ack_until"):
            by = incident.get("ack_by") or "?"
            lines.append(f"acked by {by}: hold ends {_at(incident['ack_until'], now)}")
        if incident.get("resolves_at"):
            lines.append(f"resolves {_at(incident['resolves_at'], now)} if nothing fires again")
        return _row("incident", lines)
    if stored:
        return _row(
            "incident",
            [f"{stored['id']} ({stored['severity']}) open in the store since "
             f"{_at(stored['opened_at'], now)}: {stored['reason']}"],
        )  # fmt: skip
    return _row("incident", ["none"])


def _guards(g: Mapping[str, Any], now: datetime) -> list[str]:
    switch = "kill switch ON" if g.get("kill_switch") else "kill switch off"
    if g.get("hold_until"):
        who = f" by {g['hold_by']}" if g.get("hold_by") else ""
        why = f": {g['hold_reason']}" if g.get("hold_reason") else ""
        lines = [f"{switch}; HELD{who}, ends {_at(g['hold_until'], now)}{why}"]
    else:
        lines = [f"{switch}; hold: none"]
    if g.get("active_freeze"):
        w = g["active_freeze"]
        lines.append(f"FREEZE active, ends {_at(w['end'], now)}: {w.get('reason', '')}")
    elif g.get("next_freeze"):
        w = g["next_freeze"]
        lines.append(f"next freeze {_at(w['start'], now)}: {w.get('reason', '')}")
    used, budget = g.get("budget_used", 0), g.get("budget", 0)
    window = _seconds(g.get("budget_window"))
    cooldown = f"ends {_at(g['cooldown_until'], now)}" if g.get("cooldown_until") else "none"
    left = max(0, budget - used)
    lines.append(f"budget {used} of {budget} used in {window} ({left} left); cooldown {cooldown}")
    if g.get("intensive_until"):
        lines.append(f"intensive watch ends {_at(g['intensive_until'], now)}")
    return lines


def _seconds(value: object) -> str:
    return span(timedelta(seconds=float(value))) if isinstance(value, int | float) else "?"


def _deployments(d: Mapping[str, Any], now: datetime) -> list[str]:
    rows = d.get("rows") or []
    lines = [
        f"{r['id']} ({', '.join(r['roles']) or 'earlier'}), created {_at(r.get('created_at'), now)}"
        for r in rows
    ] or ["not looked up yet"]
    if d.get("rollout"):
        lines.insert(0, str(d["rollout"]))
    target = d.get("next_target")
    lines.append(
        f"a rollback now would go to {target}"
        if target
        else f"no rollback target: {d.get('next_reason', '')}"
    )
    lines += list(d.get("undo") or [])
    return lines


def _rules(rules: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    order = {"firing": 0, "blind": 1, "pending": 2, "unknown": 3}
    loud = sorted((r for r in rules if r["state"] in order), key=lambda r: order[r["state"]])
    lines = []
    for r in loud:
        extra = []
        if r.get("needs"):
            extra.append(
                f"fires after {r['needs']}" if r["state"] == "pending" else f"needs {r['needs']}"
            )
        if r.get("unknown"):
            extra.append(f"unknown: {str(r['unknown']).replace('_', ' ')}")
        if r.get("since"):
            extra.append(f"since {_at(r['since'], now)}")
        value = r.get("value") or "—"
        line = f"{r['state']:<8} {r['rule']}: {r['condition']}, value {value}"
        lines.append("; ".join([line, *extra]))
    calm = [r["rule"] for r in rules if r["state"] == "ok"]
    if calm:
        lines.append(f"ok       {', '.join(calm)}")
    return lines or ["no rule has seen a sample yet"]
