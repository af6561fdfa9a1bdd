"""The Sentry source during a rolling release: the canary and its base measured apart, per
release, over the same minutes as the overall signals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.sources.conftest import CANARY_SECRET, parse_config
from watchdog.core.model import Sample, Signal, UnknownReason
from watchdog.sources import HttpSource, ReleaseBoard, ScopedDeployment, build_source
from watchdog.sources.sentry_releases import check_template, release_filter, release_name
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_sentry import FakeSentry, ReleaseStats, releases_asked
from watchdog.testing.server import Fault

BASE_SHA, CANARY_SHA = "b" * 40, "c" * 40
BASE = ScopedDeployment("dpl_base", BASE_SHA, "base")
CANARY = ScopedDeployment("dpl_canary", CANARY_SHA, "canary")


@pytest.fixture
async def sentry() -> AsyncIterator[FakeSentry]:
    async with FakeSentry(token=CANARY_SECRET) as fake:
        fake.releases = {
            BASE_SHA: ReleaseStats(error_rate=0.004, p95_ms=400, count=9000),
            CANARY_SHA: ReleaseStats(error_rate=0.09, p95_ms=1800, count=1000),
        }
        fake.error_rate, fake.count = 0.0126, 10000
        yield fake


@pytest.fixture
def board() -> ReleaseBoard:
    board = ReleaseBoard()
    board.show(BASE, CANARY)
    return board


@pytest.fixture
def make(
    sentry: FakeSentry,
    board: ReleaseBoard,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    semaphore: asyncio.Semaphore,
):  # type: ignore[no-untyped-def]
    def build(**extra: Any) -> HttpSource[Any]:
        raw = {
            "kind": "sentry",
            "base_url": sentry.url,
            "org": "acme",
            "project": ["web"],
            "environment": "vercel-production",
            "token": CANARY_SECRET,
            "timeout": 0.2,
            **extra,
        }
        return build_source(
            parse_config(raw),
            target="web",
            session=session,
            clock=clock,
            semaphore=semaphore,
            releases=board,
        )

    return build


def split(samples: list[Sample]) -> dict[str | None, dict[str, Sample]]:
    out: dict[str | None, dict[str, Sample]] = {}
    for s in samples:
        assert s.signal not in out.setdefault(s.deployment, {}), f"twice: {s}"
        out[s.deployment][s.signal] = s
    return out


class TestQuery:
    async def test_one_call_per_release_and_the_same_window(self, make, sentry: FakeSentry) -> None:  # type: ignore[no-untyped-def]
        """field=release plus the aggregates, release:[base,canary], then the overall query,
        both over the same start/end."""
        await make().poll()
        scoped, overall = sentry.requests
        assert scoped.params("field") == [
            "release",
            "failure_rate()",
            "p95(span.duration)",
            "count()",
        ]
        assert scoped.param("query") == f"is_transaction:true release:[{BASE_SHA},{CANARY_SHA}]"
        assert scoped.params("environment") == ["vercel-production"]
        assert overall.params("field") == ["failure_rate()", "p95(span.duration)", "count()"]
        assert overall.param("query") == "is_transaction:true"
        assert (scoped.param("start"), scoped.param("end")) == (
            overall.param("start"),
            overall.param("end"),
        )

    async def test_no_rolling_release_is_one_call_as_before(
        self, make, sentry: FakeSentry, board: ReleaseBoard
    ) -> None:  # type: ignore[no-untyped-def]
        """Outside a rolling release nothing changes: one query, untagged samples."""
        board.clear()
        samples = await make().poll()
        assert len(sentry.requests) == 1
        assert {s.deployment for s in samples} == {None}

    async def test_option_off(self, make, sentry: FakeSentry) -> None:  # type: ignore[no-untyped-def]
        """release_scoped: false never asks per release."""
        await make(release_scoped=False).poll()
        assert len(sentry.requests) == 1

    async def test_template_and_quoting(self, make, sentry: FakeSentry) -> None:  # type: ignore[no-untyped-def]
        """A configured mapping names the releases; values outside plain tokens are quoted."""
        sentry.releases = {f"web@{BASE_SHA}": ReleaseStats(), f"web@{CANARY_SHA}": ReleaseStats()}
        samples = split(await make(release="web@{commit}").poll())
        query = sentry.requests[0].param("query")
        assert query == f'is_transaction:true release:["web@{BASE_SHA}","web@{CANARY_SHA}"]'
        assert samples["dpl_canary"][Signal.ERROR_RATE].value == pytest.approx(0.002)


class TestSamples:
    async def test_tagged_base_then_canary_then_overall(self, make) -> None:  # type: ignore[no-untyped-def]
        """Each deployment's rate, p95 and count, tagged; the base's before the canary's,
        and both before the overall samples (deploy correlation reads them then)."""
        samples = await make().poll()
        order = [s.deployment for s in samples]
        assert order == ["dpl_base"] * 3 + ["dpl_canary"] * 3 + [None] * 3
        by = split(samples)
        canary, base = by["dpl_canary"], by["dpl_base"]
        assert canary[Signal.ERROR_RATE].value == pytest.approx(0.09)
        assert canary[Signal.ERROR_RATE].requests == 1000
        assert canary[Signal.LATENCY_P95_S].value == pytest.approx(1.8)
        assert canary[Signal.REQUEST_COUNT].value == 1000
        assert base[Signal.ERROR_RATE].value == pytest.approx(0.004)
        assert base[Signal.ERROR_RATE].requests == 9000
        assert by[None][Signal.ERROR_RATE].value == pytest.approx(0.0126)

    async def test_a_release_without_events_is_unknown_not_zero(
        self, make, sentry: FakeSentry
    ) -> None:  # type: ignore[no-untyped-def]
        """Sentry leaves a release with no events out of the answer: no_data, never 0%."""
        sentry.releases[CANARY_SHA] = ReleaseStats(count=0)
        by = split(await make().poll())
        rate = by["dpl_canary"][Signal.ERROR_RATE]
        assert (rate.value, rate.unknown) == (None, UnknownReason.NO_DATA)
        assert "no events of release" in rate.detail
        assert by["dpl_base"][Signal.ERROR_RATE].value == pytest.approx(0.004)

    async def test_same_commit_cannot_be_told_apart(
        self, make, sentry: FakeSentry, board: ReleaseBoard
    ) -> None:  # type: ignore[no-untyped-def]
        """A redeploy of one commit: both deployments share the release, so neither is
        measured apart (unknown), and no per-release query is sent."""
        board.show(BASE, ScopedDeployment("dpl_canary", BASE_SHA, "canary"))
        by = split(await make().poll())
        assert len(sentry.requests) == 1
        assert by["dpl_canary"][Signal.ERROR_RATE].unknown is UnknownReason.NO_DATA
        assert "cannot be told apart" in by["dpl_canary"][Signal.ERROR_RATE].detail
        assert by[None][Signal.ERROR_RATE].value == pytest.approx(0.0126)

    async def test_unknown_commit(self, make, board: ReleaseBoard) -> None:  # type: ignore[no-untyped-def]
        """A deployment without a commit SHA has no nameable release: unknown, the other is
        still measured."""
        board.show(BASE, ScopedDeployment("dpl_canary", None, "canary"))
        by = split(await make().poll())
        assert by["dpl_canary"][Signal.ERROR_RATE].unknown is UnknownReason.NO_DATA
        assert by["dpl_base"][Signal.ERROR_RATE].value == pytest.approx(0.004)

    async def test_a_failing_release_query_leaves_the_overall(
        self, make, sentry: FakeSentry
    ) -> None:  # type: ignore[no-untyped-def]
        """A 400 on the per-release query makes the tagged samples provider errors; the
        overall query still runs and measures."""
        sentry.fail_next(Fault.json(400, {"detail": "Invalid query"}))
        by = split(await make(attempts=1).poll())
        assert by["dpl_canary"][Signal.ERROR_RATE].unknown is UnknownReason.PROVIDER_ERROR
        assert by[None][Signal.ERROR_RATE].value == pytest.approx(0.0126)

    async def test_a_rate_limit_blocks_both(self, make, sentry: FakeSentry) -> None:  # type: ignore[no-untyped-def]
        """A 429 on the per-release query is a 429 for the source: no overall call either."""
        sentry.fail_next(FakeSentry.rate_limited(reset_epoch_s=2_000_000_000))
        samples = await make(attempts=1).poll()
        assert len(sentry.requests) == 1
        assert all(s.unknown is UnknownReason.PROVIDER_ERROR for s in samples)
        assert "rate-limited" in samples[0].detail


class TestNaming:
    def test_default_is_the_commit(self) -> None:
        assert release_name("{commit}", CANARY) == CANARY_SHA
        assert release_name("web@{short_commit}", CANARY) == "web@ccccccc"
        assert release_name("{deployment}", ScopedDeployment("dpl_x", None, "canary")) == "dpl_x"
        assert release_name("{commit}", ScopedDeployment("dpl_x", None, "canary")) is None

    @pytest.mark.parametrize(
        ("template", "why"),
        [("{sha}", "unknown placeholder"), ("web", "names no deployment"), ('a"{commit}', "only")],
    )
    def test_bad_templates(self, template: str, why: str) -> None:
        with pytest.raises(ValueError, match=why):
            check_template(template)

    def test_filter_and_the_fake_agree(self) -> None:
        """What the source sends is what the fake (and Sentry's list syntax) reads."""
        text = release_filter(["abc", "web@1.2"])
        assert text == 'release:[abc,"web@1.2"]'
        assert releases_asked(f"is_transaction:true {text}") == ["abc", "web@1.2"]
        assert releases_asked("release:abc") == ["abc"]
