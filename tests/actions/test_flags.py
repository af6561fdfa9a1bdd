"""Feature-flag kill switches: exact requests for Unleash and LaunchDarkly, and their errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from watchdog.actions.flags import (
    LaunchDarklyConfig,
    LaunchDarklyFlag,
    UnleashConfig,
    UnleashFlag,
    launchdarkly_off_body,
    unleash_off_path,
)
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_flags import FakeLaunchDarkly, FakeUnleash
from watchdog.transport import CallError


@pytest.fixture
async def unleash() -> AsyncIterator[FakeUnleash]:
    async with FakeUnleash() as fake:
        fake.add_feature("default", "new-checkout")
        yield fake


@pytest.fixture
async def ld() -> AsyncIterator[FakeLaunchDarkly]:
    async with FakeLaunchDarkly() as fake:
        fake.add_flag("crm", "new-checkout")
        yield fake


class TestPayloads:
    def test_unleash_path(self) -> None:
        """The Unleash off endpoint is per project, feature and environment."""
        assert unleash_off_path("default", "new-checkout", "production") == (
            "/api/admin/projects/default/features/new-checkout/environments/production/off"
        )

    def test_launchdarkly_body(self) -> None:
        """The LaunchDarkly semantic patch turns the flag off in one environment."""
        assert launchdarkly_off_body("production", "watchdog: dpl_new regression") == {
            "environmentKey": "production",
            "comment": "watchdog: dpl_new regression",
            "instructions": [{"kind": "turnFlagOff"}],
        }


class TestUnleash:
    async def test_off(
        self, unleash: FakeUnleash, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """POST with no body and the raw token in Authorization turns the feature off."""
        cfg = UnleashConfig(
            base_url=unleash.url + "/", token=unleash.token, features=["new-checkout"]
        )
        flag = UnleashFlag(cfg, session, clock)
        assert list(flag.flags) == ["new-checkout"]
        await flag.disable("new-checkout", "watchdog")
        req = unleash.requests[0]
        assert req.method == "POST"
        assert req.headers["Authorization"] == unleash.token
        assert req.body == ""
        assert unleash.features[("default", "new-checkout")] == {"production": False}

    async def test_unknown_feature(
        self, unleash: FakeUnleash, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 404 is permanent and carries Unleash's message."""
        cfg = UnleashConfig(base_url=unleash.url, token=unleash.token, features=["nope"])
        with pytest.raises(CallError) as info:
            await UnleashFlag(cfg, session, clock).disable("nope", "watchdog")
        assert not info.value.retryable
        assert "Could not find feature nope" in str(info.value)

    async def test_bad_token(
        self, unleash: FakeUnleash, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A rejected token is permanent and the token is not in the error."""
        cfg = UnleashConfig(base_url=unleash.url, token="canary-unleash-77", features=["x"])
        with pytest.raises(CallError) as info:
            await UnleashFlag(cfg, session, clock).disable("new-checkout", "watchdog")
        assert not info.value.retryable
        assert "canary-unleash-77" not in str(info.value)


class TestLaunchDarkly:
    async def test_off(
        self, ld: FakeLaunchDarkly, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """PATCH with the semantic-patch content type, pinned API version and raw token."""
        cfg = LaunchDarklyConfig(
            base_url=ld.url, token=ld.token, project_key="crm", flags=["new-checkout"]
        )
        await LaunchDarklyFlag(cfg, session, clock).disable("new-checkout", "watchdog: inc-1")
        req = ld.requests[0]
        assert req.method == "PATCH"
        assert req.path == "/api/v2/flags/crm/new-checkout"
        assert req.headers["Authorization"] == ld.token
        assert req.headers["Content-Type"] == (
            "application/json; domain-model=launchdarkly.semanticpatch"
        )
        assert req.headers["LD-API-Version"] == "20240415"
        assert req.json() == {
            "environmentKey": "production",
            "comment": "watchdog: inc-1",
            "instructions": [{"kind": "turnFlagOff"}],
        }
        assert ld.flags[("crm", "new-checkout")] == {"production": False}

    async def test_429_reset_in_ms(
        self, ld: FakeLaunchDarkly, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """LaunchDarkly's reset header is epoch milliseconds."""
        reset_ms = int((clock.now().timestamp() + 4) * 1000)
        ld.fail(
            "patch",
            429,
            '{"code":"rate_limited","message":"slow down","id":"1"}',
            headers={"X-Ratelimit-Reset": str(reset_ms)},
        )
        cfg = LaunchDarklyConfig(token=ld.token, base_url=ld.url, project_key="crm", flags=["x"])
        with pytest.raises(CallError) as info:
            await LaunchDarklyFlag(cfg, session, clock).disable("new-checkout", "w")
        assert info.value.retryable
        assert info.value.retry_after == pytest.approx(4, abs=0.01)

    async def test_conflict_permanent(
        self, ld: FakeLaunchDarkly, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 400 (e.g. a pending approval conflict) is not retried."""
        ld.fail("patch", 400, '{"code":"invalid_request","message":"conflict","id":"1"}')
        cfg = LaunchDarklyConfig(token=ld.token, base_url=ld.url, project_key="crm", flags=["x"])
        with pytest.raises(CallError) as info:
            await LaunchDarklyFlag(cfg, session, clock).disable("new-checkout", "w")
        assert not info.value.retryable
        assert "conflict" in str(info.value)
