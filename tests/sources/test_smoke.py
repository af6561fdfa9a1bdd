"""The smoke source: named feature checks → feature_up.<name>."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.sources.conftest import CANARY_SECRET, Build, by_signal
from watchdog.core.model import UnknownReason
from watchdog.testing.fake_app import FakeApp, Feature
from watchdog.testing.server import closed_port_url


@pytest.fixture
async def app() -> AsyncIterator[FakeApp]:
    async with FakeApp() as fake:
        fake.features["create-opportunity"] = Feature(status=201, payload={"ok": True, "id": 7})
        fake.features["search"] = Feature(payload={"results": [1, 2]})
        yield fake


def smoke(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "smoke",
        "timeout": 0.2,
        "checks": [
            {
                "name": "create-opportunity",
                "method": "POST",
                "url": f"{url}/api/features/create-opportunity",
                "body": {"title": "watchdog smoke"},
                "expected_status": 201,
                "condition": {"path": "ok", "equals": True},
                "secret_headers": {"Authorization": f"Bearer {CANARY_SECRET}"},
            },
            {"name": "search", "url": f"{url}/api/features/search"},
        ],
        **extra,
    }


class TestSmokeSource:
    async def test_passing_checks_are_up(self, app: FakeApp, build: Build) -> None:
        """Expected status and condition met: feature_up=1 for each check."""
        samples = by_signal(await build(smoke(app.url)).poll())
        assert samples["feature_up.create-opportunity"].value == 1.0
        assert samples["feature_up.search"].value == 1.0
        post = next(r for r in app.requests if r.method == "POST")
        assert json.loads(post.body) == {"title": "watchdog smoke"}
        assert post.headers["Authorization"] == f"Bearer {CANARY_SECRET}"

    async def test_unexpected_status_is_down(self, app: FakeApp, build: Build) -> None:
        """A 500 from a feature is feature_up=0 for that feature only."""
        app.features["search"] = Feature(status=500)
        samples = by_signal(await build(smoke(app.url)).poll())
        assert samples["feature_up.search"].value == 0.0
        assert "500" in samples["feature_up.search"].detail
        assert samples["feature_up.create-opportunity"].value == 1.0

    async def test_failed_condition_is_down(self, app: FakeApp, build: Build) -> None:
        """The right status with the wrong body is still a broken feature."""
        app.features["create-opportunity"] = Feature(status=201, payload={"ok": 1})
        samples = by_signal(await build(smoke(app.url)).poll())
        sample = samples["feature_up.create-opportunity"]
        assert sample.value == 0.0
        assert "expected True" in sample.detail

    async def test_slow_feature_is_down(self, app: FakeApp, build: Build) -> None:
        """A feature slower than the timeout is down."""
        app.features["search"] = Feature(delay=2.0)
        samples = by_signal(await build(smoke(app.url)).poll())
        assert samples["feature_up.search"].value == 0.0

    async def test_rejected_credentials_are_unknown_and_secret_free(
        self, app: FakeApp, build: Build
    ) -> None:
        """A 401 is unknown (stale smoke credentials must not roll back) and hides the secret."""
        app.features["create-opportunity"] = Feature(status=401, payload={"error": "bad token"})
        with capture_logs() as logs:
            samples = by_signal(await build(smoke(app.url)).poll())
        sample = samples["feature_up.create-opportunity"]
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert "secret_headers" in sample.detail
        assert CANARY_SECRET not in repr(samples) + repr(logs)

    async def test_watchdog_network_when_all_unreachable_and_canary_fails(
        self, build: Build
    ) -> None:
        """Every check unreachable and the canary too: unknown (watchdog_network), not 0."""
        samples = await build(smoke(closed_port_url(), canary_url=closed_port_url())).poll()
        assert {s.unknown for s in samples} == {UnknownReason.WATCHDOG_NETWORK}

    async def test_unreachable_with_canary_up_is_down(self, app: FakeApp, build: Build) -> None:
        """The canary answering means the app really is unreachable: 0."""
        samples = await build(smoke(closed_port_url(), canary_url=app.url + "/api/health")).poll()
        assert {s.value for s in samples} == {0.0}

    async def test_one_attempt_by_default(self, app: FakeApp, build: Build) -> None:
        """Smoke checks may create things: they are not retried unless configured."""
        app.features["search"] = Feature(status=503)
        await build(smoke(app.url)).poll()
        assert len(app.requests_to("/api/features/search")) == 1
