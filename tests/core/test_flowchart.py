"""The flowchart of DESIGN §4, branch by branch, and the guard rails of DESIGN §5.

Each guard-rail test is paired with a control that differs only in the guard rail's input,
so the test fails if the guard rail is removed.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from tests.core.helpers import DEFAULT_PACK, engine, feed, sample, series
from watchdog.core.engine import Engine
from watchdog.core.model import (
    AckDecision,
    AckEvent,
    Action,
    DeclareEvent,
    DeployEvent,
    HoldEvent,
    KillSwitchEvent,
    RollbackOutcome,
    RollbackResultEvent,
    Severity,
    Window,
    from_seconds,
)
from watchdog.core.rules import RulePack


def pack_with(**changes: object) -> RulePack:
    data = DEFAULT_PACK.model_dump(by_alias=True)
    for dotted, value in changes.items():
        rule, field = dotted.split("__")
        for item in data["rules"]:
            if item["name"] == rule.replace("_", "-"):
                item[field] = value
    return RulePack.model_validate(data)


def flowchart(**params: object) -> RulePack:
    data = DEFAULT_PACK.model_dump(by_alias=True)
    data["flowchart"].update(params)
    return RulePack.model_validate(data)


def feature_down(start: float, n: int, step: float = 30) -> list[object]:
    return series("feature_up.checkout", [0.0] * n, start=start, step=step)


#: when the feature goes down in ``outage_with_error_rates``
OUTAGE = 600.0


def climbing_rates() -> list[float]:
    """0.3% rising to 3% over 10 minutes at a 30 s cadence, then flat."""
    return [0.003 + 0.027 * min(1.0, i / 20) for i in range(40)]


def outage_with_error_rates(
    rates: list[float], *, step: float = 30, ack: AckEvent | None = None
) -> list[object]:
    """Ten healthy minutes at 0.3%, then the feature down while the error rate follows
    ``rates`` (one per ``step``, from the outage on), ``ack`` inserted at its time."""
    items: list[object] = []
    for i in range(int(OUTAGE // step)):
        t = step * (i + 1) - step / 2
        items += [sample(t, "feature_up.checkout", 1), sample(t, "error_rate", 0.003)]
    for i, rate in enumerate(rates):
        t = OUTAGE + step * i
        if ack is not None and items and ack.at <= from_seconds(t) and ack not in items:
            items.append(ack)
        items += [sample(t, "feature_up.checkout", 0), sample(t, "error_rate", rate)]
    return items


class TestBranches:
    def test_p0_rolls_back(self) -> None:
        """Step 1: any P0 rule firing rolls back, and the path says so."""
        d = feed(engine(), [sample(10, "payment_failures", 2)])[-1]
        assert d.action is Action.ROLLBACK
        assert d.path[:2] == ("issue_detected", "p0:yes")
        assert d.path[-1] == "rollback"

    def test_rollback_threshold_rolls_back(self) -> None:
        """Step 2: a threshold the procedure marks '(rollback)' rolls back a P1."""
        d = feed(engine(), series("error_rate", [0.2, 0.2]))[-1]
        assert (d.action, d.severity) == (Action.ROLLBACK, Severity.P1)
        assert "rollback_threshold:yes" in d.path

    def test_require_trend_option_holds_flat_error_rate(self) -> None:
        """With require_trend on, a flat 8% error rate pages P1 instead of rolling back; one
        that keeps climbing rolls back."""
        pack = pack_with(error_rate_critical__require_trend=True)
        before = series("error_rate", [0.002] * 10, step=60)
        flat = feed(engine(pack), before + series("error_rate", [0.08] * 8, start=610, step=60))
        assert flat[-1].action is Action.PAGE
        assert flat[-1].severity is Severity.P1
        climbing = [0.06 + 0.01 * i for i in range(8)]
        rising = feed(engine(pack), before + series("error_rate", climbing, start=610, step=60))
        assert rising[-1].action is Action.ROLLBACK
        assert "trending:yes" in rising[-1].path

    def test_p1_pages_inside_fix_forward_window(self) -> None:
        """Step 3: a P1 without a rollback threshold pages while the 15 min window is open."""
        decisions = feed(engine(), feature_down(10, 30))  # 10 .. 880 s
        assert decisions[-1].action is Action.PAGE
        assert "fix_forward:window_open" in decisions[-1].path

    def test_p1_rolls_back_when_window_ends_unacked(self) -> None:
        """Step 3: when the window ends unacked and the feature is still down → rollback."""
        eng = engine()
        opened = feed(eng, feature_down(10, 2))[-1]  # fires at t=40
        assert opened.action is Action.PAGE
        before = feed(eng, feature_down(40 + 899, 1))[-1]
        assert before.action is Action.PAGE
        after = feed(eng, feature_down(40 + 900, 1))[-1]
        assert after.action is Action.ROLLBACK
        assert "fix_forward:window_expired" in after.path

    def test_fix_forward_ack_holds_rollback(self) -> None:
        """A human 'fix forward' ack holds rollback past the original window."""
        eng = engine()
        feed(eng, feature_down(10, 2))
        eng.apply(AckEvent("web", from_seconds(600), AckDecision.FIX_FORWARD, by="ana"))
        held = feed(eng, feature_down(950, 1))[-1]
        assert held.action is Action.PAGE
        assert "fix_forward:acked" in held.path
        assert "ana" in held.reason
        expired = feed(eng, feature_down(600 + 900, 1))[-1]
        assert expired.action is Action.ROLLBACK

    def test_getting_worse_rolls_back_inside_window(self) -> None:
        """Unacked, a P1 whose error rate climbs from 0.3% to 3% rolls back before the window
        ends, and the reason gives the evidence."""
        decisions = feed(engine(), outage_with_error_rates(climbing_rates()))
        rollbacks = [d for d in decisions if d.action is Action.ROLLBACK]
        assert rollbacks, "a climbing error rate during a P1 outage must roll back"
        first = rollbacks[0]
        assert "getting_worse:yes" in first.path
        assert first.at < from_seconds(OUTAGE + 30 + 900)  # inside the fix-forward window
        assert "Mann-Kendall" in first.reason
        assert "0.30% -> " in first.reason

    def test_noise_does_not_count_as_getting_worse(self) -> None:
        """Ordinary noise in a healthy error rate (0.1-0.6%) during a P1 outage never rolls
        back inside the window (the issue's worst case): only the window ending does."""
        rng = random.Random(4)
        noise = [rng.uniform(0.001, 0.006) for _ in range(60)]
        decisions = feed(engine(), outage_with_error_rates(noise))
        early = [
            d
            for d in decisions
            if d.action is Action.ROLLBACK and d.at < from_seconds(OUTAGE + 30 + 900)
        ]
        assert early == []
        # the window ran out with the feature still down: that rolls back, by the flowchart
        expired = [d for d in decisions if d.execute_rollback]
        assert len(expired) == 1
        assert "fix_forward:window_expired" in expired[0].path

    def test_getting_worse_does_not_override_ack(self) -> None:
        """A fix-forward ack holds even when the error rate climbs."""
        ack = AckEvent("web", from_seconds(OUTAGE + 40), AckDecision.FIX_FORWARD)
        rates = climbing_rates()[:30]  # up to the ack's end (15 min after it)
        decisions = feed(engine(), outage_with_error_rates(rates, ack=ack))
        assert all(d.action is not Action.ROLLBACK for d in decisions)
        control = feed(engine(), outage_with_error_rates(rates))
        assert any("getting_worse:yes" in d.path for d in control)
        assert "fix_forward:acked" in decisions[-1].path

    def test_ack_rollback_rolls_back_now(self) -> None:
        """Acknowledging with 'rollback' rolls back at once."""
        eng = engine()
        feed(eng, feature_down(10, 2))
        d = eng.apply(AckEvent("web", from_seconds(60), AckDecision.ROLLBACK))[-1]
        assert d.action is Action.ROLLBACK
        assert d.execute_rollback

    def test_investigate_pages_warning(self) -> None:
        """Step 4: investigate-level rules page at warning severity."""
        d = feed(engine(), series("db_cpu", [0.95] * 31))[-1]
        assert (d.action, d.severity, d.rule) == (
            Action.PAGE,
            Severity.INVESTIGATE,
            "db-cpu-investigate",
        )

    @pytest.mark.parametrize(
        ("severity", "action"), [("P2", Action.NOTIFY), ("P3", Action.MONITOR)]
    )
    def test_p2_notifies_p3_monitors(self, severity: str, action: Action) -> None:
        """Step 4: P2 notifies, P3 only monitors (with its severity shown)."""
        data = DEFAULT_PACK.model_dump(by_alias=True)
        data["rules"] = [
            *data["rules"],
            {
                "name": "minor",
                "signal": "minor_errors",
                "op": ">",
                "threshold": 0,
                "severity": severity,
            },
        ]
        d = feed(engine(RulePack.model_validate(data)), [sample(10, "minor_errors", 1)])[-1]
        assert (d.action, d.severity) == (action, Severity(severity))

    def test_nothing_firing_monitors(self) -> None:
        """Step 5: healthy signals → monitor with no severity."""
        d = feed(engine(), series("error_rate", [0.001] * 5))[-1]
        assert (d.action, d.severity, d.rule) == (Action.MONITOR, None, None)

    def test_resolve_period(self) -> None:
        """An incident resolves only once its conditions stay clear for the resolve period."""
        eng = engine()
        feed(eng, series("db_cpu", [0.95] * 31))  # fires at t=310
        clear = feed(eng, series("db_cpu", [0.5] * 31, start=320))  # 320 .. 620
        assert clear[0].incident is not None
        assert clear[0].resolved_incident is None
        assert clear[29].resolved_incident is None  # t=610: 4m50s clear
        assert clear[30].resolved_incident == clear[0].incident  # t=620: 5m clear
        later = feed(eng, [sample(630, "db_cpu", 0.5)])[-1]
        assert later.incident is None

    def test_recurrence_within_resolve_period_keeps_incident(self) -> None:
        """A condition that returns before the resolve period ends reuses the open incident."""
        eng = engine()
        first = feed(eng, series("payment_failures", [1]))[-1]
        feed(eng, series("payment_failures", [0], start=20))
        again = feed(eng, series("payment_failures", [1], start=60))[-1]
        assert again.incident == first.incident


class TestGuardRails:
    def test_deploy_correlation_stale_deployment(self) -> None:
        """A deployment older than max_deploy_age is not rolled back: P0 page instead."""
        old = 6 * 3600 + 1
        d = feed(engine(deploy_at=0), series("health_up", [0.0] * 3, start=old))[-1]
        assert (d.action, d.severity, d.refused_by) == (Action.PAGE, Severity.P0, "deploy_too_old")
        ok = feed(engine(deploy_at=0), series("health_up", [0.0] * 3, start=old - 40))[-1]
        assert ok.action is Action.ROLLBACK

    def test_condition_predating_deploy_is_refused(self) -> None:
        """A condition that already held before the deployment went live pages, not rolls back."""
        eng = engine(deploy_at=None)
        feed(eng, series("error_rate", [0.2], start=10))
        eng.apply(DeployEvent("web", from_seconds(15), "dpl_3"))
        d = feed(eng, series("error_rate", [0.2, 0.2], start=20))[-1]
        assert d.refused_by == "predates_deploy"
        assert "condition predates deployment" in d.reason
        control = feed(engine(deploy_at=5), series("error_rate", [0.2, 0.2], start=10))[-1]
        assert control.action is Action.ROLLBACK

    def test_unknown_deployment_is_refused(self) -> None:
        """With no deployment known the watchdog cannot correlate: page P0."""
        d = feed(engine(deploy_at=None), series("health_up", [0.0] * 3))[-1]
        assert d.refused_by == "deploy_unknown"
        pack = flowchart(require_known_deployment=False)
        assert (
            feed(engine(pack, deploy_at=None), series("health_up", [0.0] * 3))[-1].action
            is Action.ROLLBACK
        )

    def _incident(self, eng: Engine, start: float) -> list[object]:
        """A P0 incident at ``start``, a rollback deploy, recovery and resolution."""
        out = feed(eng, series("payment_failures", [1], start=start))
        out += eng.apply(DeployEvent("web", from_seconds(start + 5), f"dpl_{start}", rollback=True))
        out += feed(eng, series("payment_failures", [0] * 32, start=start + 10))
        # a fresh deployment, so deploy correlation is not what refuses the next one
        out += eng.apply(DeployEvent("web", from_seconds(start + 400), f"dpl_new_{start}"))
        return out

    def test_cooldown(self) -> None:
        """A second automatic rollback within the cooldown pages instead."""
        eng = engine()
        self._incident(eng, 10)
        d = feed(eng, series("payment_failures", [1], start=1000))[-1]
        assert d.refused_by == "cooldown"
        eng2 = engine()
        self._incident(eng2, 10)
        assert (
            feed(eng2, series("payment_failures", [1], start=10 + 1800))[-1].action
            is Action.ROLLBACK
        )

    def test_budget(self) -> None:
        """Past the budget of automatic rollbacks per 24 h, page only."""
        eng = engine()
        self._incident(eng, 10)
        self._incident(eng, 4000)
        d = feed(eng, series("payment_failures", [1], start=8000))[-1]
        assert d.refused_by == "budget"
        assert "budget" in d.reason
        eng2 = engine(flowchart(rollback_budget=3))
        self._incident(eng2, 10)
        self._incident(eng2, 4000)
        assert feed(eng2, series("payment_failures", [1], start=8000))[-1].action is Action.ROLLBACK

    def test_hold_suppresses_rollback_but_pages(self) -> None:
        """A hold turns the rollback into a P0 page; releasing it lets the rollback through."""
        eng = engine()
        eng.apply(HoldEvent("web", from_seconds(1), from_seconds(3600), reason="migration"))
        d = feed(eng, series("payment_failures", [1]))[-1]
        assert (d.action, d.severity, d.refused_by) == (Action.PAGE, Severity.P0, "hold")
        released = eng.apply(HoldEvent("web", from_seconds(20), from_seconds(20)))[-1]
        assert released.action is Action.ROLLBACK

    def test_kill_switch(self) -> None:
        """With the kill switch on the watchdog only pages."""
        eng = engine()
        eng.apply(KillSwitchEvent(from_seconds(1), True))
        assert feed(eng, series("payment_failures", [1]))[-1].refused_by == "kill_switch"
        eng.apply(KillSwitchEvent(from_seconds(15), False))
        assert feed(eng, series("payment_failures", [1], start=20))[-1].action is Action.ROLLBACK

    def test_freeze_window(self) -> None:
        """Inside a planned-maintenance freeze the watchdog only pages."""
        freeze = Window(from_seconds(0), from_seconds(100), reason="db maintenance")
        eng = engine(freezes=[freeze])
        d = feed(eng, series("payment_failures", [1]))[-1]
        assert d.refused_by == "freeze"
        assert "db maintenance" in d.reason
        after = feed(engine(freezes=[freeze]), series("payment_failures", [1], start=100))[-1]
        assert after.action is Action.ROLLBACK

    def test_one_rollback_per_incident(self) -> None:
        """While a rollback is in flight the decision stays 'rollback' but never re-executes."""
        decisions = feed(engine(), series("payment_failures", [1] * 10))
        assert [d.execute_rollback for d in decisions].count(True) == 1
        assert all(d.action is Action.ROLLBACK for d in decisions)

    def test_rollback_that_did_not_help(self) -> None:
        """After the rollback lands and verify_timeout passes, a still-firing rule pages P0."""
        eng = engine()
        feed(eng, series("payment_failures", [1]))
        eng.apply(DeployEvent("web", from_seconds(20), "dpl_1", rollback=True))
        verifying = feed(eng, series("payment_failures", [1], start=100))[-1]
        assert verifying.action is Action.ROLLBACK
        assert not verifying.execute_rollback
        d = feed(eng, series("payment_failures", [1], start=20 + 180))[-1]
        assert (d.action, d.severity, d.refused_by) == (
            Action.PAGE,
            Severity.P0,
            "already_rolled_back",
        )

    def test_failed_rollback_stops_automatic_rollback(self) -> None:
        """A rollback reported failed is never retried automatically for that incident."""
        eng = engine()
        feed(eng, series("payment_failures", [1]))
        eng.apply(RollbackResultEvent("web", from_seconds(15), RollbackOutcome.FAILED))
        d = feed(eng, series("payment_failures", [1], start=20))[-1]
        assert d.refused_by == "rollback_failed"
        assert d.severity is Severity.P0

    def test_declare_rolls_back_despite_old_deployment(self) -> None:
        """A declared incident (e.g. security) takes the rollback path, bypassing deploy age."""
        eng = engine(deploy_at=0)
        d = eng.apply(DeclareEvent("web", from_seconds(8 * 3600), reason="CVE in auth", by="sre"))[
            -1
        ]
        assert (d.action, d.severity, d.rule) == (Action.ROLLBACK, Severity.P0, "declared")
        assert d.execute_rollback
        assert "CVE in auth" in d.reason

    def test_intensive_watch_tighter_threshold(self) -> None:
        """For 2 h after a rollback, error rate above 0.5% pages; outside it, it does not."""
        eng = engine()
        eng.apply(DeployEvent("web", from_seconds(5), "dpl_1", rollback=True))
        during = feed(eng, series("error_rate", [0.007, 0.007]))[-1]
        assert during.rule == "post-rollback-error-rate"
        assert during.action is Action.PAGE
        normal = feed(engine(), series("error_rate", [0.007, 0.007]))[-1]
        assert normal.action is Action.MONITOR
        after = timedelta(hours=2).total_seconds() + 10
        later = feed(eng, series("error_rate", [0.007] * 3, start=after))[-1]
        assert later.observations == ()  # the rule stopped counting when the watch ended
        assert "resolving" in later.path
        # ... so the incident it opened resolves after the resolve period, 0.7% or not
        settled = feed(eng, series("error_rate", [0.007] * 31, start=after + 30))[-1]
        assert settled.action is Action.MONITOR
        assert settled.incident is None


class TestTrendAndVerification:
    def test_flat_series_is_not_getting_worse(self) -> None:
        """A constant error rate (slope = rounding noise) is not 'getting worse'."""
        eng = engine()
        feed(eng, feature_down(10, 2))
        flat = [sample(60 + 30 * i, "error_rate", 0.002) for i in range(6)]
        assert feed(eng, flat)[-1].action is Action.PAGE

    def test_small_wobble_is_not_getting_worse(self) -> None:
        """A rise of under 10% of the level over the window is noise, not a trend."""
        eng = engine()
        feed(eng, feature_down(10, 2))
        wobble = [sample(60 + 30 * i, "error_rate", 0.002 + 0.00001 * i) for i in range(6)]
        assert feed(eng, wobble)[-1].action is Action.PAGE

    def test_verified_rollback_gets_the_settle_window(self) -> None:
        """Lagging signals right after a verified rollback do not page 'did not help'."""
        eng = engine()
        feed(eng, series("payment_failures", [1]))
        eng.apply(DeployEvent("web", from_seconds(12), "dpl_1", rollback=True))
        eng.apply(RollbackResultEvent("web", from_seconds(14), RollbackOutcome.VERIFIED))
        lagging = feed(eng, series("payment_failures", [1], start=30))[-1]
        assert lagging.action is Action.ROLLBACK
        assert lagging.refused_by is None
        later = feed(eng, series("payment_failures", [1], start=12 + 180))[-1]
        assert later.refused_by == "already_rolled_back"


class TestStaleSamples:
    def test_older_sample_of_same_signal_is_stale(self) -> None:
        """A sample older than the signal's last one is unknown (stale): it cannot fire."""
        eng = engine()
        feed(eng, [sample(100, "payment_failures", 0)])
        d = feed(eng, [sample(50, "payment_failures", 5)])[-1]
        assert d.action is Action.MONITOR

    def test_interleaved_signals_are_not_stale(self) -> None:
        """Different signals stamped slightly out of order are all used."""
        eng = engine()
        feed(eng, [sample(100.5, "health_up", 1)])
        d = feed(eng, [sample(100.2, "payment_failures", 2)])[-1]
        assert d.action is Action.ROLLBACK
