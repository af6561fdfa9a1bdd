"""Shared helpers for the deploy-asset tests: paths, running real tools, picking manifests,
and laying a rendered pod out on disk to run the daemon as the pod would."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass
class Pod:
    """A rendered pod's view laid out under ``root``: every mount is ``root/<mountPath>`` and
    the config's paths are rewritten to match, so the daemon runs on this machine as it
    would in the pod."""

    root: Path
    config: Path
    env: dict[str, str]
    args: list[str]


_MOUNT_REF = re.compile(r"\$\{file:([^}]+)\}")


def materialize(
    manifests: list[Manifest],
    root: Path,
    *,
    secret_keys: Mapping[tuple[str, str], str],
    secret_files: Mapping[str, str] | None = None,
) -> Pod:
    """Lay out the workload's main container: ConfigMap items as files, Secret mounts with
    ``secret_files`` (name -> content; by default a dummy for every ``${file:...}`` the
    config reads from a Secret mount), empty dirs for the rest, and its env with each
    ``secretKeyRef`` looked up in ``secret_keys[(secret, key)]``.

    Fails if the config reads a file from a path nothing is mounted at, or an env variable
    comes from a Secret key the caller did not provide."""
    workload = next(m for m in manifests if m["kind"] in ("StatefulSet", "Deployment"))
    spec = workload["spec"]["template"]["spec"]
    (main,) = [c for c in spec["containers"] if c["name"] == "watchdog"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    configmaps = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "ConfigMap"}
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        volumes[claim["metadata"]["name"]] = {"persistentVolumeClaim": claim["spec"]}
    for m in main["volumeMounts"]:
        assert m["name"] in volumes, f"mount {m['name']} has no volume"
    mounts = {m["mountPath"]: volumes[m["name"]] for m in main["volumeMounts"]}

    def local(path: str) -> Path:
        return root / path.lstrip("/")

    # one pass, longest mount first, so a path is rewritten once
    pattern = re.compile(
        r"(?<![\w.-])("
        + "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True))
        + r")(?=/|$|\})"
    )

    def rewrite(text: str) -> str:
        return pattern.sub(lambda m: str(local(m.group(1))), text)

    config_text = ""
    for mount_path, volume in mounts.items():
        target = local(mount_path)
        target.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            data = configmaps[volume["configMap"]["name"]]["data"]
            for item in volume["configMap"]["items"]:
                assert item["key"] in data, f"ConfigMap has no key {item['key']}"
                file = target / item["path"]
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_text(rewrite(data[item["key"]]))
                if item["key"] == "config.yaml":
                    config_text = data[item["key"]]
    secret_mounts = [p for p, v in mounts.items() if "secret" in v]
    for path in _MOUNT_REF.findall(config_text):
        owner = [p for p in mounts if path.startswith(p.rstrip("/") + "/")]
        assert owner, f"the config reads {path}, but nothing is mounted there"
        if owner[0] in secret_mounts and secret_files is None:
            name = Path(path).name
            # a secret URL (Slack webhook, heartbeat) must be a URL to validate
            dummy = (
                f"https://dummy.example.com/{name}" if name.endswith("_url") else f"dummy-{name}"
            )
            local(path).write_text(f"{dummy}\n")
    for name, content in (secret_files or {}).items():
        assert secret_mounts, "no Secret is mounted to hold the secret files"
        (local(secret_mounts[0]) / name).write_text(content)

    env: dict[str, str] = {}
    for var in main.get("env", []):
        if "value" in var:
            env[var["name"]] = rewrite(str(var["value"]))
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        key = (ref["name"], ref["key"])
        assert key in secret_keys, f"env {var['name']} reads Secret key {key}: no value given"
        env[var["name"]] = secret_keys[key]
    config = local("/etc/watchdog/config.yaml")
    args = [rewrite(a) for a in main["args"]]
    assert str(config) in args, args
    return Pod(root, config, env, args)


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any WATCHDOG_* setting, plus ``extra``: a child
    sees only what the pod would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
    return {**env, **extra}
