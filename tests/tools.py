"""Finding the real tools the suite runs against (set up by scripts/tools.sh).

Locally a missing tool skips its tests; under CI (WATCHDOG_REQUIRE_TOOLS=1) it fails them,
so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(env: str, fallback: str | None = None) -> str:
    """Path (or DSN) of a real tool named by ``env``, or found on PATH as ``fallback``."""
    path = os.environ.get(env) or (shutil.which(fallback) if fallback else None)
    if path:
        return path
    if os.environ.get("WATCHDOG_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{env} is not set: scripts/tools.sh should have installed it")
    pytest.skip(f"{env} not available (run scripts/test.sh to install it)")
