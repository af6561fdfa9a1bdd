"""Tests for the Dockerfile and .dockerignore: real hadolint plus the properties we promise.

No image registry is reachable here, so the image is not built (TOOLING.md); instead each
promised property is read off the Dockerfile, and the build context is reconstructed from
.dockerignore to prove every COPY source reaches the builder.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.deploy.support import ROOT, run
from tests.tools import require_tool

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def args_of(word: str, steps: list[tuple[str, str]]) -> list[str]:
    return [rest for w, rest in steps if w == word]


def docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: anchored at the context root, ``*`` stops at ``/``,
    ``**`` crosses directories, and a match on a directory covers everything under it."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + "(?:/.*)?")


def context_files() -> set[str]:
    """Repo files docker would send as build context, applying .dockerignore (last match wins)."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), docker_pattern(line.lstrip("!").strip("/"))))
    kept = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        # never part of a real checkout's context worth walking (and large)
        dirnames[:] = [d for d in dirnames if d not in {".git", ".venv", ".ci-tmp"}]
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(ROOT).as_posix()
            excluded = False
            for negate, regex in rules:
                if regex.fullmatch(rel):
                    excluded = not negate
            if not excluded:
                kept.add(rel)
    return kept


class TestHadolint:
    @pytest.mark.tool
    def test_dockerfile_is_hadolint_clean(self) -> None:
        """The real hadolint reports nothing at any severity."""
        hadolint = require_tool("HADOLINT", "hadolint")
        result = run([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)])
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == ""


class TestImage:
    def test_is_multi_stage_on_python_311_slim(self) -> None:
        """A builder stage builds the venv; the runtime stage is python 3.11 slim."""
        froms = args_of("FROM", instructions())
        assert len(froms) == 2
        assert "AS builder" in froms[0]
        default = dict(
            a.split("=", 1) for w, a in instructions() if w == "ARG" and "PYTHON_IMAGE=" in a
        )
        assert default["PYTHON_IMAGE"].startswith("python:3.11-slim")
        copies = args_of("COPY", final_stage())
        assert any(c.startswith("--from=builder /opt/watchdog") for c in copies)

    def test_runs_as_fixed_non_root_user(self) -> None:
        """The runtime user is a fixed numeric UID other than 0, so runAsNonRoot can verify it."""
        steps = final_stage()
        users = args_of("USER", steps)
        assert users == ["${UID}:${GID}"]
        uid = next(a.split("=", 1)[1] for w, a in steps if w == "ARG" and a.startswith("UID="))
        assert uid.isdigit()
        assert int(uid) >= 10000

    def test_state_and_tmp_are_volumes(self) -> None:
        """State and scratch live on volumes, so the root filesystem can be read-only."""
        volumes = json.loads(args_of("VOLUME", final_stage())[0])
        assert "/var/lib/watchdog" in volumes
        assert "/tmp" in volumes

    def test_entrypoint_and_default_command(self) -> None:
        """The image runs `watchdog run --config /etc/watchdog/config.yaml` by default."""
        steps = final_stage()
        assert json.loads(args_of("ENTRYPOINT", steps)[0]) == ["watchdog"]
        assert json.loads(args_of("CMD", steps)[0]) == [
            "run",
            "--config",
            "/etc/watchdog/config.yaml",
        ]

    def test_healthcheck_uses_python_not_curl(self) -> None:
        """The HEALTHCHECK hits /healthz with the image's own python."""
        steps = final_stage()
        (check,) = args_of("HEALTHCHECK", steps)
        command = json.loads(check.split("CMD", 1)[1])
        assert command[0] == "python"
        assert "urlopen" in command[2]
        assert "curl" not in check
        assert "wget" not in check
        env = " ".join(args_of("ENV", steps))
        assert "HEALTHCHECK_URL=http://127.0.0.1:8080/healthz" in env

    def test_python_env_for_read_only_root(self) -> None:
        """No bytecode writes and unbuffered logs in the runtime stage."""
        env = " ".join(args_of("ENV", final_stage()))
        assert "PYTHONDONTWRITEBYTECODE=1" in env
        assert "PYTHONUNBUFFERED=1" in env

    def test_default_rules_are_baked_in(self) -> None:
        """The repo's default rule pack is copied to /etc/watchdog/rules/default.yaml."""
        copies = args_of("COPY", final_stage())
        assert "rules/default.yaml /etc/watchdog/rules/default.yaml" in copies

    def test_oci_labels(self) -> None:
        """The image carries the OCI title, version, revision and licence labels."""
        labels = " ".join(args_of("LABEL", final_stage()))
        for key in ("title", "version", "revision", "created", "licenses", "description"):
            assert f"org.opencontainers.image.{key}=" in labels


class TestBuildContext:
    def test_every_copy_source_is_in_the_context(self) -> None:
        """Everything the build COPYs from the context survives .dockerignore."""
        files = context_files()
        assert "pyproject.toml" in files
        # `pip install .` needs the license file pyproject names and the console script's module
        assert "LICENSE" in files
        assert "rollback_watchdog_launcher.py" in files
        assert "rules/default.yaml" in files
        assert "watchdog/__init__.py" in files
        assert "watchdog/data/default.yaml" in files
        assert "watchdog/py.typed" in files

    def test_tests_caches_and_state_stay_out(self) -> None:
        """Tests, deploy assets, caches and local databases never reach the daemon."""
        files = context_files()
        assert not any(f.startswith(("tests/", "deploy/", "helm/", ".ci-tmp/")) for f in files)
        assert not any("__pycache__" in f or f.endswith((".pyc", ".db")) for f in files)

    @pytest.mark.parametrize(
        ("pattern", "path", "matches"),
        [
            ("*", "tests/deploy/x.py", True),
            ("watchdog", "watchdog/core/model.py", True),
            ("LICENSE", "vendor/LICENSE", False),
            ("**/__pycache__", "watchdog/core/__pycache__/m.pyc", True),
            ("**/*.pyc", "watchdog/a.pyc", True),
            ("*.db", "state/watchdog.db", False),
        ],
    )
    def test_pattern_reader_follows_docker_semantics(
        self, pattern: str, path: str, matches: bool
    ) -> None:
        """The .dockerignore reader anchors at the root and lets only ``**`` cross dirs."""
        assert bool(docker_pattern(pattern).fullmatch(path)) is matches
