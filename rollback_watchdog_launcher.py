"""The ``watchdog`` console script: make sure ``import watchdog`` is this project, then run it.

rollback-watchdog's import package is called ``watchdog``, like the popular filesystem-events
library. In a shared environment ``import watchdog`` may find that library, another project's
``watchdog``, or a mix after one was installed over the other; the command would then die in
an ImportError traceback that names neither project. This module sits outside the ``watchdog``
package and imports only the standard library before its checks, so the command always
starts and says in one line what is wrong and how to fix it (exit 1).

Signs it is not ours, each judged in the folder of the ``watchdog`` that was imported: no
``_rollback_watchdog.py`` marker; an ``observers`` subpackage (the filesystem-events library's);
an ``__init__.py`` without our ``__distribution__`` (overwritten, or removed so that a
namespace package is left); no ``cli.py``; a module or dependency that fails to import.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

DISTRIBUTION = "rollback-watchdog"
MARKER = "_rollback_watchdog"
# the name is not necessarily on an index: say what to do, not which index to trust
FIX = (
    "install rollback-watchdog in its own virtual environment (python3 -m venv "
    "/opt/rollback-watchdog; /opt/rollback-watchdog/bin/pip install <its wheel or source "
    "tree>) and run /opt/rollback-watchdog/bin/watchdog"
)


def _where(package: ModuleType) -> str:
    file = getattr(package, "__file__", None)
    if file:
        return str(file).removesuffix("__init__.py").rstrip("/\\") or str(file)
    paths = list(getattr(package, "__path__", []))
    return ", ".join(paths) if paths else repr(package)


def _inside(name: str, package: ModuleType) -> bool:
    """``watchdog.<name>`` exists *in the imported package's own folder*: a finder that
    resolves it from elsewhere (e.g. an editable install's) would hide a mix of two installs."""
    try:
        spec = importlib.util.find_spec(f"watchdog.{name}")
    except (ImportError, ValueError):  # a parent that is a plain module, or half-imported
        return False
    if spec is None:
        return False
    folders = {os.path.realpath(p) for p in getattr(package, "__path__", [])}
    where = spec.submodule_search_locations or ([spec.origin] if spec.origin else [])
    return any(os.path.realpath(os.path.dirname(str(w))) in folders for w in where)


def diagnose() -> str | None:
    """Why ``import watchdog`` does not give a whole rollback-watchdog here, or None."""
    try:
        package = importlib.import_module("watchdog")
    except Exception as exc:  # whatever is installed as watchdog is broken: say what happened
        return f"'import watchdog' fails ({type(exc).__name__}: {exc})"
    where = _where(package)
    ours = _inside(MARKER, package)
    filesystem_events = _inside("observers", package)
    if not ours and filesystem_events:
        return (
            f"the 'watchdog' package in {where} is the filesystem-events library 'watchdog', "
            "not rollback-watchdog (both use the import name 'watchdog')"
        )
    if not ours:
        return f"the 'watchdog' package in {where} is not rollback-watchdog's"
    if filesystem_events:
        return (
            f"rollback-watchdog's 'watchdog' package in {where} was overwritten by the "
            "filesystem-events library 'watchdog', installed into the same environment"
        )
    if getattr(package, "__distribution__", None) != DISTRIBUTION:
        return (
            f"rollback-watchdog's 'watchdog' package in {where} has been overwritten or "
            "partly removed (its __init__.py is not rollback-watchdog's)"
        )
    if not _inside("cli", package):
        return f"rollback-watchdog's module 'watchdog.cli' is missing from {where}"
    return None


def main() -> int:
    """Entry point of the ``watchdog`` command."""
    problem = diagnose()
    if problem is None:
        try:
            from watchdog.cli import main as cli_main
        except ModuleNotFoundError as exc:
            name = exc.name or "?"
            if name == "watchdog" or name.startswith("watchdog."):
                problem = f"rollback-watchdog's module {name!r} is missing (files removed)"
            else:
                print(
                    f"watchdog: rollback-watchdog needs the Python package {name!r}, which is not "
                    f"installed in {sys.prefix}: reinstall rollback-watchdog into that "
                    "environment (pip install --force-reinstall <its wheel or source tree>)",
                    file=sys.stderr,
                )
                return 1
        except ImportError as exc:
            problem = f"rollback-watchdog's files do not fit together ({exc}): overwritten?"
        else:
            return cli_main()
    print(f"watchdog: {problem}; {FIX}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
