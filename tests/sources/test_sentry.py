"""The Sentry source: error rate, p95 and request count from the events table API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.sources.conftest import CANARY_SECRET, Build, by_signal, parse_config
from watchdog.core.model import Signal, UnknownReason
from watchdog.sources.sentry import SentrySource, SentrySourceConfig, stats_period
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_sentry import RATE_LIMIT_MESSAGE, FakeSentry
from watchdog.testing.server import Fault, closed_port_url
from watchdog.transport import Response

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
async def sentry() -> AsyncIterator[FakeSentry]:
    async with FakeSentry(token=CANARY_SECRET) as fake:
        yield fake


def config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "sentry",
        "base_url": url,
        "org": "acme",
        "project": ["web"],
        "environment": "production",
        "token": CANARY_SECRET,
        "timeout": 0.2,
        **extra,
    }


def fixture_result(name: str) -> Response:
    body = (FIXTURES / name).read_bytes()
    return Response(200, {}, body, "application/json", 0.1)


class TestSentryRequest:
    async def test_sends_the_documented_query(
        self, sentry: FakeSentry, build: Build, clock: FakeClock
    ) -> None:
        """Repeated field params, dataset, spans query, project, environment, lagged window."""
        await build(config(sentry.url)).poll()
        [request] = sentry.requests
        assert request.path == "/api/0/organizations/acme/events/"
        assert request.headers["Authorization"] == f"Bearer {CANARY_SECRET}"
        assert request.params("field") == ["failure_rate()", "p95(span.duration)", "count()"]
        assert request.param("dataset") == "spans"
        assert request.param("query") == "is_transaction:true"
        assert request.params("project") == ["web"]
        assert request.params("environment") == ["production"]
        assert request.param("statsPeriod") is None
        end = clock.now() - timedelta(seconds=90)
        assert request.param("end") == end.strftime("%Y-%m-%dT%H:%M:%S")
        assert request.param("start") == (end - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")

    async def test_transactions_dataset(self, sentry: FakeSentry, build: Build) -> None:
        """The transactions dataset asks for p95(transaction.duration) and adds the user query."""
        raw = config(sentry.url, dataset="transactions", query="transaction:/api/*")
        samples = by_signal(await build(raw).poll())
        [request] = sentry.requests
        assert "p95(transaction.duration)" in request.params("field")
        assert request.param("dataset") == "transactions"
        assert request.param("query") == "transaction:/api/*"
        assert samples[Signal.LATENCY_P95_S].value == pytest.approx(0.42)

    async def test_zero_lag_uses_stats_period(self, sentry: FakeSentry, build: Build) -> None:
        """With lag 0 the window is a statsPeriod, not start/end."""
        await build(config(sentry.url, lag=0, window="10m")).poll()
        [request] = sentry.requests
        assert request.param("statsPeriod") == "10m"
        assert request.param("start") is None

    @pytest.mark.parametrize(
        ("window", "expected"), [(300, "5m"), (90, "90s"), (3600, "60m"), (120, "2m")]
    )
    def test_stats_period_uses_one_unit(self, window: int, expected: str) -> None:
        """Sentry's statsPeriod takes one number and one unit."""
        assert stats_period(timedelta(seconds=window)) == expected

    @pytest.mark.parametrize(
        ("extra", "base"),
        [
            ({}, "https://us.sentry.io"),
            ({"region": "de"}, "https://de.sentry.io"),
            ({"base_url": "https://sentry.internal/"}, "https://sentry.internal"),
        ],
    )
    def test_base_url_from_region_or_self_hosted(self, extra: dict[str, str], base: str) -> None:
        """The region picks the SaaS host; a base URL (self-hosted) overrides it."""
        raw = config("https://x", **extra)
        if "base_url" not in extra:
            del raw["base_url"]
        parsed = parse_config(raw)
        assert isinstance(parsed, SentrySourceConfig)
        assert parsed.base == base

    def test_token_is_not_in_repr(self) -> None:
        """The config's repr (and so any log of it) hides the token."""
        assert CANARY_SECRET not in repr(parse_config(config("https://x")))


class TestSentryParsing:
    def _source(self, build: Build, **extra: Any) -> SentrySource:
        source = build(config("https://sentry.example.com", **extra))
        assert isinstance(source, SentrySource)
        return source

    def test_spans_response(self, build: Build) -> None:
        """A realistic spans answer: rate as is, p95 ms → s, count attached to the rate."""
        samples = by_signal(self._source(build)._parse(fixture_result("sentry_spans.json")))
        rate = samples[Signal.ERROR_RATE]
        assert rate.value == pytest.approx(0.0123)
        assert rate.requests == 4021
        assert samples[Signal.LATENCY_P95_S].value == pytest.approx(0.8125)
        assert samples[Signal.REQUEST_COUNT].value == 4021

    def test_transactions_response(self, build: Build) -> None:
        """The transactions dataset's p95(transaction.duration) is read the same way."""
        source = self._source(build, dataset="transactions")
        samples = by_signal(source._parse(fixture_result("sentry_transactions.json")))
        assert samples[Signal.ERROR_RATE].value == pytest.approx(0.072)
        assert samples[Signal.LATENCY_P95_S].value == pytest.approx(1.84)

    def test_null_aggregates_with_no_requests(self, build: Build) -> None:
        """Null aggregates over zero requests are no_data; the count of 0 is known."""
        samples = by_signal(
            self._source(build)._parse(fixture_result("sentry_null_aggregates.json"))
        )
        assert samples[Signal.ERROR_RATE].unknown is UnknownReason.NO_DATA
        assert samples[Signal.ERROR_RATE].requests == 0
        assert samples[Signal.LATENCY_P95_S].unknown is UnknownReason.NO_DATA
        assert samples[Signal.REQUEST_COUNT].value == 0

    def test_null_aggregates_with_requests(self, build: Build) -> None:
        """Null aggregates are no_data even when there were requests; never 0."""
        samples = by_signal(
            self._source(build)._parse(fixture_result("sentry_null_with_count.json"))
        )
        assert samples[Signal.ERROR_RATE].value is None
        assert samples[Signal.ERROR_RATE].unknown is UnknownReason.NO_DATA
        assert samples[Signal.LATENCY_P95_S].unknown is UnknownReason.NO_DATA
        assert samples[Signal.REQUEST_COUNT].value == 12

    def test_empty_data(self, build: Build) -> None:
        """An empty window (data: []) is no_data for every signal."""
        samples = self._source(build)._parse(fixture_result("sentry_empty.json"))
        assert {s.unknown for s in samples} == {UnknownReason.NO_DATA}
        assert len(samples) == 3

    @pytest.mark.parametrize(
        ("row", "bad"),
        [
            ({"failure_rate()": "high", "p95(span.duration)": 1, "count()": 5}, Signal.ERROR_RATE),
            ({"failure_rate()": 1.5, "p95(span.duration)": 1, "count()": 5}, Signal.ERROR_RATE),
            ({"failure_rate()": 0.1, "p95(span.duration)": -3, "count()": 5}, Signal.LATENCY_P95_S),
            (
                {"failure_rate()": 0.1, "p95(span.duration)": 1, "count()": 2.5},
                Signal.REQUEST_COUNT,
            ),
            ({"failure_rate()": 0.1, "count()": 5}, Signal.LATENCY_P95_S),
            ({"failure_rate()": True, "p95(span.duration)": 1, "count()": 5}, Signal.ERROR_RATE),
        ],
    )
    def test_wrong_types_and_missing_fields(
        self, build: Build, row: dict[str, object], bad: str
    ) -> None:
        """A value of the wrong type or range, or a missing column, is a provider_error."""
        body = json.dumps({"data": [row], "meta": {}}).encode()
        samples = by_signal(self._source(build)._parse(Response(200, {}, body, "", 0.0)))
        assert samples[bad].unknown is UnknownReason.PROVIDER_ERROR

    def test_nan_is_not_a_rate(self, build: Build) -> None:
        """NaN (which Python's json accepts) is not read as a value."""
        body = b'{"data": [{"failure_rate()": NaN, "p95(span.duration)": 1, "count()": 5}]}'
        samples = by_signal(self._source(build)._parse(Response(200, {}, body, "", 0.0)))
        assert samples[Signal.ERROR_RATE].unknown is UnknownReason.PROVIDER_ERROR

    def test_seconds_unit_is_respected(self, build: Build) -> None:
        """If Sentry says the p95 is in seconds, it is not divided by 1000."""
        body = json.dumps(
            {
                "data": [{"failure_rate()": 0, "p95(span.duration)": 2.5, "count()": 9}],
                "meta": {"units": {"p95(span.duration)": "second"}},
            }
        ).encode()
        samples = by_signal(self._source(build)._parse(Response(200, {}, body, "", 0.0)))
        assert samples[Signal.LATENCY_P95_S].value == 2.5


class TestSentryPoll:
    async def test_success(self, sentry: FakeSentry, build: Build) -> None:
        """Against the fake: the three signals, with the count on the error rate."""
        sentry.error_rate, sentry.p95_ms, sentry.count = 0.031, 1500.0, 800
        samples = by_signal(await build(config(sentry.url)).poll())
        assert samples[Signal.ERROR_RATE].value == pytest.approx(0.031)
        assert samples[Signal.ERROR_RATE].requests == 800
        assert samples[Signal.ERROR_RATE].source == "web/sentry"
        assert samples[Signal.LATENCY_P95_S].value == pytest.approx(1.5)

    async def test_empty_window_is_no_data(self, sentry: FakeSentry, build: Build) -> None:
        """No events in the window: every signal no_data, and the source is not failing."""
        sentry.empty = True
        source = build(config(sentry.url))
        samples = await source.poll()
        assert {s.unknown for s in samples} == {UnknownReason.NO_DATA}
        assert not source.failing

    async def test_5xx_then_success(self, sentry: FakeSentry, build: Build) -> None:
        """A 502 is retried and the poll still reports values."""
        sentry.fail_next(Fault.html(502))
        source = build(config(sentry.url))
        samples = by_signal(await source.poll())
        assert samples[Signal.ERROR_RATE].known
        assert len(sentry.requests) == 2
        assert source.errors["http_502"] == 1

    async def test_5xx_forever_is_bounded(
        self, sentry: FakeSentry, build: Build, clock: FakeClock
    ) -> None:
        """Persistent 500s stop after the attempts, inside the interval, as provider_error."""
        sentry.fail_always(Fault(status=500, body="Internal Error"))
        source = build(config(sentry.url, interval=60, attempts=4))
        samples = await source.poll()
        assert {s.unknown for s in samples} == {UnknownReason.PROVIDER_ERROR}
        assert "Sentry answered 500" in samples[0].detail
        assert len(sentry.requests) == 4
        assert sum(clock.slept) < 60
        assert source.errors["http_500"] == 4

    async def test_slow_beyond_timeout(self, sentry: FakeSentry, build: Build) -> None:
        """Answers slower than the timeout are timeouts, retried, then unknown."""
        sentry.fail_always(Fault.slow(2.0))
        source = build(config(sentry.url, attempts=2))
        samples = await source.poll()
        assert {s.unknown for s in samples} == {UnknownReason.PROVIDER_ERROR}
        assert "did not answer within" in samples[0].detail
        assert source.errors["timeout"] == 2

    async def test_connection_refused(self, build: Build) -> None:
        """A closed port is a provider_error naming the connection failure."""
        source = build(config(closed_port_url()))
        samples = await source.poll()
        assert {s.unknown for s in samples} == {UnknownReason.PROVIDER_ERROR}
        assert "cannot connect to Sentry" in samples[0].detail

    async def test_html_error_page(self, sentry: FakeSentry, build: Build) -> None:
        """A 200 HTML page (a proxy's login page) is malformed, not retried."""
        sentry.fail_next(Fault(status=200, body="<!DOCTYPE html><html>", content_type="text/html"))
        source = build(config(sentry.url))
        samples = await source.poll()
        assert {s.unknown for s in samples} == {UnknownReason.PROVIDER_ERROR}
        assert "HTML" in samples[0].detail
        assert len(sentry.requests) == 1
        assert source.errors["malformed"] == 1

    async def test_no_data_list(self, sentry: FakeSentry, build: Build) -> None:
        """JSON without a data list is malformed."""
        sentry.fail_next(Fault.json(200, {"detail": "weird"}))
        samples = await build(config(sentry.url)).poll()
        assert "no 'data' list" in samples[0].detail

    async def test_400_names_sentrys_detail(self, sentry: FakeSentry, build: Build) -> None:
        """A 400 is not retried and carries Sentry's detail message."""
        sentry.fail_next(Fault.json(400, {"detail": "Invalid query: foo"}))
        samples = await build(config(sentry.url)).poll()
        assert "Invalid query: foo" in samples[0].detail
        assert len(sentry.requests) == 1


class TestSentryAuth:
    @pytest.mark.parametrize("status", [401, 403])
    async def test_rejected_token_is_not_retried_and_names_the_fix(
        self, sentry: FakeSentry, build: Build, status: int
    ) -> None:
        """401/403: one request, a message that says what to fix, the token nowhere."""
        sentry.fail_always(Fault.json(status, {"detail": "Invalid token"}))
        source = build(config(sentry.url))
        with capture_logs() as logs:
            first = await source.poll()
            second = await source.poll()
        assert len(sentry.requests) == 2  # one per poll, never retried
        detail = first[0].detail
        assert f"Sentry rejected the credentials ({status})" in detail
        assert "org:read" in detail
        assert [e["event"] for e in logs] == ["source_failed"]
        assert CANARY_SECRET not in repr(first + second) + repr(logs)
        assert source.errors[f"http_{status}"] == 2

    async def test_wrong_token_against_the_fake(self, build: Build) -> None:
        """The fake really checks the bearer token, and the reply never echoes it."""
        async with FakeSentry(token="the-right-one") as fake:
            with capture_logs() as logs:
                samples = await build(config(fake.url)).poll()
        assert "(401)" in samples[0].detail
        assert CANARY_SECRET not in repr(samples) + repr(logs)

    async def test_secret_echoed_by_a_server_is_scrubbed(
        self, sentry: FakeSentry, build: Build
    ) -> None:
        """Even a server that echoes the token in its error body cannot leak it into details."""
        sentry.fail_next(Fault.json(400, {"detail": f"bad header Bearer {CANARY_SECRET}"}))
        with capture_logs() as logs:
            samples = await build(config(sentry.url)).poll()
        assert CANARY_SECRET not in repr(samples) + repr(logs)
        assert "[redacted:sentry_token]" in samples[0].detail


class TestSentryRateLimits:
    async def test_429_waits_for_the_reset_then_succeeds(
        self, sentry: FakeSentry, build: Build, clock: FakeClock
    ) -> None:
        """A 429 whose reset is near is retried after sleeping exactly until the reset."""
        reset = clock.now().timestamp() + 7
        sentry.fail_next(FakeSentry.rate_limited(reset))
        source = build(config(sentry.url))
        samples = by_signal(await source.poll())
        assert samples[Signal.ERROR_RATE].known
        assert clock.slept == [7.0]
        assert source.errors["rate_limited"] == 1

    async def test_429_body_is_a_bare_string(self, sentry: FakeSentry) -> None:
        """The fake's 429 body is the middleware's bare JSON string."""
        sentry.fail_next(FakeSentry.rate_limited(0))
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"{sentry.url}/api/0/organizations/acme/events/") as response,
        ):
            assert response.status == 429
            assert await response.json() == RATE_LIMIT_MESSAGE

    async def test_429_far_reset_skips_polls_until_then(
        self, sentry: FakeSentry, build: Build, clock: FakeClock
    ) -> None:
        """A reset beyond the interval: no retry, and no request until the reset time."""
        reset = clock.now().timestamp() + 300
        sentry.fail_next(FakeSentry.rate_limited(reset))
        source = build(config(sentry.url, interval=60))
        first = await source.poll()
        until = datetime.fromtimestamp(reset, UTC).strftime("%H:%M:%SZ")
        assert {s.unknown for s in first} == {UnknownReason.PROVIDER_ERROR}
        assert first[0].detail == f"Sentry rate-limited the watchdog until {until}"
        assert clock.slept == []
        assert source.errors["rate_limited"] == 1
        clock.advance(60)
        skipped = await source.poll()
        assert skipped[0].detail == f"Sentry rate-limited the watchdog until {until}"
        assert len(sentry.requests) == 1
        clock.advance(240)
        after = by_signal(await source.poll())
        assert after[Signal.ERROR_RATE].known
        assert len(sentry.requests) == 2

    async def test_reset_header_name_is_case_insensitive(
        self, sentry: FakeSentry, build: Build, clock: FakeClock
    ) -> None:
        """A proxy that lower-cases header names does not hide the reset time."""
        reset = clock.now().timestamp() + 5
        fault = FakeSentry.rate_limited(reset)
        headers = {name.lower(): value for name, value in fault.headers.items()}
        sentry.fail_next(Fault(429, fault.body, fault.content_type, headers))
        samples = by_signal(await build(config(sentry.url)).poll())
        assert samples[Signal.ERROR_RATE].known
        assert clock.slept == [5.0]

    async def test_429_with_retry_after(
        self, sentry: FakeSentry, build: Build, clock: FakeClock
    ) -> None:
        """Retry-After is honoured when the reset header is absent."""
        sentry.fail_next(FakeSentry.rate_limited(None, retry_after="4"))
        samples = by_signal(await build(config(sentry.url)).poll())
        assert samples[Signal.ERROR_RATE].known
        assert clock.slept == [4.0]

    async def test_429_without_headers_backs_off_exponentially(
        self, sentry: FakeSentry, build: Build, clock: FakeClock
    ) -> None:
        """Without any header (a proxy, or self-hosted) retries back off 1 s, 2 s, 4 s."""
        sentry.fail_next(*[FakeSentry.rate_limited(None)] * 3)
        samples = by_signal(await build(config(sentry.url, attempts=4)).poll())
        assert samples[Signal.ERROR_RATE].known
        assert clock.slept == [1.0, 2.0, 4.0]

    async def test_repeated_429_without_headers_spaces_polls_out(
        self, sentry: FakeSentry, build: Build, clock: FakeClock
    ) -> None:
        """Polls that keep ending in a headerless 429 skip 0, then 1, then 3 intervals."""
        sentry.fail_always(FakeSentry.rate_limited(None))
        source = build(config(sentry.url, interval=60, attempts=1))
        made = []
        for _ in range(8):
            before = len(sentry.requests)
            await source.poll()
            made.append(len(sentry.requests) - before)
            clock.advance(60)
        assert made == [1, 1, 0, 1, 0, 0, 0, 1]

    async def test_spent_budget_waits_for_reset(
        self, sentry: FakeSentry, build: Build, clock: FakeClock
    ) -> None:
        """Remaining=0 on a success: the next poll before the reset makes no request."""
        sentry.remaining = 0
        sentry.reset_at = clock.now().timestamp() + 90
        source = build(config(sentry.url, interval=60))
        assert by_signal(await source.poll())[Signal.ERROR_RATE].known
        clock.advance(60)
        skipped = await source.poll()
        assert skipped[0].unknown is UnknownReason.PROVIDER_ERROR
        assert len(sentry.requests) == 1


class TestFakeSentry:
    @pytest.mark.parametrize(
        ("query", "detail"),
        [
            ("dataset=spans", "No columns selected"),
            ("field=count()", "dataset is a required parameter"),
        ],
    )
    async def test_rejects_requests_without_required_params(
        self, sentry: FakeSentry, query: str, detail: str
    ) -> None:
        """The fake answers 400 {"detail": ..} without field or dataset, like Sentry."""
        async with (
            aiohttp.ClientSession() as client,
            client.get(
                f"{sentry.url}/api/0/organizations/acme/events/?{query}",
                headers={"Authorization": f"Bearer {CANARY_SECRET}"},
            ) as response,
        ):
            assert response.status == 400
            assert await response.json() == {"detail": detail}
