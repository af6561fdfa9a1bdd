"""Fixtures for the source tests: a fake clock, one real HTTP session, and a builder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import TypeAdapter

from watchdog.core.model import Sample
from watchdog.sources import HttpSource, SourceConfig, build_source
from watchdog.testing.clock import FakeClock

#: a secret no message, sample or log line may ever contain
CANARY_SECRET = "sk-canary-7f3a9c1e-do-not-leak"

Build = Callable[[dict[str, Any]], HttpSource]

_ADAPTER: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)


def parse_config(raw: dict[str, Any]) -> SourceConfig:
    return _ADAPTER.validate_python(raw)


def by_signal(samples: list[Sample]) -> dict[str, Sample]:
    signals = [s.signal for s in samples]
    assert len(signals) == len(set(signals)), f"duplicate signals: {signals}"
    return {s.signal: s for s in samples}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def semaphore() -> asyncio.Semaphore:
    return asyncio.Semaphore(8)


@pytest.fixture
def build(session: aiohttp.ClientSession, clock: FakeClock, semaphore: asyncio.Semaphore) -> Build:
    """Build a source of target ``web`` from a raw config dict, as the daemon would."""

    def _build(raw: dict[str, Any]) -> HttpSource:
        return build_source(
            parse_config(raw), target="web", session=session, clock=clock, semaphore=semaphore
        )

    return _build
