"""The control API answers bad input with 400 naming the field, never 500 or a silent default."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.daemon.support import API_TOKEN, TARGET, World, build_daemon, settings_for
from watchdog.daemon import Daemon
from watchdog.daemon.server import build_app
from watchdog.store.memory import MemoryStore
from watchdog.testing.clock import FakeClock

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
HOLD = "/api/hold"

#: (path, raw JSON body, what the 400 says); several of these used to answer 500, apply a
#: default for a misspelt field, or store a 10 000-character "reason"
BAD: list[tuple[str, str, str]] = [
    (
        HOLD,
        '{"target": "web", "duration": "999999999d"}',
        "'duration': duration '999999999d' is too long: durations may be at most 366d",
    ),
    (HOLD, '{"target": "web", "duration": ' + "9" * 400 + "}", "'duration': duration 9999"),
    (
        HOLD,
        '{"target": "web", "duration": 1e400}',
        "'duration': a duration must be a finite number",
    ),
    (
        HOLD,
        '{"target": "web", "duration": -1}',
        "'duration': a duration must be a finite number of seconds, 0 or more",
    ),
    (HOLD, '{"target": "web", "duration": true}', "'duration': expected a duration"),
    (HOLD, '{"target": "web", "duration": [1]}', "'duration': invalid duration"),
    (HOLD, '{"target": "web", "duration": "soon"}', "'duration': invalid duration 'soon'"),
    (
        HOLD,
        '{"target": "web", "duraton": "1h"}',
        "unknown field 'duraton': the fields are duration, reason, target",
    ),
    (HOLD, '{"duration": "1h"}', "'target' is required"),
    (HOLD, '{"target": ""}', "'target' must not be empty"),
    (HOLD, '{"target": 7}', "'target' must be a string, not int"),
    (HOLD, '{"target": "nope"}', "unknown target 'nope'"),
    (HOLD, '{"target": "web", "reason": {"a": 1}}', "'reason' must be a string, not dict"),
    (
        HOLD,
        '{"target": "web", "reason": "' + "x" * 5000 + '"}',
        "'reason' is 5000 characters long: at most 1000",
    ),
    (HOLD, "[1, 2]", "the body must be a JSON object"),
    (HOLD, "not json", "the body must be a JSON object"),
    (HOLD, '{"target": ' + "9" * 5000 + "}", "the body must be a JSON object"),
    (
        "/api/ack",
        '{"target": "web", "decision": "yolo"}',
        "'decision' must be one of 'fix_forward', 'rollback'",
    ),
    ("/api/ack", '{"target": "web", "decision": null}', "'decision' is required"),
    ("/api/declare", '{"target": "web"}', "'reason' is required"),
    ("/api/declare", '{"target": "web", "reason": "  "}', "'reason' must not be empty"),
    ("/api/kill-switch", '{"on": "yes"}', "'on' must be true or false"),
    ("/api/kill-switch", '{"on": true, "by": "me"}', "unknown field 'by'"),
]


@pytest.fixture
async def client(world: World, clock: FakeClock) -> AsyncIterator[TestClient[Any, Any]]:
    daemon: Daemon = build_daemon(settings_for(world), MemoryStore(), clock)
    await daemon.start(loops=False)
    app = build_app(daemon, daemon.registry, daemon.settings.server.api_token, daemon.redactor)
    async with TestClient(TestServer(app)) as c:
        yield c
    await daemon.stop()


class TestControlInput:
    @pytest.mark.parametrize(("path", "body", "message"), BAD, ids=range(len(BAD)))
    async def test_bad_body_is_400(
        self, client: TestClient[Any, Any], path: str, body: str, message: str
    ) -> None:
        """Each bad body is a 400 whose error names the field and what is allowed."""
        resp = await client.post(
            path, data=body.encode(), headers={**AUTH, "Content-Type": "application/json"}
        )
        answer = await resp.json()
        assert resp.status == 400, answer
        assert message in answer["error"]

    @pytest.mark.parametrize("user", ["x" * 201, "tab\there", " "])
    async def test_bad_user_header(self, client: TestClient[Any, Any], user: str) -> None:
        """Who asked is recorded and logged: a paragraph or a control character is refused."""
        resp = await client.post(
            "/api/kill-switch", json={"on": False}, headers={**AUTH, "X-Watchdog-User": user}
        )
        assert resp.status == 400
        assert "X-Watchdog-User" in (await resp.json())["error"]

    async def test_good_body_still_works(self, client: TestClient[Any, Any]) -> None:
        """The longest hold and reason allowed are accepted."""
        resp = await client.post(
            HOLD, json={"target": TARGET, "duration": "366d", "reason": "x" * 1000}, headers=AUTH
        )
        assert resp.status == 200, await resp.text()
