"""A PostgreSQL that accepts connections and never answers fails start-up in seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.daemon.processes import run_watchdog

PASSWORD = "canary-dead-pg-pass"


@pytest.fixture
async def black_hole() -> AsyncIterator[int]:
    """A TCP port that accepts every connection and then says nothing, ever."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.timeout(30)
async def test_run_fails_fast_against_a_silent_database(black_hole: int, tmp_path: Path) -> None:
    """``watchdog run`` exits 1 within a few seconds with one line naming host, port and
    the fix, and without the DSN's password (it used to take 10.8 s)."""
    pytest.importorskip("asyncpg")
    from watchdog.store.postgres import CONNECT_TIMEOUT_S

    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
store:
  url: postgresql://watchdog:{PASSWORD}@127.0.0.1:{black_hole}/watchdog
server:
  host: 127.0.0.1
  port: 0
targets:
  - name: web
    sources:
      - kind: health
        url: http://127.0.0.1:9/api/health
"""
    )
    started = time.monotonic()
    code, _, stderr = await run_watchdog("run", "--config", str(config), limit_s=25)
    took = time.monotonic() - started
    assert code == 1, stderr
    assert took < CONNECT_TIMEOUT_S + 4, f"start-up failed only after {took:.1f}s"
    assert f"PostgreSQL at 127.0.0.1:{black_hole} did not answer within 3s" in stderr
    assert "Traceback" not in stderr
    assert PASSWORD not in stderr
