"""The engine's view of a target for the status page: rule states (pending with what it
needs), the incident and where its rollback stands, what happens next, the guard rails."""

from __future__ import annotations

from datetime import timedelta

from tests.core.helpers import engine, feed, sample
from watchdog.core.model import (
    AckDecision,
    AckEvent,
    Action,
    HoldEvent,
    RollbackOutcome,
    RollbackResultEvent,
    Severity,
    UnknownReason,
    Window,
    from_seconds,
)


def rules(view):  # type: ignore[no-untyped-def]
    return {(r.rule, r.signal): r for r in view.rules}


class TestRuleStates:
    def test_over_threshold_but_not_sustained_is_pending_not_ok(self) -> None:
        """0.12 > 0.01 for one sample of a 'for 2m' rule is pending, with the time it needs."""
        eng = engine()
        feed(eng, [sample(10, "error_rate", 0.12)])
        view = eng.view("web", from_seconds(10))
        assert view is not None
        warning = rules(view)[("error-rate-warning", "error_rate")]
        assert warning.state == "pending"
        assert warning.needs == "2m more"
        critical = rules(view)[("error-rate-critical", "error_rate")]
        assert critical.state == "pending"
        assert critical.needs == "1 more sample"
        assert any("error-rate-critical fires after 1 more sample" in s.what for s in view.next)

    def test_firing_ok_and_unknown(self) -> None:
        eng = engine()
        feed(eng, [sample(t, "health_up", 0) for t in (10, 20, 30)])
        feed(eng, [sample(31, "error_rate", 0.001)])
        feed(eng, [sample(32, "latency_p95_s", None, unknown=UnknownReason.PROVIDER_ERROR)])
        view = eng.view("web", from_seconds(32))
        assert view is not None
        states = {k[0]: r.state for k, r in rules(view).items()}
        assert states["system-down"] == "firing"
        assert states["error-rate-critical"] == "ok"
        assert states["latency-critical"] == "unknown"
        assert (
            rules(view)[("latency-critical", "latency_p95_s")].unknown
            is UnknownReason.PROVIDER_ERROR
        )
        assert states["post-rollback-error-rate"] == "inactive"  # only in the intensive watch

    def test_too_few_requests_is_unknown_with_its_reason(self) -> None:
        eng = engine()
        feed(eng, [sample(10, "error_rate", 0.5, requests=3)])
        view = eng.view("web", from_seconds(10))
        assert view is not None
        crit = rules(view)[("error-rate-critical", "error_rate")]
        assert (crit.state, crit.unknown) == ("unknown", UnknownReason.TOO_FEW_REQUESTS)


class TestIncidentAndNextSteps:
    def test_fix_forward_window_and_ack(self) -> None:
        """A P1 page says when the window ends; an ack says until when it holds."""
        eng = engine()
        feed(eng, [sample(t, "feature_up.checkout", 0) for t in (10, 40)])
        view = eng.view("web", from_seconds(40))
        assert view is not None
        assert (view.action, view.severity) == (Action.PAGE, Severity.P1)
        assert view.since == from_seconds(40)
        assert view.incident is not None
        assert view.incident.fix_forward_until == from_seconds(40 + 900)
        assert view.next[0].at == from_seconds(940)
        assert "rolls back" in view.next[0].what
        eng.apply(AckEvent("web", from_seconds(100), AckDecision.FIX_FORWARD, by="ana"))
        acked = eng.view("web", from_seconds(100))
        assert acked is not None
        assert acked.incident is not None
        assert acked.incident.ack_until == from_seconds(1000)
        assert any("ack (ana) ends" in s.what for s in acked.next)

    def test_rollback_verifying_then_resolving(self) -> None:
        eng = engine()
        feed(eng, [sample(t, "health_up", 0) for t in (10, 20, 30)])
        eng.apply(RollbackResultEvent("web", from_seconds(40), RollbackOutcome.SUCCEEDED, "dpl_1"))
        feed(eng, [sample(50, "health_up", 1)])
        view = eng.view("web", from_seconds(50))
        assert view is not None
        assert view.incident is not None
        assert (view.incident.rollback, view.incident.rollback_to) == ("succeeded", "dpl_1")
        assert view.action is Action.ROLLBACK  # not a calm "monitor" while it is open
        whats = [s.what for s in view.next]
        assert any("verification ends" in w for w in whats)
        assert view.incident.resolves_at == from_seconds(50 + 300)
        assert view.guards.known_bad == ("dpl_2",)
        assert view.guards.intensive_until == from_seconds(40 + 7200)

    def test_guard_rails(self) -> None:
        freeze = Window(from_seconds(1000), from_seconds(2000), "maintenance")
        eng = engine(freezes=[freeze])
        feed(eng, [sample(t, "health_up", 0) for t in (10, 20, 30)])  # one automatic rollback
        eng.apply(HoldEvent("web", from_seconds(35), from_seconds(635), "deploying a fix", "bo"))
        view = eng.view("web", from_seconds(40))
        assert view is not None
        g = view.guards
        assert (g.budget_used, g.budget) == (1, 2)
        assert g.cooldown_until == from_seconds(30) + timedelta(minutes=30)
        assert (g.hold_until, g.hold_reason, g.hold_by) == (
            from_seconds(635),
            "deploying a fix",
            "bo",
        )
        assert g.active_freeze is None
        assert g.next_freeze == freeze
        assert any("freeze window begins" in s.what for s in view.next)

    def test_unseen_target(self) -> None:
        assert engine().view("nope", from_seconds(1)) is None


class TestLastDecision:
    def test_view_carries_the_rule_and_path(self) -> None:
        eng = engine()
        feed(eng, [sample(t, "health_up", 0) for t in (10, 20, 30)])
        view = eng.view("web", from_seconds(30))
        assert view is not None
        assert view.rule == "system-down"
        assert view.path[:2] == ("issue_detected", "p0:yes")
