"""The Prometheus source: instant queries whose NaN and empty results mean no data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from tests.sources.conftest import CANARY_SECRET, Build, by_signal, parse_config
from watchdog.core.model import UnknownReason
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_prometheus import FakePrometheus
from watchdog.testing.server import Fault, closed_port_url

P95 = (
    "histogram_quantile(0.95, sum by (le) "
    '(rate(http_request_duration_seconds_bucket{job="web"}[5m])))'
)
ERRORS = 'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'


@pytest.fixture
async def prom() -> AsyncIterator[FakePrometheus]:
    async with FakePrometheus() as fake:
        yield fake


def config(url: str, *queries: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "kind": "prometheus",
        "base_url": url,
        "timeout": 0.2,
        "queries": list(queries) or [{"signal": "latency_p95_s", "query": P95}],
        **extra,
    }


class TestPrometheusSource:
    async def test_vector_value_is_parsed_from_a_string(
        self, prom: FakePrometheus, build: Build, clock: FakeClock
    ) -> None:
        """A one-series vector's string value becomes the signal's number."""
        prom.vector(P95, ({"job": "web"}, "0.842"))
        [sample] = await build(config(prom.url)).poll()
        assert sample.signal == "latency_p95_s"
        assert sample.value == pytest.approx(0.842)
        [request] = prom.requests
        assert request.path == "/api/v1/query"
        assert request.param("query") == P95
        assert request.param("time") == f"{clock.now().timestamp():.3f}"

    async def test_scalar(self, prom: FakePrometheus, build: Build) -> None:
        """A scalar result is read too."""
        prom.scalar("scalar(up)", "1")
        [sample] = await build(config(prom.url, {"signal": "x_up", "query": "scalar(up)"})).poll()
        assert sample.value == 1.0

    async def test_several_queries_one_signal_each(
        self, prom: FakePrometheus, build: Build
    ) -> None:
        """Each configured query yields its own signal."""
        prom.vector(P95, ({}, "1.5"))
        prom.vector(ERRORS, ({}, "0.02"))
        raw = config(
            prom.url,
            {"signal": "latency_p95_s", "query": P95},
            {"signal": "error_rate", "query": ERRORS},
        )
        samples = by_signal(await build(raw).poll())
        assert samples["latency_p95_s"].value == 1.5
        assert samples["error_rate"].value == 0.02

    @pytest.mark.parametrize(
        ("reduce", "expected"),
        [("first", 3.0), ("max", 5.0), ("min", 1.0), ("sum", 9.0), ("avg", 3.0)],
    )
    async def test_reduce_several_series(
        self, prom: FakePrometheus, build: Build, reduce: str, expected: float
    ) -> None:
        """Several series are reduced as configured."""
        prom.vector("q", ({"i": "a"}, "3"), ({"i": "b"}, "5"), ({"i": "c"}, "1"))
        raw = config(prom.url, {"signal": "queue_depth", "query": "q", "reduce": reduce})
        [sample] = await build(raw).poll()
        assert sample.value == expected

    @pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
    async def test_non_finite_is_no_data(
        self, prom: FakePrometheus, build: Build, value: str
    ) -> None:
        """NaN (no traffic) and ±Inf are no_data, never a healthy number."""
        prom.vector(P95, ({}, value))
        [sample] = await build(config(prom.url)).poll()
        assert sample.value is None
        assert sample.unknown is UnknownReason.NO_DATA
        assert value in sample.detail

    @pytest.mark.parametrize(
        ("signal", "value"),
        [
            ("error_rate", "2.5"),
            ("error_rate", "-0.1"),
            ("latency_p95_s", "-1"),
            ("health_up", "3"),
        ],
    )
    async def test_a_value_outside_the_signals_range_is_a_provider_error(
        self, prom: FakePrometheus, build: Build, signal: str, value: str
    ) -> None:
        """A rate answered as a percentage (2.5 for 2.5 %), a negative latency, an up of 3:
        nonsense is never a measurement, and the detail says how to fix the query."""
        prom.vector(ERRORS, ({}, value))
        [sample] = await build(config(prom.url, {"signal": signal, "query": ERRORS})).poll()
        assert sample.value is None
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert "fix the query" in (sample.detail or "")

    @pytest.mark.parametrize(
        ("signal", "value", "expected"),
        [
            ("error_rate", "1.0000000000000002", 1.0),
            ("error_rate", "1.02", 1.0),
            ("db_cpu", "-1e-12", 0.0),
            ("health_up", "0.5", 0.5),
        ],
    )
    async def test_a_hair_outside_the_range_is_the_bound(
        self, prom: FakePrometheus, build: Build, signal: str, value: str, expected: float
    ) -> None:
        """5xx/all at a total outage reads a little over 1 (float rounding, a rate's
        extrapolation): that is 100 %, not a provider error that would blind the watchdog
        at the very moment of the outage (found in review)."""
        prom.vector(ERRORS, ({}, value))
        [sample] = await build(config(prom.url, {"signal": signal, "query": ERRORS})).poll()
        assert sample.value == expected
        assert sample.unknown is None

    async def test_control_a_custom_signal_has_no_range(
        self, prom: FakePrometheus, build: Build
    ) -> None:
        prom.vector(ERRORS, ({}, "250"))
        [sample] = await build(config(prom.url, {"signal": "queue_depth", "query": ERRORS})).poll()
        assert sample.value == 250.0

    async def test_empty_vector_is_no_data(self, prom: FakePrometheus, build: Build) -> None:
        """No series matched: no_data."""
        source = build(config(prom.url))
        [sample] = await source.poll()
        assert sample.unknown is UnknownReason.NO_DATA
        assert not source.failing

    async def test_error_body_names_the_error_type(
        self, prom: FakePrometheus, build: Build
    ) -> None:
        """status:error (400 bad_data) is provider_error naming errorType; not retried."""
        prom.error(P95, "bad_data", 'parse error at char 5: unexpected "}"')
        source = build(config(prom.url))
        [sample] = await source.poll()
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert "(bad_data)" in sample.detail
        assert len(prom.requests) == 1
        assert source.errors["query_bad_data"] == 1

    async def test_503_timeout_is_retried(self, prom: FakePrometheus, build: Build) -> None:
        """Prometheus's own 503 (query timeout) is retried, then succeeds."""
        prom.vector(P95, ({}, "0.5"))
        prom.fail_next(Fault.json(503, {"status": "error", "errorType": "timeout", "error": "x"}))
        [sample] = await build(config(prom.url)).poll()
        assert sample.value == 0.5
        assert len(prom.requests) == 2

    async def test_5xx_forever_is_bounded(self, prom: FakePrometheus, build: Build) -> None:
        """Persistent 502s stop after the configured attempts."""
        prom.fail_always(Fault.html(502))
        [sample] = await build(config(prom.url, attempts=3)).poll()
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert len(prom.requests) == 3

    async def test_matrix_is_refused(self, prom: FakePrometheus, build: Build) -> None:
        """A range-vector query is a configuration mistake, said plainly."""
        prom.matrix(P95, {}, "1", "2")
        [sample] = await build(config(prom.url)).poll()
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert "matrix" in sample.detail

    @pytest.mark.parametrize(
        "fault",
        [
            Fault(status=200, body="<html>login</html>", content_type="text/html"),
            Fault.json(200, {"status": "success"}),
            Fault.json(200, {"hello": "world"}),
            Fault.json(
                200,
                {
                    "status": "success",
                    "data": {"resultType": "vector", "result": [{"value": [1, 2]}]},
                },
            ),
        ],
    )
    async def test_malformed_bodies(self, prom: FakePrometheus, build: Build, fault: Fault) -> None:
        """HTML, missing data, a non-API body or a numeric (not string) value are malformed."""
        prom.fail_next(fault)
        source = build(config(prom.url))
        [sample] = await source.poll()
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert source.errors["malformed"] == 1

    async def test_slow_and_refused(self, prom: FakePrometheus, build: Build) -> None:
        """Timeouts and refused connections are provider_error."""
        prom.fail_always(Fault.slow(2.0))
        [slow] = await build(config(prom.url, attempts=1)).poll()
        assert "did not answer" in slow.detail
        [refused] = await build(config(closed_port_url(), attempts=1)).poll()
        assert "cannot connect" in refused.detail

    async def test_post_sends_a_form(self, prom: FakePrometheus, build: Build) -> None:
        """method POST sends the query form-encoded in the body."""
        prom.vector(P95, ({}, "2"))
        [sample] = await build(config(prom.url, method="POST")).poll()
        assert sample.value == 2.0
        [request] = prom.requests
        assert request.method == "POST"
        assert b"query=histogram_quantile" in request.body


class TestPrometheusAuth:
    async def test_bearer(self, build: Build) -> None:
        """A bearer token is sent and accepted."""
        async with FakePrometheus(bearer_token=CANARY_SECRET) as prom:
            prom.vector(P95, ({}, "1"))
            [sample] = await build(config(prom.url, bearer_token=CANARY_SECRET)).poll()
        assert sample.value == 1.0

    async def test_basic(self, build: Build) -> None:
        """Basic auth is sent and accepted."""
        async with FakePrometheus(basic=("grafana", CANARY_SECRET)) as prom:
            prom.vector(P95, ({}, "1"))
            raw = config(prom.url, username="grafana", password=CANARY_SECRET)
            [sample] = await build(raw).poll()
        assert sample.value == 1.0

    async def test_rejected_not_retried_no_secret(self, build: Build) -> None:
        """A 401 is not retried, names the fix and never shows the secret."""
        async with FakePrometheus(bearer_token="other") as prom:
            with capture_logs() as logs:
                [sample] = await build(config(prom.url, bearer_token=CANARY_SECRET)).poll()
            assert len(prom.requests) == 1
        assert "Prometheus rejected the credentials (401)" in sample.detail
        assert "bearer_token" in sample.detail
        assert CANARY_SECRET not in repr(sample) + repr(logs)

    def test_half_basic_auth_is_rejected(self) -> None:
        """A username without a password is a configuration error."""
        with pytest.raises(ValidationError, match="both username and password"):
            parse_config(config("https://prom.example.com", username="x"))
