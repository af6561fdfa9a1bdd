"""The HTTP surface: metrics, probes, status, incidents, and the control API.

Read-only endpoints are open (they carry no secrets, and every answer, /metrics and the
status page included, passes the redactor on its way out); control endpoints (hold, ack, declare,
kill switch) need ``Authorization: Bearer <api token>``, compared in constant time. With no
token configured the control API is disabled (403) rather than open: an unauthenticated
"declare" would let anyone roll production back.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import SecretStr

from watchdog.daemon import api_input
from watchdog.redact import NO_SECRETS, Redactor

log = structlog.get_logger(__name__)


class Control(Protocol):
    """What the HTTP layer needs from the running daemon."""

    def status(self) -> dict[str, Any]: ...

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
        return json_response(control.status())

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
            api_input.duration(data, "duration", default="30m"),
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
        return web.Response(text=render_status_page(control.status()), content_type="text/html")

    async def metrics(request: web.Request) -> web.Response:
        # rendering thousands of series takes long enough to stall polls; prometheus_client
        # is thread-safe, so render off the event loop
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

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
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _redacting(redactor: Redactor) -> Middleware:
    """The outermost middleware: every answer's body, errors included, is redacted."""

    @web.middleware
    async def redact(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
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
    except ValueError as exc:
        return json_response({"error": str(exc)}, 400)


_COLOURS = {"rollback": "#b00020", "page": "#c75c00", "notify": "#8a6d00", "monitor": "#1b5e20"}


def render_status_page(status: dict[str, Any]) -> str:
    """A small, dependency-free HTML page showing what /api/status shows, at a glance."""
    esc = html.escape
    rows = []
    for target in status.get("targets", []):
        action = str(target.get("action", "monitor"))
        colour = _COLOURS.get(action, "#333")
        signals = "".join(_observation_row(o) for o in target.get("observations", []))
        rows.append(
            f'<section class="target" data-target="{esc(str(target["name"]))}">'
            f'<h2>{esc(str(target["name"]))} <span class="action" style="background:{colour}">'
            f"{esc(action)}</span> <small>{esc(str(target.get('severity') or ''))}</small></h2>"
            f'<p class="reason">{esc(str(target.get("reason", "")))}</p>'
            f"<p>deployment: <code>{esc(str(target.get('deployment') or 'unknown'))}</code>"
            f" · incident: {esc(str(target.get('incident') or 'none'))}</p>"
            f"<table><tr><th>rule</th><th>signal</th><th>value</th><th>threshold</th><th>state</th></tr>"
            f"{signals}</table></section>"
        )
    banner = ""
    if status.get("kill_switch"):
        banner += '<p class="banner">Kill switch ON: no automatic actions.</p>'
    if status.get("shadow"):
        banner += '<p class="banner">Shadow mode: rollbacks are recorded, not performed.</p>'
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>rollback-watchdog</title>'
        '<meta http-equiv="refresh" content="5">'
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        ".action{color:#fff;padding:.1em .5em;border-radius:.3em;font-size:.8em}"
        "table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ddd;padding:.2em .8em;text-align:left}"
        ".banner{background:#fff3cd;padding:.5em}</style></head><body>"
        f"<h1>rollback-watchdog</h1><p>as of {esc(str(status.get('now', '')))}"
        f" · leader: {esc(str(status.get('leader', '')))}</p>{banner}{''.join(rows)}</body></html>"
    )


def _observation_row(o: dict[str, Any]) -> str:
    esc = html.escape
    if o.get("firing"):
        state = "🔥 firing"
    elif o.get("unknown"):
        state = "unknown: " + esc(str(o["unknown"]))
    else:
        state = "ok"
    return (
        f"<tr><td>{esc(str(o['rule']))}</td><td>{esc(str(o['signal']))}</td>"
        f"<td>{esc(_fmt(o.get('value')))}</td>"
        f"<td>{esc(str(o['op']))} {esc(_fmt(o['threshold']))}</td><td>{state}</td></tr>"
    )


def _fmt(value: object) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
