"""Tests for watchdog/metrics.py: names, label conventions, and the real promtool linter."""

from __future__ import annotations

import ast
import math
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest

from tests.tools import require_tool
from watchdog.core.model import (
    Action,
    Decision,
    Observation,
    Sample,
    Severity,
    UnknownReason,
)
from watchdog.metrics import (
    DECISION_KINDS,
    GUARDS,
    SOURCE_ERROR_REASONS,
    Metrics,
    exposed_names,
    render,
    severity_label,
)
from watchdog.sources.base import FAILING_REASONS
from watchdog.store.base import DrillRecord

AT = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)

#: the names the brief, the dashboard and the alert rules rely on (the contract)
REQUIRED = (
    "watchdog_build_info",
    "watchdog_signal_value",
    "watchdog_rule_threshold",
    "watchdog_rule_firing",
    "watchdog_source_up",
    "watchdog_source_errors_total",
    "watchdog_poll_duration_seconds_bucket",
    "watchdog_scheduling_lag_seconds_bucket",
    "watchdog_last_successful_poll_timestamp_seconds",
    "watchdog_decisions_total",
    "watchdog_current_action",
    "watchdog_rollbacks_total",
    "watchdog_rollback_refusals_total",
    "watchdog_rollback_duration_seconds_bucket",
    "watchdog_verification_duration_seconds_bucket",
    "watchdog_pages_total",
    "watchdog_notifications_total",
    "watchdog_open_incidents",
    "watchdog_is_leader",
    "watchdog_blind",
    "watchdog_kill_switch",
    "watchdog_heartbeat_timestamp_seconds",
    "watchdog_drill_duration_seconds",
    "watchdog_drill_success",
)


def populated() -> CollectorRegistry:
    """A registry with a sample in every metric, as a busy daemon would expose it."""
    registry = CollectorRegistry()
    m = Metrics(registry, version="1.2.3")
    m.observe_sample(Sample("web", "error_rate", 0.031, AT, source="sentry"))
    m.observe_sample(
        Sample("web", "latency_p95_s", None, AT, unknown=UnknownReason.STALE, source="sentry")
    )
    m.record_decision(
        Decision(
            target="web",
            at=AT,
            action=Action.ROLLBACK,
            severity=Severity.P1,
            rule="error-rate-critical",
            reason="error rate 3.1% > 1%",
            path=("p1", "rollback"),
            observations=(
                Observation("error-rate-critical", "error_rate", 0.031, ">", 0.05, False),
                Observation("error-rate-warning", "error_rate", 0.031, ">", 0.01, True),
            ),
        )
    )
    m.declare({"web": {"web/sentry": ("error_rate", "latency_p95_s"), "web/health": ()}})
    m.record_poll(target="web", source="web/sentry", duration_s=0.2, at_epoch_s=1.7e9)
    m.record_poll(
        target="web",
        source="web/health",
        duration_s=5.0,
        at_epoch_s=1.7e9,
        error_reason="provider_error",
    )
    m.scheduling_lag.observe(0.004)
    m.set_blind("web", "web/supabase", True)
    m.rollbacks.labels(target="web", result="verified").inc()
    m.count_refusal("web", "cooldown")
    m.rollback_duration.observe(42.0)
    m.verification_duration.observe(61.0)
    m.pages.labels(target="web", result="sent").inc()
    m.notifications.labels(result="sent").inc()
    m.open_incidents.set(1)
    m.set_flag(m.is_leader, True)
    m.set_flag(m.kill_switch, False)
    m.heartbeat.set(1.7e9)
    m.export_drills([DrillRecord("d1", "web-staging", AT, AT, True, 95.0)])
    return registry


class TestNames:
    def test_every_required_metric_is_defined(self) -> None:
        """A fresh registry exposes every metric name dashboards and alerts rely on."""
        registry = CollectorRegistry()
        Metrics(registry)
        missing = set(REQUIRED) - exposed_names(registry)
        assert not missing

    def test_all_names_carry_the_prefix(self) -> None:
        """Every name the watchdog defines starts with watchdog_, so nothing collides on a
        shared server; the rest are the standard process_* and python_* collectors."""
        registry = CollectorRegistry()
        Metrics(registry, standard=False)
        assert all(n.startswith("watchdog_") for n in exposed_names(registry))
        registry = CollectorRegistry()
        Metrics(registry)
        others = {n for n in exposed_names(registry) if not n.startswith("watchdog_")}
        assert others
        assert all(n.startswith(("process_", "python_")) for n in others)

    def test_standard_collectors_are_on_the_registry(self) -> None:
        """process_* and python_* are served from the daemon's own registry."""
        scrape = generate_latest(populated()).decode()
        for name in (
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "python_info",
            "python_gc_objects_collected_total",
        ):
            assert f"\n{name}" in scrape, name

    def test_exposed_names_lists_series_of_every_type(self) -> None:
        """Counters, histograms and info metrics expand to the series names Prometheus stores."""
        registry = CollectorRegistry()
        Metrics(registry)
        names = exposed_names(registry)
        assert {"watchdog_pages_total", "watchdog_rollback_duration_seconds_count"} <= names
        assert "watchdog_build_info" in names
        assert "watchdog_pages" not in names

    def test_uses_only_the_given_registry(self) -> None:
        """Two instances on two registries coexist and the global registry stays untouched."""
        before = set(exposed_names(REGISTRY))
        Metrics(CollectorRegistry())
        Metrics(CollectorRegistry())
        assert set(exposed_names(REGISTRY)) == before


class TestPromtool:
    @pytest.mark.tool
    def test_scrape_passes_promtool_check_metrics(self) -> None:
        """The real promtool finds no lint problems in a fully populated scrape."""
        promtool = require_tool("PROMTOOL", "promtool")
        scrape = generate_latest(populated())
        result = subprocess.run(
            [promtool, "check", "metrics"], input=scrape, capture_output=True, timeout=30
        )
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


class TestHelpers:
    def test_build_info_carries_the_version(self) -> None:
        """watchdog_build_info is 1 with the running version as a label."""
        registry = populated()
        samples = [s for f in registry.collect() if f.name == "watchdog_build" for s in f.samples]
        assert len(samples) == 1
        assert samples[0].value == 1
        assert samples[0].labels["version"] == "1.2.3"

    def test_known_sample_sets_the_signal(self) -> None:
        """A numeric sample becomes the signal gauge's value."""
        registry = populated()
        value = registry.get_sample_value(
            "watchdog_signal_value", {"target": "web", "signal": "error_rate"}
        )
        assert value == pytest.approx(0.031)

    def test_unknown_sample_is_nan_and_counted_by_reason(self) -> None:
        """An unknown sample exports NaN (never a made-up value) and counts its reason."""
        registry = populated()
        value = registry.get_sample_value(
            "watchdog_signal_value", {"target": "web", "signal": "latency_p95_s"}
        )
        assert value is not None
        assert math.isnan(value)
        count = registry.get_sample_value(
            "watchdog_signal_unknown_total",
            {"target": "web", "signal": "latency_p95_s", "reason": "stale"},
        )
        assert count == 1

    def test_unknown_without_reason_counts_as_no_data(self) -> None:
        """An unknown sample that names no reason is counted as no_data."""
        registry = CollectorRegistry()
        Metrics(registry).observe_sample(Sample("web", "db_cpu", None, AT))
        count = registry.get_sample_value(
            "watchdog_signal_unknown_total",
            {"target": "web", "signal": "db_cpu", "reason": "no_data"},
        )
        assert count == 1

    def test_string_sample_is_not_exported(self) -> None:
        """A version string is an attribute and never becomes a gauge value."""
        registry = CollectorRegistry()
        Metrics(registry).observe_sample(Sample("web", "version", "dpl_2", AT))
        assert (
            registry.get_sample_value(
                "watchdog_signal_value", {"target": "web", "signal": "version"}
            )
            is None
        )

    def test_release_scoped_samples_leave_the_signal_alone(self) -> None:
        """A canary's own error rate (or its unknown) is one deployment's share: it neither
        sets the target's gauge nor counts as the target's signal being unknown."""
        registry = CollectorRegistry()
        m = Metrics(registry)
        m.observe_sample(Sample("web", "error_rate", 0.004, AT))
        m.observe_sample(Sample("web", "error_rate", 0.09, AT, deployment="dpl_canary"))
        m.observe_sample(Sample("web", "error_rate", None, AT, deployment="dpl_canary"))
        labels = {"target": "web", "signal": "error_rate"}
        assert registry.get_sample_value("watchdog_signal_value", labels) == 0.004
        unknown = {**labels, "reason": "no_data"}
        assert registry.get_sample_value("watchdog_signal_unknown_total", unknown) is None

    def test_decision_counts_and_sets_current_action(self) -> None:
        """A rollback decision counts once and sets the action gauge to 3."""
        registry = populated()
        assert (
            registry.get_sample_value(
                "watchdog_decisions_total",
                {"target": "web", "action": "rollback", "severity": "P1"},
            )
            == 1
        )
        assert registry.get_sample_value("watchdog_current_action", {"target": "web"}) == 3

    @pytest.mark.parametrize(
        ("action", "level"),
        [(Action.MONITOR, 0), (Action.NOTIFY, 1), (Action.PAGE, 2), (Action.ROLLBACK, 3)],
    )
    def test_current_action_levels(self, action: Action, level: int) -> None:
        """Each action maps to its documented gauge level."""
        registry = CollectorRegistry()
        Metrics(registry).record_decision(
            Decision(
                target="api", at=AT, action=action, severity=None, rule=None, reason="", path=()
            )
        )
        assert registry.get_sample_value("watchdog_current_action", {"target": "api"}) == level

    def test_decision_without_severity_is_labelled_none(self) -> None:
        """A monitor decision with no severity counts under severity="none"."""
        registry = CollectorRegistry()
        Metrics(registry).record_decision(
            Decision(
                target="api",
                at=AT,
                action=Action.MONITOR,
                severity=None,
                rule=None,
                reason="",
                path=(),
            )
        )
        labels = {"target": "api", "action": "monitor", "severity": "none"}
        assert registry.get_sample_value("watchdog_decisions_total", labels) == 1

    def test_decision_exports_thresholds_and_firing(self) -> None:
        """Each observation exports its rule's threshold and whether the rule fires."""
        registry = populated()
        threshold = registry.get_sample_value(
            "watchdog_rule_threshold",
            {"target": "web", "rule": "error-rate-critical", "signal": "error_rate"},
        )
        assert threshold == 0.05
        firing = {
            rule: registry.get_sample_value("watchdog_rule_firing", {"target": "web", "rule": rule})
            for rule in ("error-rate-critical", "error-rate-warning")
        }
        assert firing == {"error-rate-critical": 0, "error-rate-warning": 1}

    def test_successful_poll_marks_source_up_and_stamps_time(self) -> None:
        """A successful poll sets source_up=1 and the last-success timestamp."""
        registry = populated()
        labels = {"target": "web", "source": "sentry"}
        assert registry.get_sample_value("watchdog_source_up", labels) == 1
        assert (
            registry.get_sample_value("watchdog_last_successful_poll_timestamp_seconds", labels)
            == 1.7e9
        )

    def test_failed_poll_marks_source_down_and_counts_reason(self) -> None:
        """A failed poll sets source_up=0, counts its reason and leaves the success time alone."""
        registry = populated()
        labels = {"target": "web", "source": "health"}
        assert registry.get_sample_value("watchdog_source_up", labels) == 0
        assert (
            registry.get_sample_value(
                "watchdog_source_errors_total", {**labels, "reason": "provider_error"}
            )
            == 1
        )
        assert (
            registry.get_sample_value("watchdog_last_successful_poll_timestamp_seconds", labels)
            is None
        )
        assert (
            registry.get_sample_value("watchdog_poll_duration_seconds_count", {"source": "health"})
            == 1
        )

    def test_polls_are_counted_per_target_and_source(self) -> None:
        """Every poll, failed or not, counts toward the error ratio's denominator."""
        registry = populated()
        for source in ("sentry", "health"):
            labels = {"target": "web", "source": source}
            assert registry.get_sample_value("watchdog_polls_total", labels) == 1


class TestRender:
    """``render`` is the fast path of ``/metrics``: the same bytes as ``generate_latest``."""

    def test_same_bytes_as_generate_latest(self) -> None:
        """Every kind of family, label values that need escaping, NaN, infinities, large and
        tiny numbers, and series declared at zero render exactly as prometheus_client's."""
        registry = CollectorRegistry()
        m = Metrics(registry, version="1.2.3", standard=False)
        odd = 'a"b\\c\nd'
        m.declare({odd: {f"{odd}/health": ["health_up"]}, "web": {"web/sentry": ["error_rate"]}})
        m.observe_sample(Sample("web", "error_rate", math.nan, AT))
        m.observe_sample(Sample("web", "db_cpu", math.inf, AT))
        m.observe_sample(Sample("web", "latency_p95_s", -math.inf, AT))
        m.observe_sample(Sample("web", "payment_failures", 123456789.0, AT))
        m.observe_sample(Sample("web", "request_count", 1e-7, AT))
        m.observe_sample(Sample(odd, "health_up", None, AT, unknown=UnknownReason.NO_DATA))
        m.record_poll(target="web", source="web/sentry", duration_s=0.2, at_epoch_s=1.7e9)
        m.record_poll(
            target=odd,
            source=f"{odd}/health",
            duration_s=9,
            at_epoch_s=0,
            error_reason="provider_error",
        )
        m.count_refusal("web", "cooldown")
        m.outbox_pending.set(3)
        m.scheduling_lag.observe(0.004)
        m.rollback_duration.observe(42)
        assert render(registry) == generate_latest(registry)

    def test_standard_collectors_go_through_prometheus_client(self) -> None:
        """The process and GC collectors keep prometheus_client's own rendering."""
        registry = CollectorRegistry()
        Metrics(registry)
        text = render(registry).decode()
        assert "# TYPE process_cpu_seconds_total counter" in text
        assert "python_gc_objects_collected_total" in text

    def test_other_collectors_keep_their_place(self) -> None:
        """A collector registered by someone else renders through prometheus_client, in the
        registry's order."""
        registry = CollectorRegistry()
        Metrics(registry, standard=False).pages.labels(target="web", result="sent").inc()
        Counter("other_events", "Someone else's counter.", ["kind"], registry=registry).labels(
            kind="x"
        ).inc(2)
        assert render(registry) == generate_latest(registry)
        assert render(registry).decode().endswith('other_events_total{kind="x"} 2.0\n')


class TestSameDecisionAgain:
    def test_counting_is_recording_the_same_quiet_decision_again(self) -> None:
        """For the standing decision again (no rules to export) counting it exports exactly
        what recording it again would: the pipeline's shortcut changes no series."""
        quiet = Decision(
            target="web", at=AT, action=Action.MONITOR, severity=None, rule=None, reason="", path=()
        )
        recorded, counted = CollectorRegistry(), CollectorRegistry()
        full, short = Metrics(recorded, standard=False), Metrics(counted, standard=False)
        for m in (full, short):
            m.record_decision(quiet)
        full.record_decision(quiet)
        short.count_decision(quiet)
        assert generate_latest(counted) == generate_latest(recorded)


class TestSourceLabel:
    def test_one_format_in_every_family(self) -> None:
        """Every family with a source label names the source within its target, never
        the qualified ``web/health``: dashboards join source panels by (target, source)."""
        registry = populated()
        values = {
            (family.name, sample.labels["source"])
            for family in registry.collect()
            for sample in family.samples
            if "source" in sample.labels
        }
        families = {name for name, _ in values}
        assert {
            "watchdog_source_up",
            "watchdog_polls",
            "watchdog_source_errors",
            "watchdog_poll_duration_seconds",
            "watchdog_last_successful_poll_timestamp_seconds",
            "watchdog_blind",
        } <= families
        assert {source for _, source in values} == {"sentry", "health", "supabase"}

    def test_poll_duration_is_shared_across_targets(self) -> None:
        """The poll-duration histogram is per source name, not per target and source."""
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        for target in ("web", "api", "admin"):
            metrics.record_poll(
                target=target, source=f"{target}/sentry", duration_s=0.1, at_epoch_s=1.7e9
            )
        count = registry.get_sample_value(
            "watchdog_poll_duration_seconds_count", {"source": "sentry"}
        )
        assert count == 3


def declared() -> CollectorRegistry:
    registry = CollectorRegistry()
    Metrics(registry).declare(
        {"web": {"web/sentry": ("error_rate", "latency_p95_s"), "web/health": ("health_up",)}}
    )
    return registry


class TestDeclare:
    """Every known label set exists at zero before anything happens."""

    def test_outcome_series_exist_at_zero(self) -> None:
        """Rollback results, refusals by guard rail, page and chat results are 0 for increase()."""
        registry = declared()
        for result in ("succeeded", "failed", "verified", "verify_failed", "refused", "shadow"):
            labels = {"target": "web", "result": result}
            assert registry.get_sample_value("watchdog_rollbacks_total", labels) == 0
        for guard in GUARDS:
            labels = {"target": "web", "guard": guard}
            assert registry.get_sample_value("watchdog_rollback_refusals_total", labels) == 0
        for result in ("sent", "failed", "deduplicated"):
            labels = {"target": "web", "result": result}
            assert registry.get_sample_value("watchdog_pages_total", labels) == 0
        for result in ("sent", "failed"):
            labels = {"result": result}
            assert registry.get_sample_value("watchdog_notifications_total", labels) == 0

    def test_decision_kinds_exist_at_zero(self) -> None:
        """Each (action, severity) the flowchart decides has a series, so the first rollback
        after a restart shows in increase()."""
        registry = declared()
        for action, severity in DECISION_KINDS:
            labels = {
                "target": "web",
                "action": action.value,
                "severity": severity_label(severity),
            }
            assert registry.get_sample_value("watchdog_decisions_total", labels) == 0

    def test_source_series_exist_at_zero(self) -> None:
        """Polls, errors by reason, the duration histogram and blindness exist per source."""
        registry = declared()
        for source in ("sentry", "health"):
            labels = {"target": "web", "source": source}
            assert registry.get_sample_value("watchdog_polls_total", labels) == 0
            assert registry.get_sample_value("watchdog_blind", labels) == 0
            for reason in ("provider_error", "watchdog_network"):
                errors = {**labels, "reason": reason}
                assert registry.get_sample_value("watchdog_source_errors_total", errors) == 0
            count = registry.get_sample_value(
                "watchdog_poll_duration_seconds_count", {"source": source}
            )
            assert count == 0

    def test_unknown_reasons_exist_per_signal(self) -> None:
        """Each signal of each source has its unknown-sample series at zero."""
        registry = declared()
        for signal in ("error_rate", "latency_p95_s", "health_up"):
            for reason in ("no_data", "provider_error", "watchdog_network"):
                labels = {"target": "web", "signal": signal, "reason": reason}
                assert registry.get_sample_value("watchdog_signal_unknown_total", labels) == 0

    def test_source_error_reasons_are_the_sources_failing_reasons(self) -> None:
        """The reasons declared for source errors are exactly the ones polls count."""
        assert set(SOURCE_ERROR_REASONS) == set(FAILING_REASONS)


class TestRefusals:
    def test_a_refusal_counts_by_guard_and_as_a_refused_rollback(self) -> None:
        """count_refusal counts the guard rail and rollbacks_total{result="refused"} alike."""
        registry = populated()
        assert (
            registry.get_sample_value(
                "watchdog_rollback_refusals_total", {"target": "web", "guard": "cooldown"}
            )
            == 1
        )
        assert (
            registry.get_sample_value(
                "watchdog_rollbacks_total", {"target": "web", "result": "refused"}
            )
            == 1
        )

    def test_every_guard_rail_in_the_code_is_declared(self) -> None:
        """Every guard name the engine, the targeting rules and the runner use is in GUARDS,
        so none of them appears only after its first refusal."""
        root = Path(__file__).parents[1] / "watchdog"
        names: set[str] = set()
        for path in ("core/guards.py", "core/targeting.py", "actions/rollback.py"):
            for node in ast.walk(ast.parse((root / path).read_text())):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == "Guard" and isinstance(node.args[0], ast.Constant):
                    names.add(node.args[0].value)
                if called == "_refuse" and isinstance(node.args[1], ast.Constant):
                    names.add(node.args[1].value)
                for kw in node.keywords:
                    if kw.arg == "refused_by" and isinstance(kw.value, ast.Constant):
                        names.add(kw.value.value)
        assert len(names) >= 12  # the scan found them
        assert names <= set(GUARDS), names - set(GUARDS)


class TestDrills:
    def test_absent_until_a_drill_ran(self) -> None:
        """No drill gauge has a sample before any drill: "last drill failed, 1970" is impossible."""
        registry = declared()
        names = {"watchdog_drill_success", "watchdog_drill_duration_seconds"}
        names.add("watchdog_last_drill_timestamp_seconds")
        samples = [s for f in registry.collect() for s in f.samples if s.name in names]
        assert samples == []

    def test_latest_drill_per_target(self) -> None:
        """Each drilled target shows its newest drill; an older one never overwrites it."""
        registry = CollectorRegistry()
        later = AT + timedelta(days=90)
        Metrics(registry).export_drills(
            [
                DrillRecord("d3", "web-staging", later, later, False, 200.0),
                DrillRecord("d2", "api-staging", AT, AT, True, 60.0),
                DrillRecord("d1", "web-staging", AT, AT, True, 95.0),
            ]
        )
        web = {"target": "web-staging"}
        assert registry.get_sample_value("watchdog_drill_success", web) == 0
        assert registry.get_sample_value("watchdog_drill_duration_seconds", web) == 200.0
        assert (
            registry.get_sample_value("watchdog_last_drill_timestamp_seconds", web)
            == later.timestamp()
        )
        api = {"target": "api-staging"}
        assert registry.get_sample_value("watchdog_drill_success", api) == 1
