"""The engine's mutable state per target: rule tracks, signals, the open incident.

Only :class:`~watchdog.core.engine.Engine` writes these, through its own methods fed by
samples and events; the shell reads them through the engine's query methods. Plain data with
slots: a target's state is touched on every sample, so it stays cheap.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Final

from watchdog.core.model import Action, Decision, Severity, UnknownReason
from watchdog.core.rules import Rule
from watchdog.core.trend import TrendVerdict

if TYPE_CHECKING:
    from watchdog.core.tracks import Gate


class RollbackPhase:
    """Where a chapter's rollback stands (plain strings: they end up in records)."""

    NONE: Final = "none"
    IN_FLIGHT: Final = "in_flight"
    SUCCEEDED: Final = "succeeded"
    VERIFIED: Final = "verified"
    FAILED: Final = "failed"
    VERIFY_FAILED: Final = "verify_failed"
    #: shadow mode recorded "would roll back" instead: nothing changed, never asked again
    SHADOW: Final = "shadow"


#: phases in which production was switched back by the incident's rollback
ROLLED_BACK: Final = (RollbackPhase.SUCCEEDED, RollbackPhase.VERIFIED)
#: phases in which the rollback did not take
ROLLBACK_BROKEN: Final = (RollbackPhase.FAILED, RollbackPhase.VERIFY_FAILED)


@dataclass(frozen=True, slots=True)
class Episode:
    """A past run of samples that satisfied a rule's condition (for deploy correlation)."""

    start: datetime
    last: datetime
    #: the run met the rule's sustain (the rule fired)
    fired: bool


@dataclass(slots=True)
class Track:
    """The state of one rule on one signal of one target.

    ``streak`` counts consecutive known samples satisfying the condition. ``clean`` counts
    those taken since the last ``watchdog_network`` unknown in the streak: a streak the
    watchdog partly saw through its own broken network fires only "blind" until it has a
    whole sustain of clean samples (DESIGN §3: never roll back blind).
    """

    rule: Rule
    signal: str
    #: the rule only counts in one phase (``during`` other than "always")
    phase_bound: bool = False
    streak: int = 0
    streak_start: datetime | None = None
    clean: int = 0
    clean_start: datetime | None = None
    tainted: bool = False
    fired_in_streak: bool = False
    last_satisfied: datetime | None = None
    #: the raw value last judged, and what was compared (a Wilson bound, or the raw value)
    value: float | None = None
    judged: float | None = None
    requests: int | None = None
    unknown: UnknownReason | None = None
    unknown_since: datetime | None = None
    firing: bool = False
    blind_firing: bool = False
    #: unknown for want of a request count (counted in the target's ``waiting_count``)
    waiting: bool = False
    #: a rate waiting for its request count: (value, taken at)
    awaiting: tuple[float, datetime] | None = None
    #: a baseline rule's last comparison, in words ("9.1% on dpl_new vs 0.4% on dpl_old ...")
    comparison: str = ""
    #: the trend signal's samples just before this streak started (rules with a trend)
    baseline: tuple[float, ...] = ()
    episodes: deque[Episode] = field(default_factory=lambda: deque(maxlen=8))
    #: the last trend verdict and what it was judged on (see ``flowchart.trending_worse``)
    trend_cache: tuple[tuple[float, ...], TrendVerdict] | None = None


#: what a signal's known samples feed besides its rules (``SignalState.role``)
PLAIN: Final = 0
TREND: Final = 1
VERSION: Final = 2
REQUESTS: Final = 3


@dataclass(frozen=True, slots=True)
class Reading:
    """The latest known release-scoped sample of one signal for one deployment."""

    value: float
    requests: int | None
    at: datetime


@dataclass(slots=True)
class Rollout:
    """An active rolling release: ``canary`` serves ``percent`` of traffic, ``base`` the rest."""

    canary: str
    base: str | None
    since: datetime
    stage: int | None = None
    stage_since: datetime | None = None
    percent: float | None = None
    requires_approval: bool = False
    next_stage: int | None = None
    #: the stage the watchdog approved (so it asks once per stage)
    approved: int | None = None


class History:
    """A trend signal's recent known samples, ``(epoch seconds, value)``, oldest first.

    Kept as two arrays of doubles, 16 bytes a sample, where a deque of tuples of floats took
    about 100: a 15-minute window at a 5 s cadence is 180 samples a target, some 17 MB at
    1,000 targets once the daemon has run that long. Samples leave from the front
    (:meth:`drop_before`); the arrays are compacted once the dropped part is at least half.
    """

    __slots__ = ("_start", "_t", "_v")

    def __init__(self, samples: Iterable[tuple[float, float]] = ()) -> None:
        self._t = array("d")
        self._v = array("d")
        self._start = 0
        for t, v in samples:
            self.append(t, v)

    def append(self, t: float, v: float) -> None:
        self._t.append(t)
        self._v.append(v)

    def drop_before(self, horizon: float) -> None:
        """Forget the samples taken before ``horizon``."""
        times, start, end = self._t, self._start, len(self._t)
        while start < end and times[start] < horizon:
            start += 1
        if start >= COMPACT_AFTER and 2 * start >= end:
            del times[:start]
            del self._v[:start]
            start = 0
        self._start = start

    def __len__(self) -> int:
        return len(self._t) - self._start

    def __iter__(self) -> Iterator[tuple[float, float]]:
        start = self._start
        return zip(islice(self._t, start, None), islice(self._v, start, None), strict=True)

    def last_time(self) -> float:
        """When the newest sample was taken (0.0 when there is none)."""
        return self._t[-1] if len(self) else 0.0

    def first_at_or_after(self, start: float) -> float:
        """When the first sample at or after ``start`` was taken (0.0 when there is none)."""
        times = self._t
        for i in range(self._start, len(times)):
            if times[i] >= start:
                return times[i]
        return 0.0


#: dropped samples a :class:`History` keeps before compacting (memmove is cheap, not free)
COMPACT_AFTER: Final = 64


@dataclass(slots=True)
class SignalState:
    first_seen: datetime
    last_at: datetime
    #: PLAIN, TREND (a trend judges it: keep history), VERSION or REQUESTS
    role: int = PLAIN
    last_known: datetime | None = None
    unknown: UnknownReason | None = None
    value: float | str | None = None
    #: (epoch seconds, value) of recent known samples, for trend signals only
    history: History = field(default_factory=History)
    #: seconds between recent known samples (their median is the cadence that turns a
    #: consecutive sustain into a time span)
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=5))
    #: while every rule on the signal is quiet: the values that change nothing (see
    #: ``tracks.quiet_gate``); None means the tracks must see the sample
    gate: Gate | None = None


@dataclass(slots=True)
class Incident:
    """An open incident. A deployment that goes live during it starts a new *chapter*: the
    chapter's deployment is judged on its own (its rollback, fix-forward window, ack)."""

    id: str
    opened_at: datetime
    severity: Severity
    rule: str
    first_detected: datetime
    #: the chapter's deployment: the one a rollback would blame
    deployment: str | None
    chapter: int = 1
    declared: bool = False
    declared_reason: str = ""
    fix_forward_start: datetime | None = None
    ack_until: datetime | None = None
    ack_by: str = ""
    rollback: str = RollbackPhase.NONE
    rollback_at: datetime | None = None
    rollback_done_at: datetime | None = None
    rollback_to: str | None = None
    rollback_detail: str = ""
    clear_since: datetime | None = None
    #: the most urgent (action, severity) this chapter reached: a milder moment (the
    #: condition flapping, clearing while it resolves) restates it instead of a new line
    standing: tuple[Action, Severity] | None = None
    standing_rule: str | None = None
    #: the old deployment was found as bad over the same minutes: the chapter is not the
    #: deployment's fault until a baseline rule (the new one measurably worse) says so
    not_the_deployment: str = ""


@dataclass(slots=True)
class TargetState:
    name: str
    tracks: dict[tuple[str, str], Track] = field(default_factory=dict)
    signals: dict[str, SignalState] = field(default_factory=dict)
    deployment: str | None = None
    deployed_at: datetime | None = None
    #: what production served before ``deployment`` (the baseline once a deploy is live)
    previous_deployment: str | None = None
    #: release-scoped samples: the latest known one per (signal, deployment)
    tagged: dict[tuple[str, str], Reading] = field(default_factory=dict)
    #: the tracks of the baseline rules on each signal (fed by release-scoped samples only)
    baseline_tracks_for: dict[str, tuple[Track, ...]] = field(default_factory=dict)
    rollout: Rollout | None = None
    #: the watchdog may approve the rollout's next stage (kept in step by rollout events)
    approval_pending: bool = False
    #: what the version endpoint reports for the live deployment (from its DeployEvent)
    versions: frozenset[str] = frozenset()
    #: the latest version the app reported, and since when it matches no known deployment
    version: str | None = None
    #: the version the app reported for the live deployment (None: not anchored yet)
    deploy_version: str | None = None
    unknown_version_since: datetime | None = None
    hold_until: datetime | None = None
    hold_reason: str = ""
    hold_by: str = ""
    incident: Incident | None = None
    auto_rollbacks: list[datetime] = field(default_factory=list)
    intensive_until: datetime | None = None
    #: the latest request_count sample: (count, taken at)
    requests: tuple[int, datetime] | None = None
    now: datetime | None = None
    #: kept in step with tracks/signals so a quiet target decides without scanning them
    firing_count: int = 0
    unknown_count: int = 0
    blind_firing_count: int = 0
    waiting_count: int = 0
    #: the earliest moment an unknown signal or uncountable rate may make the target blind:
    #: until then, with nothing firing and nothing open, the decision is the quiet one
    blind_at: datetime | None = None
    #: each signal's tracks, one per rule on it (made on first sight of the signal)
    tracks_for: dict[str, tuple[Track, ...]] = field(default_factory=dict)
    last: Decision | None = None
    #: when the last decision's (action, severity) began
    key_since: datetime | None = None
    known_bad: set[str] = field(default_factory=set)
