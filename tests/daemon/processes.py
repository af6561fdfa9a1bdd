"""Running the real ``watchdog`` command as a child process, as an operator would."""

from __future__ import annotations

import asyncio
import os
import sys


def clean_env() -> dict[str, str]:
    """This process's environment without any ``WATCHDOG_*`` variable (the test's CI
    settings must not reach the child's config)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}


async def spawn_watchdog(
    *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """``python -m watchdog ARGS`` with stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "watchdog",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env() if env is None else env,
    )


async def run_watchdog(*args: str, limit_s: float = 60) -> tuple[int, str, str]:
    """Run ``watchdog ARGS`` to the end: exit code, stdout, stderr."""
    proc = await spawn_watchdog(*args)
    out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    return proc.returncode or 0, out.decode(), err.decode()
