"""`watchdog postmortem` and `watchdog drill` at the command line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchdog.cli import main
from watchdog.drill import DrillReport, DrillStep
from watchdog.drill_report import TIMED
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


STAGING = (
    "store: {url: 'memory://'}\n"
    "targets:\n  - name: web-staging\n    environment: staging\n    sources:\n"
    "      - {kind: health, url: 'https://x.example/api/health'}\n"
    "    deployer: {kind: vercel, token: t, project_id: prj_1,"
    " production_domain: staging.example.com}\n"
)


class TestDrillExitStatus:
    def report(self, *, restored: bool, rollback_s: float) -> DrillReport:
        steps = tuple(DrillStep(name, T0, 1.0, True, "ok") for name in TIMED)
        return DrillReport(
            target="web-staging",
            project="prj_1",
            started_at=T0,
            finished_at=T0 + timedelta(seconds=rollback_s),
            steps=steps,
            total_s=rollback_s,
            rollback_s=rollback_s,
            original="dpl_c",
            rollback_target="dpl_b",
            restored=restored,
            serving_at_end="dpl_c" if restored else "dpl_b",
        )

    @pytest.mark.parametrize(
        ("restored", "rollback_s", "code"),
        [(True, 90.0, 0), (True, 200.0, 3), (False, 90.0, 4)],
    )
    def test_exit_status_follows_the_report(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        restored: bool,
        rollback_s: float,
        code: int,
    ) -> None:
        """0 passed, 3 failed with staging as it was, 4 staging left changed."""
        config = tmp_path / "c.yaml"
        config.write_text(STAGING)
        report = self.report(restored=restored, rollback_s=rollback_s)

        async def fake_drill(*args: object, **kwargs: object) -> DrillReport:
            return report

        monkeypatch.setattr("watchdog.drill.run_drill", fake_drill)
        assert main(["drill", "--config", str(config), "--target", "web-staging"]) == code
        assert report.verdict in capsys.readouterr().out

    def test_usage_error_is_argparse_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing required option is argparse's 2, which no drill outcome uses."""
        with pytest.raises(SystemExit) as info:
            main(["drill", "--target", "web-staging"])
        assert info.value.code == 2

    def test_help_lists_the_exit_statuses(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`watchdog drill --help` documents every exit status."""
        with pytest.raises(SystemExit):
            main(["drill", "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for code in ("0 passed", "1 the drill could not run", "2 usage error", "3 the drill"):
            assert code in out
        assert "4 staging" in out
