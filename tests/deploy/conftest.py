"""Fixtures for the deploy-asset tests: the real helm binary, offline, and cached renders."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import CHART, Manifest, run
from tests.tools import require_tool

Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for helm with its cache/config/data homes in a temp dir (works offline)."""
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env.setdefault(name, str(home / name.lower()))
    return env


@pytest.fixture(scope="session")
def helm(helm_env: dict[str, str]) -> Helm:
    """``helm(*args)`` runs the real helm binary (installed by scripts/tools.sh)."""
    binary = require_tool("HELM", "helm")

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return run([binary, *args], env=helm_env)

    return call


@pytest.fixture(scope="session")
def render(helm: Helm) -> Callable[..., list[Manifest]]:
    """``render(*values_files, set_=(...))``: the manifests ``helm template`` renders, cached."""
    cache: dict[tuple[Any, ...], list[Manifest]] = {}

    def call(*values: Path, set_: tuple[str, ...] = ()) -> list[Manifest]:
        key = (tuple(v.read_text() for v in values), set_)
        if key not in cache:
            args = ["template", "wd", str(CHART), "--namespace", "mon"]
            for v in values:
                args += ["--values", str(v)]
            for s in set_:
                args += ["--set", s]
            result = helm(*args)
            assert result.returncode == 0, result.stderr
            cache[key] = [d for d in yaml.safe_load_all(result.stdout) if d]
        return cache[key]

    return call
