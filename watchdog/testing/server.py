"""The one base every fake server uses: a real aiohttp server on loopback that records and fails.

I/O boundary: a listening socket on 127.0.0.1, port 0 (never anything else). Every request is
recorded once, as it arrives, before the fake answers it; a scripted :class:`Fault` can replace
the answer (an HTTP status and body, extra headers, a delay beyond the client's timeout, or a
hang), matched by the route's name, by a path prefix, or by anything. The vendor fakes add
their routes in :meth:`FakeServer.routes` and their state as attributes; the test suite,
``watchdog demo`` and the compose stand-ins all run them the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, ClassVar, Final, Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Body(str):
    """A recorded request body as text; ``b"..." in body`` searches its UTF-8 bytes too."""

    __slots__ = ()

    def __contains__(self, item: object) -> bool:
        if isinstance(item, bytes):
            return item in self.encode()
        return super().__contains__(item)  # type: ignore[operator]


@dataclass(frozen=True)
class RecordedRequest:
    """What a fake received, kept for assertions."""

    #: the route's name (``project``, ``enqueue``, ``health`` ...), "unknown" for no route
    route: str
    method: str
    path: str
    #: the first value of each query parameter; :meth:`params` has every value
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Body
    pairs: tuple[tuple[str, str], ...] = ()

    def params(self, name: str) -> list[str]:
        """Every value of a (possibly repeated) query parameter."""
        return [v for k, v in self.pairs if k == name]

    def param(self, name: str) -> str | None:
        values = self.params(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Fault:
    """A scripted answer that replaces the normal one.

    ``route`` (a route's name) or ``path`` (a prefix) limit the fault to matching requests;
    ``times`` is how many requests it answers. ``delay`` (seconds) holds the answer back,
    e.g. beyond the client's timeout; ``status=0`` with a delay means "answer normally, but
    late" (or never, for a client that gives up first). ``echo`` answers with an error body
    that quotes the request back (:meth:`echoing`).
    """

    status: int = 500
    body: str = ""
    content_type: str = "text/plain"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None
    route: str | None = None
    times: int = 1
    echo: bool = False

    def matches(self, request: RecordedRequest) -> bool:
        return (self.route is None or self.route == request.route) and (
            self.path is None or request.path.startswith(self.path)
        )

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
    def echoing(
        status: int = 500, *, route: str | None = None, path: str | None = None, times: int = 1
    ) -> Fault:
        """An error whose body quotes what the request carried: its URL, credentials and
        body, in every field a vendor's error parser reads (``detail``, ``message``,
        ``error.message``, ``errors``), the way a careless API's error does. Tests use it to
        prove that no secret sent to an upstream comes back out of the watchdog."""
        return Fault(status=status, path=path, route=route, times=times, echo=True)

    @staticmethod
    def slow(seconds: float, path: str | None = None) -> Fault:
        """Answer normally only after ``seconds`` (clients with shorter timeouts give up)."""
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


def _echo(request: RecordedRequest, url: str) -> dict[str, object]:
    credentials = [
        f"{name}: {value}"
        for name, value in request.headers.items()
        if name.lower() in ("authorization", "apikey", "x-api-key", "private-token")
    ]
    # credentials first: vendors keep only the start of an error body
    message = f"refused {'; '.join(credentials)} for {request.method} {url} {request.body}"
    return {
        "detail": message,
        "message": message,
        "error": {"code": "echoed", "message": message},
        "errors": [message],
        "status": "invalid event",
    }


#: where the middleware leaves each request's record for the fake's handler
RECORDED: Final = web.RequestKey("recorded", RecordedRequest)


def closed_port_url() -> str:
    """A loopback URL nothing listens on, for "connection refused" tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeServer:
    """Lifecycle, request recording and scripted faults; subclasses add routes and state."""

    #: handler method name → route name, where the name is not the handler's own
    #: (``_get_project`` → ``project``); otherwise ``_health`` is route ``health``
    route_names: ClassVar[Mapping[str, str]] = {}

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._always: Fault | None = None
        self._hooks: list[Callable[[RecordedRequest], None]] = []
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._url = ""

    # -- scripting ----------------------------------------------------------------------

    def fail_next(self, *faults: Fault) -> None:
        """Answer the next matching requests with these faults, in order."""
        self._faults.extend(faults)

    def clear_faults(self) -> None:
        """Answer normally again: drop every scripted fault (the upstream recovered)."""
        self._faults.clear()
        self._always = None

    def fail_always(self, fault: Fault | None) -> None:
        """Answer every matching request with ``fault`` (after queued ones) until None."""
        self._always = fault

    def fail(
        self,
        route: str,
        status: int,
        body: str = "",
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests of ``route`` with ``status`` and ``body``."""
        self.fail_next(
            Fault(status, body, content_type, dict(headers or {}), delay, None, route, times)
        )

    def on_request(self, hook: Callable[[RecordedRequest], None]) -> None:
        """Run ``hook`` on each request as it arrives (e.g. to check the store at that moment)."""
        self._hooks.append(hook)

    def requests_for(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route]

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(path)]

    # -- to implement -------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """Subclasses add their routes here."""

    async def answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The answer after recording: a scripted fault, else the route's handler.

        Subclasses that check something before any fault (Vercel's token) override this.
        """
        return await self.faulted(request) or await handler(request)

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("the fake server is not started")
        return self._url

    def application(self) -> web.Application:
        """The fake as an aiohttp app (the compose stand-ins mount several under one port)."""
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        return app

    async def start(self, port: int = 0) -> str:
        """Listen on loopback: a free port, or ``port`` again (a fake that was closed to
        refuse connections comes back where its clients point)."""
        self._closing = asyncio.Event()
        # a scripted slow answer must not hold the test run up at shutdown
        self._runner = web.AppRunner(self.application(), shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._url = f"http://127.0.0.1:{port}"
        return self._url

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

    def _route_of(self, request: web.Request) -> str:
        name = getattr(request.match_info.handler, "__name__", "")
        if not name or request.match_info.http_exception is not None:
            return "unknown"
        return self.route_names.get(name, name.lstrip("_"))

    def _take_fault(self, request: RecordedRequest) -> Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.matches(request):
                if fault.times <= 1:
                    del self._faults[i]
                else:
                    self._faults[i] = replace(fault, times=fault.times - 1)
                return fault
        if self._always is not None and self._always.matches(request):
            return self._always
        return None

    async def faulted(self, request: web.Request) -> web.StreamResponse | None:
        """The scripted answer for this request, if one is due (after its delay)."""
        fault = self._take_fault(request[RECORDED])
        if fault is None:
            return None
        await self.pause(fault.delay)
        if fault.status == 0:
            return None
        if fault.echo:
            echoed = _echo(request[RECORDED], str(request.url))
            return web.json_response(echoed, status=fault.status)
        return web.Response(
            status=fault.status,
            text=fault.body,
            content_type=fault.content_type,
            headers=dict(fault.headers),
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        recorded = RecordedRequest(
            route=self._route_of(request),
            method=request.method,
            path=request.path,
            query={k: request.query[k] for k in request.query},
            headers=dict(request.headers),
            body=Body(body.decode("utf-8", "replace")),
            pairs=tuple(request.query.items()),
        )
        self.requests.append(recorded)
        request[RECORDED] = recorded
        for hook in self._hooks:
            hook(recorded)
        return await self.answer(request, handler)
