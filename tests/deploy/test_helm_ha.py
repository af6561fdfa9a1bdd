"""HA as the chart renders it really elects one leader and rolls back once.

The chart is rendered in HA mode (ci/ha-values.yaml, with the config pointed at the fake
Vercel, app, PagerDuty and Slack of tests/daemon/support.py), and each of two "pods" is laid
out on disk from the rendered manifests: its ConfigMap files, its Secret mount, and its env
exactly as rendered, with only the Secret's DSN substituted by the test PostgreSQL's (in a
schema of its own). Two real `watchdog run` processes start from that. The only additions
are WATCHDOG_SERVER__HOST/PORT, because the two "pods" share this machine's loopback instead
of having a network namespace each.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml

from tests.daemon.support import GOOD, ROUTING_KEY, VERCEL_TOKEN, World
from tests.deploy.support import CHART, Manifest, Pod, clean_env, materialize
from tests.realtools import free_port

pytestmark = [pytest.mark.tool, pytest.mark.postgres, pytest.mark.timeout(90)]

HA = CHART / "ci" / "ha-values.yaml"
WATCHDOG = Path(sys.executable).with_name("watchdog")
API_TOKEN = "canary-ha-api-token"


def stand_in_values(world: World) -> dict[str, Any]:
    """Chart values that point the HA config at the fakes, with fast intervals."""
    secret = "${file:/run/secrets/watchdog/%s}"
    app = world.app.url
    return {
        "config": {
            "shadow": False,
            "log": {"level": "info"},
            "scheduler": {"tick": "100ms", "jitter": 0.0, "max_concurrency": 4},
            "leader": {"ttl": "1s"},
            "pager": {
                "kind": "pagerduty",
                "routing_key": secret % "pagerduty_routing_key",
                "base_url": world.pagerduty.url,
            },
            "chat": {"kind": "slack", "webhook_url": secret % "slack_webhook_url"},
            "dispatcher": {
                "retry_attempts": 2,
                "retry_initial": "10ms",
                "retry_maximum": "50ms",
                "retry_deadline": "5s",
            },
            "targets": [
                {
                    "name": "web",
                    "sources": [
                        {
                            "kind": "health",
                            "url": f"{app}/api/health",
                            "interval": "200ms",
                            "timeout": "150ms",
                        }
                    ],
                    "deployer": {
                        "kind": "vercel",
                        "token": secret % "vercel_token",
                        "project_id": world.vercel.project_id,
                        "production_domain": world.vercel.production_domain,
                        "base_url": world.vercel.url,
                        "poll_interval": "50ms",
                        "conflict_wait": "50ms",
                    },
                    "verify": {
                        "health_url": f"{app}/api/health",
                        "version_url": f"{app}/api/version",
                        "poll_interval": "50ms",
                        "verify_timeout": "20s",
                    },
                }
            ],
        }
    }


@dataclass
class Replica:
    pod: Pod
    port: int
    proc: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def get(self, session: aiohttp.ClientSession, path: str) -> Any:
        async with session.get(self.url + path) as resp:
            assert resp.status == 200, (path, resp.status)
            return await resp.json()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def start(pod: Pod) -> Replica:
    port = free_port()
    env = clean_env(
        {
            **pod.env,
            "WATCHDOG_SERVER__HOST": "127.0.0.1",
            "WATCHDOG_SERVER__PORT": str(port),
        }
    )
    log = pod.root / "watchdog.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(WATCHDOG), *pod.args, env=env, cwd=pod.root, stdout=out, stderr=out
        )
    return Replica(pod, port, proc, log)


async def stop(replica: Replica) -> None:
    if replica.proc.returncode is not None:
        return
    replica.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(replica.proc.wait(), 20)
    except TimeoutError:
        replica.proc.kill()
        await replica.proc.wait()


async def until(predicate: Callable[[], Any], limit_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def live_world() -> AsyncIterator[World]:
    w = World(now=lambda: datetime.now(UTC))
    await w.start()
    yield w
    await w.close()


@pytest.fixture
async def ha_dsn(pg_dsn: str) -> AsyncIterator[str]:
    """The test PostgreSQL's DSN in a schema of its own (the DSN's search_path selects it)."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    sep = "&" if "?" in pg_dsn else "?"
    yield f"{pg_dsn}{sep}search_path={schema}"
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def test_two_replicas_as_rendered_elect_one_leader_and_roll_back_once(
    render: Callable[..., list[Manifest]],
    live_world: World,
    ha_dsn: str,
    tmp_path: Path,
) -> None:
    """Two replicas started from the HA rendering share the PostgreSQL store: exactly one
    leads (the lease row names it), the other follows, and an outage both of them see ends
    in exactly one rollback request at Vercel."""
    world = live_world
    values = tmp_path / "stand-ins.yaml"
    values.write_text(yaml.safe_dump(stand_in_values(world)))
    manifests = render(HA, values)
    config = yaml.safe_load(
        next(m for m in manifests if m["kind"] == "ConfigMap")["data"]["config.yaml"]
    )
    assert config["leader"]["required"] is True
    secret_files = {
        "api_token": API_TOKEN,
        "vercel_token": VERCEL_TOKEN,
        "pagerduty_routing_key": ROUTING_KEY,
        "slack_webhook_url": world.slack.webhook_url,
    }
    pods = [
        materialize(
            manifests,
            tmp_path / name,
            secret_keys={("watchdog-store", "store-url"): ha_dsn},
            secret_files=secret_files,
        )
        for name in ("pod-a", "pod-b")
    ]
    replicas = [await start(pod) for pod in pods]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def statuses() -> list[dict[str, Any]]:
                return [await r.get(session, "/api/status") for r in replicas]

            async def one_leader() -> bool:
                for r in replicas:
                    assert r.proc.returncode is None, f"a replica exited:\n{r.logs()}"
                try:
                    return sum(s["leader"] for s in await statuses()) == 1
                except aiohttp.ClientError:
                    return False  # not listening yet

            await until(one_leader, 20, "both replicas up, exactly one leading")
            for _ in range(10):  # and it stays that way
                assert sum(s["leader"] for s in await statuses()) == 1
                await asyncio.sleep(0.1)
            flags = [s["leader"] for s in await statuses()]
            leader = replicas[flags.index(True)]
            follower = replicas[flags.index(False)]

            conn = await asyncpg.connect(ha_dsn)
            try:
                holders = [r["holder"] for r in await conn.fetch("SELECT holder FROM leases")]
            finally:
                await conn.close()
            assert len(holders) == 1
            assert holders[0].endswith(f"-{leader.proc.pid}"), (holders, leader.proc.pid)

            world.app.health_status = 500

            async def rolled_back() -> bool:
                return bool(world.rollback_posts()) and world.vercel.alias == GOOD

            await until(rolled_back, 30, "the rollback to the good deployment")
            await asyncio.sleep(2.0)  # time for a second replica to (wrongly) act too
            assert len(world.rollback_posts()) == 1, world.rollback_posts()
            flags = [s["leader"] for s in await statuses()]
            assert flags[replicas.index(leader)] is True
            assert flags[replicas.index(follower)] is False
            incidents = [await r.get(session, "/api/incidents") for r in replicas]
            assert incidents[0] == incidents[1]
            assert len(incidents[0]) == 1
    finally:
        for r in replicas:
            with contextlib.suppress(ProcessLookupError):
                await stop(r)
    for r in replicas:
        assert r.proc.returncode == 0, r.logs()
