"""Trustworthy judgement (issue 10): a rollback is never forgotten, deploy correlation looks at
the condition's onset, a new deployment starts a new chapter, every input counts once, rates
need a sample size, a blind streak never rolls back, and decisions name the deployment.

Each test pairs the behaviour with a control that differs only in the input that matters.
"""

from __future__ import annotations

from tests.core.helpers import engine, feed, sample, series
from watchdog.core.model import (
    Action,
    DeployEvent,
    RollbackOutcome,
    RollbackResultEvent,
    Severity,
    UnknownReason,
    from_seconds,
)

NET = UnknownReason.WATCHDOG_NETWORK


def down(t: float) -> object:
    return sample(t, "health_up", 0)


def up(t: float) -> object:
    return sample(t, "health_up", 1)


def keys(decisions: list) -> list[tuple[object, object]]:  # type: ignore[type-arg]
    """The (action, severity) changes, as replay prints them."""
    out: list[tuple[object, object]] = []
    for d in decisions:
        if not out or out[-1] != d.key:
            out.append(d.key)
    return out


class TestRollbackNeverForgotten:
    def test_flapping_after_a_rollback_does_not_alternate(self) -> None:
        """Once rolled back, a health check that keeps failing and recovering restates
        'rollback' (no page/rollback/monitor alternation), then says once that the rollback
        did not help; it never asks for a second rollback."""
        eng = engine()
        decisions = feed(eng, [down(10), down(20), down(30)])  # P0 → rollback at 30
        eng.apply(RollbackResultEvent("web", from_seconds(35), RollbackOutcome.SUCCEEDED, "dpl_1"))
        items: list[object] = []
        for t in range(40, 600, 40):
            items += [up(t), down(t + 10), down(t + 20), down(t + 30)]  # fires every cycle
        decisions += feed(eng, items)
        assert [d for d in decisions if d.execute_rollback] == [decisions[2]]
        assert keys(decisions[2:]) == [(Action.ROLLBACK, Severity.P0), (Action.PAGE, Severity.P0)]
        refused = next(d for d in decisions if d.action is Action.PAGE)
        assert refused.refused_by == "already_rolled_back"
        assert refused.at >= from_seconds(35 + 180)  # not before the verify window ended

    def test_flapping_that_never_sustains_resolves(self) -> None:
        """A check failing every other poll never meets '3 consecutive': the incident the
        rollback opened resolves after the resolve period, one line."""
        eng = engine()
        decisions = feed(eng, [down(10), down(20), down(30)])
        eng.apply(RollbackResultEvent("web", from_seconds(35), RollbackOutcome.SUCCEEDED, "dpl_1"))
        items: list[object] = []
        for t in range(40, 400, 20):
            items += [up(t), down(t + 10)]
        decisions += feed(eng, items)
        assert keys(decisions[2:]) == [(Action.ROLLBACK, Severity.P0), (Action.MONITOR, None)]

    def test_without_flapping_control(self) -> None:
        """Control: the same outage, then steady health, resolves after the resolve period."""
        eng = engine()
        decisions = feed(eng, [down(10), down(20), down(30)])
        eng.apply(RollbackResultEvent("web", from_seconds(35), RollbackOutcome.SUCCEEDED, "dpl_1"))
        decisions += feed(eng, [up(t) for t in range(40, 400, 10)])
        assert keys(decisions[2:]) == [
            (Action.ROLLBACK, Severity.P0),
            (Action.MONITOR, None),
        ]
        assert decisions[-1].incident is None

    def test_reasons_say_what_was_done(self) -> None:
        """After a rollback, reasons name the deployment, the target and the verify deadline."""
        eng = engine()
        feed(eng, [down(10), down(20), down(30)])
        eng.apply(RollbackResultEvent("web", from_seconds(35), RollbackOutcome.SUCCEEDED, "dpl_1"))
        d = feed(eng, [down(40)])[-1]
        assert (d.action, d.severity) == (Action.ROLLBACK, Severity.P0)
        assert "rolled back dpl_2 -> dpl_1 at 1970-01-01T00:00:35+00:00" in d.reason
        assert "verifying until 1970-01-01T00:03:35+00:00" in d.reason

    def test_p1_after_rollback_never_opens_a_new_window(self) -> None:
        """A P1 outage rolled back at window expiry stays 'rolled back'; if it persists past
        verification it pages P0 'did not help', never a fresh fix-forward window."""
        eng = engine()
        decisions = feed(eng, [sample(t, "feature_up.checkout", 0) for t in range(10, 1000, 30)])
        rolled = [d for d in decisions if d.execute_rollback]
        assert len(rolled) == 1
        done = rolled[0].at
        eng.apply(RollbackResultEvent("web", done, RollbackOutcome.SUCCEEDED, "dpl_1"))
        after = feed(eng, [sample(t, "feature_up.checkout", 0) for t in range(1000, 2000, 30)])
        assert not any(d.execute_rollback for d in after)
        assert all("fix_forward:window_open" not in d.path for d in after)
        assert after[-1].refused_by == "already_rolled_back"
        assert (after[-1].action, after[-1].severity) == (Action.PAGE, Severity.P0)


class TestDeployCorrelationOnOnset:
    def test_one_good_sample_at_go_live_does_not_acquit(self) -> None:
        """The old deployment was down; one good sample at go-live; down again → predates."""
        eng = engine(deploy_at=None)
        eng.apply(DeployEvent("web", from_seconds(-86400), "dpl_1"))  # too old to roll back
        feed(eng, [down(t) for t in range(10, 100, 10)])  # fired under dpl_1
        eng.apply(DeployEvent("web", from_seconds(100), "dpl_2"))
        d = feed(eng, [up(100), down(110), down(120), down(130)])[-1]
        assert d.refused_by == "predates_deploy"
        assert d.action is Action.PAGE

    def test_control_condition_new_after_go_live(self) -> None:
        """Control: healthy before go-live, down after it → the new deployment is blamed."""
        eng = engine(deploy_at=None)
        eng.apply(DeployEvent("web", from_seconds(-86400), "dpl_1"))
        feed(eng, [up(t) for t in range(10, 100, 10)])
        eng.apply(DeployEvent("web", from_seconds(100), "dpl_2"))
        d = feed(eng, [up(100), down(110), down(120), down(130)])[-1]
        assert d.execute_rollback
        assert d.deployment == "dpl_2"

    def test_a_condition_that_returns_long_after_go_live_is_the_new_ones(self) -> None:
        """An old outage that ended before go-live does not acquit a failure much later."""
        eng = engine(deploy_at=None)
        eng.apply(DeployEvent("web", from_seconds(0), "dpl_1"))
        feed(eng, [down(t) for t in range(10, 100, 10)] + [up(t) for t in range(100, 400, 10)])
        eng.apply(DeployEvent("web", from_seconds(95), "dpl_2"))
        d = feed(eng, [down(t) for t in range(1000, 1030, 10)])[-1]
        assert d.refused_by != "predates_deploy"


class TestNewChapter:
    def _rolled_back_and_resolving(self):  # type: ignore[no-untyped-def]
        eng = engine(deploy_at=0)
        feed(eng, [down(10), down(20), down(30)])
        eng.apply(RollbackResultEvent("web", from_seconds(32), RollbackOutcome.SUCCEEDED, "dpl_1"))
        eng.apply(RollbackResultEvent("web", from_seconds(40), RollbackOutcome.VERIFIED, "dpl_1"))
        feed(eng, [up(t) for t in range(40, 200, 10)])  # resolving, not yet resolved
        return eng

    def test_second_bad_deployment_is_judged_on_its_own(self) -> None:
        """A new deployment going live while the earlier incident resolves is its own
        chapter: its failure is not refused as 'rollback did not help'."""
        eng = self._rolled_back_and_resolving()
        eng.apply(DeployEvent("web", from_seconds(3000), "dpl_3"))
        d = feed(eng, [down(3010), down(3020), down(3030)])[-1]
        assert d.refused_by != "already_rolled_back"
        assert d.deployment == "dpl_3"

    def test_cooldown_still_applies_to_the_new_chapter(self) -> None:
        """Its own deploy correlation passes, but the cooldown since the first rollback holds."""
        eng = self._rolled_back_and_resolving()
        eng.apply(DeployEvent("web", from_seconds(200), "dpl_3"))
        d = feed(eng, [down(210), down(220), down(230)])[-1]
        assert d.refused_by == "cooldown"

    def test_control_same_deployment_is_refused(self) -> None:
        """Control: without a new deployment the same failure is 'rollback did not help'."""
        eng = self._rolled_back_and_resolving()
        d = feed(eng, [down(210), down(220), down(230)])[-1]
        assert d.refused_by == "already_rolled_back"


class TestEveryInputCountsOnce:
    def test_duplicate_sample_is_one_observation(self) -> None:
        """The same (target, signal, time) twice is one sample, not two consecutive ones."""
        eng = engine()
        twice = feed(eng, [down(10), down(10), down(20), down(20)])
        assert all(d.action is Action.MONITOR for d in twice)
        fired = feed(eng, [down(30)])[-1]
        assert fired.execute_rollback  # the third distinct sample fires system-down

    def test_repeated_deploy_event_keeps_the_go_live_time(self) -> None:
        """A deployment learnt twice keeps its first go-live: its errors stay its own."""
        eng = engine(deploy_at=0)
        feed(eng, [down(10), down(20)])
        eng.apply(DeployEvent("web", from_seconds(25), "dpl_2"))  # the same one, again
        d = feed(eng, [down(30)])[-1]
        assert d.execute_rollback

    def test_rate_pairs_with_request_count_of_the_same_poll(self) -> None:
        """A rate without its own count pairs with a request_count a second away."""
        eng = engine()
        items = []
        for t in (10, 20):
            items += [
                sample(t, "error_rate", 0.2, requests=None),
                sample(t + 0.7, "request_count", 4000),
            ]
        rolled = [d for d in feed(eng, items) if d.execute_rollback]
        assert len(rolled) == 1
        assert "4,000 requests" in rolled[0].reason

    def test_count_arriving_first_also_pairs(self) -> None:
        eng = engine()
        items = []
        for t in (10, 20):
            items += [
                sample(t, "request_count", 4000),
                sample(t + 0.5, "error_rate", 0.2, requests=None),
            ]
        assert feed(eng, items)[-1].execute_rollback

    def test_no_request_count_is_unknown_and_pages_blind(self) -> None:
        """A rate whose count never comes cannot be judged: unknown with its own reason, and
        'blind' after blind_after, never silent forever, never a rollback."""
        eng = engine()
        decisions = feed(
            eng, [sample(t, "error_rate", 0.2, requests=None) for t in range(10, 400, 10)]
        )
        assert all(d.action is not Action.ROLLBACK for d in decisions)
        obs = {o.rule: o for o in eng.observations("web")}
        assert obs["error-rate-critical"].unknown is UnknownReason.NO_REQUEST_COUNT
        assert decisions[-1].rule == "watchdog-blind"
        assert "no request count" in decisions[-1].reason
        assert all(d.rule != "watchdog-blind" for d in decisions[:28])  # not before 5 min


class TestSampleSize:
    def test_three_of_four_failing_never_rolls_back(self) -> None:
        """A quiet night: 75% of 4 requests is too few to judge."""
        eng = engine()
        decisions = feed(
            eng, [sample(t, "error_rate", 0.75, requests=4) for t in range(10, 200, 10)]
        )
        assert all(d.action is Action.MONITOR for d in decisions)
        obs = {o.rule: o for o in eng.observations("web")}
        assert obs["error-rate-critical"].unknown is UnknownReason.TOO_FEW_REQUESTS

    def test_wilson_bound_with_enough_requests(self) -> None:
        """8% of 2,000 requests rolls back, and the reason shows the rate and its bound."""
        d = feed(engine(), [sample(t, "error_rate", 0.08, requests=2000) for t in (10, 20)])[-1]
        assert d.execute_rollback
        assert "error_rate = 8.0% (Wilson lower bound 6.9%, 2,000 requests) > 5.0%" in d.reason

    def test_bound_just_under_threshold_does_not_fire(self) -> None:
        """6% of 200 requests: the lower bound (3.4%) is under 5%: no rollback."""
        d = feed(engine(), [sample(t, "error_rate", 0.06, requests=200) for t in (10, 20)])[-1]
        assert d.action is Action.MONITOR


class TestBlindStreak:
    def test_streak_through_a_network_unknown_pages_blind(self) -> None:
        """Down, down, canary failed too, down: blind page, never a rollback."""
        eng = engine()
        net = sample(25, "health_up", None, unknown=NET)
        decisions = feed(eng, [down(10), down(20), net, down(30)])
        assert all(d.action is not Action.ROLLBACK for d in decisions)
        assert decisions[-1].rule == "watchdog-blind"
        assert decisions[-1].action is Action.PAGE
        assert "reachability canary" in decisions[-1].reason

    def test_control_without_the_network_unknown_rolls_back(self) -> None:
        decisions = feed(engine(), [down(10), down(20), sample(25, "health_up", None), down(30)])
        assert decisions[-1].execute_rollback

    def test_a_whole_clean_sustain_after_the_network_returns_counts(self) -> None:
        """Three failures seen cleanly after the partition are a real outage."""
        eng = engine()
        net = sample(25, "health_up", None, unknown=NET)
        decisions = feed(eng, [down(10), down(20), net, down(30), down(40), down(50)])
        assert decisions[-1].execute_rollback


class TestNamesTheDeployment:
    def test_rollback_decision_names_the_blamed_deployment(self) -> None:
        d = feed(engine(), [down(10), down(20), down(30)])[-1]
        assert d.deployment == "dpl_2"
        assert "rolling back deployment dpl_2" in d.reason

    def test_refusal_names_it_too(self) -> None:
        d = feed(engine(deploy_at=0), series("health_up", [0.0] * 3, start=6 * 3600 + 1))[-1]
        assert d.refused_by == "deploy_too_old"
        assert "dpl_2" in d.reason


class TestWaitsForTheLiveDeployment:
    def test_new_version_before_its_deployment_is_known_waits(self) -> None:
        """The app serves a new version the engine has no deployment for: the rollback waits
        (a page that blames nobody), then goes ahead once the deployment is learnt."""
        eng = engine(deploy_at=None)
        eng.apply(DeployEvent("web", from_seconds(-86400), "dpl_good", versions=("aaa1111",)))
        feed(eng, [sample(5, "version", "aaa1111")])
        waiting = feed(eng, [sample(9, "version", "bbb2222"), down(10), down(20), down(30)])[-1]
        assert waiting.action is Action.PAGE
        assert waiting.refused_by is None
        assert "waiting for the live deployment" in waiting.reason
        assert "24h" not in waiting.reason  # does not blame the day-old deployment
        assert waiting.deployment is None  # blames nobody while it waits
        learnt = DeployEvent(
            "web", from_seconds(31), "dpl_bad", live_since=from_seconds(8), versions=("bbb2222",)
        )
        go = eng.apply(learnt)[-1]
        assert go.execute_rollback
        assert go.deployment == "dpl_bad"

    def test_control_known_version_is_judged_at_once(self) -> None:
        """Control: the version the deployment carries → the old deployment is too old."""
        eng = engine(deploy_at=None)
        eng.apply(DeployEvent("web", from_seconds(-86400), "dpl_good", versions=("aaa1111",)))
        d = feed(eng, [sample(5, "version", "aaa1111"), down(10), down(20), down(30)])[-1]
        assert d.refused_by == "deploy_too_old"

    def test_waits_only_so_long(self) -> None:
        """A look-up that never comes ends in a refusal after deploy_wait."""
        eng = engine(deploy_at=None)
        eng.apply(DeployEvent("web", from_seconds(-86400), "dpl_good", versions=("aaa1111",)))
        feed(eng, [sample(5, "version", "aaa1111"), sample(9, "version", "bbb2222")])
        d = feed(eng, [down(t) for t in range(10, 200, 10)])[-1]
        assert d.refused_by == "deploy_unknown"


class TestRestartAndAbandon:
    def test_restored_incident_restates_its_standing_level(self) -> None:
        """After a restart the open incident's recorded standing (rollback, P0) is restated
        while it resolves, not a calmer 'monitor' (the status page and pager agree)."""
        from watchdog.core.model import EngineSnapshot, RestoredIncident

        eng = engine()
        snapshot = EngineSnapshot(
            targets=("web",),
            automatic_rollbacks=(),
            incidents=(
                RestoredIncident(
                    target="web",
                    id="web-1",
                    opened_at=from_seconds(5),
                    severity=Severity.P0,
                    rule="system-down",
                    first_detected=from_seconds(5),
                    deployment="dpl_2",
                    rollback="verified",
                    rollback_at=from_seconds(6),
                    rollback_done_at=from_seconds(7),
                    rollback_to="dpl_1",
                    standing="rollback",
                ),
            ),
            holds=(),
            kill_switch=None,
        )
        eng.restore_snapshot(snapshot)
        d = feed(eng, [up(20)])[-1]
        assert (d.action, d.severity) == (Action.ROLLBACK, Severity.P0)
        assert "dpl_2 -> dpl_1" in d.reason

    def test_abandoned_rollback_may_be_decided_again_and_costs_no_budget(self) -> None:
        """A rollback that provably never reached Vercel is as if never committed."""
        eng = engine()
        first = feed(eng, [down(10), down(20), down(30)])[-1]
        assert first.execute_rollback
        decided = eng.apply(
            RollbackResultEvent("web", from_seconds(35), RollbackOutcome.ABANDONED)
        )[-1]
        # the condition still holds: committed again at once, and the first one was refunded
        assert decided.execute_rollback
        assert eng.targets["web"].auto_rollbacks == [from_seconds(35)]
