"""A fake of the watched web app, and the scriptable fake-server base the other fakes share.

:class:`FakeHTTPServer` is a real aiohttp server on 127.0.0.1, port 0. It records every
request and can be scripted to misbehave: queue :class:`Fault` answers (an HTTP status and
body, extra headers, a delay beyond the client's timeout) for the next requests, or make one
permanent. :class:`FakeApp` adds the target app's endpoints (``/api/health``,
``/api/version``, ``/api/health/detailed``, feature endpoints) with scriptable state, for the
test suite and for ``watchdog demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RecordedRequest:
    """What a fake received, kept for assertions."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    body: bytes

    def params(self, name: str) -> list[str]:
        """Every value of a (possibly repeated) query parameter."""
        return [v for k, v in self.query if k == name]

    def param(self, name: str) -> str | None:
        values = self.params(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Fault:
    """A scripted answer that replaces the normal one.

    ``delay`` (seconds) holds the answer back, e.g. beyond the client's timeout; ``path``
    limits the fault to requests whose path starts with it. ``status=0`` with a delay
    means "never answer" (the connection hangs until the client gives up).
    """

    status: int = 500
    body: str = ""
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None

    def matches(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)

    @staticmethod
    def html(status: int = 502, path: str | None = None) -> Fault:
        """The error page a proxy or CDN serves instead of the API's JSON."""
        return Fault(
            status=status,
            body="<html><head><title>502 Bad Gateway</title></head>"
            "<body><h1>Bad Gateway</h1></body></html>",
            content_type="text/html",
            path=path,
        )

    @staticmethod
    def slow(seconds: float, path: str | None = None) -> Fault:
        """Answer 200 only after ``seconds`` (clients with shorter timeouts give up first)."""
        return Fault(status=0, delay=seconds, path=path)

    @staticmethod
    def json(status: int, payload: object, path: str | None = None, **headers: str) -> Fault:
        return Fault(
            status=status,
            body=json.dumps(payload),
            content_type="application/json",
            headers=dict(headers),
            path=path,
        )


def closed_port_url() -> str:
    """A loopback URL nothing listens on, for "connection refused" tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeHTTPServer:
    """Base of every fake: lifecycle, request recording and scripted faults."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._always: Fault | None = None
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.url = ""

    # -- scripting ----------------------------------------------------------------------

    def fail_next(self, *faults: Fault) -> None:
        """Answer the next matching requests with these faults, in order."""
        self._faults.extend(faults)

    def fail_always(self, fault: Fault | None) -> None:
        """Answer every request with ``fault`` (after queued ones) until set to None."""
        self._always = fault

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(path)]

    # -- lifecycle ----------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """Subclasses add their routes here."""

    async def start(self) -> str:
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- plumbing -----------------------------------------------------------------------

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` of real time, cut short when the server closes."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    def _next_fault(self, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(path):
                self._faults.remove(fault)
                return fault
        if self._always is not None and self._always.matches(path):
            return self._always
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=tuple(request.query.items()),
                headers=dict(request.headers),
                body=body,
            )
        )
        fault = self._next_fault(request.path)
        if fault is None:
            return await handler(request)
        await self.pause(fault.delay)
        if fault.status == 0:
            return await handler(request)
        return web.Response(
            status=fault.status,
            text=fault.body,
            content_type=fault.content_type,
            headers=fault.headers,
        )


# --------------------------------------------------------------------------- the app


@dataclass
class Feature:
    """A feature endpoint's scripted behaviour."""

    status: int = 200
    payload: dict[str, Any] = field(default_factory=lambda: {"ok": True})
    delay: float = 0.0


class FakeApp(FakeHTTPServer):
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
