"""Real Prometheus and Alertmanager for the tests, as subprocesses on loopback.

Each runs from a throwaway directory on a free port and is stopped by its own process id;
``scripts/tools.sh`` installs the Debian packages and exports ``PROMETHEUS`` and
``ALERTMANAGER`` (TOOLING.md). Locally a missing binary skips the test, in CI it fails it
(:func:`tests.tools.require_tool`).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.tools import require_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Tool:
    """A started server: its base URL, its process and where it logs."""

    url: str
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        """The server's own log, for assertion messages."""
        return self.log.read_text(errors="replace")[-4000:]


async def _ready(tool: Tool, path: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while True:
            if tool.process.returncode is not None:
                raise AssertionError(f"{tool.url} exited: {tool.output()}")
            try:
                async with session.get(tool.url + path) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{tool.url}{path} not ready in {limit_s} s: {tool.output()}")
            await asyncio.sleep(0.1)


@asynccontextmanager
async def _serve(
    binary: str, workdir: Path, name: str, config: Any, *args: str
) -> AsyncIterator[Tool]:
    """Run ``binary`` with ``config`` (written as ``<name>.yml``) on a free loopback port until
    it answers ``/-/ready``; stop it by its own process afterwards."""
    port = free_port()
    path = workdir / f"{name}.yml"
    path.write_text(json.dumps(config))
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={path}",
            f"--web.listen-address=127.0.0.1:{port}",
            *args,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    tool = Tool(f"http://127.0.0.1:{port}", process, log)
    try:
        await _ready(tool, "/-/ready", 20.0)
        yield tool
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@asynccontextmanager
async def prometheus(
    workdir: Path, *, scrape: Mapping[str, str], rule_files: list[Path]
) -> AsyncIterator[Tool]:
    """Prometheus scraping each ``job -> host:port`` every second, evaluating ``rule_files``
    every second. The first scraped value shows after about 6 s (targets are picked up on a
    5 s tick, TOOLING.md)."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [address]}]}
            for job, address in scrape.items()
        ],
    }
    binary = require_tool("PROMETHEUS", "prometheus")
    tsdb = f"--storage.tsdb.path={workdir / 'tsdb'}"
    async with _serve(binary, workdir, "prometheus", config, tsdb) as tool:
        yield tool


@asynccontextmanager
async def alertmanager(workdir: Path, *, webhook: str) -> AsyncIterator[Tool]:
    """Alertmanager routing everything to ``webhook`` at once (no grouping delay), firing and
    resolved notifications both; no cluster (TOOLING.md: the empty address saves 4 s)."""
    config = {
        "route": {
            "receiver": "watchdog-test",
            "group_by": ["alertname", "target", "incident"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "watchdog-test",
                "webhook_configs": [{"url": webhook, "send_resolved": True}],
            }
        ],
    }
    binary = require_tool("ALERTMANAGER", "prometheus-alertmanager")
    storage = f"--storage.path={workdir / 'am-data'}"
    async with _serve(
        binary, workdir, "alertmanager", config, storage, "--cluster.listen-address="
    ) as tool:
        yield tool


async def get_json(url: str, **params: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()
