"""The detailed-health source: component states by field path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from tests.sources.conftest import Build, by_signal, parse_config
from watchdog.core.model import Signal, UnknownReason
from watchdog.testing.fake_app import FakeApp
from watchdog.testing.server import Fault


@pytest.fixture
async def app() -> AsyncIterator[FakeApp]:
    async with FakeApp() as fake:
        yield fake


def detailed(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "detailed",
        "url": f"{url}/api/health/detailed",
        "db_connection": {"path": "components.database.status"},
        "payment_failures": "payments.failures_5m",
        "features": {"checkout": {"path": "components.payments.status"}},
        **extra,
    }


class TestDetailedSource:
    async def test_all_ok(self, app: FakeApp, build: Build) -> None:
        """Healthy components read 1, the failure count reads as a number."""
        samples = by_signal(await build(detailed(app.url)).poll())
        assert samples[Signal.DB_CONNECTION_UP].value == 1.0
        assert samples[Signal.PAYMENT_FAILURES].value == 0.0
        assert samples["feature_up.checkout"].value == 1.0

    async def test_503_body_is_read(self, app: FakeApp, build: Build) -> None:
        """A degraded app answers 503 with JSON; its states are read, the DB reads 0."""
        app.components["database"] = "error"
        app.payment_failures = 3
        source = build(detailed(app.url))
        samples = by_signal(await source.poll())
        assert samples[Signal.DB_CONNECTION_UP].value == 0.0
        assert samples[Signal.PAYMENT_FAILURES].value == 3.0
        assert len(app.requests) == 1

    async def test_up_values_are_case_insensitive(self, app: FakeApp, build: Build) -> None:
        """'HEALTHY' matches the default up value 'healthy'."""
        app.components["database"] = "HEALTHY"
        samples = by_signal(await build(detailed(app.url)).poll())
        assert samples[Signal.DB_CONNECTION_UP].value == 1.0

    async def test_custom_up_values(self, app: FakeApp, build: Build) -> None:
        """Configured up_values replace the defaults."""
        raw = detailed(
            app.url,
            db_connection={"path": "components.database.status", "up_values": ["connected"]},
        )
        samples = by_signal(await build(raw).poll())
        assert samples[Signal.DB_CONNECTION_UP].value == 0.0

    async def test_missing_path_is_unknown_for_that_signal_only(
        self, app: FakeApp, build: Build
    ) -> None:
        """A path the body lacks makes that one signal unknown; the others still read."""
        raw = detailed(app.url, features={"search": {"path": "components.search.status"}})
        samples = by_signal(await build(raw).poll())
        assert samples["feature_up.search"].unknown is UnknownReason.PROVIDER_ERROR
        assert "components.search.status" in samples["feature_up.search"].detail
        assert samples[Signal.DB_CONNECTION_UP].value == 1.0

    async def test_wrong_types_are_unknown(self, app: FakeApp, build: Build) -> None:
        """A count that is a string, or a status that is an object, is not read."""
        app.fail_next(
            Fault.json(
                200,
                {
                    "components": {"database": {"status": {"x": 1}}, "payments": {"status": None}},
                    "payments": {"failures_5m": "3"},
                },
            )
        )
        samples = by_signal(await build(detailed(app.url)).poll())
        assert samples[Signal.DB_CONNECTION_UP].unknown is UnknownReason.PROVIDER_ERROR
        assert samples[Signal.PAYMENT_FAILURES].unknown is UnknownReason.PROVIDER_ERROR
        assert samples["feature_up.checkout"].unknown is UnknownReason.NO_DATA

    async def test_nan_count_is_rejected(self, app: FakeApp, build: Build) -> None:
        """NaN in the JSON (Python's json accepts it) is not a count."""
        app.fail_next(
            Fault(
                status=200,
                body='{"payments": {"failures_5m": NaN}}',
                content_type="application/json",
            )
        )
        samples = by_signal(await build(detailed(app.url)).poll())
        assert samples[Signal.PAYMENT_FAILURES].unknown is UnknownReason.PROVIDER_ERROR

    async def test_html_503_is_retried_then_unknown(self, app: FakeApp, build: Build) -> None:
        """A 503 HTML page is a server error: retried, then every signal is unknown."""
        app.fail_always(Fault.html(503))
        source = build(detailed(app.url))
        samples = await source.poll()
        assert {s.unknown for s in samples} == {UnknownReason.PROVIDER_ERROR}
        assert len(app.requests) == 3
        assert source.errors["http_503"] == 3

    async def test_html_200_is_malformed(self, app: FakeApp, build: Build) -> None:
        """An HTML page with a 200 is malformed and not retried."""
        app.fail_next(Fault(status=200, body="<html></html>", content_type="text/html"))
        source = build(detailed(app.url))
        samples = await source.poll()
        assert all(s.unknown is UnknownReason.PROVIDER_ERROR for s in samples)
        assert "HTML" in samples[0].detail
        assert len(app.requests) == 1


class TestDetailedConfig:
    def test_needs_a_mapping(self) -> None:
        """A detailed source that maps nothing is a configuration error."""
        with pytest.raises(ValidationError, match="map at least one"):
            parse_config({"kind": "detailed", "url": "https://app.example.com/api/health/detailed"})

    def test_rejects_unknown_keys(self) -> None:
        """A typo in an option is an error, not a silently ignored key."""
        with pytest.raises(ValidationError, match="extra"):
            parse_config(detailed("https://app.example.com", db_conection={"path": "x"}))
