"""A rule's track on one signal: runs of satisfying samples, sample size, blind streaks.

Pure: :class:`Tracker` updates a :class:`~watchdog.core.state.Track` from one sample at a
time and keeps the target's counters (firing, flagged) in step, so a quiet target decides
without scanning its tracks. Only the engine calls it.
"""

from __future__ import annotations

from datetime import datetime

from watchdog.core.model import Sample, UnknownReason
from watchdog.core.rules import COMPARATORS, Rule, RulePack
from watchdog.core.state import Episode, TargetState, Track
from watchdog.core.stats import wilson_bounds, z_for
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
        rule: Rule,
        sample: Sample,
        numeric: float | None,
        unknown: UnknownReason | None,
        at: datetime,
    ) -> None:
        key = (rule.name, sample.signal)
        track = ts.tracks.get(key)
        if track is None:
            track = ts.tracks[key] = Track(rule, sample.signal)
        track.last_at = at
        if rule.during != "always" and not active(rule, ts, at):
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
        requests = sample.requests
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
        judged = raw
        if rule.confidence is not None and requests is not None:
            low, high = wilson_bounds(raw, requests, self._z[rule.name])
            judged = low if rule.worse_when_higher else high
        if track.judged_at is not None and at > track.judged_at:
            track.gaps.append((at - track.judged_at).total_seconds())
        track.judged_at = at
        track.unknown = None
        track.unknown_since = None
        track.judged = judged
        if COMPARATORS[rule.op](judged, rule.threshold):
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
        else:
            end_streak(track)
        self.refire(ts, track, at)

    def refire(self, ts: TargetState, track: Track, at: datetime) -> None:
        """Recompute whether the track fires (cleanly, or only blind), and the counters."""
        was_firing, was_flagged = track.firing, track.flagged
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
        track.flagged = track.blind_firing or track.unknown is UnknownReason.NO_REQUEST_COUNT
        ts.firing_count += track.firing - was_firing
        ts.flagged_count += track.flagged - was_flagged


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
