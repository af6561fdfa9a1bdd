"""The canary: a distinctive value in every secret, every upstream echoing what it was sent,
an incident run through ``watchdog run``, and not one secret, in any form, at any exit.

Every secret of the config (Vercel, Sentry and Supabase credentials, the PagerDuty routing
key or the Alertmanager token, the Slack webhook URL, the LaunchDarkly token, the API token,
the heartbeat URL and the store DSN's password) is a canary read from a secret file. Every
fake answers some of its requests with :meth:`Fault.echoing`: an error body quoting the
request's URL, credentials and body. A human declares the incident with a reason that
quotes every secret raw and encoded (someone pasted a log line). The daemon runs as the real
``watchdog run`` process against SQLite or PostgreSQL, rolls back, verifies, pages, posts to
Slack and switches a flag off; the test then calls every HTTP endpoint and ``watchdog
postmortem``, and greps, for every form of every secret (raw, URL-encoded, JSON, base64 as
in HTTP Basic): the process's stdout and stderr (its logs), every table of the store, every
API answer, the status page, ``/metrics``, the pages, the Slack posts, the flag service's
change comments and the post-mortem. It also checks the redaction markers did reach those
exits, so the test proves something: without the redaction it fails.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import aiohttp
import pytest

from tests.daemon.processes import run_watchdog, spawn_watchdog
from watchdog.store.factory import store_from_url
from watchdog.testing.fake_alertmanager import FakeAlertmanager
from watchdog.testing.fake_app import FakeApp
from watchdog.testing.fake_flags import FakeLaunchDarkly
from watchdog.testing.fake_pagerduty import FakePagerDuty
from watchdog.testing.fake_sentry import FakeSentry
from watchdog.testing.fake_slack import FakeSlack
from watchdog.testing.fake_supabase import FakeSupabase
from watchdog.testing.fake_vercel import FakeVercel
from watchdog.testing.leaks import find_leaks
from watchdog.testing.server import FakeServer, Fault

pytestmark = pytest.mark.timeout(120)

GOOD, BAD = "dpl_good", "dpl_bad"
#: distinctive values, with characters URL encoding and JSON escaping change
CANARIES = {
    "server_api_token": "canaryApiTok/7c1e+x=",
    "vercel_token": "canaryVercelTok/3f9d+a=",
    "sentry_token": "canarySentryTok/8b2a+b=",
    "supabase_secret_key": "sb_secret_canary/5e7f+c=",
    "pagerduty_routing_key": "canaryRoutingKey0123456789abcdef",
    "alertmanager_bearer_token": "canaryAmBearer/2d4c+d=",
    "launchdarkly_token": "api-canaryLdTok/6a1b+e=",
    "store_password": "canaryPgPass/9c3e+f=",
}
SLACK_PATH = "/services/T0CANARY/B0CANARY/canarySlackWebhook9f2e"
HEARTBEAT_PATH = "/heartbeat/canary-heartbeat-4e8a2c71"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Upstreams:
    pager_kind: str
    app: FakeApp = field(default_factory=lambda: FakeApp(version=BAD, commit=BAD))
    vercel: FakeVercel = field(
        default_factory=lambda: FakeVercel(token=CANARIES["vercel_token"], job_polls=2)
    )
    sentry: FakeSentry = field(default_factory=lambda: FakeSentry(token=CANARIES["sentry_token"]))
    supabase: FakeSupabase = field(
        default_factory=lambda: FakeSupabase(secret_key=CANARIES["supabase_secret_key"])
    )
    pagerduty: FakePagerDuty = field(default_factory=FakePagerDuty)
    alertmanager: FakeAlertmanager = field(default_factory=FakeAlertmanager)
    slack: FakeSlack = field(default_factory=lambda: FakeSlack(path=SLACK_PATH))
    flags: FakeLaunchDarkly = field(
        default_factory=lambda: FakeLaunchDarkly(token=CANARIES["launchdarkly_token"])
    )

    @property
    def all(self) -> list[FakeServer]:
        return [
            self.app,
            self.vercel,
            self.sentry,
            self.supabase,
            self.pagerduty,
            self.alertmanager,
            self.slack,
            self.flags,
        ]

    def script(self) -> None:
        """Production on the bad deployment, and every upstream echoing secrets back."""
        now_ms = int(time.time() * 1000)
        self.vercel.add_deployment(GOOD, created_ms=now_ms - 86_400_000)
        self.vercel.add_deployment(BAD, created_ms=now_ms - 600_000, production=True)
        self.vercel.on_production_change(lambda dep: self.app.deploy(dep, dep))
        self.flags.add_flag("crm", "checkout")
        self.vercel.fail_next(
            Fault.echoing(500, route="project"),
            Fault.echoing(500, path="/v1/projects/"),
        )
        self.sentry.fail_next(Fault.echoing(500, times=2))
        self.supabase.fail_next(Fault.echoing(401, times=2))
        self.pagerduty.fail_next(
            Fault.echoing(500, route="enqueue"), Fault.echoing(400, route="change")
        )
        self.alertmanager.fail_next(Fault.echoing(500))
        self.slack.fail_next(Fault.echoing(500))
        self.flags.fail_next(Fault.echoing(500))
        self.app.fail_next(Fault.echoing(500, path="/heartbeat", times=1000))


def config_yaml(up: Upstreams, secrets: Path, store_url: str, port: int) -> str:
    def secret(name: str) -> str:
        return "${file:%s}" % (secrets / name)

    pager = (
        f"""pager:
  kind: pagerduty
  routing_key: {secret("pagerduty_routing_key")}
  base_url: {up.pagerduty.url}
"""
        if up.pager_kind == "pagerduty"
        else f"""pager:
  kind: alertmanager
  base_url: {up.alertmanager.url}
  bearer_token: {secret("alertmanager_bearer_token")}
"""
    )
    return f"""\
store:
  url: {secret("store_url")}
server:
  host: 127.0.0.1
  port: {port}
  api_token: {secret("server_api_token")}
scheduler:
  tick: 200ms
  deploy_poll: 1s
  jitter: 0
heartbeat:
  url: {secret("heartbeat_url")}
  interval: 1s
log:
  level: debug
  format: json
{pager}chat:
  kind: slack
  webhook_url: {secret("slack_webhook_url")}
dispatcher:
  retry_attempts: 3
  retry_initial: 20ms
  retry_maximum: 100ms
  retry_deadline: 5s
targets:
  - name: web
    sources:
      - kind: health
        url: {up.app.url}/api/health
        interval: 500ms
        timeout: 300ms
      - kind: sentry
        base_url: {up.sentry.url}
        org: acme
        project: web
        token: {secret("sentry_token")}
        interval: 1s
        timeout: 500ms
        attempts: 1
      - kind: supabase
        base_url: {up.supabase.url}
        secret_key: {secret("supabase_secret_key")}
        interval: 1s
        timeout: 500ms
        attempts: 1
    deployer:
      kind: vercel
      token: {secret("vercel_token")}
      project_id: {up.vercel.project_id}
      production_domain: {up.vercel.production_domain}
      base_url: {up.vercel.url}
      poll_interval: 50ms
      conflict_wait: 50ms
    verify:
      health_url: {up.app.url}/api/health
      version_url: {up.app.url}/api/version
      poll_interval: 100ms
      verify_timeout: 20s
    flags:
      - kind: launchdarkly
        base_url: {up.flags.url}
        token: {secret("launchdarkly_token")}
        project_key: crm
        flags: [checkout]
"""


def forms_of_everything() -> str:
    """A declared reason that quotes every secret, raw and encoded, as a pasted log might."""
    parts = []
    for value in (*CANARIES.values(), SLACK_PATH, HEARTBEAT_PATH):
        parts += [value, quote(value, safe=""), quote_plus(value)]
    return "security: leaked " + " ".join(parts)


async def wait_until(predicate: Any, limit: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def sqlite_dump(path: Path) -> list[tuple[str, str]]:
    """Every row of every table, and the raw bytes of the database and its WAL."""
    texts = []
    db = sqlite3.connect(path)
    try:
        texts.append(("sqlite dump", "\n".join(db.iterdump())))
    finally:
        db.close()
    for file in path.parent.glob(path.name + "*"):
        texts.append((f"file {file.name}", file.read_bytes().decode("latin-1")))
    return texts


async def postgres_dump(dsn: str, schema: str) -> list[tuple[str, str]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        texts = []
        for row in tables:
            name = row["table_name"]
            rows = await conn.fetch(f'SELECT row_to_json(t)::text AS j FROM "{schema}"."{name}" t')
            texts.append((f"postgres {name}", "\n".join(r["j"] for r in rows)))
        return texts
    finally:
        await conn.close()


async def rewrite_reason(store_url: str, incident: str, reason: str) -> None:
    store = store_from_url(store_url)
    await store.open()
    try:
        record = await store.load_incident(incident)
        assert record is not None
        await store.save_incident(replace(record, reason=reason))
    finally:
        await store.close()


@pytest.fixture(params=["sqlite+pagerduty", "postgres+alertmanager"])
def combo(request: pytest.FixtureRequest) -> tuple[str, str]:
    store, pager = str(request.param).split("+")
    return store, pager


@pytest.fixture
async def upstreams(combo: tuple[str, str]) -> AsyncIterator[Upstreams]:
    up = Upstreams(pager_kind=combo[1])
    for fake in up.all:
        await fake.start()
    up.script()
    yield up
    for fake in up.all:
        await fake.close()


async def test_no_secret_leaves_the_watchdog(
    combo: tuple[str, str],
    upstreams: Upstreams,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Not one canary, in any form, at any exit, through a whole incident with echoing
    upstreams and a human pasting every secret into a declared incident's reason."""
    store_kind, _ = combo
    up = upstreams
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    password = CANARIES["store_password"]
    schema = ""
    pg_dsn = ""
    if store_kind == "postgres":
        pg_dsn = str(request.getfixturevalue("pg_dsn"))
        import asyncpg

        schema = f"canary_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(pg_dsn)
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.close()
        parts = urlsplit(pg_dsn)
        user = parts.username or "postgres"
        # the test server trusts loopback: the password is sent nowhere, but it is configured
        store_url = (
            f"postgresql://{user}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
            f"{parts.path}?search_path={schema}"
        )
    else:
        db = tmp_path / "state" / "watchdog.db"
        db.parent.mkdir()
        store_url = f"sqlite:///{db}"
    secrets = {
        **{name: value for name, value in CANARIES.items() if name != "store_password"},
        "slack_webhook_url": up.slack.url + SLACK_PATH,
        "heartbeat_url": up.app.url + HEARTBEAT_PATH,
        "store_url": store_url,
    }
    for name, value in secrets.items():
        (secrets_dir / name).write_text(value + "\n")
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(up, secrets_dir, store_url, port))
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {CANARIES['server_api_token']}"}

    proc = await spawn_watchdog("run", "--config", str(config))
    answers: list[tuple[str, str]] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

            async def get(path: str, **kw: Any) -> str:
                async with http.get(url + path, **kw) as resp:
                    text = await resp.text()
                answers.append((f"GET {path}", text))
                return text

            async def post(path: str, body: Any, headers: dict[str, str] = auth) -> str:
                async with http.post(url + path, json=body, headers=headers) as resp:
                    text = await resp.text()
                answers.append((f"POST {path} {resp.status}", text))
                return text

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while True:
                if proc.returncode is not None or loop.time() > deadline:
                    raise AssertionError("watchdog run did not become ready")
                try:
                    async with http.get(url + "/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

            reason = forms_of_everything()
            # who placed it is logged: a user name that quotes secrets must not show
            pasted = f"ops {CANARIES['vercel_token']} {quote(CANARIES['sentry_token'], safe='')}"
            as_user = {**auth, "X-Watchdog-User": pasted}
            await post("/api/hold", {"target": "web", "duration": "1s", "reason": reason}, as_user)
            await post("/api/declare", {"target": "web", "reason": reason})
            await wait_until(lambda: up.vercel.alias == GOOD, 30, "the rollback to dpl_good")
            pager_got = (
                (lambda: len(up.pagerduty.events) >= 1)
                if up.pager_kind == "pagerduty"
                else (lambda: len(up.alertmanager.posts) >= 1)
            )
            await wait_until(pager_got, 20, "a page")
            await wait_until(lambda: len(up.slack.messages) >= 1, 20, "a Slack post")
            await wait_until(
                lambda: any(r.method == "PATCH" for r in up.flags.requests), 20, "a flag off"
            )
            await asyncio.sleep(2)  # verification, the heartbeat and a few more polls

            incidents = json.loads(await get("/api/incidents"))["incidents"]
            assert incidents, "the declared incident was not recorded"
            incident = incidents[0]["id"]
            for path in (
                "/",
                "/api/status",
                "/api/incidents?open=1",
                f"/api/incidents/{incident}",
                "/metrics",
                "/healthz",
                "/readyz",
            ):
                await get(path)
            await post("/api/ack", {"target": "web", "decision": "fix_forward"})
            await post("/api/kill-switch", {"on": True, "reason": reason}, as_user)
            await post("/api/kill-switch", {"on": False, "reason": reason})
            await post("/api/hold", {"target": "web"}, headers={"Authorization": reason})
            await post("/api/hold", {"target": reason, "duration": reason})
            await get("/api/incidents/" + quote(reason, safe=""))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    stdout, stderr = out.decode(), err.decode()
    assert proc.returncode == 0, stderr[-2000:]
    assert '"event": "watchdog_started"' in stderr or '"event":"watchdog_started"' in stderr

    if store_kind == "postgres":
        stored = await postgres_dump(pg_dsn, schema)
    else:
        stored = sqlite_dump(db)
    assert any("security: leaked" in text for _, text in stored), "the incident was not stored"
    # a record written before redaction existed (an older version): the draft must not quote it
    await rewrite_reason(store_url, incident, forms_of_everything())
    code, postmortem, pm_err = await run_watchdog("postmortem", incident, "--config", str(config))
    assert code == 0, pm_err

    pages: list[tuple[str, str]] = []
    for event in up.pagerduty.events:
        # the routing key is PagerDuty's credential: the request must carry it, once, there
        assert event.get("routing_key") == CANARIES["pagerduty_routing_key"]
        pages.append(("PagerDuty event", json.dumps({**event, "routing_key": None})))
    pages += [
        ("PagerDuty change", json.dumps({**c, "routing_key": None})) for c in up.pagerduty.changes
    ]
    pages += [("Alertmanager post", json.dumps(p)) for p in up.alertmanager.posts]
    slack = [("Slack post", text) for text in up.slack.messages]
    comments = [("LaunchDarkly", str(r.body)) for r in up.flags.requests if r.method == "PATCH"]

    exits: dict[str, list[tuple[str, str]]] = {
        "stdout": [("stdout", stdout)],
        "stderr (logs)": [("stderr", stderr)],
        "store": stored,
        "API answers": answers,
        "pages": pages,
        "Slack": slack,
        "flag comments": comments,
        "post-mortem": [("post-mortem", postmortem)],
    }
    # a value pasted into the reason that is no configured secret (the other pager's token,
    # SQLite's absent password) is just text
    not_configured = {
        "alertmanager_bearer_token" if up.pager_kind == "pagerduty" else "pagerduty_routing_key"
    }
    if store_kind == "sqlite":
        not_configured.add("store_password")
    everything = {
        **{name: value for name, value in CANARIES.items() if name not in not_configured},
        "slack_webhook_url": up.slack.url + SLACK_PATH,
        "slack_webhook_path": SLACK_PATH,
        "heartbeat_url": up.app.url + HEARTBEAT_PATH,
        "heartbeat_path": HEARTBEAT_PATH,
    }
    leaks = [leak for texts in exits.values() for leak in find_leaks(texts, everything)]
    assert not leaks, "\n".join(leaks[:40])
    # the canaries did reach every exit (so their absence is the redaction's doing)
    unreached = [
        name
        for name, texts in exits.items()
        if name != "stdout" and not any("[redacted:" in text for _, text in texts)
    ]
    assert not unreached, f"no redacted canary reached: {unreached}"
    metrics = next(text for where, text in answers if where == "GET /metrics")
    assert "watchdog_" in metrics
