"""An open incident's alert survives a restart: against a REAL Alertmanager (Debian's
``prometheus-alertmanager``, installed by scripts/tools.sh), and PagerDuty's fake.

Alertmanager forgets an alert that is not re-sent within its ``resolve_timeout``; a daemon
that restarts mid-incident must re-assert the alert (same labels, same ``startsAt``) before
it decides anything, or on-call sees the P0 resolve while the incident is still open.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.daemon.support import (
    TARGET,
    World,
    build_daemon,
    crash,
    health,
    ingest_each,
    outage,
    settings_for,
    settle,
)
from tests.tools import require_tool
from watchdog.actions.alertmanager import AlertmanagerConfig
from watchdog.config import Settings
from watchdog.daemon import Daemon
from watchdog.store.sqlite import SqliteStore
from watchdog.testing.clock import FakeClock

#: Alertmanager's resolve_timeout here: an alert not re-sent for this long resolves
RESOLVE_TIMEOUT_S = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on loopback with a short resolve_timeout; yields its URL."""
    binary = require_tool("ALERTMANAGER", "prometheus-alertmanager")
    config = tmp_path / "am.yml"
    config.write_text(
        f"global:\n  resolve_timeout: {RESOLVE_TIMEOUT_S}s\n"
        "route:\n  receiver: blackhole\n  group_wait: 1h\n"
        "receivers:\n  - name: blackhole\n"
    )
    port = _free_port()
    log = (tmp_path / "am.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "am.log").read_text()[-2000:]) from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def firing(url: str, incident: str) -> list[dict[str, Any]]:
    """The incident's alerts Alertmanager holds as active right now (GET /api/v2/alerts)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/api/v2/alerts", params={"filter": f'incident="{incident}"'}) as resp,
    ):
        assert resp.status == 200
        alerts: list[dict[str, Any]] = await resp.json()
    return [a for a in alerts if a["status"]["state"] == "active"]


def am_settings(world: World, db: Path, url: str) -> Settings:
    settings = settings_for(world, store_url=f"sqlite:///{db}")
    return settings.model_copy(
        update={
            "pager": AlertmanagerConfig(base_url=url, repost_interval=timedelta(seconds=30)),
        }
    )


@pytest.fixture
async def daemons() -> AsyncIterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.store._db is not None:  # type: ignore[attr-defined]
            await daemon.stop()


class TestAlertmanagerAcrossRestart:
    async def test_the_alert_never_resolves_early_and_resolves_with_the_incident(
        self,
        alertmanager: str,
        world: World,
        clock: FakeClock,
        tmp_path: Path,
        daemons: list[Daemon],
    ) -> None:
        """A pages, dies mid-incident; B starts on the same store. Alertmanager holds the
        same alert (labels, startsAt) active throughout, for several resolve_timeouts, while B
        re-posts it; when the incident resolves, so does the alert."""
        db = tmp_path / "wd.db"
        a = build_daemon(am_settings(world, db, alertmanager), SqliteStore(db), clock)
        await a.start(loops=False)
        daemons.append(a)
        await ingest_each(a, outage(clock.now()), clock)
        await settle(a)
        incident = (await a.store.list_incidents())[0].id
        [before] = await firing(alertmanager, incident)
        await crash(a)

        b = build_daemon(am_settings(world, db, alertmanager), SqliteStore(db), clock)
        await b.start(loops=False)
        daemons.append(b)
        await settle(b)
        deadline = time.monotonic() + 3 * RESOLVE_TIMEOUT_S
        while time.monotonic() < deadline:
            now = await firing(alertmanager, incident)
            assert [x["fingerprint"] for x in now] == [before["fingerprint"]], "resolved early"
            assert now[0]["startsAt"] == before["startsAt"]
            assert now[0]["labels"]["severity"] == before["labels"]["severity"]
            clock.advance(30)
            await b._repost()  # the alert_reposts chore, on B's schedule
            await asyncio.sleep(0.5)

        healthy = [health(clock.now() + timedelta(seconds=15 * i), True) for i in range(1, 30)]
        await ingest_each(b, healthy, clock)
        await settle(b)
        resolved = await b.store.load_incident(incident)
        assert resolved is not None
        assert resolved.resolved_at is not None
        for _ in range(40):
            if not await firing(alertmanager, incident):
                break
            await asyncio.sleep(0.1)
        assert await firing(alertmanager, incident) == []


class TestPagerDutyAcrossRestart:
    async def test_the_new_leader_reasserts_under_the_same_dedup_key(
        self, world: World, clock: FakeClock, tmp_path: Path, daemons: list[Daemon]
    ) -> None:
        """After a restart the open incident is triggered again before any new decision, on
        the same dedup key (PagerDuty keeps one alert), with the page's own timestamp."""
        db = tmp_path / "wd.db"
        settings = settings_for(world, store_url=f"sqlite:///{db}")
        a = build_daemon(settings, SqliteStore(db), clock)
        await a.start(loops=False)
        daemons.append(a)
        await ingest_each(a, outage(clock.now()), clock)
        await settle(a)
        first = [e for e in world.pagerduty.events if e["event_action"] == "trigger"]
        await crash(a)

        clock.advance(60)
        b = build_daemon(settings, SqliteStore(db), clock)
        await b.start(loops=False)
        daemons.append(b)
        await settle(b)
        again = [e for e in world.pagerduty.events if e["event_action"] == "trigger"][len(first) :]
        assert len(again) == 1
        assert (
            again[0]["dedup_key"]
            == first[-1]["dedup_key"]
            == f"watchdog/{TARGET}/" + ((await b.store.list_incidents())[0].id)
        )
        assert again[0]["payload"]["timestamp"] == first[-1]["payload"]["timestamp"]
        assert [key for _, key in world.pagerduty.open_alerts] == [first[-1]["dedup_key"]]
