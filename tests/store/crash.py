"""Run a store write in a child process that SIGKILLs itself the moment the write returns.

Proves "a write that returned survives kill -9": nothing after the await (no close, no
atexit, no flush) runs in the child.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, os, signal, sys
from datetime import UTC, datetime, timedelta
from watchdog.store.base import ActionRecord
from watchdog.store.factory import store_from_url

async def main() -> None:
    kind, url, schema = sys.argv[1], sys.argv[2], sys.argv[3]
    if kind == "postgres":
        from watchdog.store.postgres import PostgresStore
        store = PostgresStore(url, schema=schema, lease_clock="caller")
    else:
        store = store_from_url(url)
    await store.open()
    now = datetime(2024, 5, 1, tzinfo=UTC)
    await store.acquire("crash-child", timedelta(days=1), now)
    inserted = await store.record_intent(
        ActionRecord(key="crash/rollback", kind="rollback", target="web", created_at=now)
    )
    if inserted:
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(3)

asyncio.run(main())
"""


async def write_then_sigkill(kind: str, url: str, schema: str = "") -> int:
    """Return the child's exit code (``-SIGKILL`` when it reached the kill)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        kind,
        url,
        schema,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    code = proc.returncode
    assert code is not None
    if code != -signal.SIGKILL:
        raise AssertionError(f"child exited {code}: {err.decode(errors='replace')[-2000:]}")
    return code
