"""A plain install (no ``postgres`` extra) runs everything that does not need PostgreSQL.

Each test runs the CLI in a child interpreter where ``import asyncpg`` fails as it does when
the driver is not installed (``sys.modules['asyncpg'] = None``), so modules the test process
already imported cannot hide an eager import. ``scripts/install-check.sh`` proves the same
against the built wheel in a fresh venv.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
WITHOUT_ASYNCPG = "import sys; sys.modules['asyncpg'] = None\n"
TARGETS = (
    "targets:\n  - name: web\n    sources:\n      - {kind: health, url: 'https://x.example/h'}\n"
)


def without_asyncpg(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_ASYNCPG + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def watchdog_without_asyncpg(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return without_asyncpg(f"from watchdog.cli import main; sys.exit(main({list(argv)!r}))", cwd)


def config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"store:\n  url: {store_url}\n{TARGETS}")
    return path


class TestWithoutAsyncpg:
    def test_the_blocker_works(self, tmp_path: Path) -> None:
        """The child really cannot import asyncpg (else the tests below prove nothing)."""
        proc = without_asyncpg("import asyncpg", tmp_path)
        assert proc.returncode == 1
        assert "ModuleNotFoundError" in proc.stderr

    def test_every_command_module_imports(self, tmp_path: Path) -> None:
        """The modules behind check, run, demo, replay, postmortem and drill import."""
        modules = [
            "watchdog.cli",
            "watchdog.config",
            "watchdog.daemon.main",
            "watchdog.demo",
            "watchdog.replay",
            "watchdog.postmortem",
            "watchdog.drill",
            "watchdog.store.factory",
        ]
        proc = without_asyncpg("".join(f"import {m}\n" for m in modules), tmp_path)
        assert proc.returncode == 0, proc.stderr

    def test_sqlite_config_checks(self, tmp_path: Path) -> None:
        """`watchdog check` accepts a SQLite config without the PostgreSQL driver."""
        path = config(tmp_path, f"sqlite:///{tmp_path}/w.db")
        proc = watchdog_without_asyncpg(tmp_path, "check", "--config", str(path))
        assert proc.returncode == 0, proc.stderr
        assert "ok: config" in proc.stdout

    @pytest.mark.parametrize("command", ["check", "run"])
    def test_postgres_store_says_what_to_install(self, tmp_path: Path, command: str) -> None:
        """A postgresql:// store without asyncpg fails `check` and `run` with exit 1 and one
        line naming the extra to install (no traceback, no password)."""
        path = config(tmp_path, "postgresql://watchdog:hunter2@db.internal/watchdog")
        proc = watchdog_without_asyncpg(tmp_path, command, "--config", str(path))
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        assert "hunter2" not in proc.stderr
        (line,) = [ln for ln in proc.stderr.splitlines() if "asyncpg" in ln]
        assert line.startswith(f"{path}:2: field 'store.url': ")
        assert "pip install 'rollback-watchdog[postgres]'" in line
        if command == "run":
            assert proc.stderr.strip() == line

    def test_replay_runs(self, tmp_path: Path) -> None:
        """`watchdog replay` of the shipped example prints its expected decisions."""
        trace = ROOT / "examples" / "bad-deploy.jsonl"
        proc = watchdog_without_asyncpg(tmp_path, "replay", str(trace))
        assert proc.returncode == 0, proc.stderr
        expected = (ROOT / "examples" / "bad-deploy.expected.jsonl").read_text()
        assert proc.stdout == expected
