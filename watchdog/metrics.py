"""The watchdog's own Prometheus metrics, all on a registry the caller passes in.

Nothing here touches the global ``prometheus_client.REGISTRY``: the daemon builds one
registry per process and serves it on ``/metrics``, and every test builds a fresh one, so
tests never see each other's samples. This module does no I/O; it only holds the metric
objects and a few helpers that encode label conventions in one place, so the dashboard in
``deploy/grafana/`` and the alerts in ``deploy/prometheus/`` can rely on them.

Label values must come from bounded sets (target and source names from the config, rule
names from the rule pack, reasons from ``UnknownReason``, guard rails by name), never from
free text such as error messages, or a flapping provider would explode cardinality.

Two conventions dashboards rely on from the first scrape:

- **One source label format.** A source is named by ``target`` plus ``source``, its name
  within the target (``target="web", source="health"``), in every family; the daemon's
  qualified name (``web/health``) never reaches a label.
- **Every known label set exists at zero** (:meth:`Metrics.declare_target`), so ``rate()``
  and ``increase()`` see the first event after a restart and panels read 0, not "no data",
  on a healthy daemon. The exceptions are gauges with nothing to report yet: a signal's
  value before its first sample, and the drill gauges before any drill ran.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterable, Mapping
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from watchdog import __version__
from watchdog.core.model import Action, Decision, Sample, Severity, UnknownReason
from watchdog.families import CounterSeries, Family, GaugeSeries, PlainCounter, PlainGauge
from watchdog.store.base import DrillRecord

PREFIX: Final = "watchdog_"

#: label value of ``severity`` when a decision carries none (plain ``monitor``)
NO_SEVERITY: Final = "none"

# HTTP polls: a healthy provider answers in tens of milliseconds, a sick one hits the
# per-request timeout (tens of seconds); the buckets must tell both apart.
POLL_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Scheduling lag is how late a poll started against its slot; anything past a second means
# the event loop or the concurrency limit is starved.
LAG_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The procedure's target for an instant rollback is under 3 minutes (180 s) end to end;
# the buckets bracket that target so a histogram_quantile can show how close we run.
ROLLBACK_BUCKETS: Final = (
    5.0,
    10.0,
    20.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
    180.0,
    240.0,
    300.0,
    600.0,
)

#: values of the ``result`` label of ``watchdog_rollbacks_total``
ROLLBACK_RESULTS: Final = ("succeeded", "failed", "verified", "verify_failed", "refused", "shadow")
#: values of the ``result`` label of ``watchdog_pages_total``
PAGE_RESULTS: Final = ("sent", "failed", "deduplicated")
#: values of the ``result`` label of ``watchdog_notifications_total``
NOTIFICATION_RESULTS: Final = ("sent", "failed")
#: the guard rails that can refuse an automatic rollback (``guard`` of
#: ``watchdog_rollback_refusals_total``): the engine's (``core/guards.py``), then the
#: shell's, which find out only when they try (``actions/rollback.py``, ``core/targeting.py``)
GUARDS: Final = (
    "rollback_failed",
    "already_rolled_back",
    "kill_switch",
    "freeze",
    "hold",
    "deploy_unknown",
    "deploy_too_old",
    "predates_deploy",
    "baseline_as_bad",
    "cooldown",
    "budget",
    "no_deployer",
    "in_flight",
    "no_target",
    "migration",
)
#: why a source's sample was unknown (``watchdog_signal_unknown_total``): the reasons a
#: source reports; staleness and sample size are the engine's judgement, not a sample's
SAMPLE_UNKNOWN_REASONS: Final = (
    UnknownReason.NO_DATA,
    UnknownReason.PROVIDER_ERROR,
    UnknownReason.WATCHDOG_NETWORK,
)
#: reasons of ``watchdog_source_errors_total``: a poll that could not reach or read its
#: provider (the sources' ``FAILING_REASONS``; actions may not import sources, so a test
#: keeps the two equal). "No data in the window" is an answer, not an error: a quiet night
#: must not read as a source down
SOURCE_ERROR_REASONS: Final = (UnknownReason.PROVIDER_ERROR, UnknownReason.WATCHDOG_NETWORK)
#: the (action, severity) pairs the flowchart decides (DESIGN §4)
DECISION_KINDS: Final = (
    (Action.MONITOR, None),
    (Action.MONITOR, Severity.P3),
    (Action.NOTIFY, Severity.P2),
    (Action.PAGE, Severity.P0),
    (Action.PAGE, Severity.P1),
    (Action.PAGE, Severity.INVESTIGATE),
    (Action.ROLLBACK, Severity.P0),
    (Action.ROLLBACK, Severity.P1),
)


class PollSeries:
    """One source's poll series (``watchdog_poll_duration_seconds``, ``watchdog_polls_total``,
    ``watchdog_source_up``, ``watchdog_last_successful_poll_timestamp_seconds``,
    ``watchdog_source_errors_total``): :meth:`Metrics.record_poll` for a poll loop, with the
    series looked up on first use and kept."""

    __slots__ = ("_errors", "_every_poll", "_last_ok", "_metrics", "source", "target")

    def __init__(self, metrics: Metrics, target: str, source: str) -> None:
        self._metrics = metrics
        self.target = target
        #: the ``source`` label (the name within the target)
        self.source = source_label(target, source)
        self._every_poll: tuple[Histogram, CounterSeries, GaugeSeries] | None = None
        self._last_ok: GaugeSeries | None = None
        self._errors: dict[str, CounterSeries] = {}

    def record(self, duration_s: float, at_epoch_s: float, error_reason: str | None) -> None:
        """See :meth:`Metrics.record_poll`."""
        every_poll = self._every_poll
        if every_poll is None:
            m = self._metrics
            every_poll = self._every_poll = (
                # "web/sentry" and "api/sentry" share one histogram: bounded by kinds
                m.poll_duration.labels(source=self.source),
                m.polls.labels(target=self.target, source=self.source),
                m.source_up.labels(target=self.target, source=self.source),
            )
        duration, polls, up = every_poll
        duration.observe(duration_s)
        polls.inc()
        if error_reason is None:
            up.set(1)
            if self._last_ok is None:
                self._last_ok = self._metrics.last_successful_poll.labels(
                    target=self.target, source=self.source
                )
            self._last_ok.set(at_epoch_s)
        else:
            up.set(0)
            errors = self._errors.get(error_reason)
            if errors is None:
                errors = self._errors[error_reason] = self._metrics.source_errors.labels(
                    target=self.target, source=self.source, reason=error_reason
                )
            errors.inc()


class Metrics:
    """Every metric the daemon exports, created on ``registry``.

    Attributes are typed so callers get mypy checking; label names are listed in each
    metric's help text and in DESIGN §7. Helpers (``observe_sample``, ``record_decision``,
    ...) keep label conventions (unknown values as NaN, a missing severity as ``none``,
    the action ranking) in one place.
    """

    def __init__(
        self, registry: CollectorRegistry, *, version: str = __version__, standard: bool = True
    ) -> None:
        self.registry = registry
        # the ``*_created`` series double the scrape at 1,000 targets and no alert or
        # dashboard reads them (process-wide, and harmless to repeat)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        if standard:
            # process_* (CPU, memory, file descriptors) and python_* (GC, version): what every
            # Python exporter serves, and what a "watchdog is leaking" alert reads
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)

        self.build_info: Final = Info(
            "watchdog_build",
            "Build of the running watchdog; the value is always 1.",
            registry=registry,
        )
        self.build_info.info({"version": version, "python_version": platform.python_version()})

        # --- what the watchdog sees -----------------------------------------------------
        self.signal_value: Final = PlainGauge(
            "watchdog_signal_value",
            "Latest value of a signal per target (NaN while unknown). Rates are fractions "
            "0..1, latencies seconds.",
            ["target", "signal"],
            registry=registry,
        )
        self.signal_unknown: Final = PlainCounter(
            "watchdog_signal_unknown_total",
            "Samples a source reported unknown, by why (no_data, provider_error, "
            "watchdog_network).",
            ["target", "signal", "reason"],
            registry=registry,
        )
        self.rule_threshold: Final = PlainGauge(
            "watchdog_rule_threshold",
            "Threshold a rule holds a signal against, for plotting next to the signal.",
            ["target", "rule", "signal"],
            registry=registry,
        )
        self.rule_firing: Final = PlainGauge(
            "watchdog_rule_firing",
            "1 while a rule's condition holds (sustain satisfied) for a target, else 0.",
            ["target", "rule"],
            registry=registry,
        )

        # --- sources --------------------------------------------------------------------
        self.source_up: Final = PlainGauge(
            "watchdog_source_up",
            "1 if the source's last poll reached its provider, 0 if it could not. The source "
            "label is its name within the target (here and in every family).",
            ["target", "source"],
            registry=registry,
        )
        self.polls: Final = PlainCounter(
            "watchdog_polls_total",
            "Polls attempted per source and target; the denominator of the error ratio.",
            ["target", "source"],
            registry=registry,
        )
        self.source_errors: Final = PlainCounter(
            "watchdog_source_errors_total",
            "Polls that could not reach or read their provider, by reason (provider_error, "
            "watchdog_network); no data in the window is not an error.",
            ["target", "source", "reason"],
            registry=registry,
        )
        self.poll_duration: Final = Histogram(
            "watchdog_poll_duration_seconds",
            "Wall time of one poll, retries included, by source name within its target, "
            "shared across targets (16 buckets x every source of 1,000 targets would be "
            "48,000 series).",
            ["source"],
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self.scheduling_lag: Final = Histogram(
            "watchdog_scheduling_lag_seconds",
            "How late a poll started against its scheduled slot.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.last_successful_poll: Final = PlainGauge(
            "watchdog_last_successful_poll_timestamp_seconds",
            "Unix time of the source's last successful poll.",
            ["target", "source"],
            registry=registry,
        )
        self.blind: Final = PlainGauge(
            "watchdog_blind",
            "1 while a source has been unknown for longer than its blind_after.",
            ["target", "source"],
            registry=registry,
        )

        # --- decisions and actions --------------------------------------------------------
        self.decisions: Final = PlainCounter(
            "watchdog_decisions_total",
            "Decisions made, by action and severity (none when the action carries none).",
            ["target", "action", "severity"],
            registry=registry,
        )
        self.current_action: Final = PlainGauge(
            "watchdog_current_action",
            "Latest action per target: 0 monitor, 1 notify, 2 page, 3 rollback.",
            ["target"],
            registry=registry,
        )
        self.rollbacks: Final = PlainCounter(
            "watchdog_rollbacks_total",
            "Automatic rollbacks by result (succeeded, failed, verified, verify_failed, "
            "refused, shadow); refused counts every refusal, by the engine's guard rails or "
            "the rollback runner's.",
            ["target", "result"],
            registry=registry,
        )
        self.rollback_refusals: Final = PlainCounter(
            "watchdog_rollback_refusals_total",
            "Rollbacks the flowchart asked for and a guard rail refused (the decision became a "
            'P0 page), by guard rail; sums to rollbacks_total{result="refused"}.',
            ["target", "guard"],
            registry=registry,
        )
        self.rollback_duration: Final = Histogram(
            "watchdog_rollback_duration_seconds",
            "From the deployer call to Vercel reporting the rollback done.",
            buckets=ROLLBACK_BUCKETS,
            registry=registry,
        )
        self.verification_duration: Final = Histogram(
            "watchdog_verification_duration_seconds",
            "From rollback done to verified (or verify_timeout).",
            buckets=ROLLBACK_BUCKETS,
            registry=registry,
        )
        self.pages: Final = PlainCounter(
            "watchdog_pages_total",
            "Pager events sent, by result (sent, failed, deduplicated).",
            ["target", "result"],
            registry=registry,
        )
        self.notifications: Final = PlainCounter(
            "watchdog_notifications_total",
            "Chat notifications sent, by result (sent, failed).",
            ["result"],
            registry=registry,
        )
        self.outbox_pending: Final = Gauge(
            "watchdog_outbox_pending",
            "Notifications (pages, resolves, change events, chat) stored and not yet accepted.",
            registry=registry,
        )
        self.page_undelivered: Final = PlainGauge(
            "watchdog_page_undelivered",
            "Notifications given up on (older than their maximum age, or rejected), by kind.",
            ["kind"],
            registry=registry,
        )
        for kind in ("page", "resolve", "change", "chat"):
            self.page_undelivered.labels(kind=kind).set(0)
        self.open_incidents: Final = Gauge(
            "watchdog_open_incidents",
            "Incidents currently open across all targets.",
            registry=registry,
        )

        # --- the watchdog itself ------------------------------------------------------------
        self.is_leader: Final = Gauge(
            "watchdog_is_leader",
            "1 if this replica holds the leader lease and may act (always 1 with SQLite).",
            registry=registry,
        )
        self.kill_switch: Final = Gauge(
            "watchdog_kill_switch",
            "1 while the global no-automatic-actions switch is on.",
            registry=registry,
        )
        self.heartbeat: Final = Gauge(
            "watchdog_heartbeat_timestamp_seconds",
            "Unix time the last full evaluation cycle completed (the dead man's switch).",
            registry=registry,
        )
        # per drilled (staging) target, and absent until a drill ran: a 0 would read as
        # "the last drill failed, in 1970"
        self.drill_duration: Final = PlainGauge(
            "watchdog_drill_duration_seconds",
            "Rollback + verify time of the target's last drill (the procedure's target is "
            "under 180 s); absent until a drill ran.",
            ["target"],
            registry=registry,
        )
        self.drill_success: Final = PlainGauge(
            "watchdog_drill_success",
            "1 if the target's last drill rolled back, verified and restored, else 0; absent "
            "until a drill ran.",
            ["target"],
            registry=registry,
        )
        self.last_drill: Final = PlainGauge(
            "watchdog_last_drill_timestamp_seconds",
            "Unix time the target's last drill finished; absent until a drill ran.",
            ["target"],
            registry=registry,
        )

        self._polls_of: dict[tuple[str, str], PollSeries] = {}

    # ----------------------------------------------------------------------- helpers

    def declare(self, targets: Mapping[str, Mapping[str, Iterable[str]]]) -> None:
        """Create every known series at zero before anything happens.

        ``targets`` maps each target to its sources (qualified names) and their signals.
        Prometheus' ``increase()`` cannot see the step from "no series" to 1, so without this
        the first failed rollback or page after a restart would never fire an alert, and the
        unknown-samples, source-error and error-ratio panels would be empty on a healthy
        daemon.
        """
        for result in NOTIFICATION_RESULTS:
            self.notifications.labels(result=result)
        for target, sources in targets.items():
            self.declare_target(target, sources)

    def declare_target(self, target: str, sources: Mapping[str, Iterable[str]]) -> None:
        """One target's series at zero (see :meth:`declare`)."""
        for result in ROLLBACK_RESULTS:
            self.rollbacks.labels(target=target, result=result)
        for guard in GUARDS:
            self.rollback_refusals.labels(target=target, guard=guard)
        for result in PAGE_RESULTS:
            self.pages.labels(target=target, result=result)
        for action, severity in DECISION_KINDS:
            self.decisions.labels(
                target=target, action=action.value, severity=severity_label(severity)
            )
        for name, signals in sources.items():
            source = source_label(target, name)
            self.polls.labels(target=target, source=source)
            for reason in SOURCE_ERROR_REASONS:
                self.source_errors.labels(target=target, source=source, reason=reason.value)
            self.poll_duration.labels(source=source)
            self.blind.labels(target=target, source=source).set(0)
            for signal in signals:
                for unknown in SAMPLE_UNKNOWN_REASONS:
                    self.signal_unknown.labels(target=target, signal=signal, reason=unknown.value)

    def observe_sample(self, sample: Sample) -> None:
        """Export a sample: numbers as-is, unknown as NaN plus a reason count.

        NaN rather than a removed series, so a dashboard shows a gap and
        ``watchdog_signal_value > threshold`` is false while the value is unknown (unknown
        never satisfies a rule). String values (``version``) are attributes, not numbers.
        """
        value = sample.value
        if isinstance(value, str) or sample.deployment is not None:
            # a release-scoped sample is one deployment's share, not the target's signal
            return
        key = (sample.target, sample.signal)
        if value is None:
            self.signal_value.set_at(key, math.nan)
            reason = sample.unknown.value if sample.unknown is not None else "no_data"
            self.signal_unknown.inc_at((*key, reason))
            return
        self.signal_value.set_at(key, float(value))

    def record_decision(self, decision: Decision) -> None:
        """Count a decision and export its action and the rules it held signals against."""
        target = decision.target
        self.count_decision(decision)
        self.current_action.set_at((target,), float(action_level(decision.action)))
        for obs in decision.observations:
            self.rule_threshold.set_at((target, obs.rule, obs.signal), float(obs.threshold))
            self.rule_firing.set_at((target, obs.rule), 1.0 if obs.firing else 0.0)

    def count_decision(self, decision: Decision) -> None:
        """Count a decision (``watchdog_decisions_total``) and nothing else: for the same
        decision again, whose action and rules are already exported."""
        severity = decision.severity
        self.decisions.inc_at(
            (
                decision.target,
                decision.action.value,
                severity.value if severity is not None else NO_SEVERITY,
            )
        )

    def poll_series(self, target: str, source: str) -> PollSeries:
        """The poll series of one source (by its qualified name), made once and kept."""
        series = self._polls_of.get((target, source))
        if series is None:
            series = self._polls_of[(target, source)] = PollSeries(self, target, source)
        return series

    def record_poll(
        self,
        *,
        target: str,
        source: str,
        duration_s: float,
        at_epoch_s: float,
        error_reason: str | None = None,
    ) -> None:
        """Export one poll's outcome: duration, up/down, error reason or success time.

        ``source`` is the daemon's qualified name; ``error_reason`` is set only when the poll
        could not reach or read its provider. A poll loop keeps its :meth:`poll_series`.
        """
        self.poll_series(target, source).record(duration_s, at_epoch_s, error_reason)

    def set_blind(self, target: str, source: str, blind: bool) -> None:
        """``watchdog_blind`` for a source, by its qualified name."""
        self.set_flag(self.blind.labels(target=target, source=source_label(target, source)), blind)

    def count_refusal(self, target: str, guard: str) -> None:
        """A guard rail refused a rollback the flowchart asked for (engine or runner)."""
        self.rollbacks.labels(target=target, result="refused").inc()
        self.rollback_refusals.labels(target=target, guard=guard).inc()

    def export_drills(self, drills: Iterable[DrillRecord]) -> None:
        """Each target's latest drill (``drills`` newest first, as the store lists them)."""
        seen: set[str] = set()
        for drill in drills:
            if drill.target in seen:
                continue
            seen.add(drill.target)
            self.set_flag(self.drill_success.labels(target=drill.target), drill.succeeded)
            if drill.duration_s is not None:
                self.drill_duration.labels(target=drill.target).set(drill.duration_s)
            finished = drill.finished_at or drill.started_at
            self.last_drill.labels(target=drill.target).set(finished.timestamp())

    def set_flag(self, gauge: Gauge | GaugeSeries, on: bool) -> None:
        """Set a 0/1 gauge (``is_leader``, ``kill_switch``, ``drill_success``) from a bool."""
        gauge.set(1 if on else 0)


def source_label(target: str, source: str) -> str:
    """The ``source`` label: the source's name within its target (``web/health`` → ``health``).

    The target is its own label; one format in every family lets a dashboard join source
    panels ``by (target, source)``.
    """
    return source.removeprefix(f"{target}/")


def action_level(action: Action) -> int:
    """``watchdog_current_action`` value: 0 monitor, 1 notify, 2 page, 3 rollback."""
    return action.rank


def severity_label(severity: Severity | None) -> str:
    """``severity`` label value of ``watchdog_decisions_total``."""
    return severity.value if severity is not None else NO_SEVERITY


def exposed_names(registry: CollectorRegistry) -> frozenset[str]:
    """Every series name ``registry`` can expose, whether or not it has samples yet.

    Labelled metrics export nothing until a child exists, so scraping a fresh registry
    cannot list them; this walks the metric families' types instead. Tests use it to prove
    that every name the dashboard and alert rules query is one the daemon defines.
    """
    names: set[str] = set()
    for family in registry.collect():
        names.update(_family_names(family.name, family.type))
    return frozenset(names)


def _family_names(name: str, kind: str) -> Iterable[str]:
    if kind == "counter":
        return (f"{name}_total", f"{name}_created")
    if kind == "histogram":
        return (f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created")
    if kind == "summary":
        return (name, f"{name}_count", f"{name}_sum", f"{name}_created")
    if kind == "info":
        return (f"{name}_info",)
    return (name,)


# --------------------------------------------------------------------------- exposition


def render(registry: CollectorRegistry) -> bytes:
    """``generate_latest(registry)``, byte for byte, in a fraction of the time.

    The plain families (:mod:`watchdog.families`: every labelled counter and gauge, some
    60,000 series at 1,000 targets) write their own lines; everything else (histograms, the
    process and GC collectors, unlabelled metrics) goes through prometheus_client, one
    collector at a time, in the registry's order. ``tests/test_metrics.py`` proves both
    render the same bytes; should the registry's internals ever move, this falls back to
    ``generate_latest`` whole.
    """
    try:
        with registry._lock:
            collectors = list(registry._collector_to_names)
            plain = not registry._target_info
    except AttributeError:
        plain = False
    if not plain:
        return generate_latest(registry)
    return b"".join(c.render() if isinstance(c, Family) else generate_latest(c) for c in collectors)
