"""``watchdog demo``: the real daemon against a simulated production, on loopback.

Everything the daemon talks to is a stand-in speaking the documented API shapes (a Next.js-style
app, Vercel, Sentry, Supabase metrics, PagerDuty, Slack); the daemon itself is exactly what
``watchdog run`` starts: scheduler, sources, engine, dispatcher, SQLite store, HTTP server.
No accounts, no tokens, nothing leaves the machine.

Time is compressed: the demo runs the default rule pack with every duration divided by
``--speed`` (default 12: "for 2m" becomes 10 s, the 5-minute resolve period 25 s), so a whole
incident fits in about a minute. Counts ("3 consecutive polls") are unchanged.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from watchdog.actions.pagerduty import PagerDutyConfig
from watchdog.actions.slack import SlackConfig
from watchdog.actions.vercel import VercelConfig
from watchdog.actions.verify import VerifyConfig
from watchdog.clock import SystemClock
from watchdog.config import (
    SchedulerSettings,
    ServerSettings,
    Settings,
    StoreSettings,
    TargetConfig,
)
from watchdog.core.model import Action, Decision
from watchdog.core.rules import RulePack
from watchdog.daemon.main import Running, start
from watchdog.demo_world import (
    BAD,
    FIX,
    GOOD,
    TARGET,
    Production,
    serve_standins,
    standins_app,
)
from watchdog.postmortem import render_postmortem
from watchdog.scenarios import SCENARIOS
from watchdog.sources import (
    DetailedSourceConfig,
    HealthSourceConfig,
    SentrySourceConfig,
    SmokeSourceConfig,
    SupabaseSourceConfig,
    VersionSourceConfig,
)
from watchdog.store.base import RollbackState
from watchdog.store.sqlite import SqliteStore
from watchdog.testing.fake_sentry import DEFAULT_TOKEN as SENTRY_TOKEN
from watchdog.testing.fake_supabase import DEFAULT_SECRET as SUPABASE_SECRET
from watchdog.yamlfile import default_rules_path, load_rule_pack

__all__ = ["Production", "compress", "run_demo", "serve_standins", "standins_app"]


def compress(pack: RulePack, speed: float) -> RulePack:
    """The same pack with every duration divided by ``speed`` (counts unchanged)."""
    if speed == 1:
        return pack

    def scale(value: Any) -> Any:
        if isinstance(value, timedelta):
            return value / speed
        if isinstance(value, dict):
            return {k: scale(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [scale(v) for v in value]
        return value

    return RulePack.model_validate(scale(pack.model_dump(by_alias=True)))


@dataclass
class Timeline:
    """What the demo prints and what its summary measures (seconds since the start)."""

    out: TextIO
    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def now(self) -> float:
        return time.monotonic() - self.started

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, self.now())

    def say(self, kind: str, text: str) -> None:
        t = self.now()
        self.out.write(f"[{int(t) // 60:02d}:{t % 60:04.1f}] {kind:<9} {text}\n")
        self.out.flush()


def demo_settings(prod: Production, state_dir: Path, speed: float) -> Settings:
    fast = timedelta(seconds=1)
    return Settings(
        rules=None,
        store=StoreSettings(url=f"sqlite:///{state_dir / 'watchdog.db'}"),
        server=ServerSettings(host="127.0.0.1", port=0, api_token=secrets.token_urlsafe(24)),
        scheduler=SchedulerSettings(
            tick=fast, deploy_poll=timedelta(seconds=2), jitter=0.5, max_concurrency=8
        ),
        pager=PagerDutyConfig(
            routing_key="demo0routing0key0000000000000000",  # the stand-in's
            base_url=prod.pagerduty.url,
            deployment_url="https://vercel.com/acme/web/{deployment}",
        ),
        chat=SlackConfig(webhook_url=prod.slack.webhook_url, update_interval=timedelta(seconds=20)),
        targets=[
            TargetConfig(
                name=TARGET,
                sources=[
                    HealthSourceConfig(
                        url=f"{prod.app.url}/api/health",
                        interval=fast,
                        timeout=timedelta(seconds=0.8),
                    ),
                    VersionSourceConfig(
                        url=f"{prod.app.url}/api/version",
                        field="deployment.id",
                        interval=fast,
                        timeout=timedelta(seconds=0.8),
                    ),
                    SentrySourceConfig(
                        org="acme",
                        project=["web"],
                        base_url=prod.sentry.url,
                        token=SENTRY_TOKEN,
                        interval=timedelta(seconds=2),
                        timeout=timedelta(seconds=1.5),
                        window=timedelta(minutes=1),
                    ),
                    DetailedSourceConfig(
                        url=f"{prod.app.url}/api/health/detailed",
                        db_connection={"path": "components.database.status"},
                        payment_failures="payments.failures_5m",
                        interval=timedelta(seconds=2),
                        timeout=timedelta(seconds=1.5),
                    ),
                    SmokeSourceConfig(
                        checks=[
                            {
                                "name": "create_opportunity",
                                "method": "POST",
                                "url": f"{prod.app.url}/api/features/create-opportunity",
                                "body": {"name": "watchdog smoke test", "dry_run": True},
                            }
                        ],
                        interval=timedelta(seconds=2),
                        timeout=timedelta(seconds=1.5),
                    ),
                    SupabaseSourceConfig(
                        base_url=prod.supabase.url,
                        project_ref=prod.supabase.project_ref,
                        secret_key=SUPABASE_SECRET,
                        interval=timedelta(seconds=2),
                        timeout=timedelta(seconds=1.5),
                    ),
                ],
                deployer=VercelConfig(
                    token=prod.vercel.token,
                    project_id=prod.vercel.project_id,
                    production_domain=prod.vercel.production_domain,
                    base_url=prod.vercel.url,
                    poll_interval=timedelta(seconds=0.5),
                ),
                verify=VerifyConfig(
                    health_url=f"{prod.app.url}/api/health",
                    version_url=f"{prod.app.url}/api/version",
                    poll_interval=timedelta(seconds=1),
                    verify_timeout=timedelta(minutes=3) / speed * 4,
                ),
            )
        ],
    )


SIGNALS = ("health_up", "error_rate", "latency_p95_s", "db_cpu", "feature_up.create_opportunity")


def _fmt(value: object) -> str:
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


class Narrator:
    """Prints the live timeline: signals against thresholds, decisions, and every action."""

    def __init__(self, timeline: Timeline, prod: Production, running: Running) -> None:
        self.t = timeline
        self.prod = prod
        self.running = running
        self.seen_requests = {"vercel": 0, "pagerduty": 0, "slack": 0}
        self.last_signals = ""
        self.signals_at = 0.0

    def on_decision(self, decision: Decision) -> None:
        quiet = decision.action is Action.MONITOR and decision.severity is None
        if quiet and not self.t.marks.get("detected"):
            return  # steady state before anything happened: nothing to tell
        if not quiet:
            self.t.mark("detected")
        if decision.action is Action.ROLLBACK:
            self.t.mark("rollback_decided")
        severity = decision.severity.value if decision.severity else "-"
        self.t.say(
            "DECISION",
            f"{decision.target}: {decision.action.value.upper()} ({severity}) "
            f"rule={decision.rule or '-'} — {decision.reason}",
        )
        if decision.refused_by:
            self.t.say("GUARD", f"rollback refused by {decision.refused_by}")

    def signals(self) -> None:
        engine = self.running.daemon.engine
        parts = []
        for name in SIGNALS:
            reading = engine.reading(TARGET, name)
            if reading is None:
                continue
            value = None if reading.unknown else reading.value
            limits = [
                f"{r.op}{r.threshold:g} {'rollback' if r.rollback else r.severity.value}"
                for r in engine.pack.rules
                if r.matches_signal(name) and r.during != "intensive_watch"
            ]
            against = f" ({', '.join(limits)})" if limits else ""
            parts.append(f"{name}={_fmt(value)}{against}")
        if not parts and engine.reading(TARGET, "version") is None:
            return
        parts.extend(self._per_release())
        version = engine.reading(TARGET, "version")
        parts.append(f"serving={_fmt(version.value if version else None)}")
        line = "  ".join(parts)
        if line != self.last_signals:
            self.last_signals = line
            self.t.say("SIGNALS", line)

    def _per_release(self) -> list[str]:
        """During a rolling release: the error rate of the canary and of its base, as the
        baseline comparison sees them (release-scoped samples, same minutes)."""
        ts = self.running.daemon.engine.targets.get(TARGET)
        if ts is None or ts.rollout is None:
            return []
        shown = []
        for role, dep in (("canary", ts.rollout.canary), ("base", ts.rollout.base)):
            reading = ts.tagged.get(("error_rate", dep or ""))
            if reading is not None:
                requests = f" ({reading.requests} req)" if reading.requests is not None else ""
                shown.append(f"{role} {dep}: error_rate={reading.value:.3g}{requests}")
        percent = ts.rollout.percent
        return [f"rollout {percent:g}%" if percent is not None else "rollout", *shown]

    def actions(self) -> None:
        vercel = self.prod.vercel.requests
        for req in vercel[self.seen_requests["vercel"] :]:
            if req.method != "POST":
                continue
            if "/rolling-release/" in req.path:
                self.t.say("VERCEL", f"{req.method} {req.path} (rolling release stage approved)")
                continue
            self.t.mark("rollback_requested")
            what = (
                "rolling release aborted: instant rollback to its base"
                if self.prod.scenario == "canary"
                else "instant rollback requested"
            )
            self.t.say("VERCEL", f"{req.method} {req.path} ({what})")
        self.seen_requests["vercel"] = len(vercel)
        events = self.prod.pagerduty.requests
        for req in events[self.seen_requests["pagerduty"] :]:
            try:
                body = req.json()
            except ValueError:
                continue
            if req.route == "change" or "event_action" not in body:
                self.t.say(
                    "PAGERDUTY", f"change event: {body.get('payload', {}).get('summary', '')}"
                )
                continue
            summary = body.get("payload", {}).get("summary", "")
            self.t.say("PAGERDUTY", f"{body['event_action']} {body.get('dedup_key', '')} {summary}")
        self.seen_requests["pagerduty"] = len(events)
        messages = self.prod.slack.messages
        for text in messages[self.seen_requests["slack"] :]:
            first = text.strip().splitlines()[0] if text.strip() else ""
            self.t.say("SLACK", first)
        self.seen_requests["slack"] = len(messages)


async def run_demo(
    scenario: str = "bad-deploy",
    *,
    speed: float = 12.0,
    out: TextIO = sys.stdout,
    max_seconds: float = 150.0,
) -> int:
    """Run one scenario end to end; exit code 0 when it ended as the scenario expects."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    timeline = Timeline(out)
    prod = Production(scenario)
    await prod.start()
    pack = compress(load_rule_pack(default_rules_path()), speed)
    with tempfile.TemporaryDirectory(prefix="watchdog-demo-") as tmp:
        settings = demo_settings(prod, Path(tmp), speed)
        store = SqliteStore(Path(tmp) / "watchdog.db")
        running = await start(settings, pack, clock=SystemClock(), store=store, port=0)
        narrator = Narrator(timeline, prod, running)
        running.daemon.listeners.append(narrator.on_decision)
        out.write(
            f"rollback-watchdog demo — scenario {scenario!r}: {SCENARIOS[scenario]}\n"
            f"  status page  {running.url}/\n  metrics      {running.url}/metrics\n"
            f"  rules        the default pack, durations ÷ {speed:g}\n\n"
        )
        try:
            ok = await _script(scenario, prod, running, narrator, timeline, max_seconds)
            await _epilogue(prod, running, timeline, out, ok)
        finally:
            await running.stop()
            await prod.close()
    return 0 if ok else 1


async def _script(
    scenario: str,
    prod: Production,
    running: Running,
    narrator: Narrator,
    t: Timeline,
    max_seconds: float,
) -> bool:
    daemon = running.daemon
    deployed = acked = fixed = False
    loop_start = time.monotonic()
    last = time.monotonic()
    while time.monotonic() - loop_start < max_seconds:
        await asyncio.sleep(0.25)
        now = time.monotonic()
        prod.step(now - last)
        last = now
        narrator.actions()
        if now - narrator.signals_at >= 5:
            narrator.signals_at = now
            narrator.signals()
        if not deployed and t.now() >= 6:
            deployed = True
            t.mark("deployed")
            if scenario == "canary":
                t.say("DEPLOY", f"{BAD} (commit f00dbad) starts a rolling release: 10% of users")
            else:
                t.say("DEPLOY", f"{BAD} goes live on production (commit f00dbad)")
            prod.deploy(BAD, "f00dbad")
            if scenario == "slow-db":
                prod.busy = 0.97
                t.say("DATABASE", "a heavy report query pins the database CPU at 97%")
        incidents = await daemon.store.list_incidents()
        incident = incidents[0] if incidents else None
        for rb in await daemon.store.list_rollbacks(target=TARGET):
            if rb.state is RollbackState.VERIFIED and "verified" not in t.marks:
                t.mark("verified")
                t.say("VERIFIED", f"{rb.to_deployment} serves production, health 200, errors down")
            if rb.state is RollbackState.VERIFY_FAILED and "verify_failed" not in t.marks:
                t.mark("verify_failed")
                t.say("VERIFY", f"rollback to {rb.to_deployment} did not verify: {rb.detail}")
        if incident is not None:
            t.mark("incident")
        since_incident = t.now() - t.marks["incident"] if "incident" in t.marks else 0.0
        if scenario == "feature-down" and incident and not acked and since_incident > 3:
            acked = True
            t.say("HUMAN", "on-call acks the page: 'fix forward' (POST /api/ack)")
            await daemon.ack(TARGET, "fix_forward", "on-call")
            t.mark("acked")
        if scenario == "feature-down" and acked and not fixed and t.now() - t.marks["acked"] > 8:
            fixed = True
            t.say("DEPLOY", f"{FIX} (the fix) goes live")
            prod.deploy(FIX, "f1xf1x0")
        if scenario == "slow-db" and incident and prod.busy > 0.5 and since_incident > 6:
            prod.busy = 0.3
            t.say("DATABASE", "the report query is killed; CPU back to 30%")
        if incident is not None and incident.resolved_at is not None:
            t.mark("resolved")
            t.say("RESOLVED", f"incident {incident.id} resolved")
            return _expected(scenario, prod, await daemon.store.list_rollbacks(target=TARGET))
    t.say("TIMEOUT", f"the scenario did not finish within {max_seconds:.0f} s")
    return False


def _expected(scenario: str, prod: Production, rollbacks: list[Any]) -> bool:
    rolled = [r for r in rollbacks if r.state in (RollbackState.SUCCEEDED, RollbackState.VERIFIED)]
    if scenario in ("slow-db", "feature-down"):
        return not rollbacks
    if scenario == "canary":
        # aborted at its first stage: the canary never served more than its 10%
        rolling = prod.vercel.rolling
        return (
            bool(rolled)
            and prod.vercel.alias == GOOD
            and rolling.state == "ABORTED"
            and rolling.active == 0
        )
    return bool(rolled) and prod.vercel.alias == GOOD


async def _epilogue(prod: Production, running: Running, t: Timeline, out: TextIO, ok: bool) -> None:
    daemon = running.daemon
    incidents = await daemon.store.list_incidents()
    out.write("\n")
    if incidents:
        incident = incidents[0]
        rollbacks = [r for r in await daemon.store.list_rollbacks() if r.incident == incident.id]
        out.write("=" * 72 + "\nPOST-MORTEM DRAFT\n" + "=" * 72 + "\n")
        out.write(
            render_postmortem(
                incident,
                await daemon.store.list_decisions(incident=incident.id),
                await daemon.store.list_actions(incident=incident.id),
                rollbacks,
                deployed_at=await daemon.deployed_at(incident.target, incident.deployment),
            )
        )
        out.write("\n")
    out.write("=" * 72 + "\nSUMMARY\n" + "=" * 72 + "\n")
    base = t.marks.get("deployed")

    def since(mark: str) -> str:
        if base is None or mark not in t.marks:
            return "—"
        return f"{t.marks[mark] - base:.1f} s"

    out.write(f"time to detect (deploy → first non-monitor decision): {since('detected')}\n")
    out.write(
        f"time to roll back (deploy → rollback request at Vercel): {since('rollback_requested')}\n"
    )
    out.write(f"time to verify (deploy → rollback verified): {since('verified')}\n")
    out.write(f"time to resolve (deploy → incident resolved): {since('resolved')}\n")
    out.write(
        f"pages sent: {len(prod.pagerduty.events)}  slack messages: {len(prod.slack.messages)}\n"
    )
    out.write(f"result: {'as expected' if ok else 'NOT as expected'}\n")
