"""The domain model shared by sources, the engine, actions and the store.

Everything here is plain immutable data. Time is always an aware UTC ``datetime`` and
durations are ``timedelta``: the engine never reads a clock, so the time a sample was taken
travels with the sample.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: how far outside its range a reading may stray and still be read as the bound (5 %)
RANGE_SLACK: Final = 0.05


class Signal:
    """Canonical signal names (DESIGN §3). Signals are strings so that packs may add more."""

    HEALTH_UP: Final = "health_up"
    VERSION: Final = "version"
    ERROR_RATE: Final = "error_rate"
    LATENCY_P95_S: Final = "latency_p95_s"
    DB_CPU: Final = "db_cpu"
    DB_CONNECTION_UP: Final = "db_connection_up"
    PAYMENT_FAILURES: Final = "payment_failures"
    REQUEST_COUNT: Final = "request_count"
    FEATURE_UP_PREFIX: Final = "feature_up."

    @staticmethod
    def feature_up(name: str) -> str:
        return f"feature_up.{name}"

    @staticmethod
    def in_range(signal: str, value: float) -> float | str:
        """``value`` as a reading of ``signal``, or why it cannot be one. Rates are
        fractions 0..1 and up-signals 0..1, latencies and counts not negative; a value a
        hair outside (float rounding, a rate's extrapolation: 5xx/all at a total outage
        reads 1.0000000000000002 or 1.02) is the bound itself, since refusing it would
        blind the watchdog at the very moment of an outage. A signal a rule pack adds has
        no known range."""
        if (
            signal in (Signal.ERROR_RATE, Signal.DB_CPU, Signal.HEALTH_UP)
            or signal in (Signal.DB_CONNECTION_UP,)
            or signal.startswith(Signal.FEATURE_UP_PREFIX)
        ):
            low, high = 0.0, 1.0
            why = f"{signal} is a fraction from 0 to 1 (a percentage? divide by 100)"
        elif signal in (Signal.LATENCY_P95_S, Signal.PAYMENT_FAILURES, Signal.REQUEST_COUNT):
            low, high = 0.0, math.inf
            why = f"{signal} cannot be negative"
        else:
            return value
        if low - RANGE_SLACK <= value < low:
            return low
        if high < value <= high * (1 + RANGE_SLACK):
            return high
        return value if low <= value <= high else why


class Severity(enum.StrEnum):
    """Severities of the procedure's decision matrix, most to least urgent."""

    P0 = "P0"
    P1 = "P1"
    INVESTIGATE = "investigate"
    P2 = "P2"
    P3 = "P3"

    @property
    def rank(self) -> int:
        """Lower is more urgent; used to pick the worst firing rule."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK: Final = {
    Severity.P0: 0,
    Severity.P1: 1,
    Severity.INVESTIGATE: 2,
    Severity.P2: 3,
    Severity.P3: 4,
}


class Action(enum.StrEnum):
    """What the flowchart ends in, mildest first."""

    MONITOR = "monitor"
    NOTIFY = "notify"
    PAGE = "page"
    ROLLBACK = "rollback"

    @property
    def rank(self) -> int:
        """Higher is more drastic; property tests use it to compare decisions."""
        return _ACTION_RANK[self]


_ACTION_RANK: Final = {Action.MONITOR: 0, Action.NOTIFY: 1, Action.PAGE: 2, Action.ROLLBACK: 3}


class UnknownReason(enum.StrEnum):
    """Why a value is unknown. Kept apart in records and metrics (DESIGN §3)."""

    NO_DATA = "no_data"
    STALE = "stale"
    PROVIDER_ERROR = "provider_error"
    TOO_FEW_REQUESTS = "too_few_requests"
    #: a rate arrived without the request count its rule needs (none paired within the
    #: pack's ``request_pairing``): the rule cannot be judged
    NO_REQUEST_COUNT = "no_request_count"
    #: a baseline rule's new-deployment sample had no old-deployment sample to compare with
    #: over the same minutes (the old one serves no traffic, or its source failed)
    NO_BASELINE = "no_baseline"
    #: the reachability canary failed too: the watchdog's own network is down
    WATCHDOG_NETWORK = "watchdog_network"


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of one signal of one target.

    ``value`` is ``None`` when the source could not tell; ``unknown`` then says why. A
    string value is an attribute (``version``), never compared against thresholds.
    ``requests`` is the request count behind a rate, when the source knows it.
    ``deployment`` tags a release-scoped sample: the signal measured over one deployment's
    traffic only (a rolling release's canary or its base), for baseline comparison.
    """

    target: str
    signal: str
    value: float | str | None
    at: datetime
    unknown: UnknownReason | None = None
    requests: int | None = None
    source: str = ""
    detail: str = ""
    deployment: str | None = None

    @property
    def known(self) -> bool:
        return self.value is not None


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class DeployEvent:
    """A deployment went live on production for ``target``.

    ``rollback`` marks the deployment a rollback put back (the dispatcher feeds this back
    when a rollback completes), which starts the intensive watch.
    """

    target: str
    at: datetime
    deployment: str
    rollback: bool = False
    #: when the deployment went live, if earlier than ``at`` (e.g. learnt at start-up)
    live_since: datetime | None = None
    #: what the app's version endpoint reports while this deployment serves (its id, its
    #: commit SHA): a version sample matching none of them means the live deployment is not
    #: known yet, and a rollback waits for it instead of blaming the previous one
    versions: tuple[str, ...] = ()


class AckDecision(enum.StrEnum):
    FIX_FORWARD = "fix_forward"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class AckEvent:
    """A human acknowledged the page: fix forward (hold rollback) or roll back now."""

    target: str
    at: datetime
    decision: AckDecision = AckDecision.FIX_FORWARD
    #: how long a fix-forward ack holds rollback; the pack's fix-forward window if None
    window: timedelta | None = None
    by: str = ""


@dataclass(frozen=True, slots=True)
class HoldEvent:
    """Suppress automatic rollback for ``target`` until ``until`` (pages still go out).

    ``until`` equal to ``at`` (or earlier) releases a hold.
    """

    target: str
    at: datetime
    until: datetime
    reason: str = ""
    by: str = ""


@dataclass(frozen=True, slots=True)
class DeclareEvent:
    """A human declared an incident (e.g. a security vulnerability): roll back."""

    target: str
    at: datetime
    reason: str = ""
    severity: Severity = Severity.P0
    by: str = ""


@dataclass(frozen=True, slots=True)
class KillSwitchEvent:
    """Global switch: while on, no automatic actions; the watchdog only pages."""

    at: datetime
    on: bool
    reason: str = ""
    target: str = "*"


class RollbackOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    VERIFIED = "verified"
    VERIFY_FAILED = "verify_failed"
    #: shadow mode: the deployer call was replaced by a recorded "would roll back"
    SHADOWED = "shadowed"
    #: the rollback provably never reached the deployer (a crash between intent and call):
    #: as if never committed, so the engine may decide it again on fresh data
    ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True)
class RollbackResultEvent:
    """What became of a rollback the engine asked for (fed back by the dispatcher)."""

    target: str
    at: datetime
    outcome: RollbackOutcome
    deployment: str = ""
    detail: str = ""
    #: the canary whose rolling release this rollback aborted ("" for any other rollback)
    aborted: str = ""


class RolloutState(enum.StrEnum):
    """A Vercel rolling release's state (``rollingRelease.state``, or none at all)."""

    ACTIVE = "active"
    COMPLETE = "complete"
    ABORTED = "aborted"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class RolloutEvent:
    """What the project's rolling release looks like now (the daemon reads it from Vercel).

    ``canary`` serves ``percent`` of production traffic, ``base`` the rest; a stage that
    ``requires_approval`` waits for someone (or the watchdog, if allowed) to approve
    ``next_stage``.
    """

    target: str
    at: datetime
    state: RolloutState
    canary: str | None = None
    base: str | None = None
    stage: int | None = None
    percent: float | None = None
    requires_approval: bool = False
    next_stage: int | None = None


Event = (
    DeployEvent
    | AckEvent
    | HoldEvent
    | DeclareEvent
    | KillSwitchEvent
    | RollbackResultEvent
    | RolloutEvent
)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Observation:
    """A signal value held against a rule's threshold, as shown in pages and the audit trail."""

    rule: str
    signal: str
    value: float | None
    op: str
    threshold: float
    firing: bool
    unknown: UnknownReason | None = None
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The flowchart's verdict for one target at one moment.

    ``path`` lists the flowchart nodes taken, so every action can explain itself.
    ``execute_rollback`` is true only at the one evaluation where the engine committed a
    rollback (guard rails passed, budget charged); later evaluations of the same incident
    keep ``action=rollback`` while it is in flight but never ask for a second one.
    ``refused_by`` names the guard rail that turned a rollback into a P0 page.
    """

    target: str
    at: datetime
    action: Action
    severity: Severity | None
    rule: str | None
    reason: str
    path: tuple[str, ...]
    incident: str | None = None
    execute_rollback: bool = False
    refused_by: str | None = None
    deployment: str | None = None
    observations: tuple[Observation, ...] = ()
    resolved_incident: str | None = None
    #: the incident's chapter: a deployment that went live during it starts the next one
    chapter: int = 1
    #: "canary": the rollback is a rolling release's abort (only the canary's share of
    #: users was hit; production goes back to the rollout's base)
    scope: str = "production"
    #: approve this next stage of the rolling release (the canary is healthy); one-off,
    #: like ``execute_rollback``
    approve_stage: int | None = None

    @property
    def key(self) -> tuple[Action, Severity | None]:
        """What replay compares to decide whether a target's decision changed."""
        return (self.action, self.severity)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time window [start, end), e.g. a planned maintenance freeze."""

    start: datetime
    end: datetime
    reason: str = ""
    targets: tuple[str, ...] = field(default=("*",))

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def from_seconds(t: float) -> datetime:
    """Seconds since the Unix epoch as an aware UTC datetime (replay's numeric ``t``)."""
    try:
        return datetime.fromtimestamp(t, UTC)  # twice as fast as EPOCH + timedelta
    except (OverflowError, OSError, ValueError):
        return EPOCH + timedelta(seconds=t)


def to_seconds(at: datetime) -> float:
    return (at - EPOCH).total_seconds()


# --------------------------------------------------------------------------- shell-facing views
# Frozen copies of engine state for the async shell: it reads these and never the engine's own
# mutable state, and it restores state after a restart by handing the engine a snapshot.


@dataclass(frozen=True, slots=True)
class SignalReading:
    """A signal as the engine last saw it: the last known value, and why it is unknown now."""

    value: float | str | None
    unknown: UnknownReason | None = None


@dataclass(frozen=True, slots=True)
class IncidentView:
    """The open incident the engine holds for a target, as the store records it."""

    id: str
    opened_at: datetime
    severity: Severity
    first_detected: datetime
    deployment: str | None
    declared: bool


@dataclass(frozen=True, slots=True)
class RestoredIncident:
    """A stored open incident to reopen, with where its rollback stood (a RollbackPhase)."""

    target: str
    id: str
    opened_at: datetime
    severity: Severity
    rule: str
    first_detected: datetime
    deployment: str | None
    declared: bool = False
    rollback: str = "none"
    rollback_at: datetime | None = None
    rollback_done_at: datetime | None = None
    #: 1, or 2 for any later chapter (the number itself is not kept across restarts)
    chapter: int = 1
    #: where the rollback put production back to (from the rollback record)
    rollback_to: str | None = None
    #: the incident's standing action as last recorded ("rollback", "page", ...), so a
    #: restarted engine restates it instead of a calmer "monitor" while the incident is open
    standing: str | None = None


@dataclass(frozen=True, slots=True)
class RestoredHold:
    target: str
    until: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """What the store says the engine should hold, applied in one call on becoming leader.

    ``targets`` lose whatever incident the engine holds first: the store is the truth, and an
    incident a follower opened was never acted on. ``holds`` apply in order (a later one wins);
    ``kill_switch`` None leaves the switch as configured.
    """

    targets: tuple[str, ...] = ()
    automatic_rollbacks: tuple[tuple[str, tuple[datetime, ...]], ...] = ()
    incidents: tuple[RestoredIncident, ...] = ()
    holds: tuple[RestoredHold, ...] = ()
    kill_switch: bool | None = None
