"""Each choke point where text leaves the watchdog redacts it: the store's writes, pages and
chat, every HTTP answer, the post-mortem, the daemon's own crash reports."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from watchdog.actions.base import Change, Page
from watchdog.actions.redacting import RedactingFlag, RedactingNotifier, RedactingPager
from watchdog.actions.vercel import VercelConfig
from watchdog.config import Settings, TargetConfig
from watchdog.core.model import Observation, Severity
from watchdog.daemon import main as daemon_main
from watchdog.daemon.cockpit import Board, Phase
from watchdog.daemon.server import build_app
from watchdog.postmortem import render_postmortem
from watchdog.redact import Redactor
from watchdog.sources import HealthSourceConfig
from watchdog.store.base import (
    ActionRecord,
    ActionStatus,
    DecisionRecord,
    DrillRecord,
    HumanEvent,
    IncidentRecord,
    RollbackRecord,
)
from watchdog.store.memory import MemoryStore
from watchdog.store.redacting import RedactingStore
from watchdog.testing.leaks import find_leaks

SECRET = "canary-token-5b1e7d"
SECRETS = {"vercel_token": SECRET}
REDACTOR = Redactor([("vercel_token", SECRET)])
AT = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
SAYS = f"Vercel answered 500: bad token {SECRET}"


def leaks(*texts: object) -> list[str]:
    return find_leaks([(str(i), repr(t)) for i, t in enumerate(texts)], SECRETS)


class TestStore:
    async def test_every_write_is_redacted(self) -> None:
        """Decisions, incidents, actions (intent and outcome), rollbacks, human events and
        drills reach the backend without the secret; reads see the redacted records."""
        inner = MemoryStore()
        store = RedactingStore(inner, REDACTOR)
        await store.open()
        await store.append_decision(
            DecisionRecord("web", AT, "page", "P0", "r", SAYS, ("a", SAYS), "inc-1", {"x": SAYS})
        )
        await store.save_incident(IncidentRecord("inc-1", "web", AT, "P0", "r", SAYS, "k"))
        await store.record_intent(
            ActionRecord("inc-1/page", "page", "web", AT, incident="inc-1", detail={"s": SAYS})
        )
        await store.record_outcome(
            "inc-1/page", ActionStatus.FAILED, AT, error=SAYS, detail={"body": [SAYS]}
        )
        await store.save_rollback(RollbackRecord("rb-1", "inc-1", "web", "prj", AT, detail=SAYS))
        await store.append_event(HumanEvent("hold", "web", AT, by=SAYS, reason=SAYS))
        await store.save_drill(DrillRecord("d-1", "web", AT, None, False, None, {"e": SAYS}))
        stored = [
            *(asdict(r) for r in await inner.list_decisions()),
            *(asdict(r) for r in await inner.list_incidents()),
            *(asdict(r) for r in await inner.list_actions()),
            *(asdict(r) for r in await inner.list_rollbacks()),
            *(asdict(r) for r in await inner.list_events()),
            *(asdict(r) for r in await inner.list_drills()),
        ]
        assert len(stored) == 6
        assert not leaks(*stored)
        assert all("[redacted:vercel_token]" in repr(r) for r in stored)


class _Recorder:
    def __init__(self) -> None:
        self.pages: list[Page] = []
        self.changes: list[Change] = []
        self.texts: list[str] = []

    async def trigger(self, page: Page) -> None:
        self.pages.append(page)

    async def resolve(self, target: str, incident: str, at: datetime) -> None:
        return None

    async def change(self, change: Change) -> None:
        self.changes.append(change)

    async def send(self, text: str) -> None:
        self.texts.append(text)


class TestPagesAndChat:
    async def test_page_change_and_message(self) -> None:
        """The vendor gets a page whose summary, reason, notes and signal details are
        redacted, a redacted change marker, and redacted chat text."""
        inner = _Recorder()
        pager = RedactingPager(inner, REDACTOR)
        observation = Observation("r", "error_rate", 0.5, ">", 0.05, True, since=AT)
        await pager.trigger(
            Page(
                "web",
                "inc-1",
                Severity.P0,
                SAYS,
                AT,
                SAYS,
                observations=(observation,),
                notes=(SAYS,),
            )
        )
        await pager.change(Change("web", SAYS, AT, details={"why": SAYS}))
        await RedactingNotifier(inner, REDACTOR).send(SAYS)
        assert inner.pages[0].severity is Severity.P0
        assert inner.pages[0].observations == (observation,)
        assert not leaks(inner.pages, inner.changes, inner.texts)
        assert inner.texts == ["Vercel answered 500: bad token [redacted:vercel_token]"]

    async def test_flag_comment(self) -> None:
        """A flag switched off carries the decision's reason as its comment: redacted."""
        comments: list[str] = []

        class Flag:
            flags = ("checkout",)

            async def disable(self, flag: str, reason: str) -> None:
                comments.append(reason)

        switch = RedactingFlag(Flag(), REDACTOR)
        assert switch.flags == ("checkout",)
        await switch.disable("checkout", SAYS)
        assert comments == ["Vercel answered 500: bad token [redacted:vercel_token]"]

    def test_wrap_keeps_none(self) -> None:
        """No pager configured stays no pager."""
        assert RedactingPager.wrap(None, REDACTOR) is None
        assert RedactingNotifier.wrap(None, REDACTOR) is None


class _Control:
    """Just enough of the daemon for the HTTP layer, every answer quoting the secret."""

    def status(self) -> dict[str, Any]:
        return {
            "now": AT.isoformat(),
            "leader": True,
            "targets": [{"name": "web", "action": "page", "reason": SAYS, "observations": []}],
        }

    async def cockpit(self) -> dict[str, Any]:
        return self.status()

    async def board(self) -> Board:
        # the status page: the store's error quotes the secret, shown in the page's banner
        return Board(
            now=AT,
            phase=Phase.RUNNING,
            leader=True,
            kill_switch=False,
            kill_switch_event=None,
            shadow=False,
            store_error=SAYS,
            targets=(),
        )

    def readiness(self) -> list[str]:
        return [SAYS]

    async def incidents(self, *, open_only: bool) -> list[dict[str, Any]]:
        return [{"reason": SAYS}]

    async def incident(self, incident_id: str) -> dict[str, Any] | None:
        return {"id": incident_id, "actions": [{"error": SAYS}]}

    async def hold(self, target: str, duration: Any, reason: str, by: str) -> dict[str, Any]:
        raise ValueError(SAYS)

    async def ack(self, target: str, decision: str, by: str) -> dict[str, Any]:
        return {"reason": SAYS}

    async def declare(self, target: str, reason: str, by: str) -> dict[str, Any]:
        return {"reason": SAYS}

    async def kill_switch(self, on: bool, reason: str, by: str) -> dict[str, Any]:
        return {"reason": SAYS}

    def now(self) -> datetime:
        return AT


class TestHttp:
    async def test_every_answer_is_redacted(self) -> None:
        """Status, readiness, incidents, control answers and errors, the status page and
        /metrics (label values too) are all redacted on the way out."""
        registry = CollectorRegistry()
        Counter("t", "t", ["why"], registry=registry).labels(why=SAYS).inc()
        app: web.Application = build_app(
            _Control(),  # type: ignore[arg-type]
            registry,
            SecretStr("the-api-token"),
            REDACTOR,
        )
        auth = {"Authorization": "Bearer the-api-token"}
        async with TestClient(TestServer(app)) as client:
            bodies = []
            for path in (
                "/api/status",
                "/readyz",
                "/api/incidents",
                "/api/incidents/x",
                "/",
                "/metrics",
            ):
                bodies.append(await (await client.get(path)).text())
            for path, body in (
                ("/api/hold", {"target": "web", "duration": "1h"}),
                ("/api/ack", {"target": "web"}),
                ("/api/declare", {"target": "web", "reason": "x"}),
                ("/api/kill-switch", {"on": True}),
            ):
                bodies.append(await (await client.post(path, json=body, headers=auth)).text())
        assert not leaks(*bodies)
        assert all("[redacted:vercel_token]" in body for body in bodies), bodies


class TestPostmortem:
    def test_draft_is_redacted(self) -> None:
        """The draft quotes the incident's reason and rollback detail, redacted."""
        incident = IncidentRecord("inc-1", "web", AT, "P0", "r", SAYS, "k")
        rollback = RollbackRecord("rb-1", "inc-1", "web", "prj", AT, detail=SAYS)
        plain = render_postmortem(incident, [], [], [rollback])
        assert leaks(plain), "the draft should quote the reason"
        draft = render_postmortem(incident, [], [], [rollback], redactor=REDACTOR)
        assert not leaks(draft)
        assert "[redacted:vercel_token]" in draft


class TestCrashReports:
    def test_sentry_events_are_redacted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The daemon's own crash reports (messages, local variables) are redacted."""
        import sentry_sdk

        seen: dict[str, Any] = {}
        monkeypatch.setattr(sentry_sdk, "init", lambda **kw: seen.update(kw))
        settings = Settings(
            sentry_dsn=SecretStr("https://pub@o1.ingest.example.com/1"),
            targets=[
                TargetConfig(
                    name="web",
                    sources=[HealthSourceConfig(url="https://example.com/api/health")],
                    deployer=VercelConfig(
                        token=SecretStr(SECRET), project_id="p", production_domain="example.com"
                    ),
                )
            ],
        )
        daemon_main.init_sentry(settings)
        event = {
            "exception": {"values": [{"value": f"CallError: {SECRET}"}]},
            "frames": [{"vars": {"token": SECRET}}],
        }
        cleaned = seen["before_send"](event, {})
        assert not leaks(cleaned)
        assert "[redacted:vercel_token]" in repr(cleaned)
