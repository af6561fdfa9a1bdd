"""Shared helpers for the deploy-asset tests: paths, running real tools, picking manifests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "watchdog"
DEPLOY = ROOT / "deploy"

Manifest = dict[str, Any]


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a real tool with a timeout, capturing text output for assertion messages."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, **kwargs)


def find(manifests: list[Manifest], kind: str) -> Manifest:
    """The one manifest of ``kind``; fails if there is not exactly one."""
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
