"""Alertmanager v2 pager: exact alerts, resolve by endsAt, re-posting while active."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from watchdog.actions.alertmanager import (
    DEFAULT_SEVERITY,
    AlertmanagerConfig,
    AlertmanagerPager,
    build_alert,
    due_for_repost,
)
from watchdog.actions.base import Change, Page
from watchdog.actions.pagerduty import DEFAULT_SEVERITY as PAGERDUTY_DEFAULT
from watchdog.config import load_settings
from watchdog.core.model import Observation, Severity
from watchdog.testing.clock import FakeClock
from watchdog.testing.fake_alertmanager import FakeAlertmanager
from watchdog.transport import CallError
from watchdog.yamlfile import FileError

AT = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
PAGE = Page(
    target="web",
    incident="inc-1",
    severity=Severity.P0,
    summary="[P0] web: health down",
    at=AT,
    reason="health_up == 0 for 3 polls",
    path=("p0-firing?yes", "rollback"),
    rule="system-down",
    deployment="dpl_new",
    observations=(Observation("system-down", "health_up", 0.0, "==", 0.0, True),),
)


def config(url: str = "http://am:9093/", **kw: object) -> AlertmanagerConfig:
    return AlertmanagerConfig.model_validate(
        {
            "base_url": url,
            "labels": {"team": "web"},
            "generator_url": "https://watchdog.internal/incidents/{incident}",
            "runbook_url": "https://runbooks/rollback",
            "deployment_url": "https://vercel.com/acme/web/{deployment}",
            **kw,
        }
    )


@pytest.fixture
async def am() -> AsyncIterator[FakeAlertmanager]:
    async with FakeAlertmanager() as fake:
        yield fake


class TestPayloads:
    def test_alert_exact(self) -> None:
        """The alert carries identifying labels, readable annotations, startsAt and generatorURL."""
        assert build_alert(PAGE, config()) == {
            "labels": {
                "team": "web",
                "alertname": "WatchdogIncident",
                "target": "web",
                "incident": "inc-1",
                "severity": "critical",
            },
            "annotations": {
                "summary": "[P0] web: health down",
                "description": "health_up == 0 for 3 polls",
                "priority": "P0",
                "flowchart_path": "p0-firing?yes → rollback",
                "deployment": "dpl_new",
                "deployment_url": "https://vercel.com/acme/web/dpl_new",
                "signals": "health_up=0 == 0",
                "runbook_url": "https://runbooks/rollback",
            },
            "startsAt": "2026-08-20T10:00:00Z",
            "generatorURL": "https://watchdog.internal/incidents/inc-1",
        }

    @pytest.mark.parametrize(
        ("elapsed_s", "due"), [(0, False), (59, False), (60, True), (600, True)]
    )
    def test_due_for_repost(self, elapsed_s: int, due: bool) -> None:
        """An alert is due for re-posting once the repost interval has passed."""
        assert due_for_repost(AT, AT + timedelta(seconds=elapsed_s), timedelta(seconds=60)) is due


class TestSeverity:
    @pytest.mark.parametrize(
        ("severity", "label"),
        [
            (Severity.P0, "critical"),
            (Severity.P1, "critical"),
            (Severity.INVESTIGATE, "warning"),
            (Severity.P2, "info"),
        ],
    )
    def test_default_mapping(self, severity: Severity, label: str) -> None:
        """Both rollback severities are critical, investigate is warning, P2 info (DESIGN §6)."""
        alert = build_alert(replace(PAGE, severity=severity), config())
        assert alert["labels"]["severity"] == label
        assert alert["annotations"]["priority"] == severity.value

    def test_configured_mapping_overrides_only_what_it_names(self) -> None:
        """``severity: {P1: error}`` changes P1 and leaves the other defaults."""
        cfg = config(severity={"P1": "error"})
        assert cfg.severity == {
            Severity.P0: "critical",
            Severity.P1: "error",
            Severity.INVESTIGATE: "warning",
            Severity.P2: "info",
            Severity.P3: "info",
        }
        assert build_alert(replace(PAGE, severity=Severity.P1), cfg)["labels"]["severity"] == (
            "error"
        )

    @pytest.mark.parametrize(
        ("mapping", "words"),
        [
            ({"P9": "critical"}, "P0"),
            ({"P1": ""}, "letters, digits"),
            ({"P1": "very bad"}, "letters, digits"),
        ],
    )
    def test_invalid_mapping_is_rejected(self, mapping: dict[str, str], words: str) -> None:
        """An unknown procedure severity or a label value a matcher cannot name is an error."""
        with pytest.raises(ValidationError) as info:
            config(severity=mapping)
        assert words in str(info.value)

    def test_config_file_error_names_the_line(self, tmp_path: Path) -> None:
        """A bad label value in the YAML file is reported with its file, line and field."""
        path = tmp_path / "c.yaml"
        path.write_text(
            "pager:\n  kind: alertmanager\n  base_url: http://am:9093\n"
            "  severity:\n    investigate: not ok\n"
            "targets:\n  - name: web\n    sources:\n"
            "      - {kind: health, url: 'https://x.example/h'}\n"
        )
        with pytest.raises(FileError, match=r"c.yaml:\d+: field 'pager.severity'.*'not ok'"):
            load_settings(path)

    def test_documented_table_is_the_default(self) -> None:
        """docs/actions.md's table shows exactly the defaults both pagers use."""
        docs = (Path(__file__).parents[2] / "docs" / "actions.md").read_text()
        rows = re.findall(
            r"^\| (P0|P1|investigate|P2|P3) \|[^|]*\| `(\w+)` \| `(\w+)` \|$", docs, re.M
        )
        assert {Severity(r[0]): (r[1], r[2]) for r in rows} == {
            s: (PAGERDUTY_DEFAULT[s], DEFAULT_SEVERITY[s]) for s in Severity
        }


class TestPager:
    async def test_trigger_repost_resolve(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Trigger posts an array, repost re-sends while active, resolve sets endsAt."""
        pager = AlertmanagerPager(config(am.url), session, clock)
        await pager.trigger(PAGE)
        assert len(am.posts) == 1
        assert "endsAt" not in am.posts[0][0]
        assert pager.due_for_repost(clock.now()) == []
        assert await pager.repost(clock.now()) == 0
        clock.advance(60)
        assert pager.due_for_repost(clock.now()) == [("web", "inc-1")]
        assert await pager.repost(clock.now()) == 1
        assert am.posts[1] == am.posts[0]
        await pager.resolve("web", "inc-1", clock.now())
        assert am.posts[2][0]["endsAt"] == "2026-08-20T10:01:00Z"
        assert pager.active == {}

    async def test_severity_change_resolves_old_labels(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A new severity label is a new label set, so the old alert is ended in the same post."""
        pager = AlertmanagerPager(config(am.url), session, clock)
        await pager.trigger(replace(PAGE, severity=Severity.INVESTIGATE))
        await pager.trigger(PAGE)
        new, old = am.posts[1]
        assert new["labels"]["severity"] == "critical"
        assert old["labels"]["severity"] == "warning"
        assert old["endsAt"] == "2026-08-20T10:00:00Z"

    async def test_escalation_within_a_label_keeps_the_alert(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """P1 to P0 keeps severity=critical: the same alert is updated, none is ended."""
        pager = AlertmanagerPager(config(am.url), session, clock)
        await pager.trigger(replace(PAGE, severity=Severity.P1))
        await pager.trigger(PAGE)
        (updated,) = am.posts[1]
        assert updated["labels"]["severity"] == "critical"
        assert updated["annotations"]["priority"] == "P0"
        assert "endsAt" not in updated

    async def test_resolve_after_restart(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Without memory of the alert, resolve ends every severity variant of its labels."""
        pager = AlertmanagerPager(config(am.url), session, clock)
        await pager.resolve("web", "inc-9", AT)
        sev = sorted(a["labels"]["severity"] for a in am.posts[0])
        assert sev == ["critical", "info", "warning"]
        assert all(a["endsAt"] == "2026-08-20T10:00:00Z" for a in am.posts[0])

    async def test_resolve_after_restart_ends_configured_variants(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """With a custom mapping, the variants ended are the configured label values."""
        pager = AlertmanagerPager(
            config(am.url, severity={"P0": "page", "P1": "page", "investigate": "ticket"}),
            session,
            clock,
        )
        await pager.resolve("web", "inc-9", AT)
        assert sorted(a["labels"]["severity"] for a in am.posts[0]) == ["info", "page", "ticket"]

    async def test_400_not_retried(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 400 (plain string body) is not retryable."""
        am.fail("alerts", 400, '"bad alert"', content_type="text/plain")
        with pytest.raises(CallError) as info:
            await AlertmanagerPager(config(am.url), session, clock).trigger(PAGE)
        assert not info.value.retryable
        assert "bad alert" in str(info.value)

    async def test_500_retryable(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """A 500 is retryable."""
        am.fail("alerts", 500, '"boom"', content_type="text/plain")
        with pytest.raises(CallError) as info:
            await AlertmanagerPager(config(am.url), session, clock).trigger(PAGE)
        assert info.value.retryable

    async def test_change_is_noop(
        self, am: FakeAlertmanager, session: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        """Alertmanager has no change events: nothing is posted."""
        await AlertmanagerPager(config(am.url), session, clock).change(Change("web", "x", AT))
        assert am.requests == []
