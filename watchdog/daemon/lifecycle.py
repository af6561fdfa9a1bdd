"""The running daemon: builds the parts, starts their tasks, and stops them gracefully.

I/O boundary: the shared aiohttp session, opening and closing the store, and the few chores
that are plain I/O (the heartbeat URL, the store ping, pruning). Everything else lives in the
part named for it: :mod:`~watchdog.daemon.wiring` (what to build),
:mod:`~watchdog.daemon.leadership` (lease and restore), :mod:`~watchdog.daemon.loops` (polls and
chores), :mod:`~watchdog.daemon.pipeline` (samples and events to decisions),
:mod:`~watchdog.daemon.production` (what production serves), :mod:`~watchdog.daemon.control`
(the HTTP API and CLI). ``watchdog run`` and ``watchdog demo`` run this same code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from watchdog.actions.alertmanager import AlertmanagerPager
from watchdog.actions.dispatcher import Dispatcher
from watchdog.actions.redacting import RedactingNotifier, RedactingPager
from watchdog.clock import Clock
from watchdog.config import Settings
from watchdog.core.engine import Engine
from watchdog.core.rules import RulePack
from watchdog.daemon.control import Control, Phase
from watchdog.daemon.leadership import Leadership, load_snapshot
from watchdog.daemon.loops import Chore, Poller, SourceState, run_chore
from watchdog.daemon.pipeline import Health, Pipeline
from watchdog.daemon.production import ProductionWatcher
from watchdog.daemon.rollouts import RolloutWatcher
from watchdog.daemon.wiring import build_notifier, build_pager, build_parts, config_gaps
from watchdog.metrics import Metrics
from watchdog.store.base import LeaderStore
from watchdog.store.redacting import RedactingStore

log = structlog.get_logger(__name__)

#: how often old records are pruned (and how long before the first prune)
PRUNE_EVERY = timedelta(hours=1)
#: recent drills read back for the drill gauges (the latest per target counts)
DRILLS_READ = 50


class Daemon:
    """Wires everything for ``watchdog run`` (and the demo, which runs the same code)."""

    def __init__(
        self,
        settings: Settings,
        pack: RulePack,
        store: LeaderStore,
        *,
        clock: Clock,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.pack = pack
        self.store = store
        #: every configured secret: redacted from records, pages, chat and HTTP answers
        self.redactor = settings.redactor()
        #: what the daemon writes goes through here (the lease, which carries no text, not)
        self.records = RedactingStore(store, self.redactor)
        self.clock = clock
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.engine = Engine(
            pack,
            freezes=[f.window() for f in settings.freezes],
            kill_switch=settings.kill_switch,
        )
        self._stopping = asyncio.Event()
        #: what the status page and /readyz say until the engine holds what the store holds
        self.phase = Phase.STARTING
        self.health = Health()
        self.leadership = Leadership(
            store,
            holder=settings.leader.holder,
            ttl=settings.leader.ttl,
            clock=clock,
            metrics=self.metrics,
            stopping=self._stopping,
        )
        self.leadership.on_gained = self._restore
        self.pipeline = Pipeline(
            engine=self.engine,
            store=self.records,
            metrics=self.metrics,
            leadership=self.leadership,
            health=self.health,
        )
        self.poller = Poller(clock, self.metrics, settings.scheduler.jitter, self.pipeline.ingest)
        self.sources: dict[str, SourceState] = {}
        self.dispatcher: Dispatcher | None = None
        self.production = ProductionWatcher(
            {}, engine=self.engine, events=self.records, clock=clock, apply=self.pipeline.apply
        )
        self.rollouts = RolloutWatcher({}, {}, clock=clock, apply=self.pipeline.apply)
        self.control = Control(
            settings=settings,
            store=self.records,
            engine=self.engine,
            clock=clock,
            pipeline=self.pipeline,
            metrics=self.metrics,
            health=self.health,
            sources=self.sources.values,
            leader=lambda: self.leadership.leader,
            polled_once=lambda: self.poller.polled_once,
            phase=lambda: self.phase,
            production=lambda: self.production,
            dispatcher=lambda: self.dispatcher,
            rollouts=lambda target: self.rollouts.seen.get(target),
        )
        # the control facade, and the pipeline's inputs, are the daemon's own API
        self.status = self.control.status
        self.readiness = self.control.readiness
        self.board = self.control.board
        self.cockpit = self.control.cockpit
        self.history = self.control.history
        self.incident_page = self.control.incident_page
        self.incidents = self.control.incidents
        self.incident = self.control.incident
        self.hold = self.control.hold
        self.ack = self.control.ack
        self.declare = self.control.declare
        self.kill_switch = self.control.kill_switch
        self.deployed_at = self.control.deployed_at
        self.now = self.control.now
        self.ingest = self.pipeline.ingest
        self.apply = self.pipeline.apply
        self.listeners = self.pipeline.listeners
        self._pager_reposts: AlertmanagerPager | None = None
        self._session: aiohttp.ClientSession | None = None
        self._own_session = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def leader(self) -> bool:
        return self.leadership.leader

    # ----------------------------------------------------------------- lifecycle

    async def start(
        self, session: aiohttp.ClientSession | None = None, *, loops: bool = True
    ) -> None:
        """Open the store, wire the actions, take leadership, and start the loops.

        ``loops=False`` starts only the event task (rollback outcomes flowing back to the
        engine), not the polls and chores: tests then drive ``ingest``/``apply`` with a fake
        clock without background loops moving that clock under them.
        """
        self._session = session or aiohttp.ClientSession()
        self._own_session = session is None
        await self.store.open()
        self.phase = Phase.RESTORING
        self.metrics.set_flag(self.metrics.kill_switch, self.engine.kill_switch)
        parts = build_parts(self.settings, self._session, self.clock, self.engine)
        self.sources.update(parts.sources)
        self.metrics.declare(parts.source_signals)
        pager = build_pager(self.settings, self._session, self.clock)
        if isinstance(pager, AlertmanagerPager):
            self._pager_reposts = pager
        config = self.settings.dispatcher
        if self.settings.shadow:
            config = config.model_copy(update={"shadow": True})
        notifier = build_notifier(self.settings, self._session, self.clock)
        self.dispatcher = Dispatcher(
            store=self.records,
            clock=self.clock,
            config=config,
            pager=RedactingPager.wrap(pager, self.redactor),
            notifier=RedactingNotifier.wrap(notifier, self.redactor),
            targets=parts.actions,
            on_event=self.pipeline.events.put_nowait,
            can_act=self.leadership.can_act,
            metrics=self.metrics,
        )
        self.pipeline.dispatcher = self.dispatcher
        self.production = ProductionWatcher(
            parts.deployers,
            engine=self.engine,
            events=self.records,
            clock=self.clock,
            apply=self.pipeline.apply,
        )
        self.pipeline.on_version = self.production.version_seen
        self.rollouts = RolloutWatcher(
            parts.rollouts, parts.boards, clock=self.clock, apply=self.pipeline.apply
        )
        await self.leadership.elect()
        # a follower has nothing to restore: the board reads the leader's incidents from the store
        self.phase = Phase.RUNNING
        await self._export_drills()
        if loops:
            for state in self.sources.values():
                self._spawn(self.poller.run(state, self._stopping), f"poll:{state.source.name}")
            for chore in self._chores():
                self._spawn(run_chore(chore, self.clock, self._stopping), f"chore:{chore.name}")
        self._spawn(self.pipeline.apply_queued(), "events")
        log.info("watchdog_started", targets=len(self.settings.targets), sources=len(self.sources))
        for gap in config_gaps(self.settings):
            log.warning(gap.event, target=gap.target, consequence=gap.consequence)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def stop(self) -> None:
        """Graceful shutdown: stop polling, let in-flight actions finish (bounded), close."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.dispatcher is not None:
            grace = self.settings.scheduler.shutdown_grace.total_seconds()
            try:
                await asyncio.wait_for(self.dispatcher.aclose(), timeout=grace)
            except TimeoutError:
                log.error("shutdown_grace_exceeded", grace_s=grace)
        await self.leadership.release()
        await self.store.close()
        if self._session is not None and self._own_session:
            await self._session.close()
        log.info("watchdog_stopped")

    # ----------------------------------------------------------------- becoming leader

    async def _restore(self) -> None:
        """Settle what a crash left, re-seed the engine from the store, then report it.

        Rollbacks are classified against Vercel *first*, so one that provably never reached
        Vercel is restored as not rolled back and the engine, on fresh data and past every
        guard rail, may re-issue it once; jobs still running on Vercel are followed in the
        background so the lease keeps being renewed meanwhile. The board says "restoring"
        until the snapshot is in the engine.
        """
        if self.dispatcher is not None:
            # first of all, before any decision of this leader can page: every open
            # incident's alert again, as last sent (Alertmanager forgets what is not re-sent)
            await self.dispatcher.outbox.reassert(await self.store.list_incidents(open_only=True))
        await self._reseed()

    async def _reseed(self) -> None:
        """Settle the rollbacks against Vercel, then re-seed the engine from the store."""
        dispatcher = self.dispatcher
        classified = None
        self.phase = Phase.RESTORING
        try:
            if dispatcher is not None:
                open_ids = [
                    i.id for i in await self.store.list_incidents(open_only=True, limit=1000)
                ]
                classified = await dispatcher.prepare_restore(open_ids)
            snapshot, open_incidents = await load_snapshot(
                self.store,
                self.settings,
                self.pack.flowchart.budget_window,
                self.clock.now(),
            )
            self.pipeline.forget(open_incidents)
            self.engine.restore_snapshot(snapshot)
        finally:
            # a failed restore is retried on the next election; the board reads the store
            self.phase = Phase.RUNNING
        self.metrics.set_flag(self.metrics.kill_switch, self.engine.kill_switch)
        await self.production.refresh()
        await self.rollouts.refresh()
        if dispatcher is not None and classified is not None:
            dispatcher.restored(open_incidents)
            await dispatcher.after_restore(classified)
            dispatcher.outbox.kick()  # resume what the previous run left undelivered

    async def _settle_postponed(self) -> None:
        """Vercel did not answer when this replica restored: try again until it does, and
        re-seed from the store then (a rollback still pending is never left "in flight")."""
        dispatcher = self.dispatcher
        if dispatcher is not None and dispatcher.unsettled and self.leadership.leader:
            await self._reseed()

    # ----------------------------------------------------------------- chores

    def _chores(self) -> list[Chore]:
        every = self.settings.scheduler.tick
        chores = [
            # the lease request bounds itself; restoring on becoming leader may follow a
            # Vercel job for minutes (the job timeout), so this chore's own bound is loose
            Chore("leadership", every, timeout=timedelta(minutes=10), run=self.leadership.elect),
            # generous: a page sent from here may retry for the dispatcher's whole deadline
            Chore("redecide", every, timeout=timedelta(minutes=5), run=self._redecide),
            Chore("status_updates", every, timeout=timedelta(minutes=1), run=self._post_updates),
            # delivery runs in the outbox's own tasks; this only wakes it for what is due
            Chore("outbox", every, timeout=every, run=self._deliver),
            Chore(
                "deployments",
                self.settings.scheduler.deploy_poll,
                timeout=max(timedelta(minutes=1), self.settings.scheduler.deploy_poll),
                run=self.production.refresh,
            ),
            Chore(
                "rolling_releases",
                self.settings.scheduler.deploy_poll,
                timeout=max(timedelta(minutes=1), self.settings.scheduler.deploy_poll),
                run=self.rollouts.refresh,
            ),
            Chore("prune", PRUNE_EVERY, timeout=timedelta(minutes=5), run=self._prune),
            Chore("reconcile", every, timeout=timedelta(minutes=2), run=self._settle_postponed),
            Chore("blindness", every, timeout=every, run=self._export_blindness),
            # `watchdog drill` runs in another process and writes the store: read it back
            Chore("drills", every, timeout=timedelta(seconds=10), run=self._export_drills),
            Chore(
                "heartbeat",
                self.settings.heartbeat.interval,
                timeout=timedelta(seconds=15),
                run=self._ping_heartbeat,
                first_after=every,
            ),
            Chore(
                "store_ping",
                every,
                timeout=timedelta(seconds=10),
                run=self._ping_store,
                on_timeout=self._store_down,
            ),
        ]
        if self._pager_reposts is not None:
            # Alertmanager forgets alerts that are not re-sent
            chores.append(Chore("alert_reposts", every, timedelta(seconds=30), self._repost))
        return chores

    async def _redecide(self) -> None:
        await self.pipeline.redecide((t.name for t in self.settings.targets), self.clock.now())
        # the dead man's switch: the decision cycle completed
        self.metrics.heartbeat.set(time.time())

    async def _post_updates(self) -> None:
        if self.dispatcher is not None and self.leadership.leader:
            await self.dispatcher.post_updates()

    async def _deliver(self) -> None:
        if self.dispatcher is not None and self.leadership.leader:
            self.dispatcher.outbox.kick()

    async def _repost(self) -> None:
        if self._pager_reposts is not None and self.leadership.leader:
            await self._pager_reposts.repost(self.clock.now())

    async def _prune(self) -> None:
        await self.store.prune(self.clock.now() - self.settings.store.retention)

    async def _export_blindness(self) -> None:
        self.pipeline.export_blindness(self.sources.values(), self.clock.now())

    async def _ping_store(self) -> None:
        self.health.store_ok = await self.store.ping()

    def _store_down(self) -> None:
        self.health.store_ok = False

    async def _ping_heartbeat(self) -> None:
        url = self.settings.heartbeat.url
        if url is None or self._session is None or not self.leadership.leader:
            return
        try:
            async with self._session.get(
                url.get_secret_value(), timeout=aiohttp.ClientTimeout(total=10)
            ) as resp:
                if resp.status >= 300:
                    log.warning("heartbeat_rejected", status=resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("heartbeat_failed", error=type(exc).__name__)

    async def _export_drills(self) -> None:
        try:
            drills = await self.store.list_drills(limit=DRILLS_READ)
        except Exception:  # metrics must never stop the daemon
            log.warning("drill_lookup_failed", exc_info=True)
            return
        self.metrics.export_drills(drills)
