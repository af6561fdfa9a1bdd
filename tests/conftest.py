"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

from tests.tools import require_tool


@pytest.fixture
def pg_dsn() -> str:
    """DSN of the throwaway PostgreSQL started by scripts/tools.sh."""
    return require_tool("WATCHDOG_TEST_PG_DSN")
