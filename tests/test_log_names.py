"""Log event names follow one style: snake_case ``noun_verb_past``, e.g. ``rollback_requested``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import watchdog

_LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
_STYLE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+")


def _event_names() -> dict[str, str]:
    root = Path(watchdog.__file__).parent
    found: dict[str, str] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _LEVELS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found[node.args[0].value] = f"{path.relative_to(root)}:{node.lineno}"
    return found


class TestLogNames:
    def test_one_style(self) -> None:
        """Every log event name is snake_case with at least two words."""
        names = _event_names()
        assert len(names) > 20  # the scan found the log calls
        odd = {n: where for n, where in names.items() if not _STYLE.fullmatch(n)}
        assert odd == {}
