"""The version source: a string attribute, never guessed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.sources.conftest import Build
from watchdog.core.model import Signal, UnknownReason
from watchdog.testing.fake_app import FakeApp
from watchdog.testing.server import Fault, closed_port_url


@pytest.fixture
async def app() -> AsyncIterator[FakeApp]:
    async with FakeApp(version="dpl_123", commit="abc1234") as fake:
        yield fake


class TestVersionSource:
    @pytest.mark.parametrize(
        ("field", "expected"), [("commit", "abc1234"), ("deployment.id", "dpl_123")]
    )
    async def test_reads_a_json_field_path(
        self, app: FakeApp, build: Build, field: str, expected: str
    ) -> None:
        """A dotted field path picks the version out of the JSON body."""
        source = build({"kind": "version", "url": f"{app.url}/api/version", "field": field})
        [sample] = await source.poll()
        assert sample.signal == Signal.VERSION
        assert sample.value == expected

    async def test_reads_plain_text(self, app: FakeApp, build: Build) -> None:
        """Without a field, the stripped body is the version."""
        [sample] = await build({"kind": "version", "url": f"{app.url}/api/version.txt"}).poll()
        assert sample.value == "abc1234"

    @pytest.mark.parametrize("blank", [" ", "\t\n", ""])
    async def test_a_blank_version_is_no_version(
        self, app: FakeApp, build: Build, blank: str
    ) -> None:
        """Whitespace is no version at all, never a deployment called " " (found by the
        response fuzz)."""
        app.deploy(blank, blank)
        source = build({"kind": "version", "url": f"{app.url}/api/version", "field": "commit"})
        [sample] = await source.poll()
        assert sample.value is None
        assert sample.unknown is UnknownReason.NO_DATA

    async def test_follows_a_deploy(self, app: FakeApp, build: Build) -> None:
        """After a deploy the next poll reports the new version."""
        source = build({"kind": "version", "url": f"{app.url}/api/version", "field": "commit"})
        await source.poll()
        app.deploy("dpl_456", "def5678")
        [sample] = await source.poll()
        assert sample.value == "def5678"

    async def test_missing_field_is_provider_error(self, app: FakeApp, build: Build) -> None:
        """A field the body lacks is unknown (provider_error) naming the field."""
        source = build({"kind": "version", "url": f"{app.url}/api/version", "field": "sha"})
        [sample] = await source.poll()
        assert sample.value is None
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert "'sha'" in sample.detail
        assert source.errors["malformed"] == 1

    async def test_wrong_type_is_provider_error(self, app: FakeApp, build: Build) -> None:
        """A field holding an object is not a version."""
        source = build({"kind": "version", "url": f"{app.url}/api/version", "field": "deployment"})
        [sample] = await source.poll()
        assert sample.unknown is UnknownReason.PROVIDER_ERROR

    async def test_html_error_page_is_provider_error(self, app: FakeApp, build: Build) -> None:
        """A CDN's HTML page served with 200 is not read as a version."""
        app.fail_next(Fault(status=200, body="<html>oops</html>", content_type="text/html"))
        [sample] = await build({"kind": "version", "url": f"{app.url}/api/version.txt"}).poll()
        assert sample.value is None
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert "HTML" in sample.detail

    async def test_empty_version_is_no_data(self, app: FakeApp, build: Build) -> None:
        """An empty body says nothing: no_data."""
        app.fail_next(Fault(status=200, body="  \n"))
        [sample] = await build({"kind": "version", "url": f"{app.url}/api/version.txt"}).poll()
        assert sample.unknown is UnknownReason.NO_DATA

    async def test_5xx_then_success_retries(self, app: FakeApp, build: Build) -> None:
        """A transient 502 is retried within the poll."""
        app.fail_next(Fault.html(502))
        source = build({"kind": "version", "url": f"{app.url}/api/version", "field": "commit"})
        [sample] = await source.poll()
        assert sample.value == "abc1234"
        assert len(app.requests) == 2
        assert source.errors["http_502"] == 1

    async def test_refused_is_provider_error(self, build: Build) -> None:
        """An unreachable version endpoint is unknown, not a version change."""
        source = build({"kind": "version", "url": f"{closed_port_url()}/api/version"})
        [sample] = await source.poll()
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert source.errors["connect"] == 3
