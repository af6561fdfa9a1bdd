"""The store contract (watchdog/store/base.py), run against every backend.

MemoryStore, SqliteStore and PostgresStore must be interchangeable: the layers above are
tested against memory and run against the durable ones.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.store.conftest import T0, StoreFactory
from watchdog.store.base import (
    ActionRecord,
    ActionStatus,
    DecisionRecord,
    DrillRecord,
    HumanEvent,
    IncidentRecord,
    OutboxMessage,
    OutboxStatus,
    RollbackRecord,
    RollbackState,
)

PLUS2 = timezone(timedelta(hours=2))
OLD = T0 - timedelta(days=10)
NEW = T0 + timedelta(hours=1)


def decision(target: str = "web", at: datetime = T0, **kw: Any) -> DecisionRecord:
    base: dict[str, Any] = {
        "target": target,
        "at": at,
        "action": "rollback",
        "severity": "P0",
        "rule": "system-down",
        "reason": "health_up == 0 for 3 polls",
        "path": ("p0-firing", "guard-rails-ok", "rollback"),
        "incident": None,
        "data": {"observations": [{"signal": "health_up", "value": 0, "since": "x"}], "n": 1.5},
    }
    base.update(kw)
    return DecisionRecord(**base)


def incident(id: str = "inc-1", **kw: Any) -> IncidentRecord:
    base: dict[str, Any] = {
        "id": id,
        "target": "web",
        "opened_at": T0,
        "severity": "P0",
        "rule": "system-down",
        "reason": "site down",
        "dedup_key": f"web/{id}",
        "deployment": "dpl_2",
        "resolved_at": None,
        "declared": False,
        "first_detected_at": T0 - timedelta(seconds=30),
    }
    base.update(kw)
    return IncidentRecord(**base)


def action(key: str = "inc-1/page/trigger", **kw: Any) -> ActionRecord:
    base: dict[str, Any] = {
        "key": key,
        "kind": "page",
        "target": "web",
        "created_at": T0,
        "incident": "inc-1",
        "detail": {"severity": "critical", "links": ["https://x"]},
    }
    base.update(kw)
    return ActionRecord(**base)


def rollback(id: str = "rb-1", **kw: Any) -> RollbackRecord:
    base: dict[str, Any] = {
        "id": id,
        "incident": "inc-1",
        "target": "web",
        "project": "prj_1",
        "requested_at": T0,
        "from_deployment": "dpl_2",
        "to_deployment": "dpl_1",
        "detail": "automatic: system-down",
    }
    base.update(kw)
    return RollbackRecord(**base)


def message(key: str = "inc-1/page/page/P0", **kw: Any) -> OutboxMessage:
    base: dict[str, Any] = {
        "key": key,
        "kind": "page",
        "target": "web",
        "created_at": T0,
        "payload": {"summary": "[P0] web: down", "path": ["p0"], "value": 0.5},
        "incident": "inc-1",
    }
    base.update(kw)
    return OutboxMessage(**base)


def event(kind: str = "hold", **kw: Any) -> HumanEvent:
    base: dict[str, Any] = {
        "kind": kind,
        "target": "web",
        "at": T0,
        "by": "alice",
        "reason": "investigating",
        "until": T0 + timedelta(hours=1),
        "data": {"source": "cli"},
    }
    base.update(kw)
    return HumanEvent(**base)


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.utcoffset() == timedelta(0)


class TestDecisionLog:
    async def test_round_trip_is_exact(self, store: Any) -> None:
        """A decision reads back equal, its datetime aware UTC to the microsecond."""
        record = decision(incident="inc-1")
        await store.append_decision(record)
        [back] = await store.list_decisions()
        assert back == record
        assert isinstance(back.path, tuple)
        assert_utc(back.at)

    async def test_other_zones_come_back_as_the_same_instant_in_utc(self, store: Any) -> None:
        """A datetime written with a +02:00 offset reads back as the same instant, in UTC."""
        at = datetime(2024, 5, 1, 14, 0, 0, 1, tzinfo=PLUS2)
        await store.append_decision(decision(at=at))
        [back] = await store.list_decisions()
        assert back.at == at
        assert back.at.astimezone(UTC) == datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC)

    async def test_filters_by_target_and_incident(self, store: Any) -> None:
        """Target and incident filters select only matching decisions."""
        await store.append_decision(decision("web", incident="inc-1"))
        await store.append_decision(decision("api", incident="inc-2"))
        await store.append_decision(decision("web", incident=None))
        assert [d.target for d in await store.list_decisions(target="api")] == ["api"]
        assert len(await store.list_decisions(target="web")) == 2
        assert [d.incident for d in await store.list_decisions(incident="inc-1")] == ["inc-1"]

    async def test_limit_keeps_the_newest_in_order(self, store: Any) -> None:
        """With a limit, the newest decisions are returned, oldest of them first."""
        for i in range(5):
            await store.append_decision(decision(at=T0 + timedelta(seconds=i), reason=str(i)))
        assert [d.reason for d in await store.list_decisions(limit=3)] == ["2", "3", "4"]


class TestIncidentStore:
    async def test_round_trip_every_field(self, store: Any) -> None:
        """An incident with every optional field set loads back equal."""
        record = incident(resolved_at=T0 + timedelta(minutes=9), declared=True, rule=None)
        await store.save_incident(record)
        back = await store.load_incident("inc-1")
        assert back == record
        assert_utc(back.opened_at)
        assert_utc(back.resolved_at)
        assert_utc(back.first_detected_at)

    async def test_missing_incident_is_none(self, store: Any) -> None:
        """Loading an unknown incident id returns None."""
        assert await store.load_incident("nope") is None

    async def test_save_again_updates_in_place(self, store: Any) -> None:
        """Saving an incident with a known id replaces it (resolving it)."""
        await store.save_incident(incident())
        await store.save_incident(incident().resolved(T0 + timedelta(minutes=5)))
        assert await store.list_incidents(open_only=True) == []
        [only] = await store.list_incidents()
        assert only.resolved_at == T0 + timedelta(minutes=5)

    async def test_list_filters_and_orders_newest_first(self, store: Any) -> None:
        """Listing is newest first, filtered by open state and target, bounded by limit."""
        await store.save_incident(incident("a", opened_at=T0))
        await store.save_incident(incident("b", opened_at=T0 + timedelta(hours=2)))
        await store.save_incident(
            incident("c", opened_at=T0 + timedelta(hours=1), resolved_at=T0 + timedelta(hours=3))
        )
        await store.save_incident(incident("d", target="api", opened_at=T0 + timedelta(hours=4)))
        assert [i.id for i in await store.list_incidents()] == ["d", "b", "c", "a"]
        assert [i.id for i in await store.list_incidents(open_only=True)] == ["d", "b", "a"]
        assert [i.id for i in await store.list_incidents(target="web")] == ["b", "c", "a"]
        assert [i.id for i in await store.list_incidents(limit=2)] == ["d", "b"]


class TestActionJournal:
    async def test_intent_round_trip(self, store: Any) -> None:
        """A recorded intent lists back equal, status intent, aware UTC."""
        record = action()
        assert await store.record_intent(record) is True
        [back] = await store.list_actions()
        assert back == record
        assert back.status is ActionStatus.INTENT
        assert_utc(back.created_at)

    async def test_second_intent_with_same_key_is_refused(self, store: Any) -> None:
        """A repeated key returns False and leaves the first intent untouched."""
        assert await store.record_intent(action(detail={"first": True})) is True
        assert await store.record_intent(action(detail={"second": True}, kind="other")) is False
        [back] = await store.list_actions()
        assert back.detail == {"first": True}
        assert back.kind == "page"

    async def test_racing_intents_let_exactly_one_through(self, store: Any) -> None:
        """Eight coroutines racing the same key: exactly one is told to act."""
        results = await asyncio.gather(*(store.record_intent(action()) for _ in range(8)))
        assert sorted(results) == [False] * 7 + [True]
        assert len(await store.list_actions()) == 1

    async def test_outcome_updates_status_time_error_and_merges_detail(self, store: Any) -> None:
        """An outcome sets status, finish time and error, and merges detail (new keys win)."""
        await store.record_intent(action(detail={"a": 1, "b": {"x": 1}}))
        done = T0 + timedelta(seconds=3)
        await store.record_outcome(
            "inc-1/page/trigger",
            ActionStatus.FAILED,
            done,
            error="HTTP 400 from PagerDuty",
            detail={"b": {"y": 2}, "c": None},
        )
        [back] = await store.list_actions()
        assert back.status is ActionStatus.FAILED
        assert back.finished_at == done
        assert_utc(back.finished_at)
        assert back.error == "HTTP 400 from PagerDuty"
        assert back.detail == {"a": 1, "b": {"y": 2}, "c": None}

    async def test_outcome_can_be_corrected(self, store: Any) -> None:
        """A later outcome replaces an earlier one (e.g. failed, then succeeded on retry)."""
        await store.record_intent(action())
        await store.record_outcome("inc-1/page/trigger", ActionStatus.FAILED, T0, error="boom")
        await store.record_outcome("inc-1/page/trigger", ActionStatus.SUCCEEDED, T0)
        [back] = await store.list_actions()
        assert (back.status, back.error) == (ActionStatus.SUCCEEDED, None)

    async def test_outcome_without_intent_is_an_error(self, store: Any) -> None:
        """An outcome for a key never recorded raises KeyError (write-ahead order broken)."""
        with pytest.raises(KeyError):
            await store.record_outcome("nope", ActionStatus.SUCCEEDED, T0)

    async def test_list_actions_filters_and_orders_by_creation(self, store: Any) -> None:
        """Actions list oldest first by creation time, filtered by incident, newest kept."""
        await store.record_intent(action("k3", created_at=T0 + timedelta(seconds=3)))
        await store.record_intent(action("k1", created_at=T0 + timedelta(seconds=1)))
        await store.record_intent(action("k2", created_at=T0 + timedelta(seconds=2), incident="x"))
        assert [a.key for a in await store.list_actions()] == ["k1", "k2", "k3"]
        assert [a.key for a in await store.list_actions(incident="inc-1")] == ["k1", "k3"]
        assert [a.key for a in await store.list_actions(limit=2)] == ["k2", "k3"]

    async def test_rollback_round_trip_and_state_updates(self, store: Any) -> None:
        """A rollback reads back equal, and saving it again moves its state."""
        record = rollback()
        await store.save_rollback(record)
        assert await store.list_rollbacks() == [record]
        done = rollback(
            state=RollbackState.VERIFIED,
            finished_at=T0 + timedelta(seconds=40),
            verified_at=T0 + timedelta(seconds=130),
            automatic=False,
        )
        await store.save_rollback(done)
        [back] = await store.list_rollbacks()
        assert back == done
        assert back.state is RollbackState.VERIFIED
        assert_utc(back.verified_at)

    async def test_list_rollbacks_filters_by_target_and_since(self, store: Any) -> None:
        """Rollbacks list oldest first; ``since`` is inclusive; target filters."""
        await store.save_rollback(rollback("r2", requested_at=T0 + timedelta(hours=2)))
        await store.save_rollback(rollback("r1", requested_at=T0))
        await store.save_rollback(
            rollback("r3", target="api", requested_at=T0 + timedelta(hours=3))
        )
        assert [r.id for r in await store.list_rollbacks()] == ["r1", "r2", "r3"]
        assert [r.id for r in await store.list_rollbacks(target="web")] == ["r1", "r2"]
        since = T0 + timedelta(hours=2)
        assert [r.id for r in await store.list_rollbacks(since=since)] == ["r2", "r3"]

    async def test_known_bad_is_per_project_and_idempotent(self, store: Any) -> None:
        """Marking a deployment bad twice keeps one entry, and projects stay apart."""
        await store.mark_known_bad("prj_1", "dpl_2", T0)
        await store.mark_known_bad("prj_1", "dpl_2", T0 + timedelta(hours=1))
        await store.mark_known_bad("prj_1", "dpl_3", T0)
        await store.mark_known_bad("prj_2", "dpl_9", T0)
        assert await store.known_bad("prj_1") == frozenset({"dpl_2", "dpl_3"})
        assert await store.known_bad("prj_2") == frozenset({"dpl_9"})
        assert await store.known_bad("prj_none") == frozenset()


class TestOutbox:
    async def test_enqueue_round_trip_in_order(self, store: Any) -> None:
        """Messages list back equal, pending, in the order they were put, with a rising seq."""
        for i in range(3):
            assert await store.enqueue(message(f"k{i}", created_at=T0 + timedelta(seconds=i)))
        back = await store.list_outbox()
        assert [m.key for m in back] == ["k0", "k1", "k2"]
        assert [m.seq for m in back] == sorted({m.seq for m in back})
        assert back[0].status is OutboxStatus.PENDING
        assert back[0].payload == message().payload
        assert_utc(back[0].created_at)

    async def test_a_key_is_put_once(self, store: Any) -> None:
        """A repeated key is refused and leaves the first message untouched."""
        assert await store.enqueue(message(payload={"first": True})) is True
        assert await store.enqueue(message(payload={"second": True})) is False
        [back] = await store.list_outbox()
        assert back.payload == {"first": True}

    async def test_mark_and_filter(self, store: Any) -> None:
        """Marking records attempts, backoff and error; the status and incident filters hold."""
        await store.enqueue(message("a"))
        await store.enqueue(message("b", incident="inc-2"))
        await store.mark_outbox(
            "a", OutboxStatus.PENDING, attempts=2, next_at=NEW, error="PagerDuty answered 503"
        )
        await store.mark_outbox("b", OutboxStatus.DELIVERED, attempts=1, finished_at=NEW)
        [a] = await store.list_outbox(status=OutboxStatus.PENDING)
        assert (a.key, a.attempts, a.next_at, a.error) == ("a", 2, NEW, "PagerDuty answered 503")
        assert_utc(a.next_at)
        assert [m.key for m in await store.list_outbox(incident="inc-2")] == ["b"]
        with pytest.raises(KeyError):
            await store.mark_outbox("nope", OutboxStatus.DELIVERED, attempts=1)

    async def test_prune_keeps_pending_and_open_incidents_messages(self, store: Any) -> None:
        """Old delivered messages of resolved incidents go; pending ones and those of open
        incidents (the page a new leader re-asserts) stay."""
        await store.save_incident(incident("open", opened_at=OLD))
        await store.save_incident(incident("done", opened_at=OLD, resolved_at=OLD))
        for key, inc, status in (
            ("done-delivered", "done", OutboxStatus.DELIVERED),
            ("done-pending", "done", OutboxStatus.PENDING),
            ("open-delivered", "open", OutboxStatus.DELIVERED),
        ):
            await store.enqueue(message(key, incident=inc, created_at=OLD))
            await store.mark_outbox(key, status, attempts=1)
        await store.prune(T0)
        assert {m.key for m in await store.list_outbox()} == {"done-pending", "open-delivered"}


class TestEventLog:
    async def test_round_trip_and_filters(self, store: Any) -> None:
        """Events read back equal in the order appended, filtered by since and target."""
        hold = event()
        ack = event("ack", at=T0 + timedelta(minutes=5), until=None, data={"decision": "ff"})
        other = event("declare", target="api", at=T0 + timedelta(minutes=6), until=None)
        for e in (hold, ack, other):
            await store.append_event(e)
        assert await store.list_events() == [hold, ack, other]
        assert await store.list_events(since=T0 + timedelta(minutes=5)) == [ack, other]
        assert await store.list_events(target="web") == [hold, ack]
        assert_utc((await store.list_events())[0].until)


class TestDrillLog:
    async def test_round_trip_upsert_and_newest_first(self, store: Any) -> None:
        """Drills read back equal, newest first, a re-save replacing the old record."""
        first = DrillRecord("d1", "web", T0, None, False, None, {})
        await store.save_drill(first)
        finished = DrillRecord(
            "d1", "web", T0, T0 + timedelta(seconds=95), True, 95.25, {"steps": ["rollback"]}
        )
        await store.save_drill(finished)
        later = DrillRecord("d2", "web", T0 + timedelta(days=90), None, False, None, {"x": 1})
        await store.save_drill(later)
        assert await store.list_drills() == [later, finished]
        assert await store.list_drills(limit=1) == [later]


class TestLifecycle:
    async def test_ping_while_open(self, store: Any) -> None:
        """An open store answers ping."""
        assert await store.ping() is True

    async def test_records_survive_reopen(self, backend: str, store_factory: StoreFactory) -> None:
        """What one store instance wrote, a new instance on the same database reads."""
        if backend == "memory":
            pytest.skip("MemoryStore forgets by design")
        first = await store_factory()
        await first.record_intent(action())
        await first.save_incident(incident())
        await first.close()
        second = await store_factory()
        assert [a.key for a in await second.list_actions()] == ["inc-1/page/trigger"]
        assert await second.load_incident("inc-1") == incident()
        # the key is still taken after a restart: a restarted daemon does not act twice
        assert await second.record_intent(action()) is False


class TestPrune:
    async def test_deletes_old_unattached_decisions_and_counts(self, store: Any) -> None:
        """Decisions before the cutoff without an incident go; newer ones stay."""
        await store.append_decision(decision(at=OLD, reason="old"))
        await store.append_decision(decision(at=T0, reason="at-cutoff"))
        await store.append_decision(decision(at=NEW, reason="new"))
        assert await store.prune(T0) == 1
        assert [d.reason for d in await store.list_decisions()] == ["at-cutoff", "new"]

    async def test_keeps_what_is_live_and_drops_resolved_history(
        self, store: Any, backend: str, request: pytest.FixtureRequest
    ) -> None:
        """Open incidents, in-flight rollbacks, bare intents and live holds survive prune."""
        await store.save_incident(incident("open-old", opened_at=OLD))
        await store.save_incident(incident("done-old", opened_at=OLD, resolved_at=OLD))
        await store.save_incident(incident("done-new", opened_at=OLD, resolved_at=NEW))
        await store.save_incident(incident("done-flying", opened_at=OLD, resolved_at=OLD))
        for inc in (None, "open-old", "done-old", "done-new", "done-flying"):
            await store.append_decision(decision(at=OLD, incident=inc, reason=f"old-{inc}"))
        await store.append_decision(decision(at=NEW, reason="new"))
        await store.record_intent(action("bare-intent", created_at=OLD, incident=None))
        for key, inc in (("a-none", None), ("a-open", "open-old"), ("a-done", "done-old")):
            await store.record_intent(action(key, created_at=OLD, incident=inc))
            await store.record_outcome(key, ActionStatus.SUCCEEDED, OLD)
        await store.record_intent(action("a-new", created_at=NEW))
        await store.record_outcome("a-new", ActionStatus.SUCCEEDED, NEW)
        terminal = [s for s in RollbackState if not s.in_flight]
        for state in terminal:
            await store.save_rollback(
                rollback(f"rb-{state}", incident="done-old", state=state, requested_at=OLD)
            )
        await store.save_rollback(
            rollback("rb-flying", incident="done-flying", state="requested", requested_at=OLD)
        )
        await store.append_event(event("hold", at=OLD, until=None, reason="old"))
        await store.append_event(event("hold", at=OLD, until=NEW, reason="still-held"))
        await store.append_event(event("ack", at=NEW, until=None, reason="new"))

        deleted = await store.prune(T0)

        incidents = {i.id for i in await store.list_incidents()}
        assert incidents == {"open-old", "done-new", "done-flying"}
        assert {d.reason for d in await store.list_decisions()} == {
            "old-open-old",
            "old-done-flying",
            "new",
        }
        assert {a.key for a in await store.list_actions()} == {"bare-intent", "a-open", "a-new"}
        assert [r.id for r in await store.list_rollbacks()] == ["rb-flying"]
        assert [e.reason for e in await store.list_events()] == ["still-held", "new"]
        # decisions: None, done-old, done-new; actions: a-none, a-done; incidents: done-old;
        # rollbacks: every terminal state; events: the old hold
        assert deleted == 3 + 2 + 1 + len(terminal) + 1

    @pytest.mark.parametrize("state", [s for s in RollbackState if s.in_flight])
    async def test_never_deletes_an_in_flight_rollback(
        self, store: Any, state: RollbackState, backend: str, request: pytest.FixtureRequest
    ) -> None:
        """An old rollback still in flight keeps itself, its incident and its history."""
        await store.save_incident(incident("inc-1", opened_at=OLD, resolved_at=OLD))
        await store.append_decision(decision(at=OLD, incident="inc-1"))
        await store.save_rollback(rollback(state=state, requested_at=OLD))
        await store.prune(T0)
        assert [r.id for r in await store.list_rollbacks()] == ["rb-1"]
        assert await store.load_incident("inc-1") is not None
        assert len(await store.list_decisions(incident="inc-1")) == 1
