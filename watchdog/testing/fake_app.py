"""A fake of the watched web app: health, version, detailed health and feature endpoints.

Built on :class:`watchdog.testing.server.FakeServer` (recording, scripted faults), with the
app's state as attributes, for the test suite and for ``watchdog demo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from watchdog.testing.server import FakeServer

# --------------------------------------------------------------------------- the app


@dataclass
class Feature:
    """A feature endpoint's scripted behaviour."""

    status: int = 200
    payload: dict[str, Any] = field(default_factory=lambda: {"ok": True})
    delay: float = 0.0


class FakeApp(FakeServer):
    """The watched Next.js app: health, version, detailed health and feature endpoints.

    Script it by assigning attributes: ``health_status``, ``latency`` (seconds added to
    every answer), ``version`` (``commit`` and ``deployment.id`` in ``/api/version``),
    ``components`` (name → status string), ``payment_failures``, ``features``.
    ``deploy()`` switches everything to a new version at once, as a Vercel promote does.
    """

    def __init__(self, *, version: str = "dpl_good", commit: str = "abc1234") -> None:
        super().__init__()
        self.health_status = 200
        self.latency = 0.0
        self.version = version
        self.commit = commit
        self.components: dict[str, str] = {"database": "ok", "payments": "ok"}
        self.payment_failures = 0
        self.features: dict[str, Feature] = {}

    def deploy(self, version: str, commit: str | None = None, *, healthy: bool = True) -> None:
        self.version = version
        self.commit = commit or version
        self.health_status = 200 if healthy else 500

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/version.txt", self._version_text)
        app.router.add_get("/api/health/detailed", self._detailed)
        app.router.add_route("*", "/api/features/{name}", self._feature)

    async def _health(self, request: web.Request) -> web.Response:
        await self.pause(self.latency)
        ok = 200 <= self.health_status < 300
        return web.json_response({"status": "ok" if ok else "error"}, status=self.health_status)

    async def _version(self, request: web.Request) -> web.Response:
        await self.pause(self.latency)
        return web.json_response(
            {"commit": self.commit, "deployment": {"id": self.version}, "env": "production"}
        )

    async def _version_text(self, request: web.Request) -> web.Response:
        await self.pause(self.latency)
        return web.Response(text=f"{self.commit}\n")

    async def _detailed(self, request: web.Request) -> web.Response:
        await self.pause(self.latency)
        degraded = any(s not in ("ok", "healthy", "up") for s in self.components.values())
        return web.json_response(
            {
                "status": "degraded" if degraded else "ok",
                "components": {name: {"status": s} for name, s in self.components.items()},
                "payments": {"failures_5m": self.payment_failures},
                "version": self.version,
            },
            status=503 if degraded else 200,
        )

    async def _feature(self, request: web.Request) -> web.Response:
        feature = self.features.get(request.match_info["name"])
        if feature is None:
            return web.json_response({"error": "not found"}, status=404)
        await self.pause(self.latency + feature.delay)
        return web.json_response(feature.payload, status=feature.status)
