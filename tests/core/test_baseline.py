"""Judging the new deployment against the old one over the same minutes (issue 17's core):
the comparison's statistics, canary rules, aborting a bad rolling release, approving a
healthy stage, and "not the deployment" when the old one is as bad."""

from __future__ import annotations

import pytest

from tests.core.helpers import DEFAULT_PACK, engine, feed, sample
from watchdog.core.engine import Engine
from watchdog.core.model import (
    Action,
    DeployEvent,
    RollbackOutcome,
    RollbackResultEvent,
    RolloutEvent,
    RolloutState,
    Sample,
    Severity,
    UnknownReason,
    from_seconds,
)
from watchdog.core.rules import RulePack
from watchdog.core.state import Reading
from watchdog.core.stats import newcombe_difference, z_for
from watchdog.core.tracks import compare_deployments

CANARY, BASE = "dpl_new", "dpl_old"


def tagged(t: float, signal: str, value: float, deployment: str, requests: int | None = None):  # type: ignore[no-untyped-def]
    return Sample("web", signal, value, from_seconds(t), requests=requests, deployment=deployment)


def rollout(t: float, stage: int = 0, **kw: object) -> RolloutEvent:
    defaults: dict[str, object] = {"canary": CANARY, "base": BASE, "stage": stage, "percent": 10.0}
    defaults.update(kw)
    return RolloutEvent("web", from_seconds(t), RolloutState.ACTIVE, **defaults)  # type: ignore[arg-type]


def both(
    t: float, canary: float, base: float, n: int = 2000, signal: str = "error_rate"
) -> list[object]:
    """Release-scoped samples of both deployments, the base's first (same poll)."""
    return [tagged(t, signal, base, BASE, n * 9), tagged(t + 0.5, signal, canary, CANARY, n)]


def pack_with(**flowchart: object) -> RulePack:
    data = DEFAULT_PACK.model_dump(by_alias=True)
    data["flowchart"].update(flowchart)
    return RulePack.model_validate(data)


class TestNewcombe:
    @pytest.mark.parametrize(
        ("a", "na", "b", "nb", "low", "high"),
        [
            # Newcombe (1998) table II, example (a): 56/70 vs 48/80
            (56 / 70, 70, 48 / 80, 80, 0.0524, 0.3339),
            # (e): 9/10 vs 3/10
            (0.9, 10, 0.3, 10, 0.1705, 0.8090),
        ],
    )
    def test_published_examples(
        self, a: float, na: int, b: float, nb: int, low: float, high: float
    ) -> None:
        """Method 10 reproduces the paper's intervals."""
        lo, hi = newcombe_difference(a, na, b, nb, z_for(0.95))
        assert lo == pytest.approx(low, abs=1e-3)
        assert hi == pytest.approx(high, abs=1e-3)


class TestComparison:
    rule = DEFAULT_PACK.rule("canary-error-rate")

    def verdict(self, new: float, n_new: int, old: float, n_old: int):  # type: ignore[no-untyped-def]
        at = from_seconds(10)
        return compare_deployments(
            self.rule, Reading(new, n_new, at), Reading(old, n_old, at), (CANARY, BASE)
        )

    def test_clearly_worse(self) -> None:
        verdict = self.verdict(0.09, 1200, 0.004, 9800)
        assert verdict is not None
        assert verdict[0]
        assert "9% on dpl_new vs 0.4% on dpl_old" in verdict[2]

    def test_worse_but_under_the_minimum_effect(self) -> None:
        """+0.5 pp on big counts is significant, and under the +1 pp that matters."""
        verdict = self.verdict(0.009, 50_000, 0.004, 450_000)
        assert verdict is not None
        assert not verdict[0]

    def test_noise_at_small_counts_is_not_worse(self) -> None:
        """4 failures of 150 against 1.5% of 1,350: +1.2 pp on paper, but the interval on
        the difference includes 0."""
        verdict = self.verdict(4 / 150, 150, 0.015, 1350)
        assert verdict is not None
        assert not verdict[0]

    def test_too_few_requests_cannot_say(self) -> None:
        assert self.verdict(0.5, 20, 0.004, 9800) is None

    def test_latency_ratio(self) -> None:
        rule = DEFAULT_PACK.rule("canary-latency")
        at = from_seconds(10)
        slow = compare_deployments(rule, Reading(1.8, None, at), Reading(0.6, None, at), ("n", "o"))
        assert slow is not None
        assert slow[0]
        # x1.5 but only +0.15 s: under min_delta
        small = compare_deployments(
            rule, Reading(0.45, None, at), Reading(0.3, None, at), ("n", "o")
        )
        assert small is not None
        assert not small[0]


class TestRollingRelease:
    def start(self, pack: RulePack = DEFAULT_PACK) -> Engine:
        eng = engine(pack, deploy_at=0)  # dpl_2 is production (the rollout's base is BASE)
        eng.apply(DeployEvent("web", from_seconds(0), BASE))
        eng.apply(rollout(100, stage=0, requires_approval=True, next_stage=1))
        return eng

    def test_bad_canary_aborts_the_rolling_release(self) -> None:
        """The canary fails 9% against the base's 0.4%, three evaluations running: roll back,
        scoped to the canary, blaming it, saying only its share was hit."""
        eng = self.start()
        decisions = feed(eng, [*both(110, 0.09, 0.004), *both(120, 0.09, 0.004)])
        assert all(d.action is Action.MONITOR for d in decisions)
        d = feed(eng, both(130, 0.09, 0.004))[-1]
        assert d.execute_rollback
        assert d.rule == "canary-error-rate"
        assert (d.scope, d.deployment) == ("canary", CANARY)
        assert "aborting the rolling release of dpl_new" in d.reason
        assert "10% of users" in d.reason
        eng.apply(
            RollbackResultEvent(
                "web", from_seconds(131), RollbackOutcome.SUCCEEDED, BASE, aborted=CANARY
            )
        )
        ts = eng.targets["web"]
        assert ts.rollout is None
        assert CANARY in ts.known_bad

    @pytest.mark.parametrize(
        "ending",
        [
            pytest.param(
                RollbackResultEvent(
                    "web", from_seconds(131), RollbackOutcome.SUCCEEDED, BASE, aborted=CANARY
                ),
                id="the-abort-landed",
            ),
            pytest.param(
                RolloutEvent("web", from_seconds(131), RolloutState.ABORTED), id="vercel-aborted"
            ),
            pytest.param(rollout(131, canary="dpl_newer"), id="another-canary"),
        ],
    )
    def test_an_ended_rollout_stands_its_comparison_down(self, ending: object) -> None:
        """Once the rolling release is over its canary serves no one: the baseline rule
        stops firing on the canary's last reading, so the incident can resolve (without
        this an aborted canary's rule fired for ever and a second "rollback" was refused
        as already_rolled_back)."""
        eng = self.start()
        feed(eng, [*both(110, 0.09, 0.004), *both(120, 0.09, 0.004), *both(130, 0.09, 0.004)])
        ts = eng.targets["web"]
        assert ts.firing_count == 1
        d = eng.apply(ending)[-1]  # type: ignore[arg-type]
        assert ts.firing_count == 0
        assert not any(t.firing for t in ts.tracks.values())
        assert ts.tagged == {}
        assert "already_rolled_back" not in (d.refused_by or "")
        later = feed(eng, [sample(140, "error_rate", 0.004, requests=5000)])[-1]
        assert later.refused_by is None
        assert not later.execute_rollback

    def test_an_older_rollback_settled_late_does_not_end_the_rollout(self) -> None:
        """A restart settles an interrupted rollback (SUCCEEDED, to the base) after the
        watcher told the engine of a newer rolling release: the rollout stays, since
        Vercel's next read would not say it again (found in review)."""
        eng = self.start()
        eng.apply(RollbackResultEvent("web", from_seconds(105), RollbackOutcome.SUCCEEDED, BASE))
        ts = eng.targets["web"]
        assert ts.rollout is not None
        assert ts.rollout.canary == CANARY
        assert CANARY not in ts.known_bad

    def test_the_abort_landing_after_vercel_said_aborted_still_marks_the_canary(self) -> None:
        eng = self.start()
        eng.apply(RolloutEvent("web", from_seconds(120), RolloutState.ABORTED))
        eng.apply(
            RollbackResultEvent(
                "web", from_seconds(121), RollbackOutcome.SUCCEEDED, BASE, aborted=CANARY
            )
        )
        assert CANARY in eng.targets["web"].known_bad

    def test_control_a_rollout_moving_on_a_stage_keeps_its_comparison(self) -> None:
        """A new stage of the same canary is no ending: the run goes on."""
        eng = self.start()
        feed(eng, [*both(110, 0.09, 0.004), *both(120, 0.09, 0.004)])
        eng.apply(rollout(125, stage=1, percent=50.0))
        d = feed(eng, both(130, 0.09, 0.004))[-1]
        assert d.execute_rollback

    def test_control_a_healthy_canary_is_left_alone(self) -> None:
        eng = self.start()
        decisions = feed(
            eng, [*both(110, 0.004, 0.004), *both(120, 0.005, 0.004), *both(130, 0.004, 0.004)]
        )
        assert all(d.action is Action.MONITOR for d in decisions)
        assert all(d.approve_stage is None for d in decisions)  # approving is off by default

    def test_healthy_stage_is_approved_when_allowed(self) -> None:
        """With approve_stages on, ten healthy minutes of canary traffic approve stage 1,
        once."""
        eng = self.start(pack_with(approve_stages=True, approve_after="10m"))
        items: list[object] = []
        for t in range(110, 690, 30):
            items += both(t, 0.004, 0.004)
        early = feed(eng, items)
        assert all(d.approve_stage is None for d in early)
        late = feed(eng, both(710, 0.004, 0.004) + both(740, 0.004, 0.004))
        approved = [d for d in late if d.approve_stage is not None]
        assert [d.approve_stage for d in approved] == [1]
        assert "approving stage 1" in approved[0].reason

    def test_no_approval_under_the_kill_switch(self) -> None:
        from watchdog.core.model import KillSwitchEvent

        eng = self.start(pack_with(approve_stages=True, approve_after="1m"))
        eng.apply(KillSwitchEvent(from_seconds(101), True))
        decisions = feed(eng, [*both(200, 0.004, 0.004), *both(230, 0.004, 0.004)])
        assert all(d.approve_stage is None for d in decisions)

    def test_no_base_traffic_is_unknown_not_worse(self) -> None:
        eng = self.start()
        feed(eng, [tagged(t, "error_rate", 0.09, CANARY, 2000) for t in (110, 120, 130, 140)])
        obs = {o.rule: o for o in eng.observations("web")}
        assert obs["canary-error-rate"].unknown is UnknownReason.NO_BASELINE
        assert eng.targets["web"].last is not None
        assert eng.targets["web"].last.action is Action.MONITOR


class TestNotTheDeployment:
    def test_old_deployment_as_bad_refuses_the_rollback(self) -> None:
        """A dependency fails: the overall error rate is 8%, and so is the old deployment's
        over the same minutes. Page P0 'not the deployment', never roll back."""
        eng = engine(deploy_at=0)
        eng.apply(rollout(5))
        items: list[object] = []
        for t in (10, 20):
            items += both(t, 0.08, 0.08)
            items.append(sample(t + 1, "error_rate", 0.08, requests=20_000))
        d = feed(eng, items)[-1]
        assert (d.action, d.severity, d.refused_by) == (Action.PAGE, Severity.P0, "baseline_as_bad")
        assert "not the deployment: the old deployment dpl_old is as bad" in d.reason

    def test_control_only_the_new_one_is_bad(self) -> None:
        eng = engine(deploy_at=0)
        eng.apply(rollout(5))
        items: list[object] = []
        for t in (10, 20):
            items += both(t, 0.08, 0.003)
            items.append(sample(t + 1, "error_rate", 0.08, requests=20_000))
        d = feed(eng, items)[-1]
        assert d.execute_rollback
        assert d.scope == "canary"

    def test_a_noisy_canary_sample_does_not_lift_the_refusal(self) -> None:
        """Refused as 'not the deployment', the chapter stays so: one canary sample reading
        worse (noise on its small share) does not turn it into a rollback."""
        eng = engine(deploy_at=0)
        eng.apply(rollout(5))
        items: list[object] = []
        for t in (10, 20):
            items += both(t, 0.08, 0.08)
            items.append(sample(t + 1, "error_rate", 0.08, requests=20_000))
        items += both(30, 0.17, 0.08, n=300)
        items.append(sample(31, "error_rate", 0.085, requests=20_000))
        decisions = feed(eng, items)
        assert all(not d.execute_rollback for d in decisions)
        assert decisions[-1].refused_by == "baseline_as_bad"

    def test_a_canary_measurably_worse_for_three_evaluations_overrides_it(self) -> None:
        """Both over 5%, but the canary at 30% against 6%, three evaluations running: the
        canary rule fires and the rolling release is aborted after all."""
        eng = engine(deploy_at=0)
        eng.apply(rollout(5))
        items: list[object] = []
        for t in (10, 20, 30, 40):
            items += both(t, 0.30, 0.06)
            items.append(sample(t + 1, "error_rate", 0.08, requests=20_000))
        decisions = feed(eng, items)
        rolled = [d for d in decisions if d.execute_rollback]
        assert len(rolled) == 1
        assert rolled[0].scope == "canary"
