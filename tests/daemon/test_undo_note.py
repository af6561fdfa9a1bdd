"""One writer for "what production serves": the undo note survives the rollback's own events.

After a Vercel rollback, Vercel stops auto-assigning new deployments to production until
someone promotes one (DESIGN §5), so every message after a rollback must say so and how to
undo it: "ROLLBACK COMPLETE", each five-minute update, "INCIDENT RESOLVED", every page. The
note goes only when a human promotes another deployment. Run through the real daemon, with
the deployment look-ups (the other writer of "what production serves") interleaved.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.daemon.support import (
    GOOD,
    World,
    build_daemon,
    crash,
    health,
    ingest_each,
    outage,
    settings_for,
    settle,
)
from watchdog.daemon import Daemon
from watchdog.store.memory import MemoryStore
from watchdog.store.sqlite import SqliteStore
from watchdog.testing.clock import FakeClock

NOTE = "stopped auto-assigning new deployments to production"


async def healthy_for(daemon: Daemon, clock: FakeClock, minutes: float) -> None:
    """Healthy probes every 15 s, the deployment look-up and the status-update chore
    between them, as the daemon's loops would run them."""
    for _ in range(int(minutes * 4)):
        await ingest_each(daemon, [health(clock.now() + timedelta(seconds=15), True)], clock)
        await daemon.production.refresh()
        assert daemon.dispatcher is not None
        await daemon.dispatcher.post_updates()
        await settle(daemon)


def after_rollback(world: World) -> list[str]:
    messages = world.slack.messages
    done = next(i for i, m in enumerate(messages) if m.startswith("✅ ROLLBACK COMPLETE"))
    return messages[done:]


class TestUndoNote:
    async def test_every_message_after_a_rollback_carries_it_until_a_promote(
        self, world: World, clock: FakeClock
    ) -> None:
        """ROLLBACK COMPLETE, the five-minute updates and INCIDENT RESOLVED all carry the
        note; after a human promotes dpl_fix, the next incident's messages do not."""
        daemon = build_daemon(settings_for(world), MemoryStore(), clock)
        await daemon.start(loops=False)
        try:
            await ingest_each(daemon, outage(clock.now()), clock)
            await settle(daemon)
            assert world.vercel.alias == GOOD
            await healthy_for(daemon, clock, 7)

            sent = after_rollback(world)
            kinds = {m.split("\n", 1)[0].split(" ")[1] for m in sent}
            assert {"ROLLBACK", "UPDATE", "INCIDENT"} <= kinds, sent
            for message in sent:
                assert NOTE in message, message
            assert any(m.startswith("⏱️ UPDATE") for m in sent)
            assert sent[-1].startswith("✅ INCIDENT RESOLVED")
            pages = [e for e in world.pagerduty.events if e["event_action"] == "trigger"]
            assert pages

            # a human ships and promotes a fix: auto-assignment is back, the note goes
            world.vercel.add_deployment("dpl_fix", created_ms=int(clock.now().timestamp() * 1000))
            world.vercel.set_serving("dpl_fix")
            await daemon.production.refresh()
            seen = len(world.slack.messages)
            await ingest_each(daemon, outage(clock.now() + timedelta(seconds=1)), clock)
            await settle(daemon)
            later = world.slack.messages[seen:]
            assert later
            assert not any(NOTE in m for m in later), later
        finally:
            await daemon.stop()

    async def test_the_note_survives_a_restart(
        self, world: World, clock: FakeClock, tmp_path: Path
    ) -> None:
        """A daemon that restarts after the rollback still says it in the updates and in
        INCIDENT RESOLVED: production still serves the rollback's target."""
        db = tmp_path / "wd.db"
        settings = settings_for(world, store_url=f"sqlite:///{db}")
        a = build_daemon(settings, SqliteStore(db), clock)
        await a.start(loops=False)
        await ingest_each(a, outage(clock.now()), clock)
        await settle(a)
        await crash(a)
        seen = len(world.slack.messages)

        b = build_daemon(settings, SqliteStore(db), clock)
        await b.start(loops=False)
        try:
            await healthy_for(b, clock, 7)
            later = world.slack.messages[seen:]
            assert any(m.startswith("✅ INCIDENT RESOLVED") for m in later), later
            for message in later:
                assert NOTE in message, message
        finally:
            await b.stop()
