"""The decision core stays pure: no I/O, no asyncio, no clock (DESIGN §2)."""

from __future__ import annotations

import ast
from pathlib import Path

import watchdog.core

FORBIDDEN = {
    "asyncio",
    "aiohttp",
    "os",
    "time",
    "socket",
    "subprocess",
    "random",
    "structlog",
    "sqlite3",
}
CORE = Path(watchdog.core.__file__).parent


def test_core_imports_no_io() -> None:
    """No module of watchdog.core imports an I/O, clock or randomness module."""
    found = []
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            found += [(path.name, n) for n in names if n in FORBIDDEN]
    assert found == []


def test_core_never_reads_the_clock() -> None:
    """No ``datetime.now``/``utcnow``/``today`` call appears in the core."""
    calls = []
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"now", "utcnow", "today"}
                and isinstance(node.value, ast.Name)
                and node.value.id in {"datetime", "date"}
            ):
                calls.append((path.name, node.lineno))
    assert calls == []
