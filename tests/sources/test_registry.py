"""The registry: one config model per kind, discriminated by ``kind``."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from tests.sources.conftest import parse_config
from watchdog.sources import BUILDERS, Source, build_source
from watchdog.testing.clock import FakeClock

EXAMPLES: dict[str, dict[str, Any]] = {
    "health": {"url": "https://app.example.com/api/health"},
    "version": {"url": "https://app.example.com/api/version", "field": "commit"},
    "detailed": {
        "url": "https://app.example.com/api/health/detailed",
        "db_connection": {"path": "components.database.status"},
    },
    "smoke": {"checks": [{"name": "home", "url": "https://app.example.com/"}]},
    "sentry": {"org": "acme", "project": "web", "token": "t"},
    "prometheus": {
        "base_url": "https://prom.example.com",
        "queries": [{"signal": "error_rate", "query": "vector(0)"}],
    },
    "supabase": {"project_ref": "abcd", "secret_key": "k"},
}


class TestRegistry:
    def test_every_kind_is_registered(self) -> None:
        """Each kind with an example has a builder, and vice versa."""
        assert set(BUILDERS) == set(EXAMPLES)

    @pytest.mark.parametrize("kind", sorted(EXAMPLES))
    async def test_builds_each_kind(self, kind: str, clock: FakeClock) -> None:
        """build_source turns each kind's config into a named, polled Source."""
        config = parse_config({"kind": kind, **EXAMPLES[kind]})
        async with aiohttp.ClientSession() as session:
            source = build_source(
                config, target="shop", session=session, clock=clock, semaphore=asyncio.Semaphore(1)
            )
            assert isinstance(source, Source)
            assert source.name == f"shop/{kind}"
            assert source.target == "shop"
            assert source.interval == config.interval
            assert not source.errors

    def test_name_overrides_kind(self) -> None:
        """A configured name distinguishes two sources of the same kind."""
        config = parse_config({"kind": "smoke", "name": "checkout", **EXAMPLES["smoke"]})
        assert config.source_name("shop") == "shop/checkout"

    @pytest.mark.parametrize("kind", sorted(EXAMPLES))
    def test_unknown_keys_are_rejected(self, kind: str) -> None:
        """Every kind rejects keys it does not know."""
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            parse_config({"kind": kind, **EXAMPLES[kind], "intervall": "30s"})

    def test_unknown_kind(self) -> None:
        """An unknown kind names the kinds that exist."""
        with pytest.raises(ValidationError, match="'health'"):
            parse_config({"kind": "datadog"})
