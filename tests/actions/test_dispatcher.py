"""The dispatcher against real fakes: write-ahead, idempotency, one in flight, faults, restart."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import aiohttp
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from structlog.testing import capture_logs

from tests.actions.conftest import ROUTING_KEY, TOKEN, rollback_decision, run
from watchdog.core.model import (
    Action,
    Decision,
    DeployEvent,
    RollbackOutcome,
    Severity,
)
from watchdog.metrics import Metrics
from watchdog.store.base import (
    ActionStatus,
    IncidentRecord,
    OutboxStatus,
    RollbackRecord,
    RollbackState,
)
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock
from watchdog.testing.server import RecordedRequest


class TestRollback:
    async def test_full_rollback(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A rollback goes INTENT → REQUESTED → SUCCEEDED → VERIFIED and tells everyone."""
        rig = make_rig(error_rate=[0.072, 0.004])
        await run(rig, rollback_decision(clock))
        posts = rig.vercel.requests_for("rollback")
        assert [p.path for p in posts] == ["/v1/projects/prj_1/rollback/dpl_b"]
        rb = rig.store.rollbacks["inc-1/rollback"]
        assert rb.state is RollbackState.VERIFIED
        assert (rb.from_deployment, rb.to_deployment) == ("dpl_c", "dpl_b")
        assert rig.outcomes() == [RollbackOutcome.SUCCEEDED, RollbackOutcome.VERIFIED]
        deploys = [e for e in rig.events if isinstance(e, DeployEvent)]
        assert deploys == [DeployEvent("web", deploys[0].at, "dpl_b", rollback=True)]
        assert await rig.store.known_bad("prj_1") == frozenset({"dpl_c"})
        assert rig.store.actions["inc-1/rollback"].status is ActionStatus.SUCCEEDED
        # pager: the rollback page, then a change event marking it
        assert rig.pd.events[0]["payload"]["severity"] == "error"
        assert rig.pd.events[0]["dedup_key"] == "watchdog/web/inc-1"
        assert "dpl_b" in rig.pd.changes[0]["payload"]["summary"]
        # chat: in progress, then complete with the auto-assignment note
        assert rig.slack.messages[0].startswith("🚨 PRODUCTION ROLLBACK IN PROGRESS")
        complete = rig.slack.messages[-1]
        assert complete.startswith("✅ ROLLBACK COMPLETE")
        assert "stopped auto-assigning new deployments to production" in complete
        assert "Undo Rollback" in complete

    async def test_write_ahead(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """The rollback's intent is in the store before Vercel receives the rollback call."""
        rig = make_rig()
        seen: list[tuple[str | None, str | None]] = []

        def check(req: RecordedRequest) -> None:
            if req.route == "rollback":
                rb = rig.store.rollbacks.get("inc-1/rollback")
                act = rig.store.actions.get("inc-1/rollback")
                seen.append((rb and str(rb.state), act and str(act.status)))

        rig.vercel.on_request(check)
        await run(rig, rollback_decision(clock))
        assert seen == [("intent", "intent")]

    async def test_same_decision_twice(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """The same decision delivered twice (even concurrently) rolls back once."""
        rig = make_rig()
        decision = rollback_decision(clock)
        await rig.dispatcher.execute(decision)
        await rig.dispatcher.execute(decision)
        await rig.dispatcher.drain()
        await run(rig, decision)
        assert len(rig.vercel.requests_for("rollback")) == 1
        assert not any("refused" in e["payload"]["summary"] for e in rig.pd.events)

    async def test_one_in_flight(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A second incident's rollback while one is in flight is refused with a P0 page."""
        rig = make_rig()
        await rig.dispatcher.execute(rollback_decision(clock, "inc-1"))
        await rig.dispatcher.execute(rollback_decision(clock, "inc-2"))
        await rig.dispatcher.drain()
        assert len(rig.vercel.requests_for("rollback")) == 1
        refused = [e for e in rig.pd.events if "refused by in_flight" in e["payload"]["summary"]]
        assert refused
        assert refused[0]["payload"]["severity"] == "critical"
        assert refused[0]["payload"]["custom_details"]["refused_by"] == "in_flight"

    async def test_unsettled_record_blocks(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """An unsettled rollback record in the store (another replica, a crash) blocks a new one."""
        store = MemoryStore()
        await store.save_rollback(
            RollbackRecord(
                "inc-0/rollback",
                "inc-0",
                "web",
                "prj_1",
                clock.now(),
                RollbackState.REQUESTED,
                "dpl_c",
                "dpl_a",
            )
        )
        rig = make_rig(store=store)
        await run(rig, rollback_decision(clock))
        assert rig.vercel.requests_for("rollback") == []

    async def test_shadow(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """Shadow mode records a SKIPPED "would roll back to X" and calls no rollback API."""
        rig = make_rig(shadow=True)
        await run(rig, rollback_decision(clock))
        assert rig.vercel.requests_for("rollback") == []
        act = rig.store.actions["inc-1/rollback"]
        assert act.status is ActionStatus.SKIPPED
        assert act.detail["would"] == "would roll back to dpl_b"
        assert rig.store.rollbacks["inc-1/rollback"].state is RollbackState.SHADOW
        assert await rig.store.known_bad("prj_1") == frozenset()
        assert any("SHADOW MODE: would roll back to dpl_b" in m for m in rig.slack.messages)

    async def test_no_execute_flag(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A rollback decision without execute_rollback (already in flight) never calls Vercel."""
        rig = make_rig()
        await run(rig, rollback_decision(clock, execute_rollback=False))
        assert rig.vercel.requests_for("rollback") == []

    async def test_no_target(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """No eligible target: nothing is rolled back and a P0 page says so."""
        rig = make_rig()
        for dep in ("dpl_a", "dpl_b"):
            await rig.store.mark_known_bad("prj_1", dep, clock.now())
        await run(rig, rollback_decision(clock))
        assert rig.vercel.requests_for("rollback") == []
        assert rig.outcomes() == [RollbackOutcome.FAILED]
        page = rig.pd.events[-1]["payload"]
        assert page["severity"] == "critical"
        assert "refused by no_target" in page["summary"]

    async def test_500_retried(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A 500 on the rollback call is retried and the rollback completes."""
        rig = make_rig()
        rig.vercel.fail("rollback", 500, '{"error":{"code":"internal_server_error","message":"x"}}')
        await run(rig, rollback_decision(clock))
        assert len(rig.vercel.requests_for("rollback")) == 2
        assert rig.outcomes()[0] is RollbackOutcome.SUCCEEDED

    async def test_409_then_success(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A 409 (another job running) is waited out, then the rollback goes through."""
        rig = make_rig()
        rig.vercel.fail("rollback", 409, '{"error":{"code":"conflict","message":"busy"}}')
        await run(rig, rollback_decision(clock))
        assert len(rig.vercel.requests_for("rollback")) == 2
        assert 5.0 in clock.slept
        assert rig.outcomes()[0] is RollbackOutcome.SUCCEEDED

    async def test_target_gone_chooses_again(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A 404 for the chosen target makes the dispatcher choose again once."""
        rig = make_rig()
        rig.vercel.fail("rollback", 404, '{"error":{"code":"not_found","message":"gone"}}')
        await run(rig, rollback_decision(clock))
        paths = [r.path for r in rig.vercel.requests_for("rollback")]
        assert paths == ["/v1/projects/prj_1/rollback/dpl_b", "/v1/projects/prj_1/rollback/dpl_a"]
        assert rig.store.rollbacks["inc-1/rollback"].to_deployment == "dpl_a"

    async def test_job_failed(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A job that ends failed is recorded FAILED and pages P0 "rollback did not take"."""
        rig = make_rig()
        rig.vercel.job_outcome = "failed"
        await run(rig, rollback_decision(clock))
        assert rig.store.rollbacks["inc-1/rollback"].state is RollbackState.FAILED
        assert rig.store.actions["inc-1/rollback"].status is ActionStatus.FAILED
        assert rig.outcomes() == [RollbackOutcome.FAILED]
        assert "rollback did not take" in rig.pd.events[-1]["payload"]["summary"]
        assert rig.pd.events[-1]["payload"]["severity"] == "critical"

    async def test_alias_still_bad(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A "succeeded" job with production still on the bad deployment is a failure."""
        rig = make_rig()
        rig.vercel.alias_sticks = True
        await run(rig, rollback_decision(clock))
        rb = rig.store.rollbacks["inc-1/rollback"]
        assert rb.state is RollbackState.FAILED
        assert "still serves dpl_c" in rb.detail
        assert [e for e in rig.events if isinstance(e, DeployEvent)] == []

    async def test_verify_failed(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """An error rate that does not fall fails verification with a P0 page naming the check."""
        rig = make_rig(error_rate=[0.08], verify_timeout=30)
        await run(rig, rollback_decision(clock))
        assert rig.store.rollbacks["inc-1/rollback"].state is RollbackState.VERIFY_FAILED
        assert rig.outcomes() == [RollbackOutcome.SUCCEEDED, RollbackOutcome.VERIFY_FAILED]
        summary = rig.pd.events[-1]["payload"]["summary"]
        assert "rollback did not take (failed: error_rate)" in summary

    async def test_token_rejected(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A rejected token is not retried, pages P0 with a clear message, and never leaks."""
        rig = make_rig(token=SecretStr("vercel-canary-WRONG-555"))
        with capture_logs() as logs:
            await run(rig, rollback_decision(clock))
        assert len(rig.vercel.requests) == 1
        assert rig.vercel.requests_for("rollback") == []
        summary = rig.pd.events[-1]["payload"]["summary"]
        assert "token rejected" in summary
        everything = json.dumps(
            [
                logs,
                rig.pd.events,
                rig.slack.messages,
                [asdict(a) for a in rig.store.actions.values()],
                [asdict(r) for r in rig.store.rollbacks.values()],
            ],
            default=str,
        )
        assert "vercel-canary-WRONG-555" not in everything
        assert TOKEN not in everything

    async def test_slack_failing_does_not_block(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """Slack answering 500 (or hanging) neither blocks nor fails the rollback or the page."""
        rig = make_rig()
        rig.slack.fail("webhook", 200, "ok", delay=2.0, times=1)
        rig.slack.fail_text(500, "rollup_error", times=100)
        await run(rig, rollback_decision(clock))
        assert len(rig.vercel.requests_for("rollback")) == 1
        assert rig.outcomes()[0] is RollbackOutcome.SUCCEEDED
        assert rig.pd.events
        # the hung message got through late; the refused ones wait in the outbox, in order
        assert len(rig.slack.messages) <= 1
        chat = [m for m in rig.store.outbox.values() if m.kind == "chat"]
        assert chat
        assert any(
            m.status is OutboxStatus.PENDING and "rollup_error" in (m.error or "") for m in chat
        )

    async def test_fenced(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """When can_act() says no (not the leader), nothing is sent and nothing journaled."""

        async def no() -> bool:
            return False

        rig = make_rig(can_act=no)
        await run(rig, rollback_decision(clock))
        assert rig.vercel.requests_for("rollback") == []
        assert rig.pd.requests == []
        assert rig.store.actions == {}


class TestMetrics:
    async def test_rollback_pages_and_chat_are_counted(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A verified rollback counts succeeded and verified, its page and its chat messages."""
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        rig = make_rig(error_rate=[0.072, 0.004], metrics=metrics)
        await run(rig, rollback_decision(clock))

        def value(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, labels)

        assert value("watchdog_rollbacks_total", target="web", result="succeeded") == 1
        assert value("watchdog_rollbacks_total", target="web", result="verified") == 1
        assert value("watchdog_rollbacks_total", target="web", result="failed") is None
        assert value("watchdog_pages_total", target="web", result="sent") == 1
        assert value("watchdog_notifications_total", result="sent") == len(rig.slack.messages)
        assert value("watchdog_rollback_duration_seconds_count") == 1
        assert value("watchdog_verification_duration_seconds_count") == 1

    async def test_refused_and_failed_are_counted(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A failed rollback job counts 'failed', never 'succeeded'."""
        registry = CollectorRegistry()
        rig = make_rig(metrics=Metrics(registry))
        rig.vercel.job_outcome = "failed"
        await run(rig, rollback_decision(clock))
        assert (
            registry.get_sample_value(
                "watchdog_rollbacks_total", {"target": "web", "result": "failed"}
            )
            == 1
        )
        assert (
            registry.get_sample_value(
                "watchdog_rollbacks_total", {"target": "web", "result": "succeeded"}
            )
            is None
        )


class TestPaging:
    async def test_page_429_then_202(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A page hitting PagerDuty's 429 is retried and delivered."""
        rig = make_rig()
        rig.pd.fail("enqueue", 429, '{"status":"throttled"}')
        await run(rig, rollback_decision(clock, action=Action.PAGE, execute_rollback=False))
        assert len(rig.pd.requests_for("enqueue")) == 2
        assert len(rig.pd.events) == 1
        page_actions = [a for a in rig.store.actions.values() if a.kind == "page"]
        assert [a.status for a in page_actions] == [ActionStatus.SUCCEEDED]

    async def test_page_400_not_retried(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A 400 from PagerDuty is recorded FAILED after one attempt."""
        rig = make_rig()
        rig.pd.fail("enqueue", 400, '{"status":"invalid event","errors":["bad"]}')
        await run(rig, rollback_decision(clock, action=Action.PAGE, execute_rollback=False))
        assert len(rig.pd.requests_for("enqueue")) == 1
        act = next(a for a in rig.store.actions.values() if a.kind == "page")
        assert act.status is ActionStatus.FAILED
        assert "fix the configuration" in (act.error or "")

    async def test_pages_on_change_only(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """Repeated identical decisions page once; a severity change pages again."""
        rig = make_rig()
        page = rollback_decision(
            clock, action=Action.PAGE, severity=Severity.INVESTIGATE, execute_rollback=False
        )
        await run(rig, page)
        await run(rig, page)
        assert len(rig.pd.events) == 1
        await run(rig, replace(page, severity=Severity.P1))
        assert [e["payload"]["severity"] for e in rig.pd.events] == ["warning", "error"]

    async def test_pages_only_on_news(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """One incident through its life: a new incident, an escalation and each new guard
        rail page; restatements (same level, calmer level, another rule or reason, a guard
        rail already reported, a failed rollback the runner reported) page no one."""
        rig = make_rig()
        base = rollback_decision(
            clock, action=Action.PAGE, severity=Severity.P1, execute_rollback=False
        )
        steps = [
            (base, True),  # new incident
            (replace(base, reason="reworded: error rate 7.4%"), False),
            (replace(base, rule="latency-critical"), False),
            (replace(base, action=Action.ROLLBACK), True),  # same severity, now rolling back
            (replace(base, action=Action.ROLLBACK, severity=Severity.P0), True),  # escalated
            (replace(base, action=Action.ROLLBACK, severity=Severity.P1), False),  # calmer
            (replace(base, severity=Severity.INVESTIGATE), False),
            (replace(base, severity=Severity.P0, refused_by="cooldown"), True),
            (replace(base, severity=Severity.P0, refused_by="cooldown", reason="again"), False),
            (replace(base, severity=Severity.P0, refused_by="budget"), True),
            (replace(base, severity=Severity.P0, refused_by="rollback_failed"), False),
        ]
        sent = 0
        for decision, pages in steps:
            await run(rig, decision)
            triggers = [e for e in rig.pd.events if e["event_action"] == "trigger"]
            assert len(triggers) == sent + pages, (decision, pages)
            sent = len(triggers)
        assert {e["dedup_key"] for e in rig.pd.events} == {"watchdog/web/inc-1"}

    async def test_a_restart_does_not_repage_a_restated_incident(
        self, make_rig, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """A new dispatcher on the same store, told the open incident, does not page its
        standing level again, nor a calmer one; a real escalation still pages."""
        rig = make_rig()
        p0 = rollback_decision(
            clock, action=Action.PAGE, severity=Severity.P0, execute_rollback=False
        )
        await run(rig, p0)
        again = make_rig(store=rig.store)
        again.dispatcher.restored(
            [
                IncidentRecord(
                    "inc-1", "web", clock.now(), "P0", "system-down", "down", "watchdog/web/inc-1"
                )
            ]
        )
        await run(again, p0)
        await run(again, replace(p0, severity=Severity.P1))
        assert len(rig.pd.events) == 1
        await run(again, replace(p0, severity=Severity.P0, refused_by="hold"))
        assert len(rig.pd.events) == 2

    async def test_refused_page_names_guard_rail(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A rollback the engine refused pages P0 naming the guard rail and its reason."""
        rig = make_rig()
        decision = rollback_decision(
            clock,
            action=Action.PAGE,
            severity=Severity.P0,
            execute_rollback=False,
            refused_by="cooldown",
            reason="last automatic rollback 12 min ago (cooldown 30m)",
        )
        await run(rig, decision)
        payload = rig.pd.events[0]["payload"]
        assert payload["summary"] == (
            "[P0] web: automatic rollback refused by cooldown: "
            "last automatic rollback 12 min ago (cooldown 30m)"
        )
        assert payload["custom_details"]["refused_by"] == "cooldown"
        assert "refused by cooldown" in rig.slack.messages[0]

    async def test_resolve(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A resolved incident resolves the page (same dedup key) and posts the resolved message."""
        rig = make_rig()
        await run(rig, rollback_decision(clock, action=Action.PAGE, execute_rollback=False))
        clock.advance(600)
        done = Decision(
            "web",
            clock.now(),
            Action.MONITOR,
            None,
            None,
            "all clear",
            ("clear",),
            resolved_incident="inc-1",
        )
        await run(rig, done)
        assert rig.pd.events[-1] == {
            "routing_key": ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": "watchdog/web/inc-1",
        }
        assert rig.pd.open_alerts == {}
        assert rig.slack.messages[-1].startswith("✅ INCIDENT RESOLVED")
        assert "Duration: 10m 00s" in rig.slack.messages[-1]

    async def test_updates_every_5_minutes(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """While an incident is open the procedure's update goes out every 5 minutes."""
        rig = make_rig()
        await run(rig, rollback_decision(clock, action=Action.PAGE, execute_rollback=False))
        clock.advance(299)
        await rig.dispatcher.post_updates()
        await rig.dispatcher.drain()
        assert not any(m.startswith("⏱️ UPDATE") for m in rig.slack.messages)
        clock.advance(1)
        await rig.dispatcher.post_updates()
        await rig.dispatcher.drain()
        updates = [m for m in rig.slack.messages if m.startswith("⏱️ UPDATE")]
        assert len(updates) == 1
        assert updates[0].startswith("⏱️ UPDATE 10:05 UTC\n\nStatus: In Progress")


def intent_record(clock: FakeClock, key: str = "inc-1/rollback") -> RollbackRecord:
    """What a crash between the write-ahead and the POST leaves: an INTENT from dpl_c."""
    return RollbackRecord(
        key, "inc-1", "web", "prj_1", clock.now(), RollbackState.INTENT, "dpl_c", "dpl_b"
    )


class TestUpdatesAcrossRestart:
    async def test_a_restarted_dispatcher_keeps_posting_updates(
        self, make_rig, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """The five-minute update after a restart is sent, not taken for one the previous
        run sent already (updates are keyed by their minute, not a per-run counter)."""
        rig = make_rig()
        page = rollback_decision(clock, action=Action.PAGE, execute_rollback=False)
        await run(rig, page)
        clock.advance(300)
        await rig.dispatcher.post_updates()
        await rig.dispatcher.drain()
        again = make_rig(store=rig.store)
        await run(again, replace(page, at=clock.now()))
        clock.advance(300)
        await again.dispatcher.post_updates()
        await again.dispatcher.drain()
        updates = [m for m in rig.slack.messages if m.startswith("⏱️ UPDATE")]
        assert [u.split("\n", 1)[0] for u in updates] == [
            "⏱️ UPDATE 10:05 UTC",
            "⏱️ UPDATE 10:10 UTC",
        ]


class TestReconcile:
    async def test_intent_already_on_target(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """After a crash, an INTENT record whose target production already serves is SUCCEEDED
        without a second rollback call."""
        store = MemoryStore()
        await store.save_rollback(
            RollbackRecord(
                "inc-1/rollback",
                "inc-1",
                "web",
                "prj_1",
                clock.now(),
                RollbackState.INTENT,
                "dpl_c",
                "dpl_b",
            )
        )
        rig = make_rig(store=store)
        rig.vercel.set_serving("dpl_b")
        settled = await rig.dispatcher.reconcile()
        assert [r.state for r in settled] == [RollbackState.SUCCEEDED]
        assert store.rollbacks["inc-1/rollback"].state is RollbackState.SUCCEEDED
        assert rig.vercel.requests_for("rollback") == []
        assert rig.outcomes() == [RollbackOutcome.SUCCEEDED]
        assert any(isinstance(e, DeployEvent) and e.rollback for e in rig.events)

    async def test_intent_not_on_target(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """An INTENT record with production still on the old deployment and no job on Vercel
        is ABANDONED (provably never reached Vercel): not re-issued by reconcile itself, and
        not reported to the engine as failed, so a fresh decision may re-issue it once."""
        store = MemoryStore()
        await store.save_rollback(intent_record(clock))
        rig = make_rig(store=store)
        settled = await rig.dispatcher.reconcile()
        assert [r.state for r in settled] == [RollbackState.ABANDONED]
        assert "re-issued once" in settled[0].detail
        assert rig.vercel.requests_for("rollback") == []
        assert rig.outcomes() == []

    async def test_unreadable_vercel_postpones(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """When Vercel cannot say whether it has the job, nothing is proven: the record stays
        pending (and the daemon tries again), never guessed ABANDONED or FAILED."""
        store = MemoryStore()
        await store.save_rollback(intent_record(clock))
        rig = make_rig(store=store)
        rig.vercel.fail("project", 500, "{}", times=100)
        settled = await rig.dispatcher.reconcile()
        assert settled == []
        assert store.rollbacks["inc-1/rollback"].state is RollbackState.INTENT
        assert rig.dispatcher.unsettled == 1
        await rig.dispatcher.drain()  # on-call is told, once, that nobody can tell yet
        [page] = [e for e in rig.pd.events if e["event_action"] == "trigger"]
        assert page["payload"]["severity"] == "critical"
        assert "cannot reach Vercel" in page["payload"]["summary"]
        await rig.dispatcher.reconcile()
        await rig.dispatcher.drain()
        assert len(rig.pd.events) == 1

    async def test_abandoned_rollback_is_reissued_exactly_once(
        self, make_rig, clock: FakeClock
    ) -> None:  # type: ignore[no-untyped-def]
        """After reconcile proved the rollback never reached Vercel, the engine's next
        rollback decision for the chapter is carried out once, under the re-issue key; the
        same decision again does nothing."""
        store = MemoryStore()
        await store.save_rollback(intent_record(clock))
        rig = make_rig(store=store)
        await rig.dispatcher.reconcile()
        await run(rig, rollback_decision(clock))
        await run(rig, rollback_decision(clock))
        assert len(rig.vercel.requests_for("rollback")) == 1
        assert rig.vercel.alias == "dpl_b"
        assert store.rollbacks["inc-1/rollback#reissue"].state is RollbackState.VERIFIED
        assert store.rollbacks["inc-1/rollback"].state is RollbackState.ABANDONED

    async def test_abandoned_twice_fails_with_a_p0(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A re-issue that a second crash also stopped before Vercel is FAILED, never tried a
        third time, and on-call gets a P0 that says so (its own journal key: not deduplicated
        against the incident's earlier P0)."""
        store = MemoryStore()
        await store.save_rollback(intent_record(clock, "inc-1/rollback#reissue"))
        rig = make_rig(store=store)
        # the incident's earlier P0 page
        await run(rig, rollback_decision(clock, severity=Severity.P0, execute_rollback=False))
        settled = await rig.dispatcher.reconcile()
        await rig.dispatcher.drain()
        assert [r.state for r in settled] == [RollbackState.FAILED]
        assert rig.outcomes()[-1] is RollbackOutcome.FAILED
        summary = rig.pd.events[-1]["payload"]["summary"]
        assert summary.startswith("[P0] web: rollback did not take: the watchdog stopped twice")

    async def test_intent_accepted_by_vercel_is_followed(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A crash after Vercel accepted the POST (record still INTENT): the running job is
        followed to success, and nothing is sent again."""
        store = MemoryStore()
        await store.save_rollback(
            RollbackRecord(
                "inc-1/rollback",
                "inc-1",
                "web",
                "prj_1",
                clock.now(),
                RollbackState.INTENT,
                "dpl_c",
                "dpl_b",
            )
        )
        rig = make_rig(store=store)
        # the POST that the crashed daemon got through
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{rig.vercel.url}/v1/projects/prj_1/rollback/dpl_b",
                params={"teamId": "team_1"},
                headers={"Authorization": f"Bearer {rig.vercel.token}"},
                json={},
            ) as resp,
        ):
            assert resp.status == 201
        posts_before = len(rig.vercel.requests_for("rollback"))
        settled = await rig.dispatcher.reconcile()
        assert [r.state for r in settled] == [RollbackState.SUCCEEDED]
        assert len(rig.vercel.requests_for("rollback")) == posts_before
        assert rig.vercel.alias == "dpl_b"

    async def test_requested_followed(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A REQUESTED record whose job is still running is followed to its end."""
        store = MemoryStore()
        await store.save_rollback(
            RollbackRecord(
                "inc-1/rollback",
                "inc-1",
                "web",
                "prj_1",
                clock.now(),
                RollbackState.REQUESTED,
                "dpl_c",
                "dpl_b",
            )
        )
        rig = make_rig(store=store)
        rig.vercel.last_alias_request = {
            "type": "rollback",
            "fromDeploymentId": "dpl_c",
            "toDeploymentId": "dpl_b",
            "jobStatus": "pending",
            "requestedAt": 0,
        }
        settled = await rig.dispatcher.reconcile()
        assert [r.state for r in settled] == [RollbackState.SUCCEEDED]
        assert rig.vercel.requests_for("rollback") == []

    async def test_restart_does_not_repeat(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A new dispatcher on the same store does not repeat a finished rollback."""
        rig = make_rig()
        await run(rig, rollback_decision(clock))
        again = make_rig(store=rig.store)
        await run(again, rollback_decision(clock))
        assert len(rig.vercel.requests_for("rollback")) == 1


class TestUndoNote:
    async def test_deploy_event_comes_before_the_result(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """The engine hears that production moved before it hears the rollback succeeded."""
        rig = make_rig(error_rate=[0.072, 0.004])
        await run(rig, rollback_decision(clock))
        kinds = [
            "deploy" if isinstance(e, DeployEvent) else e.outcome.value
            for e in rig.events
            if isinstance(e, DeployEvent) or e.outcome is RollbackOutcome.SUCCEEDED
        ]
        assert kinds == ["deploy", "succeeded"]

    async def test_a_stale_decision_keeps_the_note(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A decision still naming the rolled-back-from deployment is not read as a promote."""
        rig = make_rig(error_rate=[0.072, 0.004])
        await run(rig, rollback_decision(clock))
        stale = rollback_decision(
            clock, action=Action.PAGE, execute_rollback=False, severity=Severity.P0
        )
        await rig.dispatcher.execute(stale)
        await rig.dispatcher.drain()
        assert "stopped auto-assigning" in " ".join(
            rig.pd.events[-1]["payload"]["custom_details"]["notes"]
        )

    async def test_a_promote_lifts_the_note(self, make_rig, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        """A third deployment in production means someone promoted: the note goes."""
        rig = make_rig(error_rate=[0.072, 0.004])
        await run(rig, rollback_decision(clock))
        promoted = rollback_decision(
            clock,
            action=Action.PAGE,
            execute_rollback=False,
            severity=Severity.P0,
            deployment="dpl_fix",
        )
        await rig.dispatcher.execute(promoted)
        await rig.dispatcher.drain()
        assert rig.pd.events[-1]["payload"]["custom_details"].get("notes", []) == []
