"""A fake Vercel REST API, plus the small server base the other vendor fakes share.

A real aiohttp app on 127.0.0.1 port 0 that speaks the shapes of EXTERNAL-APIS §1: a project
with ``targets.production`` and a ``lastAliasRequest`` job that moves pending → in-progress →
succeeded/failed over a configurable number of polls, the deployments list with
``pagination.next``, get-deployment, the rollback and promote endpoints (201, empty body), the
aliases endpoint, bearer and ``teamId`` checks, rate-limit headers on every answer, and
scripted faults. ``watchdog demo`` reuses it: ``on_production_change`` lets a fake app start
serving the rolled-back version.

``FakeServer`` (recording, scripted faults, lifecycle) lives here because the fakes may only
depend on the test-support package; the PagerDuty, Alertmanager, Slack and flag fakes import it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    route: str
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    """A scripted answer that replaces the real one; ``delay`` > 0 makes the request slow."""

    status: int
    body: str = ""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1


class FakeServer:
    """Base class: subclasses register routes in ``_routes`` and call ``_record``."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._faults: dict[str, list[Fault]] = {}
        self._runner: web.AppRunner | None = None
        self._url = ""

    # scripting -----------------------------------------------------------

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
        self._faults.setdefault(route, []).append(
            Fault(status, body, content_type, dict(headers or {}), delay, times)
        )

    def requests_for(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route]

    async def _record(self, route: str, request: web.Request) -> RecordedRequest:
        body = await request.text()
        rec = RecordedRequest(
            route=route,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
        )
        self.requests.append(rec)
        return rec

    async def _fault(self, route: str) -> web.Response | None:
        queue = self._faults.get(route)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        return web.Response(
            status=fault.status,
            text=fault.body,
            content_type=fault.content_type,
            headers=fault.headers,
        )

    # lifecycle -----------------------------------------------------------

    def _app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("the fake server is not started")
        return self._url

    async def start(self) -> str:
        # a scripted slow answer must not hold the test run up at shutdown
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self._url = f"http://127.0.0.1:{port}"
        return self._url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# --------------------------------------------------------------------------- Vercel

FORBIDDEN_BODY = json.dumps({"error": {"code": "forbidden", "message": "Not authorized"}})


def rate_limit_body(shape: str, reset_epoch_s: float, total: int = 100) -> str:
    """Either documented 429 body: ``overview`` (code too_many_requests) or ``errors``."""
    if shape == "overview":
        return json.dumps(
            {"error": {"code": "too_many_requests", "message": "Rate limit exceeded"}}
        )
    return json.dumps(
        {
            "error": {
                "code": "rate_limited",
                "message": "Rate limit exceeded",
                "limit": {
                    "remaining": 0,
                    "reset": int(reset_epoch_s),
                    "resetMs": int(reset_epoch_s * 1000),
                    "total": total,
                },
            }
        }
    )


ProductionCallback = Callable[[str], None]


class FakeVercel(FakeServer):
    """One Vercel project. Scriptable outcomes:

    * ``job_outcome``: how the next rollback/promote job ends (succeeded, failed, skipped);
    * ``alias_sticks``: the job "succeeds" but the production domain keeps serving the old one;
    * ``fail(route, status, ...)`` for routes ``project``, ``alias``, ``deployments``,
      ``deployment``, ``rollback``, ``promote``; ``rate_limit(route, shape=...)`` for 429s.
    """

    def __init__(
        self,
        *,
        token: str = "vercel-test-token",  # noqa: S107 - a fake's own credential
        team_id: str | None = None,
        project_id: str = "prj_1",
        project_name: str = "web",
        production_domain: str = "www.example.com",
        job_polls: int = 2,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.token = token
        self.team_id = team_id
        self.project_id = project_id
        self.project_name = project_name
        self.production_domain = production_domain
        self.job_polls = job_polls
        self.job_outcome = "succeeded"
        self.alias_sticks = False
        self.auto_assign = True
        self.deployments: dict[str, dict[str, Any]] = {}
        self.production: str | None = None  # what targets.production says
        self.alias: str | None = None  # what the production domain serves
        self.last_alias_request: dict[str, Any] | None = None
        self._job_polls_seen = 0
        self._now = now
        self._callbacks: list[ProductionCallback] = []
        self._request_hooks: list[Callable[[RecordedRequest], None]] = []

    # ----------------------------------------------------------------- scripting

    def add_deployment(
        self,
        dep_id: str,
        *,
        created_ms: int,
        state: str = "READY",
        target: str | None = "production",
        substate: str = "PROMOTED",
        candidate: bool = True,
        meta: Mapping[str, str] | None = None,
        production: bool = False,
    ) -> dict[str, Any]:
        dep = {
            "uid": dep_id,
            "name": self.project_name,
            "projectId": self.project_id,
            "url": f"{self.project_name}-{dep_id.removeprefix('dpl_').lower()}.vercel.app",
            "created": created_ms,
            "createdAt": created_ms,
            "state": state,
            "readyState": state,
            "readySubstate": substate,
            "target": target,
            "meta": dict(meta or {}),
            "isRollbackCandidate": candidate,
            "inspectorUrl": f"https://vercel.com/acme/{self.project_name}/{dep_id}",
        }
        self.deployments[dep_id] = dep
        if production:
            self.production = dep_id
            self.alias = dep_id
        return dep

    def rate_limit(
        self, route: str, *, shape: str = "overview", reset_in: float = 2.0, times: int = 1
    ) -> None:
        reset = self._now() + reset_in
        self.fail(
            route,
            429,
            rate_limit_body(shape, reset),
            headers={
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(reset)),
            },
            times=times,
        )

    def on_production_change(self, callback: ProductionCallback) -> None:
        """Call ``callback(deployment_id)`` whenever the production domain changes deployment."""
        self._callbacks.append(callback)

    def on_request(self, hook: Callable[[RecordedRequest], None]) -> None:
        """Run ``hook`` on each request as it arrives (e.g. to check the store at that moment)."""
        self._request_hooks.append(hook)

    def set_serving(self, dep_id: str) -> None:
        self.production = dep_id
        self._set_alias(dep_id)

    def _set_alias(self, dep_id: str) -> None:
        changed = self.alias != dep_id
        self.alias = dep_id
        if changed:
            for callback in self._callbacks:
                callback(dep_id)

    # ----------------------------------------------------------------- server

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/v9/projects/{project}", self._get_project)
        app.router.add_get("/v4/aliases/{alias}", self._get_alias)
        app.router.add_get("/v6/deployments", self._list_deployments)
        app.router.add_get("/v13/deployments/{dep}", self._get_deployment)
        app.router.add_post("/v1/projects/{project}/rollback/{dep}", self._rollback)
        app.router.add_post("/v10/projects/{project}/promote/{dep}", self._promote)
        return app

    _ROUTES: Mapping[str, str] = {
        "_get_project": "project",
        "_get_alias": "alias",
        "_list_deployments": "deployments",
        "_get_deployment": "deployment",
        "_rollback": "rollback",
        "_promote": "promote",
    }

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        name = getattr(handler, "__name__", "")
        route = self._ROUTES.get(name, "unknown")
        rec = await self._record(route, request)
        for hook in self._request_hooks:
            hook(rec)
        resp: web.StreamResponse
        fault: web.Response | None = None
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            resp = web.Response(status=403, text=FORBIDDEN_BODY, content_type="application/json")
        elif self.team_id is not None and request.query.get("teamId") != self.team_id:
            resp = _error(403, "forbidden", "teamId is missing or not a team of this token")
        else:
            fault = await self._fault(route)
            resp = fault if fault is not None else await handler(request)
        if fault is None:
            # real answers carry the rate-limit headers; scripted faults carry only their own
            resp.headers["X-RateLimit-Limit"] = "100"
            resp.headers["X-RateLimit-Remaining"] = "99"
            resp.headers["X-RateLimit-Reset"] = str(int(self._now()) + 60)
        return resp

    def _project_body(self) -> dict[str, Any]:
        prod = self.deployments.get(self.production or "")
        targets: dict[str, Any] = {}
        if prod is not None:
            targets["production"] = {
                "id": prod["uid"],
                "url": prod["url"],
                "readyState": prod["readyState"],
                "readySubstate": prod["readySubstate"],
                "alias": [self.production_domain],
                "createdAt": prod["createdAt"],
                "meta": prod["meta"],
            }
        return {
            "id": self.project_id,
            "name": self.project_name,
            "autoAssignCustomDomains": self.auto_assign,
            "targets": targets,
            "lastAliasRequest": dict(self.last_alias_request) if self.last_alias_request else None,
            "lastRollbackTarget": None,
        }

    def _advance_job(self) -> None:
        job = self.last_alias_request
        if job is None or job["jobStatus"] not in ("pending", "in-progress"):
            return
        self._job_polls_seen += 1
        if self._job_polls_seen < self.job_polls:
            job["jobStatus"] = "in-progress"
            return
        job["jobStatus"] = self.job_outcome
        if self.job_outcome == "succeeded":
            self.production = job["toDeploymentId"]
            if not self.alias_sticks:
                self._set_alias(job["toDeploymentId"])

    async def _get_project(self, request: web.Request) -> web.Response:
        if request.match_info["project"] not in (self.project_id, self.project_name):
            return _error(404, "not_found", "Project not found")
        body = self._project_body()
        self._advance_job()
        return web.json_response(body)

    async def _get_alias(self, request: web.Request) -> web.Response:
        if request.match_info["alias"] != self.production_domain:
            return _error(404, "not_found", "Alias not found")
        return web.json_response(
            {
                "alias": self.production_domain,
                "uid": "alias_1",
                "deploymentId": self.alias,
                "projectId": self.project_id,
            }
        )

    async def _list_deployments(self, request: web.Request) -> web.Response:
        q = request.query
        rows = [
            d
            for d in self.deployments.values()
            if d["projectId"] == q.get("projectId", d["projectId"])
            and (q.get("target") is None or d["target"] == q["target"])
            and (q.get("state") is None or d["state"] in q["state"].split(","))
            and (q.get("until") is None or d["created"] < int(q["until"]))
        ]
        rows.sort(key=lambda d: d["created"], reverse=True)
        limit = int(q.get("limit", "20"))
        page, rest = rows[:limit], rows[limit:]
        pagination = {
            "count": len(page),
            "next": page[-1]["created"] if rest and page else None,
            "prev": page[0]["created"] if page else None,
        }
        return web.json_response({"pagination": pagination, "deployments": page})

    async def _get_deployment(self, request: web.Request) -> web.Response:
        dep = self.deployments.get(request.match_info["dep"])
        if dep is None:
            return _error(404, "not_found", "Deployment not found")
        body = {k: v for k, v in dep.items() if k not in ("uid", "created", "state")}
        body["id"] = dep["uid"]
        body["aliasAssigned"] = True
        return web.json_response(body)

    async def _start_job(self, request: web.Request, kind: str) -> web.Response:
        if request.match_info["project"] != self.project_id:
            return _error(404, "not_found", "Project not found")
        dep_id = request.match_info["dep"]
        if dep_id not in self.deployments:
            return _error(404, "not_found", "Deployment not found")
        job = self.last_alias_request
        if job is not None and job["jobStatus"] in ("pending", "in-progress"):
            return _error(409, "conflict", "A rollback or promote is already in progress")
        self.last_alias_request = {
            "type": kind,
            "fromDeploymentId": self.alias,
            "toDeploymentId": dep_id,
            "jobStatus": "pending",
            "requestedAt": int(self._now() * 1000),
        }
        self._job_polls_seen = 0
        # after a rollback Vercel stops auto-assigning production; a promote turns it back on
        self.auto_assign = kind == "promote"
        return web.Response(status=201)

    async def _rollback(self, request: web.Request) -> web.Response:
        return await self._start_job(request, "rollback")

    async def _promote(self, request: web.Request) -> web.Response:
        return await self._start_job(request, "promote")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": {"code": code, "message": message}}),
        content_type="application/json",
    )
