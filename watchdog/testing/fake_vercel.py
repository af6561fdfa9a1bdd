"""A fake Vercel REST API: one project, its deployments, and the rollback and promote jobs.

A real aiohttp app on 127.0.0.1 port 0 that speaks the shapes of EXTERNAL-APIS §1: a project
with ``targets.production`` and a ``lastAliasRequest`` job that moves pending → in-progress →
succeeded/failed over a configurable number of polls, the deployments list with
``pagination.next``, get-deployment, the rollback and promote endpoints (201, empty body), the
aliases endpoint, bearer and ``teamId`` checks, rate-limit headers on every answer, and
scripted faults (from :class:`watchdog.testing.server.FakeServer`). ``watchdog demo`` reuses
it: ``on_production_change`` lets a fake app start serving the rolled-back version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aiohttp import web

from watchdog.testing.fake_vercel_rolling import FakeRollingRelease, FakeStage
from watchdog.testing.server import FakeServer, Handler

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
      ``deployment``, ``rollback``, ``promote``, ``rolling_release``, ``approve_stage``,
      ``complete``; ``rate_limit(route, shape=...)`` for 429s;
    * a rolling release (:meth:`start_rolling_release`, :attr:`rolling`): the rollback to
      its base aborts it, approve-stage and time move it, its last stage completes it.
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
        self.rolling = FakeRollingRelease(now)
        self.rolling.on_complete = self.set_serving

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

    def start_rolling_release(
        self, canary: str, stages: list[FakeStage], *, manual: bool = False
    ) -> None:
        """Roll ``canary`` (an added deployment) out over what production serves now."""
        base = self.deployments[self.alias or ""]
        self.rolling.start(self.deployments[canary], base, stages, manual=manual)

    def on_production_change(self, callback: ProductionCallback) -> None:
        """Call ``callback(deployment_id)`` whenever the production domain changes deployment."""
        self._callbacks.append(callback)

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

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v9/projects/{project}", self._get_project)
        app.router.add_get("/v4/aliases/{alias}", self._get_alias)
        app.router.add_get("/v6/deployments", self._list_deployments)
        app.router.add_get("/v13/deployments/{dep}", self._get_deployment)
        app.router.add_post("/v1/projects/{project}/rollback/{dep}", self._rollback)
        app.router.add_post("/v10/projects/{project}/promote/{dep}", self._promote)
        app.router.add_get("/v1/projects/{project}/rolling-release", self._rolling_release)
        app.router.add_post(
            "/v1/projects/{project}/rolling-release/approve-stage", self._approve_stage
        )
        app.router.add_post("/v1/projects/{project}/rolling-release/complete", self._complete)

    route_names: ClassVar[Mapping[str, str]] = {
        "_get_project": "project",
        "_get_alias": "alias",
        "_list_deployments": "deployments",
        "_get_deployment": "deployment",
        "_rollback": "rollback",
        "_promote": "promote",
        "_rolling_release": "rolling_release",
        "_approve_stage": "approve_stage",
        "_complete": "complete",
    }

    async def answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resp: web.StreamResponse
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            resp = web.Response(status=403, text=FORBIDDEN_BODY, content_type="application/json")
        elif self.team_id is not None and request.query.get("teamId") != self.team_id:
            resp = _error(403, "forbidden", "teamId is missing or not a team of this token")
        else:
            fault = await self.faulted(request)
            if fault is not None:
                # scripted faults carry only their own headers
                return fault
            resp = await handler(request)
        # real answers carry the rate-limit headers
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
            if job.get("fromRollingReleaseId"):
                self.rolling.job_succeeded()
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
        canary = self.rolling.canary["uid"] if self.rolling.canary else None
        if self.rolling.state == "ACTIVE" and dep_id == canary:
            return _error(
                400, "bad_request", "The canary of a rolling release cannot be rolled back to"
            )
        self.last_alias_request = {
            "type": kind,
            "fromDeploymentId": self.alias,
            "toDeploymentId": dep_id,
            "jobStatus": "pending",
            "requestedAt": int(self._now() * 1000),
        }
        if kind == "rollback" and self.rolling.take_abort(dep_id):
            # Vercel's field doc: "fromDeploymentId captures the base of that rolling
            # release, and fromRollingReleaseId captures the target"
            self.last_alias_request["fromRollingReleaseId"] = canary
        self._job_polls_seen = 0
        # after a rollback Vercel stops auto-assigning production; a promote turns it back on
        self.auto_assign = kind == "promote"
        return web.Response(status=201)

    async def _rollback(self, request: web.Request) -> web.Response:
        return await self._start_job(request, "rollback")

    async def _promote(self, request: web.Request) -> web.Response:
        return await self._start_job(request, "promote")

    def _project_known(self, request: web.Request) -> bool:
        return request.match_info["project"] in (self.project_id, self.project_name)

    async def _rolling_release(self, request: web.Request) -> web.Response:
        if not self._project_known(request):
            return _error(404, "not_found", "Project not found")
        return web.json_response(self.rolling.body())

    async def _approve_stage(self, request: web.Request) -> web.Response:
        if not self._project_known(request):
            return _error(404, "not_found", "Project not found")
        self.rolling.tick()
        try:
            body = await request.json()
        except ValueError:
            body = None
        status, message = self.rolling.approve(body)
        if status != 200:
            return _error(status, "bad_request", message)
        return web.json_response(self.rolling.body())

    async def _complete(self, request: web.Request) -> web.Response:
        if not self._project_known(request):
            return _error(404, "not_found", "Project not found")
        body = await request.json()
        rolling = self.rolling
        if rolling.state != "ACTIVE" or rolling.canary is None:
            return _error(400, "bad_request", "there is no active rolling release")
        if body.get("canaryDeploymentId") != rolling.canary["uid"]:
            return _error(400, "bad_request", "not the canary of the active rolling release")
        while rolling.state == "ACTIVE":
            rolling.advance()
        return web.json_response(rolling.body())


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": {"code": code, "message": message}}),
        content_type="application/json",
    )
