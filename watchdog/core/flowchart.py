"""The procedure's decision flowchart (Appendix A, as DESIGN §4 reads it), as pure functions.

:func:`walk_flowchart` turns a target's firing rules into a :class:`FlowVerdict`, before
guard rails and incident bookkeeping (``watchdog.core.guards``, ``watchdog.core.engine``).
Every verdict carries the path of flowchart nodes it took, so each action can explain itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from watchdog.core.model import Action, Severity, Signal
from watchdog.core.rules import Rule, RulePack, format_duration
from watchdog.core.state import RollbackPhase, TargetState, Track
from watchdog.core.trend import TrendVerdict, judge_trend

BLIND_RULE: Final = "watchdog-blind"
DECLARED_RULE: Final = "declared"
QUIET_PATH: Final = ("nothing_firing",)
#: signals that are fractions 0..1, shown as percentages
_FRACTIONS: Final = frozenset({Signal.ERROR_RATE, Signal.DB_CPU})


@dataclass(frozen=True, slots=True)
class FlowVerdict:
    """What the flowchart concluded before guard rails and incident bookkeeping."""

    action: Action
    severity: Severity | None
    rule: str | None
    reason: str
    path: tuple[str, ...]
    wants_rollback: bool = False
    #: the firing track behind a rollback (for deploy correlation); None for declared
    track: Track | None = None


def walk_flowchart(
    pack: RulePack,
    ts: TargetState,
    firing: Sequence[Track],
    blind: Sequence[str],
    now: datetime,
) -> FlowVerdict:
    """Steps 1–5 of DESIGN §4 for one target, worst firing rule first."""
    incident = ts.incident
    path: list[str] = ["issue_detected"]
    if (
        incident is not None
        and incident.declared
        and incident.rollback not in (RollbackPhase.SUCCEEDED, RollbackPhase.VERIFIED)
    ):
        path += ["declared"]
        return FlowVerdict(
            Action.ROLLBACK,
            Severity.P0,
            DECLARED_RULE,
            f"incident declared by a human: {incident.declared_reason or 'no reason given'}",
            tuple(path),
            wants_rollback=True,
        )
    if not firing and not blind:
        return FlowVerdict(Action.MONITOR, None, None, "nothing firing", QUIET_PATH)

    p0 = [t for t in firing if t.rule.severity is Severity.P0]
    if p0:
        track = p0[0]
        path.append("p0:yes")
        return FlowVerdict(
            Action.ROLLBACK,
            Severity.P0,
            track.rule.name,
            f"P0: {describe(track)}",
            tuple(path),
            wants_rollback=True,
            track=track,
        )
    path.append("p0:no")

    for track in (t for t in firing if t.rule.rollback):
        rule = track.rule
        trend: TrendVerdict | None = None
        if rule.require_trend:
            trend = trending_worse(ts, track, now)
            if trend is None or not trend.worse:
                continue
        path.append("rollback_threshold:yes")
        if trend is not None:
            path.append("trending:yes")
        suffix = f"; {describe_trend(track, trend)}" if trend is not None else ""
        return FlowVerdict(
            Action.ROLLBACK,
            rule.severity,
            rule.name,
            f"{rule.severity.value}: {describe(track)} (procedure: rollback threshold){suffix}",
            tuple(path),
            wants_rollback=True,
            track=track,
        )
    path.append("rollback_threshold:no")

    p1 = [t for t in firing if t.rule.severity is Severity.P1]
    if p1:
        return _fix_forward(pack, ts, p1, path, now)

    lesser = sorted(firing, key=lambda t: t.rule.severity.rank)
    if lesser and lesser[0].rule.severity is Severity.INVESTIGATE:
        track = lesser[0]
        path.append("investigate")
        return FlowVerdict(
            Action.PAGE,
            Severity.INVESTIGATE,
            track.rule.name,
            f"investigate: {describe(track)}",
            tuple(path),
        )
    if blind:
        path.append("blind")
        return FlowVerdict(
            Action.PAGE,
            Severity.INVESTIGATE,
            BLIND_RULE,
            "watchdog blind: " + "; ".join(blind) + "; never rolls back blind",
            tuple(path),
        )
    track = lesser[0]
    if track.rule.severity is Severity.P2:
        path.append("p2:notify")
        return FlowVerdict(
            Action.NOTIFY, Severity.P2, track.rule.name, f"P2: {describe(track)}", tuple(path)
        )
    path.append("p3:monitor")
    return FlowVerdict(
        Action.MONITOR, Severity.P3, track.rule.name, f"P3: {describe(track)}", tuple(path)
    )


def _fix_forward(
    pack: RulePack, ts: TargetState, p1: Sequence[Track], path: list[str], now: datetime
) -> FlowVerdict:
    """Flowchart: "Can fix forward in <15 min?" then "Is it getting worse?"."""
    track = p1[0]
    rule = track.rule
    incident = ts.incident
    if incident is not None and incident.rollback != RollbackPhase.NONE:
        # this chapter already rolled back (or tried): never a new window; the engine says
        # where the rollback stands and whether it helped
        path.append("fix_forward:rolled_back")
        return FlowVerdict(
            Action.ROLLBACK,
            Severity.P1,
            rule.name,
            f"P1: {describe(track)}",
            tuple(path),
            wants_rollback=True,
            track=track,
        )
    window = rule.fix_forward_window or pack.flowchart.fix_forward_window
    start = incident.fix_forward_start if incident and incident.fix_forward_start else now
    window_end = start + window
    ack_until = incident.ack_until if incident else None
    if ack_until is not None and now < ack_until:
        path.append("fix_forward:acked")
        by = f" by {incident.ack_by}" if incident and incident.ack_by else ""
        return FlowVerdict(
            Action.PAGE,
            Severity.P1,
            rule.name,
            f"P1: {describe(track)}; fix forward acknowledged{by} until {_at(ack_until)}",
            tuple(path),
        )
    if ack_until is None:
        for candidate in p1:
            trend = trending_worse(ts, candidate, now)
            if trend is not None and trend.worse:
                path += ["fix_forward:unacked", "getting_worse:yes"]
                return FlowVerdict(
                    Action.ROLLBACK,
                    Severity.P1,
                    candidate.rule.name,
                    f"P1: {describe(candidate)} and {describe_trend(candidate, trend)}",
                    tuple(path),
                    wants_rollback=True,
                    track=candidate,
                )
    expired_at = max(window_end, ack_until) if ack_until is not None else window_end
    if now >= expired_at:
        path.append("fix_forward:window_expired")
        return FlowVerdict(
            Action.ROLLBACK,
            Severity.P1,
            rule.name,
            f"P1: {describe(track)}; not fixed within the fix-forward window "
            f"({format_duration(window)})",
            tuple(path),
            wants_rollback=True,
            track=track,
        )
    path.append("fix_forward:window_open")
    return FlowVerdict(
        Action.PAGE,
        Severity.P1,
        rule.name,
        f"P1: {describe(track)}; fix-forward window open until {_at(expired_at)}, "
        "then rollback if still failing (ack 'fix_forward' to hold)",
        tuple(path),
    )


def trending_worse(ts: TargetState, track: Track, now: datetime) -> TrendVerdict | None:
    """Judge the track's rule's trend since the track's condition started; None: no trend."""
    rule = track.rule
    trend = rule.trend
    if trend is None or track.streak_start is None:
        return None
    state = ts.signals.get(trend.signal or track.signal)
    if state is None:
        return TrendVerdict(False, 0, why_not="no samples of the trend signal")
    direction = trend.direction or (
        ("up" if rule.worse_when_higher else "down") if trend.signal is None else "up"
    )
    history = state.history
    onset = track.streak_start.timestamp()
    stamp = now.timestamp()
    start = max(onset, stamp - trend.window.total_seconds())
    # the verdict only changes when the judged samples do: a new one, or one leaving the
    # window (decisions come with every sample of every signal, the trend signal's are few)
    key = (len(history), history.last_time(), onset, history.first_at_or_after(start))
    cached = track.trend_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    verdict = judge_trend(
        history,
        onset=onset,
        now=stamp,
        trend=trend,
        worse_up=direction == "up",
        before=track.baseline,
    )
    track.trend_cache = (key, verdict)
    return verdict


# --------------------------------------------------------------------------- wording


def format_value(signal: str, value: float) -> str:
    """A signal value as on-call reads it: fractions as percentages, the rest plainly."""
    if signal in _FRACTIONS:
        return percent(value)
    return f"{value:g}"


def percent(value: float) -> str:
    x = value * 100.0
    if x == 0:
        return "0%"
    if abs(x) >= 1:
        return f"{x:.1f}%"
    if abs(x) >= 0.1:
        return f"{x:.2f}%"
    return f"{x:.3f}%"


def describe(track: Track) -> str:
    """``error_rate = 8.0% (Wilson lower bound 6.9%, 2,000 requests) > 5.0% (2 consecutive
    samples)``: the measured value, the bound it was judged on, and the rule."""
    rule = track.rule
    signal = track.signal
    if rule.baseline is not None:
        compared = track.comparison or "not compared yet"
        return f"{signal} {compared} ({rule.sustain_text})"
    if track.value is None:
        shown = "unknown"
    else:
        shown = format_value(signal, track.value)
        if rule.confidence is not None and track.judged is not None and track.requests:
            side = "lower" if rule.worse_when_higher else "upper"
            shown += (
                f" (Wilson {side} bound {format_value(signal, track.judged)}, "
                f"{track.requests:,} requests)"
            )
        elif rule.min_requests is not None and track.requests:
            shown += f" ({track.requests:,} requests)"
    threshold = format_value(signal, rule.threshold)
    return f"{signal} = {shown} {rule.op} {threshold} ({rule.sustain_text})"


def describe_trend(track: Track, trend: TrendVerdict) -> str:
    rule: Rule = track.rule
    signal = (rule.trend.signal if rule.trend else None) or track.signal
    before = "?" if trend.before is None else format_value(signal, trend.before)
    now = "?" if trend.now is None else format_value(signal, trend.now)
    per_min = abs(trend.slope) * 60.0
    rate = f"{per_min * 100:.2g} pp/min" if signal in _FRACTIONS else f"{per_min:.2g}/min"
    since = _at(track.streak_start) if track.streak_start else "?"
    return (
        f"getting worse: {signal} {before} -> {now} since {since} "
        f"(Mann-Kendall p={trend.p_value:.2g} over {trend.samples} samples, "
        f"Sen slope {rate})"
    )


def _at(at: datetime) -> str:
    return at.isoformat()
