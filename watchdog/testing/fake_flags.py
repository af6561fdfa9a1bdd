"""Fake Unleash and LaunchDarkly admin APIs for the feature-flag kill switch (EXTERNAL-APIS §8).

Both check the raw ``Authorization`` token (no ``Bearer``); LaunchDarkly also insists on the
semantic-patch content type (400 otherwise, as the real API reads it as a JSON Patch) and
the pinned ``LD-API-Version``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from watchdog.testing.server import RECORDED, FakeServer

LD_CONTENT_TYPE = "application/json; domain-model=launchdarkly.semanticpatch"


class FakeUnleash(FakeServer):
    def __init__(self, token: str = "*:production.unleash-test-token") -> None:  # noqa: S107
        super().__init__()
        self.token = token
        #: (project, feature) -> {environment: enabled}
        self.features: dict[tuple[str, str], dict[str, bool]] = {}

    def add_feature(self, project: str, name: str, environment: str = "production") -> None:
        self.features[(project, name)] = {environment: True}

    def routes(self, app: web.Application) -> None:
        app.router.add_post(
            "/api/admin/projects/{project}/features/{feature}/environments/{env}/off", self._off
        )

    async def _off(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != self.token:
            return _unleash_error(401, "AuthenticationRequired", "You must log in")
        project, name, env = (request.match_info[k] for k in ("project", "feature", "env"))
        envs = self.features.get((project, name))
        if envs is None or env not in envs:
            return _unleash_error(404, "NotFoundError", f"Could not find feature {name}")
        envs[env] = False
        body: dict[str, Any] = {
            "name": name,
            "project": project,
            "enabled": any(envs.values()),
            "environments": [{"name": e, "enabled": on} for e, on in envs.items()],
        }
        return web.json_response(body)


def _unleash_error(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"id": "err-1", "name": name, "message": message}, status=status)


class FakeLaunchDarkly(FakeServer):
    def __init__(self, token: str = "api-ld-test-token") -> None:  # noqa: S107
        super().__init__()
        self.token = token
        #: (project, flag) -> {environment: on}
        self.flags: dict[tuple[str, str], dict[str, bool]] = {}

    def add_flag(self, project: str, key: str, environment: str = "production") -> None:
        self.flags[(project, key)] = {environment: True}

    def routes(self, app: web.Application) -> None:
        app.router.add_patch("/api/v2/flags/{project}/{flag}", self._patch)

    async def _patch(self, request: web.Request) -> web.Response:
        rec = request[RECORDED]
        if request.headers.get("Authorization") != self.token:
            return _ld_error(401, "unauthorized", "Invalid access token")
        if request.headers.get("Content-Type") != LD_CONTENT_TYPE:
            return _ld_error(400, "invalid_request", "Invalid JSON Patch")
        if not request.headers.get("LD-API-Version"):
            return _ld_error(400, "invalid_request", "LD-API-Version is required here")
        key = (request.match_info["project"], request.match_info["flag"])
        envs = self.flags.get(key)
        if envs is None:
            return _ld_error(404, "not_found", "Unknown flag")
        body = rec.json()
        env = body.get("environmentKey") if isinstance(body, dict) else None
        instructions = body.get("instructions") if isinstance(body, dict) else None
        if env not in envs or instructions != [{"kind": "turnFlagOff"}]:
            return _ld_error(400, "invalid_request", "unsupported semantic patch")
        envs[env] = False
        return web.json_response(
            {"key": key[1], "environments": {e: {"on": on} for e, on in envs.items()}}
        )


def _ld_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "id": "req-1"}, status=status)
