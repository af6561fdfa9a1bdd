"""The Supabase source: db_cpu from two scrapes of node_cpu_seconds_total."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.sources.conftest import CANARY_SECRET, Build, parse_config
from watchdog.core.model import Signal, UnknownReason
from watchdog.sources.supabase import (
    SupabaseSourceConfig,
    busy_fraction,
    parse_cpu_counters,
)
from watchdog.testing.fake_supabase import FakeSupabase
from watchdog.testing.server import Fault, closed_port_url

FIXTURE = Path(__file__).parent / "fixtures" / "supabase_metrics.txt"
REF = "xyzcompanyref123"
REPLICA = f"{REF}-rr-eu-west-1-abcde"


@pytest.fixture
async def supabase() -> AsyncIterator[FakeSupabase]:
    async with FakeSupabase(secret_key=CANARY_SECRET, replicas=1) as fake:
        yield fake


def config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "supabase",
        "base_url": url,
        "secret_key": CANARY_SECRET,
        "timeout": 0.2,
        **extra,
    }


class TestParseCpuCounters:
    def test_realistic_scrape(self) -> None:
        """Both instances, every CPU and mode, other families ignored, repeats read once."""
        instances = parse_cpu_counters(FIXTURE.read_text())
        assert set(instances) == {REF, REPLICA}
        modes = {"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
        for counters in instances.values():
            assert set(counters) == {(cpu, mode) for cpu in ("0", "1") for mode in modes}
        assert instances[REF][("0", "idle")] == 812345.67
        assert instances[REPLICA][("1", "user")] == 20456.0

    def test_repeated_label_sets_keep_one_reading(self) -> None:
        """A label set seen twice counts once (its highest reading), not twice."""
        text = (
            "# TYPE node_cpu_seconds_total counter\n"
            'node_cpu_seconds_total{cpu="0",mode="idle",supabase_identifier="a"} 10\n'
            'node_cpu_seconds_total{cpu="0",mode="user",supabase_identifier="a"} 5\n'
            "# TYPE node_cpu_seconds_total counter\n"
            'node_cpu_seconds_total{cpu="0",mode="idle",supabase_identifier="a"} 11\n'
            'node_cpu_seconds_total{cpu="0",mode="user",supabase_identifier="a"} 5\n'
        )
        assert parse_cpu_counters(text) == {"a": {("0", "idle"): 11.0, ("0", "user"): 5.0}}

    def test_not_the_text_format(self) -> None:
        """An HTML page is not the exposition format."""
        with pytest.raises(ValueError, match="invalid"):
            parse_cpu_counters("<html><body>Bad Gateway</body></html>")


class TestBusyFraction:
    @pytest.mark.parametrize(
        ("idle", "user", "expected"),
        [(30.0, 90.0, 0.75), (120.0, 0.0, 0.0), (0.0, 120.0, 1.0), (60.0, 60.0, 0.5)],
    )
    def test_busy_share_of_elapsed_cpu_time(
        self, idle: float, user: float, expected: float
    ) -> None:
        """busy = 1 - Δidle / Δtotal, summed over CPUs and modes."""
        before = {
            ("0", "idle"): 100.0,
            ("0", "user"): 50.0,
            ("1", "idle"): 100.0,
            ("1", "user"): 50.0,
        }
        after = {
            ("0", "idle"): 100.0 + idle / 2,
            ("0", "user"): 50.0 + user / 2,
            ("1", "idle"): 100.0 + idle / 2,
            ("1", "user"): 50.0 + user / 2,
        }
        assert busy_fraction(before, after) == pytest.approx(expected)

    def test_counter_decrease_is_a_reset(self) -> None:
        """Any counter going backwards yields a reason, not a number."""
        result = busy_fraction({("0", "idle"): 100.0}, {("0", "idle"): 5.0})
        assert result == "CPU counters went backwards (restart?)"

    def test_changed_series_is_not_compared(self) -> None:
        """A CPU appearing or vanishing makes the two scrapes incomparable."""
        result = busy_fraction({("0", "idle"): 1.0}, {("0", "idle"): 2.0, ("1", "idle"): 1.0})
        assert isinstance(result, str)

    def test_no_elapsed_time(self) -> None:
        """Identical scrapes carry no information."""
        assert isinstance(busy_fraction({("0", "idle"): 1.0}, {("0", "idle"): 1.0}), str)


class TestSupabaseSource:
    async def test_first_scrape_is_a_baseline_then_busy_share(
        self, supabase: FakeSupabase, build: Build
    ) -> None:
        """The first scrape is no_data; the second reports the busy share since the first."""
        source = build(config(supabase.url))
        [first] = await source.poll()
        assert first.signal == Signal.DB_CPU
        assert first.unknown is UnknownReason.NO_DATA
        assert "baseline" in first.detail
        supabase.run(60, busy=0.75)
        [second] = await source.poll()
        assert second.value == pytest.approx(0.75, abs=0.01)
        [request] = supabase.requests[:1]
        assert request.path == "/customer/v1/privileged/metrics"

    async def test_reports_the_busiest_instance(self, supabase: FakeSupabase, build: Build) -> None:
        """By default db_cpu is the maximum across instances, naming the instance."""
        source = build(config(supabase.url))
        await source.poll()
        supabase.run(60, busy=0.2, instance=supabase.primary)
        supabase.run(60, busy=0.95, instance=supabase.instances[1])
        [sample] = await source.poll()
        assert sample.value == pytest.approx(0.95, abs=0.01)
        assert supabase.instances[1] in sample.detail

    async def test_instance_option_picks_one(self, supabase: FakeSupabase, build: Build) -> None:
        """instance: <identifier> reports that instance only."""
        source = build(config(supabase.url, instance=supabase.primary))
        await source.poll()
        supabase.run(60, busy=0.2, instance=supabase.primary)
        supabase.run(60, busy=0.95, instance=supabase.instances[1])
        [sample] = await source.poll()
        assert sample.value == pytest.approx(0.2, abs=0.01)

    async def test_unknown_instance_is_a_provider_error(
        self, supabase: FakeSupabase, build: Build
    ) -> None:
        """A configured instance the scrape lacks is said plainly."""
        [sample] = await build(config(supabase.url, instance="nope")).poll()
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert "'nope'" in sample.detail

    async def test_counter_reset_is_unknown_then_rebaselines(
        self, supabase: FakeSupabase, build: Build
    ) -> None:
        """A restart makes one interval unknown; the next interval is measured from the reset."""
        source = build(config(supabase.url))
        await source.poll()
        supabase.restart(supabase.primary)
        supabase.run(60, busy=0.5)
        [reset] = await source.poll()
        assert reset.value is None
        assert reset.unknown is UnknownReason.NO_DATA
        assert "went backwards" in reset.detail
        supabase.run(60, busy=0.4)
        [after] = await source.poll()
        assert after.value == pytest.approx(0.4, abs=0.01)

    async def test_failed_scrape_keeps_the_baseline(
        self, supabase: FakeSupabase, build: Build
    ) -> None:
        """A failed scrape in between: the next good one measures over the whole gap."""
        source = build(config(supabase.url, attempts=1))
        await source.poll()
        supabase.run(60, busy=0.9)
        supabase.fail_next(Fault(status=500))
        [failed] = await source.poll()
        assert failed.unknown is UnknownReason.PROVIDER_ERROR
        supabase.run(60, busy=0.1)
        [sample] = await source.poll()
        assert sample.value == pytest.approx(0.5, abs=0.01)

    async def test_5xx_then_success(self, supabase: FakeSupabase, build: Build) -> None:
        """A transient 503 is retried within the poll."""
        supabase.fail_next(Fault(status=503))
        source = build(config(supabase.url))
        [sample] = await source.poll()
        assert sample.unknown is UnknownReason.NO_DATA  # a baseline, not an error
        assert len(supabase.requests) == 2

    async def test_5xx_forever_is_bounded(self, supabase: FakeSupabase, build: Build) -> None:
        """Persistent 502s end after the attempts as provider_error."""
        supabase.fail_always(Fault.html(502))
        source = build(config(supabase.url))
        [sample] = await source.poll()
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert len(supabase.requests) == 3

    @pytest.mark.parametrize(
        ("body", "content_type", "words"),
        [
            ("<html>maintenance</html>", "text/html", "HTML"),
            ("this is { not metrics", "text/plain", "not in the Prometheus text format"),
            ("# TYPE pg_up gauge\npg_up 1\n", "text/plain", "no node_cpu_seconds_total"),
            ('node_cpu_seconds_total{cpu="0",mode="idle"} NaN\n', "text/plain", "non-finite"),
        ],
    )
    async def test_malformed_scrapes(
        self, supabase: FakeSupabase, build: Build, body: str, content_type: str, words: str
    ) -> None:
        """HTML, garbage, a scrape without CPU counters or with NaN counters: provider_error."""
        supabase.fail_next(Fault(status=200, body=body, content_type=content_type))
        source = build(config(supabase.url))
        [sample] = await source.poll()
        assert sample.unknown is UnknownReason.PROVIDER_ERROR
        assert words in sample.detail
        assert source.errors["malformed"] == 1

    async def test_slow_and_refused(self, supabase: FakeSupabase, build: Build) -> None:
        """Timeouts and refused connections are provider_error."""
        supabase.fail_always(Fault.slow(2.0))
        [slow] = await build(config(supabase.url, attempts=1)).poll()
        assert "did not answer" in slow.detail
        [refused] = await build(config(closed_port_url(), attempts=1)).poll()
        assert refused.unknown is UnknownReason.PROVIDER_ERROR

    async def test_wrong_key_is_not_retried_and_never_leaks(self, build: Build) -> None:
        """A rejected key: one request, a message naming the fix, the key nowhere."""
        async with FakeSupabase(secret_key="sb_secret_other") as fake:
            source = build(config(fake.url))
            with capture_logs() as logs:
                [sample] = await source.poll()
            assert len(fake.requests) == 1
        assert "Supabase metrics rejected the credentials (401)" in sample.detail
        assert "sb_secret_" in sample.detail  # the fix names the kind of key, not the key
        assert CANARY_SECRET not in repr(sample) + repr(logs)

    async def test_sends_basic_auth_as_service_role(
        self, supabase: FakeSupabase, build: Build
    ) -> None:
        """The request carries HTTP Basic for user service_role."""
        [sample] = await build(config(supabase.url)).poll()
        assert sample.unknown is UnknownReason.NO_DATA
        assert supabase.requests[0].headers["Authorization"].startswith("Basic ")


class TestSupabaseConfig:
    def test_url_from_project_ref(self) -> None:
        """project_ref builds the documented endpoint URL."""
        parsed = parse_config({"kind": "supabase", "project_ref": "abcd1234", "secret_key": "x"})
        assert isinstance(parsed, SupabaseSourceConfig)
        assert parsed.url == "https://abcd1234.supabase.co/customer/v1/privileged/metrics"
        assert parsed.interval.total_seconds() == 60
