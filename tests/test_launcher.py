"""The ``watchdog`` command when ``import watchdog`` is not (all) this project.

Each test runs the installed console script in a child process with a fake conflicting
``watchdog`` package first on ``PYTHONPATH`` (it shadows the real install as a shared
environment or a stray path entry would) and expects one line on stderr saying what is wrong
and how to fix it, exit 1, and no traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPT = Path(sys.executable).with_name("watchdog")
FIX = "install rollback-watchdog in its own virtual environment"


def filesystem_events(into: Path) -> Path:
    """A package shaped like the filesystem-events library ``watchdog`` (observers, events)."""
    package = into / "watchdog"
    (package / "observers").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "observers" / "__init__.py").write_text("class Observer: ...\n")
    (package / "events.py").write_text("class FileSystemEventHandler: ...\n")
    (package / "version.py").write_text("VERSION_STRING = '6.0.0'\n")
    return package


def our_copy(into: Path) -> Path:
    """A copy of this project's package (to damage)."""
    package = into / "watchdog"
    shutil.copytree(ROOT / "watchdog", package, ignore=shutil.ignore_patterns("__pycache__"))
    return package


def command(path_first: Path | None, *argv: str, python: str | None = None) -> tuple[int, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if path_first is not None:
        env["PYTHONPATH"] = str(path_first)
    cmd = [python, "-c", python_code()] if python else [str(SCRIPT)]
    proc = subprocess.run(
        [*cmd, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=path_first or ROOT,
    )
    return proc.returncode, proc.stderr


def python_code() -> str:
    return (
        "import sys; sys.modules['pydantic'] = None\n"
        "import rollback_watchdog_launcher as launcher; sys.exit(launcher.main())"
    )


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("watchdog: ")
    return lines[0]


class TestLauncher:
    def test_console_script_is_the_launcher(self) -> None:
        """The installed `watchdog` command enters through the launcher and runs normally."""
        assert "rollback_watchdog_launcher" in SCRIPT.read_text()
        proc = subprocess.run(
            [str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "watchdog 0.1.0"

    def test_filesystem_events_library_first(self, tmp_path: Path) -> None:
        """The filesystem-events `watchdog` shadowing ours is named as such, with the fix."""
        package = filesystem_events(tmp_path)
        code, err = command(tmp_path, "--version")
        line = one_line(err)
        assert code == 1
        assert f"in {package} is the filesystem-events library 'watchdog'" in line
        assert FIX in line

    def test_some_other_watchdog_first(self, tmp_path: Path) -> None:
        """Any other `watchdog` package (no marker) is not taken for ours."""
        (tmp_path / "watchdog").mkdir()
        (tmp_path / "watchdog" / "__init__.py").write_text("raise_me = 1\n")
        code, err = command(tmp_path, "check")
        assert code == 1
        assert "is not rollback-watchdog's" in one_line(err)

    def test_a_broken_watchdog_first(self, tmp_path: Path) -> None:
        """A `watchdog` whose import raises is reported with its error, not a traceback."""
        (tmp_path / "watchdog").mkdir()
        (tmp_path / "watchdog" / "__init__.py").write_text("import no_such_module_here\n")
        code, err = command(tmp_path, "--version")
        assert code == 1
        assert "'import watchdog' fails (ModuleNotFoundError" in one_line(err)

    def test_ours_overwritten_by_the_filesystem_events_library(self, tmp_path: Path) -> None:
        """Both installed into one environment: the other's __init__.py and observers/ over
        ours. Reported as an overwrite, with the fix."""
        ours = our_copy(tmp_path)
        theirs = filesystem_events(tmp_path / "theirs")
        shutil.copytree(theirs, ours, dirs_exist_ok=True)
        code, err = command(tmp_path, "--version")
        line = one_line(err)
        assert code == 1
        assert "was overwritten by the filesystem-events library" in line
        assert FIX in line

    def test_ours_with_init_removed(self, tmp_path: Path) -> None:
        """Our __init__.py gone (e.g. the other library uninstalled after overwriting it):
        the namespace package left behind is reported, not imported half-way."""
        (our_copy(tmp_path) / "__init__.py").unlink()
        code, err = command(tmp_path, "--version")
        assert code == 1
        assert "has been overwritten or partly removed" in one_line(err)

    def test_ours_with_a_module_missing(self, tmp_path: Path) -> None:
        """A module of ours removed is named."""
        (our_copy(tmp_path) / "cli.py").unlink()
        code, err = command(tmp_path, "--version")
        assert code == 1
        assert "module 'watchdog.cli' is missing" in one_line(err)

    def test_missing_dependency_is_named(self) -> None:
        """A dependency missing from the environment is named with how to reinstall."""
        code, err = command(None, "--version", python=sys.executable)
        line = one_line(err)
        assert code == 1
        assert "needs the Python package 'pydantic'" in line

    @pytest.mark.parametrize("argv", [["--version"], ["check", "--rules", "nope.yaml"]])
    def test_a_whole_install_runs_as_before(self, argv: list[str]) -> None:
        """Nothing shadowing: the command runs (exit codes unchanged)."""
        code, err = command(None, *argv)
        assert code == (0 if argv == ["--version"] else 1)
        assert "Traceback" not in err
