"""The shared source machinery: helpers, concurrency bound, deadlines, safety net."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from tests.sources.conftest import Build, parse_config
from watchdog.clock import SystemClock
from watchdog.core.model import Sample, Signal, UnknownReason
from watchdog.sources import HealthSourceConfig, build_source
from watchdog.sources.base import (
    MISSING,
    HttpSource,
    SourceContext,
    basic_auth,
    json_path,
)
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_app import FakeApp
from watchdog.testing.server import Fault
from watchdog.transport import body_hint


class TestJsonPath:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("a", {"b": [10, {"c": "x"}]}),
            ("a.b.0", 10),
            ("a.b.1.c", "x"),
            ("a.b.2", MISSING),
            ("a.x", MISSING),
            ("a.b.c", MISSING),
            ("n", None),
        ],
    )
    def test_follows_dicts_and_list_indexes(self, path: str, expected: object) -> None:
        """Dotted paths walk dicts and list indexes; absence is MISSING, not None."""
        assert json_path({"a": {"b": [10, {"c": "x"}]}, "n": None}, path) == expected


class TestBodyHint:
    @pytest.mark.parametrize(
        ("body", "content_type", "hint"),
        [
            (b'{"detail": "Invalid token"}', "application/json", "Invalid token"),
            (b'"Limit is 40 requests"', "application/json", "Limit is 40 requests"),
            (b'{"error": {"code": "x", "message": "nope"}}', "", "nope"),
            (b"<html><body>502</body></html>", "text/html", "an HTML page"),
            (b"plain\n  text", "text/plain", "plain text"),
            (b"", "", ""),
        ],
    )
    def test_one_readable_line(self, body: bytes, content_type: str, hint: str) -> None:
        """Error bodies become one short line: the API's message, or 'an HTML page'."""
        assert body_hint(body, content_type) == hint


class TestBasicAuth:
    def test_header(self) -> None:
        """RFC 7617 Basic credentials."""
        assert basic_auth("service_role", "s3cret") == "Basic c2VydmljZV9yb2xlOnMzY3JldA=="


class TestConcurrencyAndDeadlines:
    async def test_no_free_slot_is_unknown_not_down(
        self, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """When the global bound has no slot for a whole interval, health is unknown, not 0."""
        async with FakeApp() as app:
            semaphore = asyncio.Semaphore(1)
            config = parse_config(
                {"kind": "health", "url": f"{app.url}/api/health", "interval": 0.3, "timeout": 0.1}
            )
            source = build_source(
                config, target="web", session=session, clock=clock, semaphore=semaphore
            )
            async with semaphore:
                samples = await source.poll()
            assert len(app.requests) == 0
        up = next(s for s in samples if s.signal == Signal.HEALTH_UP)
        assert up.value is None
        assert up.unknown is UnknownReason.PROVIDER_ERROR
        assert "request slot" in up.detail
        assert source.errors["watchdog_busy"] == 1

    async def test_slot_is_released_after_failures(
        self, build: Build, semaphore: asyncio.Semaphore
    ) -> None:
        """Failed requests give their slot back."""
        async with FakeApp() as app:
            app.fail_always(Fault(status=503))
            await build({"kind": "version", "url": f"{app.url}/api/version"}).poll()
        assert semaphore._value == 8

    async def test_poll_never_overruns_its_interval(self, session: aiohttp.ClientSession) -> None:
        """With real time, retries of a slow upstream stop so the poll ends within its interval."""
        clock = SystemClock()
        async with FakeApp() as app:
            app.fail_always(Fault.slow(5.0))
            config = parse_config(
                {
                    "kind": "version",
                    "url": f"{app.url}/api/version",
                    "interval": 1,
                    "timeout": 0.2,
                    "attempts": 10,
                }
            )
            source = build_source(
                config,
                target="web",
                session=session,
                clock=clock,
                semaphore=asyncio.Semaphore(4),
            )
            started = clock.monotonic()
            [sample] = await source.poll()
            elapsed = clock.monotonic() - started
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert elapsed < 1.0
        assert 2 <= len(app.requests) < 10


class _Broken(HttpSource[HealthSourceConfig]):
    @property
    def signals(self) -> tuple[str, ...]:
        return ("error_rate",)

    async def _poll(self) -> list[Sample]:
        raise KeyError("a parser bug")


class TestSafetyNet:
    async def test_a_bug_becomes_an_unknown_sample(
        self, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """An exception inside a source is a provider_error sample, never a crash."""
        context = SourceContext("web", session, clock, asyncio.Semaphore(1))
        config = HealthSourceConfig(
            url="http://127.0.0.1:1/", name="broken", interval=timedelta(seconds=30)
        )
        source = _Broken(config, context)
        [sample] = await source.poll()
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert "KeyError" in sample.detail
        assert source.errors["internal"] == 1
        assert source.failing


class _TwoAnswers(HttpSource[HealthSourceConfig]):
    """Two samples from one answer, then (after five seconds) one from a second answer."""

    clock: FakeClock

    @property
    def signals(self) -> tuple[str, ...]:
        return ("a", "b", "c")

    async def _poll(self) -> list[Sample]:
        await self._request("GET", self.config.url)
        first = [self._sample("a", 1.0), self._unknown("b", UnknownReason.NO_DATA, "none")]
        self.clock.advance(5)
        await self._request("GET", self.config.url)
        return [*first, self._sample("c", 1.0)]


class TestStamps:
    async def test_one_clock_reading_per_answer(
        self, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Samples built from one answer share one time; a later answer's samples get theirs."""
        async with FakeApp() as app:
            config = HealthSourceConfig(url=f"{app.url}/api/health", interval=timedelta(seconds=30))
            source = _TwoAnswers(config, SourceContext("web", session, clock, asyncio.Semaphore(1)))
            source.clock = clock
            started = clock.now()
            a, b, c = await source.poll()
        assert a.at == b.at == started
        assert c.at == started + timedelta(seconds=5)
        # outside a poll nothing is remembered: a sample reads the clock
        clock.advance(1)
        assert source._sample("a", 1.0).at == started + timedelta(seconds=6)


class TestSourceConfig:
    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ({"interval": "30s", "timeout": "30s"}, "must be shorter than interval"),
            ({"url": "ftp://x"}, "http:// or https://"),
            ({"url": "https://user:pw@app.example.com/h"}, "do not put credentials in the URL"),
            ({"interval": "soon"}, "invalid duration"),
            ({"name": "Bad Name"}, "should match pattern"),
        ],
    )
    def test_rejects_bad_values(self, raw: dict[str, Any], message: str) -> None:
        """Bad durations, URLs and names fail validation with a readable message."""
        with pytest.raises(ValueError, match=message):
            parse_config({"kind": "health", "url": "https://app.example.com/api/health", **raw})

    def test_durations_as_strings_or_seconds(self) -> None:
        """interval and timeout accept '1m' / '30s' or plain seconds."""
        parsed = parse_config(
            {"kind": "health", "url": "https://a.example.com", "interval": "1m", "timeout": 2.5}
        )
        assert parsed.interval.total_seconds() == 60
        assert parsed.timeout.total_seconds() == 2.5
