"""``watchdog demo`` end to end: the real daemon against the simulated production.

Run at speed 30 (every rule duration divided by 30) to keep the suite fast; the scenario
logic is the same as at the default speed.
"""

from __future__ import annotations

import io

import pytest

from watchdog.demo import compress, run_demo
from watchdog.yamlfile import default_rules_path, load_rule_pack


@pytest.mark.timeout(120)
class TestDemo:
    async def test_bad_deploy_rolls_back_verifies_and_resolves(self) -> None:
        """The default scenario detects, rolls back once, verifies, resolves, and explains."""
        out = io.StringIO()
        assert await run_demo("bad-deploy", speed=30, out=out, max_seconds=90) == 0
        text = out.getvalue()
        assert text.count("VERCEL    POST") == 1
        assert "rule=error-rate-critical" in text
        assert "VERIFIED" in text
        assert "RESOLVED" in text
        assert "# Incident Post-Mortem:" in text
        assert "| Rollback initiated" in text or "Rollback initiated" in text
        assert "result: as expected" in text

    async def test_slow_db_pages_and_never_rolls_back(self) -> None:
        """Database CPU above 90% pages at warning level and never touches Vercel."""
        out = io.StringIO()
        assert await run_demo("slow-db", speed=30, out=out, max_seconds=90) == 0
        text = out.getvalue()
        assert "VERCEL    POST" not in text
        assert "rule=db-cpu-investigate" in text
        assert "PAGE (investigate)" in text

    async def test_canary_is_caught_at_its_first_stage_and_aborted(self) -> None:
        """A 10% canary failing 8% against its base's 0.2%: the baseline rule catches it,
        the rolling release is aborted (the rollback to its base, once), the app's version
        (a commit SHA) verifies the base, and the incident resolves; the canary never got
        past its first stage."""
        out = io.StringIO()
        assert await run_demo("canary", speed=30, out=out, max_seconds=90) == 0
        text = out.getvalue()
        assert text.count("VERCEL    POST") == 1
        assert "rolling release aborted" in text
        assert "rule=canary-error-rate" in text
        assert "on dpl_bad vs 0.2% on dpl_good" in text  # the comparison, in the timeline
        assert "canary dpl_bad: error_rate=0.08" in text
        assert "VERIFIED" in text
        assert "RESOLVED" in text
        assert "already_rolled_back" not in text
        assert "result: as expected" in text


class TestCompress:
    def test_durations_divide_counts_stay(self) -> None:
        """Compressing divides every duration and keeps consecutive counts."""
        pack = load_rule_pack(default_rules_path())
        fast = compress(pack, 12)
        assert fast.flowchart.resolve_period == pack.flowchart.resolve_period / 12
        latency = fast.rule("latency-critical")
        assert latency.sustain.for_ == pack.rule("latency-critical").sustain.for_ / 12
        assert fast.rule("system-down").sustain.consecutive == 3
