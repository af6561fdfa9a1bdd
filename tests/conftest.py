"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import settings

from tests.tools import require_tool
from watchdog.logs import unconfigure

# CI replays the same examples every run (a landing is never red by the luck of the draw);
# a developer's runs draw new ones, and a failure found there prints its reproduction blob
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


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
