"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from tests.tools import require_tool
from watchdog.logs import unconfigure


@pytest.fixture
def pg_dsn() -> str:
    """DSN of the throwaway PostgreSQL started by scripts/tools.sh."""
    return require_tool("WATCHDOG_TEST_PG_DSN")


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Commands configure structlog globally (level, output); undo it after every test so
    one test's configuration never hides another test's captured logs."""
    yield
    structlog.reset_defaults()
    unconfigure()
