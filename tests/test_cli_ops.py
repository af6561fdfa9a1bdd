"""`watchdog postmortem` and `watchdog drill` at the command line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchdog.cli import main
from watchdog.store.base import DecisionRecord, IncidentRecord, RollbackRecord, RollbackState
from watchdog.store.sqlite import SqliteStore

T0 = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


async def seed(path: Path) -> None:
    store = SqliteStore(path)
    await store.open()
    await store.save_incident(
        IncidentRecord(
            "web-20260820T100200",
            "web",
            T0 + timedelta(minutes=2),
            "P1",
            "error-rate-critical",
            "error_rate 0.08 > 0.05",
            "watchdog/web/web-20260820T100200",
            deployment="dpl_bad",
            resolved_at=T0 + timedelta(minutes=12),
            first_detected_at=T0 + timedelta(minutes=1),
        )
    )
    await store.append_decision(
        DecisionRecord(
            "web",
            T0 + timedelta(minutes=2),
            "rollback",
            "P1",
            "error-rate-critical",
            "error_rate 0.08 > 0.05",
            ("issue_detected", "p0:no", "rollback_threshold:yes", "rollback"),
            incident="web-20260820T100200",
        )
    )
    await store.save_rollback(
        RollbackRecord(
            "web-20260820T100200/rollback",
            "web-20260820T100200",
            "web",
            "prj_1",
            T0 + timedelta(minutes=2),
            RollbackState.VERIFIED,
            "dpl_bad",
            "dpl_good",
            finished_at=T0 + timedelta(minutes=3),
            verified_at=T0 + timedelta(minutes=4),
        )
    )
    await store.close()


class TestPostmortem:
    def test_renders_from_the_store(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The post-mortem draft is rendered from the store's records, timeline filled."""
        db = tmp_path / "w.db"
        asyncio.run(seed(db))
        capsys.readouterr()  # drop what seeding logged
        assert main(["postmortem", "web-20260820T100200", "--store", f"sqlite:///{db}"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("# Incident Post-Mortem:")
        assert "| 10:02 | Rollback initiated" in out
        assert "dpl_good" in out

    def test_unknown_incident(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An incident id that is not in the store is a one-line error, exit 1."""
        db = tmp_path / "w.db"
        asyncio.run(seed(db))
        assert main(["postmortem", "nope", "--store", f"sqlite:///{db}"]) == 1
        assert "no incident 'nope'" in capsys.readouterr().err


class TestDrill:
    def test_refuses_a_production_target(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A drill rolls back for real, so it refuses any target not marked staging."""
        config = tmp_path / "c.yaml"
        config.write_text(
            "targets:\n  - name: web\n    sources:\n"
            "      - {kind: health, url: 'https://x.example/api/health'}\n"
            "    deployer: {kind: vercel, token: t, project_id: prj_1,"
            " production_domain: www.example.com}\n"
        )
        assert main(["drill", "--config", str(config), "--target", "web"]) == 1
        assert "not marked 'environment: staging'" in capsys.readouterr().err

    def test_unknown_target(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Naming a target that is not configured lists the ones that are."""
        config = tmp_path / "c.yaml"
        config.write_text(
            "targets:\n  - name: web\n    sources:\n"
            "      - {kind: health, url: 'https://x.example/api/health'}\n"
        )
        assert main(["drill", "--config", str(config), "--target", "api"]) == 1
        assert "targets: web" in capsys.readouterr().err
