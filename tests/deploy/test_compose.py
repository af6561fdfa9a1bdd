"""Tests for deploy/compose.yaml: the demo stack runs the image as production does."""

from __future__ import annotations

from typing import Any

from tests.deploy.support import DEPLOY, ROOT, load_yaml

COMPOSE = DEPLOY / "compose.yaml"


def services() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)["services"]
    return data


class TestCompose:
    def test_runs_the_daemon_against_the_standins(self) -> None:
        """A stand-ins service serves the demo and the watchdog runs `run --config` after it."""
        svc = services()
        assert svc["standins"]["command"][:2] == ["demo", "--serve-standins"]
        assert svc["watchdog"]["command"] == ["run", "--config", "/etc/watchdog/config.yaml"]
        assert "standins" in svc["watchdog"]["depends_on"]

    def test_both_build_the_repo_image(self) -> None:
        """Both services build the repo's Dockerfile (merge keys resolved by the YAML loader)."""
        for name in ("standins", "watchdog"):
            build = services()[name]["build"]
            assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
                ROOT / "Dockerfile"
            )

    def test_hardened_like_production(self) -> None:
        """Read-only root, a tmpfs /tmp, no capabilities, no privilege escalation."""
        for name, svc in services().items():
            assert svc["read_only"] is True, name
            assert "/tmp" in svc["tmpfs"], name
            assert svc["cap_drop"] == ["ALL"], name
            assert "no-new-privileges:true" in svc["security_opt"], name

    def test_state_on_a_volume_and_config_read_only(self) -> None:
        """SQLite state lives on a named volume; the config mounts read-only and exists."""
        volumes = services()["watchdog"]["volumes"]
        assert "watchdog-state:/var/lib/watchdog" in volumes
        (config,) = [v for v in volumes if v.endswith(":/etc/watchdog/config.yaml:ro")]
        assert (COMPOSE.parent / config.split(":")[0]).is_file()
        assert "watchdog-state" in load_yaml(COMPOSE)["volumes"]

    def test_only_published_on_loopback(self) -> None:
        """The demo's API is reachable from the host's loopback only."""
        for port in services()["watchdog"]["ports"]:
            assert port.startswith("127.0.0.1:")

    def test_config_points_only_at_the_standins(self) -> None:
        """Every URL in the compose config targets the stand-ins, never a real provider."""

        def strings(node: object) -> list[str]:
            if isinstance(node, dict):
                return [s for v in node.values() for s in strings(v)]
            if isinstance(node, list):
                return [s for v in node for s in strings(v)]
            return [node] if isinstance(node, str) else []

        urls = [
            s
            for s in strings(load_yaml(DEPLOY / "compose" / "config.yaml"))
            if "://" in s and not s.startswith("sqlite")
        ]
        assert urls
        assert all(u.startswith("http://standins:9000/") for u in urls)

    def test_config_is_valid(self) -> None:
        """`watchdog check` accepts the compose config."""
        from watchdog.cli import main

        assert main(["check", "--config", str(DEPLOY / "compose" / "config.yaml")]) == 0

    def test_standins_command_matches_the_config(self) -> None:
        """The stand-ins service listens where the config points (0.0.0.0:9000)."""
        command = services()["standins"]["command"]
        assert command[:2] == ["demo", "--serve-standins"]
        assert command[command.index("--port") + 1] == "9000"
        assert command[command.index("--host") + 1] == "0.0.0.0"


class TestStandins:
    async def test_every_prefix_serves_its_standin(self) -> None:
        """One port serves the app, Vercel, Sentry, Supabase, PagerDuty and Slack stand-ins."""
        from aiohttp.test_utils import TestClient, TestServer

        from watchdog.demo import Production, standins_app

        prod = Production("bad-deploy")
        async with TestClient(TestServer(standins_app(prod))) as client:
            health = await client.get("/app/api/health")
            assert health.status == 200
            project = await client.get(
                "/vercel/v9/projects/prj_1", headers={"Authorization": "Bearer vercel-test-token"}
            )
            assert (await project.json())["targets"]["production"]["id"] == "dpl_good"
            events = await client.get(
                "/sentry/api/0/organizations/acme/events/",
                params=[("field", "count()"), ("dataset", "spans")],
                headers={"Authorization": "Bearer sntrys_fake"},
            )
            assert events.status == 200
            slack = await client.post(
                "/slack/services/T000/B000/XXXXSECRETXXXX", json={"text": "hello"}
            )
            assert await slack.text() == "ok"
