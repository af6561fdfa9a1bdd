"""The HTTP surface: metrics, probes, status, incidents, the status pages, and the control API.

Read-only endpoints are open (they carry no secrets, and every answer, /metrics and the
status page included, passes the redactor on its way out); control endpoints (hold, ack, declare,
kill switch) need ``Authorization: Bearer <api token>``, compared in constant time. With no
token configured the control API is disabled (403) rather than open: an unauthenticated
"declare" would let anyone roll production back. The pages show the commands, never buttons.

The pages' HTML is :mod:`~watchdog.daemon.page` and :mod:`~watchdog.daemon.page_incidents`;
every HTML answer carries a Content-Security-Policy that allows only this server's own script
and style, so an escaping slip cannot run script.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from pydantic import SecretStr

from watchdog.daemon import api_input
from watchdog.daemon.cockpit import Board
from watchdog.daemon.control import StartingError
from watchdog.daemon.history import IncidentPage, IncidentRow
from watchdog.daemon.page import asset, esc, layout, render_status
from watchdog.daemon.page_incidents import render_history, render_incident
from watchdog.metrics import render as render_metrics
from watchdog.redact import NO_SECRETS, Redactor

log = structlog.get_logger(__name__)


class Control(Protocol):
    """What the HTTP layer needs from the running daemon."""

    def status(self) -> dict[str, Any]: ...

    async def cockpit(self) -> dict[str, Any]:
        """``/api/status``: the status board as JSON."""
        ...

    async def board(self) -> Board: ...

    async def history(self, limit: int = 100) -> list[IncidentRow]: ...

    async def incident_page(self, incident_id: str) -> IncidentPage | None: ...

    def readiness(self) -> list[str]:
        """Reasons the daemon is not ready; empty when ready."""
        ...

    async def incidents(self, *, open_only: bool) -> list[dict[str, Any]]: ...

    async def incident(self, incident_id: str) -> dict[str, Any] | None: ...

    async def hold(
        self, target: str, duration: timedelta, reason: str, by: str
    ) -> dict[str, Any]: ...

    async def ack(self, target: str, decision: str, by: str) -> dict[str, Any]: ...

    async def declare(self, target: str, reason: str, by: str) -> dict[str, Any]: ...

    async def kill_switch(self, on: bool, reason: str, by: str) -> dict[str, Any]: ...

    def now(self) -> datetime: ...


def _default(obj: object) -> object:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, Enum):
        return obj.value
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=_default), status=status, content_type="application/json"
    )


#: every HTML answer: only this server's own script, style and images; no framing
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ASSETS = {
    "/static/page.css": ("page.css", "text/css"),
    "/static/page.js": ("page.js", "text/javascript"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
    # browsers and tools ask for it whatever the page links: no 404 in every load's log
    "/favicon.ico": ("favicon.svg", "image/svg+xml"),
}


def html_response(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def build_app(
    control: Control,
    registry: CollectorRegistry,
    api_token: SecretStr | None,
    redactor: Redactor = NO_SECRETS,
) -> web.Application:
    """One aiohttp application for every endpoint the daemon serves."""
    app = web.Application(middlewares=[_redacting(redactor), _errors])
    token = api_token.get_secret_value().encode() if api_token else None

    def authorised(request: web.Request) -> str:
        if token is None:
            raise ApiError(403, "the control API is disabled: set an api token to enable it")
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token):
            raise ApiError(401, "missing or wrong bearer token")
        return api_input.user(request)

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        problems = control.readiness()
        if problems:
            return json_response({"status": "not ready", "problems": problems}, 503)
        return json_response({"status": "ready"})

    async def status(request: web.Request) -> web.Response:
        return json_response(await control.cockpit())

    async def incidents(request: web.Request) -> web.Response:
        open_only = request.query.get("open", "") in ("1", "true", "yes")
        return json_response({"incidents": await control.incidents(open_only=open_only)})

    async def incident(request: web.Request) -> web.Response:
        found = await control.incident(request.match_info["id"])
        if found is None:
            raise ApiError(404, f"no incident {request.match_info['id']!r}")
        return json_response(found)

    async def hold(request: web.Request) -> web.Response:
        by = authorised(request)
        data = await api_input.read_body(request, ("target", "duration", "reason"))
        result = await control.hold(
            api_input.text(data, "target"),
            api_input.duration(data, "duration", default="30m", allow_zero=True),
            api_input.text(data, "reason", default=""),
            by,
        )
        return json_response(result)

    async def ack(request: web.Request) -> web.Response:
        by = authorised(request)
        data = await api_input.read_body(request, ("target", "decision"))
        decision = api_input.choice(
            data, "decision", ("fix_forward", "rollback"), default="fix_forward"
        )
        return json_response(await control.ack(api_input.text(data, "target"), decision, by))

    async def declare(request: web.Request) -> web.Response:
        by = authorised(request)
        data = await api_input.read_body(request, ("target", "reason"))
        return json_response(
            await control.declare(
                api_input.text(data, "target"), api_input.text(data, "reason"), by
            )
        )

    async def kill_switch(request: web.Request) -> web.Response:
        by = authorised(request)
        data = await api_input.read_body(request, ("on", "reason"))
        on = api_input.flag(data, "on")
        return json_response(
            await control.kill_switch(on, api_input.text(data, "reason", default=""), by)
        )

    async def page(request: web.Request) -> web.Response:
        return html_response(render_status(await control.board()))

    async def history_page(request: web.Request) -> web.Response:
        return html_response(render_history(await control.history(), control.now()))

    async def incident_html(request: web.Request) -> web.Response:
        found = await control.incident_page(request.match_info["id"])
        if found is None:
            missing = f"<p>No incident {esc(request.match_info['id'])!s} in the store.</p>"
            return html_response(layout("not found", missing, control.now(), refresh=False), 404)
        return html_response(render_incident(found, control.now()))

    async def postmortem(request: web.Request) -> web.Response:
        found = await control.incident_page(request.match_info["id"])
        if found is None:
            raise ApiError(404, f"no incident {request.match_info['id']!r}")
        return web.Response(
            text=found.postmortem,
            content_type="text/markdown",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    async def static(request: web.Request) -> web.Response:
        name, kind = _ASSETS[request.path]
        return web.Response(
            body=asset(name),
            content_type=kind,
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    def exposition() -> bytes:
        text = render_metrics(registry).decode("utf-8", "replace")
        return redactor.text(text).encode("utf-8")

    async def metrics(request: web.Request) -> web.Response:
        # rendering and redacting megabytes takes long enough to stall polls: both run off
        # the event loop (prometheus_client is thread-safe), and the middleware is told
        return RedactedResponse(
            body=await asyncio.to_thread(exposition),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/incidents", incidents)
    app.router.add_get("/api/incidents/{id}", incident)
    app.router.add_post("/api/hold", hold)
    app.router.add_post("/api/ack", ack)
    app.router.add_post("/api/declare", declare)
    app.router.add_post("/api/kill-switch", kill_switch)
    app.router.add_get("/", page)
    app.router.add_get("/incidents", history_page)
    app.router.add_get("/incidents/{id}", incident_html)
    app.router.add_get("/incidents/{id}/postmortem.md", postmortem)
    for path in _ASSETS:
        app.router.add_get(path, static)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RedactedResponse(web.Response):
    """A response whose body was redacted already (off the event loop)."""


def _redacting(redactor: Redactor) -> Middleware:
    """The outermost middleware: every answer's body, errors included, is redacted."""

    @web.middleware
    async def redact(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if isinstance(response, RedactedResponse):
            return response
        if redactor and isinstance(response, web.Response) and isinstance(response.body, bytes):
            charset = response.charset or "utf-8"
            text = response.body.decode(charset, "replace")
            cleaned = redactor.text(text)
            if cleaned != text:
                response.body = cleaned.encode(charset)
        return response

    return redact


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status in (401, 403):
            log.warning("control_api_refused", path=request.path, status=exc.status)
        return json_response({"error": str(exc)}, exc.status)
    except StartingError as exc:
        return json_response({"error": str(exc)}, 503)
    except ValueError as exc:
        return json_response({"error": str(exc)}, 400)
