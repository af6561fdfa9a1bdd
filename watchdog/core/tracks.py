"""A rule's track on one signal: runs of satisfying samples, sample size, blind streaks.

Pure: :class:`Tracker` updates a :class:`~watchdog.core.state.Track` from one sample at a
time and keeps the target's counters (firing, flagged) in step, so a quiet target decides
without scanning its tracks. Only the engine calls it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from watchdog.core.model import UnknownReason
from watchdog.core.rules import COMPARATORS, Rule, RulePack, format_duration
from watchdog.core.state import Episode, Reading, TargetState, Track
from watchdog.core.stats import newcombe_difference, wilson_bounds, z_for
from watchdog.core.trend import baseline_values


def active(rule: Rule, ts: TargetState, now: datetime) -> bool:
    """Is the rule counting in the target's current phase (normal / intensive watch)?"""
    during = rule.during
    if during == "always":
        return True
    intensive = ts.intensive_until is not None and now < ts.intensive_until
    return intensive if during == "intensive_watch" else not intensive


class Tracker:
    """Updates tracks for one rule pack (its Wilson quantiles computed once)."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        self._z = {r.name: z_for(r.confidence) for r in pack.rules if r.confidence is not None}

    def update(
        self,
        ts: TargetState,
        track: Track,
        requests: int | None,
        numeric: float | None,
        unknown: UnknownReason | None,
        at: datetime,
    ) -> None:
        rule = track.rule
        if numeric is not None and quiet_sample(track, numeric, requests):
            track.value = numeric
            track.judged = numeric
            track.requests = requests
            return
        if track.phase_bound and not active(rule, ts, at):
            # a phase-bound rule only counts samples taken in its phase
            end_streak(track)
            self.refire(ts, track, at)
            return
        if numeric is None:
            # unknown never satisfies and never clears a rule (DESIGN §3) ...
            _set_unknown(track, unknown or UnknownReason.NO_DATA, at)
            if unknown is UnknownReason.WATCHDOG_NETWORK:
                # ... but samples from before the watchdog's own network failed no longer
                # count as clean evidence: the rule fires only "blind" until a whole
                # sustain of clean samples follows
                track.clean, track.clean_start = 0, None
            track.awaiting = None
            self.refire(ts, track, at)
            return
        if rule.min_requests is not None and requests is None:
            paired = ts.requests
            if paired is not None and abs(at - paired[1]) <= self.pack.flowchart.request_pairing:
                requests = paired[0]
            else:
                # the count may be a line or a moment behind: judge when it comes
                track.awaiting = (numeric, at)
                _set_unknown(track, UnknownReason.NO_REQUEST_COUNT, at)
                self.refire(ts, track, at)
                return
        self.judge(ts, track, numeric, requests, at)

    def pair_awaiting(self, ts: TargetState, count: int, at: datetime) -> None:
        span = self.pack.flowchart.request_pairing
        for track in list(ts.tracks.values()):
            waiting = track.awaiting
            if waiting is not None and abs(at - waiting[1]) <= span:
                self.judge(ts, track, waiting[0], count, waiting[1])

    def judge(
        self, ts: TargetState, track: Track, raw: float, requests: int | None, at: datetime
    ) -> None:
        """Hold one known value (and its request count) against the rule."""
        rule = track.rule
        track.awaiting = None
        track.value = raw
        track.requests = requests
        if rule.min_requests is not None and (requests is None or requests < rule.min_requests):
            _set_unknown(track, UnknownReason.TOO_FEW_REQUESTS, at)
            track.judged = None
            self.refire(ts, track, at)
            return
        compare = COMPARATORS[rule.op]
        satisfied = compare(raw, rule.threshold)
        judged = raw
        if (
            rule.confidence is not None
            and requests is not None
            and (satisfied or rule.op in ("==", "!="))
        ):
            # the bound lies on the safe side of the raw rate: a raw rate that does not
            # satisfy the rule cannot have a bound that does, so only compute it when needed
            low, high = wilson_bounds(raw, requests, self._z[rule.name])
            judged = low if rule.worse_when_higher else high
            satisfied = compare(judged, rule.threshold)
        track.judged = judged
        self.advance(ts, track, satisfied, at)

    def compare(
        self,
        ts: TargetState,
        track: Track,
        new: Reading,
        old: Reading | None,
        names: tuple[str, str],
    ) -> None:
        """A baseline rule: the new deployment's sample against the old one's (same minutes).

        ``names`` are the new and the old deployment, for the words on the page.
        """
        rule = track.rule
        spec = rule.baseline
        assert spec is not None
        at = new.at
        track.value = new.value
        track.requests = new.requests
        if old is None or abs(new.at - old.at) > spec.pairing:
            _set_unknown(track, UnknownReason.NO_BASELINE, at)
            track.comparison = f"no sample of {names[1]} within {format_duration(spec.pairing)}"
            self.refire(ts, track, at)
            return
        verdict = compare_deployments(rule, new, old, names)
        if verdict is None:
            _set_unknown(track, UnknownReason.TOO_FEW_REQUESTS, at)
            track.comparison = (
                f"too few requests to compare ({_count(new)} on {names[0]}, "
                f"{_count(old)} on {names[1]}; {spec.min_requests} each needed)"
            )
            self.refire(ts, track, at)
            return
        satisfied, judged, words = verdict
        track.judged = judged
        track.comparison = words
        self.advance(ts, track, satisfied, at)

    def advance(self, ts: TargetState, track: Track, satisfied: bool, at: datetime) -> None:
        """One judged sample: extend, start or end the track's run, then refire."""
        rule = track.rule
        was_unknown = track.unknown is not None
        track.unknown = None
        track.unknown_since = None
        if satisfied:
            if track.streak == 0:
                track.streak_start = at
                track.fired_in_streak = False
                trend = rule.trend
                if trend is not None:
                    state = ts.signals.get(trend.signal or track.signal)
                    track.baseline = (
                        baseline_values(state.history, at.timestamp(), trend) if state else ()
                    )
            track.streak += 1
            if track.clean == 0:
                track.clean_start = at
            track.clean += 1
            track.last_satisfied = at
        elif track.streak == 0 and not was_unknown and not track.waiting:
            return  # quiet and still quiet: nothing fires, nothing to count
        else:
            end_streak(track)
        self.refire(ts, track, at)

    def stand_down(self, ts: TargetState, track: Track, at: datetime) -> None:
        """A comparison that can no longer be made (the rolling release it judged is over):
        its run ends as an episode and it fires no more, until new samples start another."""
        end_streak(track)
        track.unknown = None
        track.unknown_since = None
        track.awaiting = None
        self.refire(ts, track, at)

    def refire(self, ts: TargetState, track: Track, at: datetime) -> None:
        """Recompute whether the track fires (cleanly, or only blind), and the counters."""
        was_firing, was_blind = track.firing, track.blind_firing
        sustain = track.rule.sustain

        def met(count: int, start: datetime | None) -> bool:
            return count >= sustain.consecutive and (
                sustain.for_ is None or (start is not None and at - start >= sustain.for_)
            )

        track.firing = track.clean > 0 and met(track.clean, track.clean_start)
        track.blind_firing = (
            not track.firing
            and track.streak > track.clean
            and met(track.streak, track.streak_start)
        )
        if track.firing:
            track.fired_in_streak = True
        waiting = track.unknown is UnknownReason.NO_REQUEST_COUNT
        if waiting and not track.waiting and track.unknown_since is not None:
            blind_at = track.unknown_since + self.pack.flowchart.blind_after
            if ts.blind_at is None or blind_at < ts.blind_at:
                ts.blind_at = blind_at
        ts.firing_count += track.firing - was_firing
        ts.blind_firing_count += track.blind_firing - was_blind
        ts.waiting_count += waiting - track.waiting
        track.waiting = waiting


def quiet_sample(track: Track, numeric: float, requests: int | None) -> bool:
    """The common sample: the track was quiet, and a raw value that cannot satisfy the rule
    (nor can its Wilson bound, which lies on the safe side): only its value is recorded.
    ``Tracker.judge`` is the general path; ``tests/core/test_fast_paths.py`` proves the two
    agree."""
    rule = track.rule
    minimum = rule.min_requests
    return (
        track.streak == 0
        and track.unknown is None
        and not track.phase_bound
        and (minimum is None or (requests is not None and requests >= minimum))
        and rule.op not in ("==", "!=")
        and not COMPARATORS[rule.op](numeric, rule.threshold)
    )


def quiet_gate(ts: TargetState, tracks: tuple[Track, ...], now: datetime) -> Gate | None:
    """The values of a signal that no rule on it could fire on, while every one of its
    tracks is quiet: then a sample in range changes nothing (``Gate.admits``) and the engine
    skips its tracks. None when some track is not quiet or a rule compares for equality.

    Phase-bound rules count as in their current phase, so the gate holds only until the
    target's intensive watch starts or ends (``Gate.intensive``).
    """
    gt = ge = math.inf
    lt = le = -math.inf
    need = 0
    for track in tracks:
        rule = track.rule
        if track.phase_bound and not active(rule, ts, now):
            continue
        if track.streak or track.unknown is not None or track.firing or track.blind_firing:
            return None
        op = rule.op
        if op == ">":
            gt = min(gt, rule.threshold)
        elif op == ">=":
            ge = min(ge, rule.threshold)
        elif op == "<":
            lt = max(lt, rule.threshold)
        elif op == "<=":
            le = max(le, rule.threshold)
        else:
            return None
        if rule.min_requests is not None:
            need = max(need, rule.min_requests)
    intensive = ts.intensive_until if ts.intensive_until and now < ts.intensive_until else None
    return Gate(gt, ge, lt, le, need, intensive)


@dataclass(frozen=True, slots=True)
class Gate:
    """A quiet signal's range: ``value <= gt``, ``< ge``, ``>= lt``, ``> le``, with at
    least ``need`` requests when a rule counts them."""

    gt: float
    ge: float
    lt: float
    le: float
    need: int
    #: the intensive watch's end it was made under (None: made outside one)
    intensive: datetime | None


def compare_deployments(
    rule: Rule, new: Reading, old: Reading, names: tuple[str, str]
) -> tuple[bool, float, str] | None:
    """Is the new deployment worse than the old over the same minutes? (satisfied, the
    compared figure, the words); None when the counts are too few to say."""
    spec = rule.baseline
    assert spec is not None
    up = rule.worse_when_higher
    signal = rule.signal
    beyond = COMPARATORS[rule.op](new.value, rule.threshold)
    if spec.test == "proportions":
        n_new, n_old = new.requests or 0, old.requests or 0
        if n_new < spec.min_requests or n_old < spec.min_requests:
            return None
        first, second = (new, old) if up else (old, new)
        n_first, n_second = (n_new, n_old) if up else (n_old, n_new)
        low, high = newcombe_difference(
            first.value, n_first, second.value, n_second, z_for(spec.confidence)
        )
        diff = first.value - second.value
        worse = low > 0 and diff >= spec.min_effect and beyond
        words = (
            f"{_pct(new.value)} on {names[0]} vs {_pct(old.value)} on {names[1]} "
            f"({'+' if diff >= 0 else ''}{diff * 100:.2g} pp, {spec.confidence:.0%} interval "
            f"{low * 100:+.2g}..{high * 100:+.2g} pp; {n_new:,} / {n_old:,} "
            f"requests; worse needs +{spec.min_effect * 100:g} pp)"
        )
        return (worse, diff, words)
    base = old.value if up else new.value
    other = new.value if up else old.value
    ratio = other / base if base > 0 else (math.inf if other > 0 else 1.0)
    gap = other - base
    worse = ratio >= spec.min_effect and gap >= spec.min_delta and beyond
    words = (
        f"{new.value:g} on {names[0]} vs {old.value:g} on {names[1]} ({signal}: x{ratio:.2g}, "
        f"{gap:+g}; worse needs x{spec.min_effect:g} and {spec.min_delta:+g})"
    )
    return (worse, ratio, words)


def _pct(value: float) -> str:
    return f"{value * 100:.3g}%"


def _count(reading: Reading) -> str:
    return "?" if reading.requests is None else f"{reading.requests:,}"


def quiet_track(track: Track) -> bool:
    """Nothing running: no streak, nothing unknown, not firing."""
    return (
        track.streak == 0 and track.unknown is None and not track.firing and not track.blind_firing
    )


def gate_admits(
    gate: Gate, ts: TargetState, value: float, requests: int | None, now: datetime
) -> bool:
    """Does the quiet gate let ``value`` past every track unseen? The general path is every
    track's ``Tracker.update``; ``tests/core/test_fast_paths.py`` proves the two agree."""
    if gate.need and (requests is None or requests < gate.need):
        return False
    intensive = ts.intensive_until
    if intensive is not None and now >= intensive:
        intensive = None
    return (
        intensive == gate.intensive
        and value <= gate.gt
        and value < gate.ge
        and value >= gate.lt
        and value > gate.le
    )


def end_streak(track: Track) -> None:
    """Close the current run of satisfying samples, keeping it as an episode."""
    if track.streak and track.streak_start is not None and track.last_satisfied is not None:
        track.episodes.append(
            Episode(track.streak_start, track.last_satisfied, track.fired_in_streak)
        )
    track.streak = track.clean = 0
    track.streak_start = track.clean_start = None
    track.fired_in_streak = False
    track.baseline = ()


def _set_unknown(track: Track, reason: UnknownReason, at: datetime) -> None:
    if track.unknown is None:
        track.unknown_since = at
    track.unknown = reason
