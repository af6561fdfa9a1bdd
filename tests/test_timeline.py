"""An incident's timeline and the history's "what was done", from plain records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watchdog.store.base import (
    ActionRecord,
    ActionStatus,
    DecisionRecord,
    HumanEvent,
    IncidentRecord,
    RollbackRecord,
    RollbackState,
)
from watchdog.timeline import duration, incident_timeline, what_was_done

T0 = datetime(2026, 8, 20, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


INCIDENT = IncidentRecord(
    id="inc-1",
    target="web",
    opened_at=at(30),
    severity="P0",
    rule="system-down",
    reason="health_up == 0 for 3 polls",
    dedup_key="watchdog/web/inc-1",
    deployment="dpl_bad",
    first_detected_at=at(10),
    resolved_at=at(600),
)
DECISION = DecisionRecord(
    "web", at(30), "rollback", "P0", "system-down", "system down", ("p0", "rollback"), "inc-1"
)
ACTIONS = [
    ActionRecord(
        "inc-1/page/rollback/P0", "page", "web", at(31), ActionStatus.SUCCEEDED, "inc-1",
        {"summary": "[P0] web: rolling back"},
    ),
    ActionRecord(
        "inc-1/slack/rollback-in-progress", "chat", "web", at(33), ActionStatus.FAILED, "inc-1",
        error="Slack answered 500",
    ),
    ActionRecord("inc-1/change/dpl_good", "change", "web", at(33), ActionStatus.SUCCEEDED, "inc-1"),
    ActionRecord("other/page/x", "page", "web", at(40), ActionStatus.SUCCEEDED, "other"),
]  # fmt: skip
ROLLBACK = RollbackRecord(
    "inc-1/rollback/1", "inc-1", "web", "prj_1", at(32), RollbackState.VERIFIED,
    "dpl_bad", "dpl_good", finished_at=at(40), verified_at=at(50),
)  # fmt: skip
EVENTS = [
    HumanEvent("deploy", "web", at(-600), "vercel", data={"deployment": "dpl_bad"}),
    HumanEvent("hold", "web", at(60), "ana", "deploying a fix", until=at(60 + 1800)),
    HumanEvent("kill_switch", "*", at(70), "bo", "review", data={"on": True}),
    HumanEvent("hold", "api", at(80), "cy", "another target"),
    HumanEvent("ack", "web", at(900), "late", data={"decision": "fix_forward"}),
]


class TestTimeline:
    def test_every_step_in_order_from_the_go_live_to_the_resolve(self) -> None:
        """Go-live, detection, opening, the decision with its path, the page, Slack, the
        rollback through Vercel to verification, humans, the resolve: in time order."""
        entries = incident_timeline(INCIDENT, [DECISION], ACTIONS, [ROLLBACK], EVENTS)
        texts = [e.text for e in entries]
        assert texts == [
            "deployment dpl_bad went live on production",
            "rule system-down crossed its threshold",
            "incident inc-1 opened by the watchdog (P0): health_up == 0 for 3 polls",
            "decided rollback P0: system down",
            "paged on-call: [P0] web: rolling back",
            "rollback requested (automatic): dpl_bad → dpl_good",
            'Slack: "rollback in progress": Slack answered 500',
            "rollback marked on the pager's timeline",
            "Vercel's job finished: production serves dpl_good",
            "verified: health, version and error rate as expected",
            "ana held automatic rollback for 30 min: deploying a fix",
            "bo turned the kill switch on: review",
            "incident resolved",
        ]
        assert entries == sorted(entries, key=lambda e: e.at)
        assert entries[3].path == ("p0", "rollback")
        outcomes = {e.text: e.outcome for e in entries}
        assert outcomes['Slack: "rollback in progress": Slack answered 500'] == "failed"

    def test_a_rollback_still_in_flight_says_what_it_waits_for(self) -> None:
        """INTENT waits for Vercel to accept; REQUESTED waits for the job; both pending."""
        for state, words in [
            (RollbackState.INTENT, "waiting for Vercel to accept the request"),
            (RollbackState.REQUESTED, "Vercel accepted it: the rollback job is running"),
        ]:
            rb = RollbackRecord("r", "inc-1", "web", "prj_1", at(32), state, "dpl_bad", "dpl_good")
            last = incident_timeline(INCIDENT, [], [], [rb], [])[-2]
            assert (last.text, last.outcome) == (words, "pending")

    def test_a_failed_verification_and_a_refusal_before_any_record(self) -> None:
        rb = RollbackRecord(
            "r", "inc-1", "web", "prj_1", at(32), RollbackState.VERIFY_FAILED, "dpl_bad",
            "dpl_good", finished_at=at(40), detail="version still dpl_bad",
        )  # fmt: skip
        refused = ActionRecord(
            "inc-1/rollback/2", "rollback", "web", at(35), ActionStatus.FAILED, "inc-1",
            error="no candidate",
        )  # fmt: skip
        texts = [e.text for e in incident_timeline(INCIDENT, [], [refused], [rb], [])]
        assert "verification failed: version still dpl_bad" in texts
        assert "rollback not started: no candidate" in texts


class TestWhatWasDone:
    def test_rolled_back_and_verified(self) -> None:
        assert what_was_done(INCIDENT, [DECISION], ACTIONS, [ROLLBACK]) == (
            "rolled back dpl_bad → dpl_good, verified"
        )

    def test_paged_with_the_guard_rail_that_refused(self) -> None:
        refused = DecisionRecord(
            "web", at(30), "page", "P0", "system-down", "x", (), "inc-1",
            {"refused_by": "cooldown"},
        )  # fmt: skip
        done = what_was_done(INCIDENT, [refused], ACTIONS[:1], [])
        assert done == "automatic rollback refused by cooldown; paged on-call"

    def test_nothing_recorded_and_duration(self) -> None:
        assert what_was_done(INCIDENT, [], [], []) == "no action recorded"
        assert duration(INCIDENT, at(10_000)) == "9 min 50 s"
        still_open = IncidentRecord("i", "web", at(0), "P1", None, "", "k")
        assert duration(still_open, at(120)) == "2 min so far"
