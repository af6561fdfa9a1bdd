"""Vercel as the deployer: find production, list what it could serve, roll back, wait for it.

I/O boundary: every :class:`VercelDeployer` method calls Vercel's REST API
(EXTERNAL-APIS §1) through the shared aiohttp session. Each request is one attempt that
raises ``CallError``; the dispatcher retries ``request_rollback``. Rollbacks finish
asynchronously, so :meth:`VercelDeployer.await_rollback` polls the project's
``lastAliasRequest`` and then asks what the production domain actually serves, because a
job that "succeeded" proves nothing about traffic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import quote

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchdog.actions.base import (
    DeployJob,
    Deployment,
    RollbackRequest,
    RollbackResult,
    TargetGoneError,
)
from watchdog.clock import Clock
from watchdog.core.targeting import TargetPolicy
from watchdog.fields import HttpURL, JobTimeout, PollInterval, Secret, Timeout
from watchdog.numbers import finite
from watchdog.redact import Redactor
from watchdog.transport import (
    CallError,
    Response,
    classify_status,
    parse_retry_after,
    reset_header_delay,
    send,
)

log = structlog.get_logger(__name__)

SERVICE: Final = "Vercel"
AUTH_FIX: Final = (
    "token rejected: check the Vercel token, that it belongs to the team owning the project "
    "(teamId) and that it has not expired"
)
_TERMINAL: Final = frozenset({"succeeded", "failed", "skipped"})
_RUNNING: Final = frozenset({"pending", "in-progress"})


class VercelConfig(BaseModel):
    """Settings for one Vercel project (one watched target)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["vercel"] = "vercel"
    token: Secret
    project_id: str = Field(min_length=1)
    team_id: str | None = None
    production_domain: str = Field(min_length=1)
    base_url: HttpURL = "https://api.vercel.com"
    dashboard_url: HttpURL | None = None
    request_timeout: Timeout = timedelta(seconds=10)
    list_limit: int = Field(default=20, ge=1, le=100)
    max_pages: int = Field(default=5, ge=1, le=50)
    poll_interval: PollInterval = timedelta(seconds=1)
    job_timeout: JobTimeout = timedelta(minutes=3)
    alias_checks: int = Field(default=3, ge=1, le=20)
    conflict_wait: PollInterval = timedelta(seconds=5)
    #: a deployment whose ``meta`` has this key (non-empty, not "false"/"0") carries a DB migration
    migration_meta_key: str | None = None
    #: Hobby plans may only roll back to the immediately previous production deployment
    only_previous: bool = False
    #: record "would roll back to X" instead of calling the rollback API
    shadow: bool = False
    #: read the project's rolling release (``GET /v1/projects/{id}/rolling-release``) so a
    #: canary is judged against its base and a bad one aborted; off for a project that
    #: never uses Rolling Releases, to save the call
    rolling_releases: bool = True

    @field_validator("base_url", "dashboard_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    def target_policy(self) -> TargetPolicy:
        """The project's limits on choosing a rollback target (the choice is the core's)."""
        return TargetPolicy(self.migration_meta_key, self.only_previous)

    @field_validator("production_domain")
    @classmethod
    def _bare_domain(cls, value: str) -> str:
        if "://" in value or "/" in value:
            raise ValueError("give the bare production domain, e.g. 'www.example.com'")
        return value


# --------------------------------------------------------------------------- pure parts


def epoch_ms(value: Any) -> datetime | None:
    """Vercel's milliseconds since the epoch; None for anything that is not a time (a
    malformed answer is never a crash: year 10000 and NaN included)."""
    ms = finite(value)
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000.0, tz=UTC)
    except (ValueError, OverflowError, OSError):  # beyond the years datetime holds
        return None


def parse_deployment(raw: Mapping[str, Any]) -> Deployment | None:
    """A deployment from a list row (``uid``), get-deployment or ``targets`` entry (``id``)."""
    dep_id = raw.get("uid") or raw.get("id")
    if not isinstance(dep_id, str) or not dep_id:
        return None
    meta_raw = raw.get("meta")
    meta = (
        {str(k): str(v) for k, v in meta_raw.items() if v is not None}
        if isinstance(meta_raw, Mapping)
        else {}
    )
    state = raw.get("readyState") or raw.get("state")
    candidate = raw.get("isRollbackCandidate")
    return Deployment(
        id=dep_id,
        created_at=epoch_ms(raw.get("createdAt", raw.get("created"))),
        state=state if isinstance(state, str) else None,
        substate=raw.get("readySubstate") if isinstance(raw.get("readySubstate"), str) else None,
        target=raw.get("target") if isinstance(raw.get("target"), str) else None,
        url=raw.get("url") if isinstance(raw.get("url"), str) else None,
        rollback_candidate=candidate if isinstance(candidate, bool) else None,
        meta=meta,
        inspector_url=raw.get("inspectorUrl") if isinstance(raw.get("inspectorUrl"), str) else None,
    )


def parse_job(raw: object) -> DeployJob | None:
    """``lastAliasRequest`` as a :class:`DeployJob`; anything unreadable is no job."""
    if not isinstance(raw, Mapping):
        return None
    to = raw.get("toDeploymentId")
    status = raw.get("jobStatus")
    return DeployJob(
        to_deployment=to if isinstance(to, str) and to else None,
        requested_at=epoch_ms(raw.get("requestedAt")),
        status=status if isinstance(status, str) else None,
    )


def _vercel_error(text: str) -> tuple[str, str, Mapping[str, Any]]:
    """``(code, message, error)`` from Vercel's ``{"error":{..}}`` body, tolerating anything."""
    try:
        body = json.loads(text)
    except ValueError:
        return "", text.strip()[:200], {}
    err = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping):
        return "", "", {}
    code = err.get("code")
    message = err.get("message")
    return (
        code if isinstance(code, str) else "",
        message if isinstance(message, str) else "",
        err,
    )


def rate_limit_delay(resp: Response, now_epoch_s: float) -> float | None:
    """Seconds until Vercel's rate limit resets: header (epoch s), then either 429 body shape."""
    delay = reset_header_delay(resp.headers, "X-RateLimit-Reset", now_epoch_s)
    if delay is not None:
        return delay
    _, _, err = _vercel_error(resp.text)
    limit = err.get("limit")
    if isinstance(limit, Mapping):
        reset_ms = _seconds(limit.get("resetMs"), 1000.0)
        if reset_ms is not None:
            return max(0.0, reset_ms - now_epoch_s)
        reset = _seconds(limit.get("reset"), 1.0)
        if reset is not None:
            return max(0.0, reset - now_epoch_s)
    return parse_retry_after(resp.headers.get("Retry-After"))


def _seconds(value: object, per_second: float) -> float | None:
    """A JSON number of ``1/per_second`` seconds, in seconds; None when it is no number."""
    number = finite(value)
    return number / per_second if number is not None else None


# --------------------------------------------------------------------------- the deployer


class VercelDeployer:
    """The :class:`~watchdog.actions.base.Deployer` for one Vercel project."""

    def __init__(self, config: VercelConfig, session: aiohttp.ClientSession, clock: Clock) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._log = log.bind(project=config.project_id)
        self._redact = Redactor.of(config)

    @property
    def project(self) -> str:
        return self._config.project_id

    @property
    def config(self) -> VercelConfig:
        return self._config

    @property
    def policy(self) -> TargetPolicy:
        return self._config.target_policy()

    # ----------------------------------------------------------------- HTTP

    def _url(self, path: str) -> str:
        return f"{self._config.base_url}{path}"

    def _params(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        params = dict(extra or {})
        if self._config.team_id:
            # team resources need teamId on every call, or Vercel answers as if they don't exist
            params["teamId"] = self._config.team_id
        return params

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Response:
        return await send(
            self._session,
            method,
            self._url(path),
            service=SERVICE,
            request_timeout=self._config.request_timeout,
            headers={
                "Authorization": f"Bearer {self._config.token.get_secret_value()}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            params=self._params(params),
            json_body=json_body,
            redactor=self._redact,
        )

    def _error(self, resp: Response, what: str) -> CallError:
        code, message, _ = _vercel_error(resp.text)
        hint = f"{what}: {code} {message}".strip() if (code or message) else what
        retry_after = None
        if resp.status == 429:
            retry_after = rate_limit_delay(resp, self._clock.now().timestamp())
        return classify_status(
            resp.status, SERVICE, hint, retry_after=retry_after, auth_fix=AUTH_FIX
        )

    async def _get_json(
        self, path: str, what: str, params: Mapping[str, str] | None = None
    ) -> Mapping[str, Any]:
        resp = await self._call("GET", path, params=params)
        if not resp.ok:
            raise self._error(resp, what)
        body = resp.json(SERVICE, retryable=True)
        if not isinstance(body, Mapping):
            raise CallError(
                f"{SERVICE} {what}: expected a JSON object", retryable=True, reason="malformed"
            )
        return body

    async def call_json(
        self, method: str, path: str, what: str, json_body: Any = None
    ) -> Mapping[str, Any]:
        """One call to Vercel's API for another part of the project's client (the rolling
        releases): the JSON object answered, or the classified ``CallError``."""
        if method == "GET":
            return await self._get_json(path, what)
        resp = await self._call(method, path, json_body=json_body)
        if not resp.ok:
            raise self._error(resp, what)
        body = resp.json(SERVICE, retryable=True) if resp.body.strip() else {}
        if not isinstance(body, Mapping):
            raise CallError(
                f"{SERVICE} {what}: expected a JSON object", retryable=True, reason="malformed"
            )
        return body

    # ----------------------------------------------------------------- reads

    async def get_project(self) -> Mapping[str, Any]:
        return await self._get_json(
            f"/v9/projects/{quote(self._config.project_id, safe='')}", "get project"
        )

    async def get_deployment(self, deployment_id: str) -> Deployment:
        body = await self._get_json(
            f"/v13/deployments/{quote(deployment_id, safe='')}", "get deployment"
        )
        dep = parse_deployment(body)
        if dep is None:
            raise CallError(
                f"{SERVICE} get deployment: no id in the answer", retryable=True, reason="malformed"
            )
        return dep

    async def serving(self) -> str | None:
        body = await self._get_json(
            f"/v4/aliases/{quote(self._config.production_domain, safe='')}", "get alias"
        )
        value = body.get("deploymentId")
        return value if isinstance(value, str) and value else None

    async def current_production(self) -> Deployment:
        """The deployment production traffic reaches; the alias wins over ``targets``.

        Whether ``targets.production`` follows a rollback is unconfirmed, while the production
        domain's alias is what users actually hit, so a disagreement is settled by the alias.
        """
        project = await self.get_project()
        targets = project.get("targets")
        prod_raw = targets.get("production") if isinstance(targets, Mapping) else None
        from_targets = parse_deployment(prod_raw) if isinstance(prod_raw, Mapping) else None
        serving = await self.serving()
        if serving is None and from_targets is None:
            raise CallError(
                f"{SERVICE}: neither the project nor {self._config.production_domain} names a "
                "production deployment",
                retryable=False,
                reason="no_production",
            )
        if from_targets is not None and (serving is None or serving == from_targets.id):
            return from_targets
        assert serving is not None
        if from_targets is not None:
            self._log.warning("vercel_production_disagreed", targets=from_targets.id, alias=serving)
        return await self.get_deployment(serving)

    async def list_candidates(self) -> list[Deployment]:
        """READY production deployments, newest first, following ``pagination.next``."""
        found: list[Deployment] = []
        until: str | None = None
        for _ in range(self._config.max_pages):
            params = {
                "projectId": self._config.project_id,
                "target": "production",
                "state": "READY",
                "limit": str(self._config.list_limit),
            }
            if until is not None:
                params["until"] = until
            body = await self._get_json("/v6/deployments", "list deployments", params)
            rows = body.get("deployments")
            if not isinstance(rows, list):
                raise CallError(
                    f"{SERVICE} list deployments: no 'deployments' array",
                    retryable=True,
                    reason="malformed",
                )
            found.extend(
                d for d in (parse_deployment(r) for r in rows if isinstance(r, Mapping)) if d
            )
            pagination = body.get("pagination")
            nxt = pagination.get("next") if isinstance(pagination, Mapping) else None
            if isinstance(nxt, bool) or not isinstance(nxt, int | float):
                break
            until = str(int(nxt))
        return found

    # ----------------------------------------------------------------- the rollback

    async def request_rollback(self, target: Deployment) -> RollbackRequest:
        """One attempt at asking Vercel to point production at ``target``.

        Promote is only for STAGED builds that never served traffic; everything else is an
        instant rollback. A 409 means a job is already running: if it is ours (an earlier
        attempt whose answer got lost) the request counts as accepted, else wait and retry.
        """
        method = "promote" if (target.substate or "").upper() == "STAGED" else "rollback"
        if self._config.shadow:
            return RollbackRequest(
                target, method, shadow=True, detail=f"would {method} to {target.id}"
            )
        project = quote(self._config.project_id, safe="")
        dep = quote(target.id, safe="")
        path = (
            f"/v10/projects/{project}/promote/{dep}"
            if method == "promote"
            else f"/v1/projects/{project}/rollback/{dep}"
        )
        resp = await self._call("POST", path, json_body={})
        if resp.ok:
            self._log.info("vercel_rollback_requested", to=target.id, method=method)
            return RollbackRequest(target, method, detail=f"{method} to {target.id} accepted")
        if resp.status in (404, 410):
            code, _, _ = _vercel_error(resp.text)
            raise TargetGoneError(
                f"{SERVICE}: deployment {target.id} is gone ({resp.status} {code}): "
                "choose another target",
                retryable=False,
                reason="target_gone",
                status=resp.status,
            )
        if resp.status == 409:
            try:
                job = await self.last_job()
            except CallError:
                job = None
            if job is not None and job.to_deployment == target.id:
                self._log.info("vercel_rollback_found_running", to=target.id)
                return RollbackRequest(
                    target, method, detail=f"{method} to {target.id} already running"
                )
            raise CallError(
                f"{SERVICE}: another rollback or promote is running on the project (409); "
                "waiting for it to finish",
                retryable=True,
                reason="conflict",
                status=409,
                retry_after=self._config.conflict_wait.total_seconds(),
            )
        raise self._error(resp, method)

    async def last_job(self) -> DeployJob | None:
        """The project's ``lastAliasRequest`` (the latest rollback/promote job); None: no job.

        Raises ``CallError`` when the project cannot be read: restart recovery must tell
        "Vercel has no job" from "Vercel did not answer".
        """
        project = await self.get_project()
        return parse_job(project.get("lastAliasRequest"))

    async def await_rollback(self, target: Deployment) -> RollbackResult:
        """Poll ``lastAliasRequest`` until the job for ``target`` ends, then check the alias.

        Bounded by ``job_timeout``. Transient read errors keep polling (the job runs on
        Vercel's side regardless); a rejected token ends the wait at once.
        """
        interval = self._config.poll_interval.total_seconds()
        deadline = self._clock.monotonic() + self._config.job_timeout.total_seconds()
        status: str | None = None
        last_error = ""
        while True:
            try:
                project = await self.get_project()
            except CallError as exc:
                if not exc.retryable:
                    return RollbackResult(
                        False, f"could not follow the rollback: {exc}", None, status
                    )
                last_error = str(exc)
                project = {}
            job = project.get("lastAliasRequest")
            if isinstance(job, Mapping) and job.get("toDeploymentId") == target.id:
                raw = job.get("jobStatus")
                new_status = raw if isinstance(raw, str) else None
                if new_status != status:
                    self._log.info("vercel_job_status_changed", to=target.id, status=new_status)
                status = new_status
                if status in _TERMINAL:
                    break
                if status not in _RUNNING:
                    return RollbackResult(
                        False, f"Vercel reported an unknown job status {status!r}", None, status
                    )
            if self._clock.monotonic() >= deadline:
                extra = f" (last error: {last_error})" if last_error else ""
                return RollbackResult(
                    False,
                    f"Vercel's job for {target.id} did not finish within "
                    f"{self._config.job_timeout.total_seconds():g}s (status {status}){extra}",
                    None,
                    status,
                )
            await self._clock.sleep(interval)
        if status == "failed":
            return RollbackResult(
                False, f"Vercel's rollback job to {target.id} failed", None, status
            )
        return await self._check_alias(target, status)

    async def _check_alias(self, target: Deployment, status: str | None) -> RollbackResult:
        serving: str | None = None
        for attempt in range(self._config.alias_checks):
            if attempt:
                await self._clock.sleep(self._config.poll_interval.total_seconds())
            try:
                serving = await self.serving()
            except CallError as exc:
                if not exc.retryable:
                    return RollbackResult(False, f"could not check the alias: {exc}", None, status)
                continue
            if serving == target.id:
                return RollbackResult(
                    True,
                    f"{self._config.production_domain} serves {target.id}",
                    serving,
                    status,
                )
        return RollbackResult(
            False,
            f"Vercel's job ended {status} but {self._config.production_domain} still serves "
            f"{serving or 'an unknown deployment'}, not {target.id}",
            serving,
            status,
        )

    def undo_hint(self, deployment: str | None = None) -> str:
        team = f"?teamId={self._config.team_id}" if self._config.team_id else ""
        dep = deployment or "<fixed-deployment-id>"
        return (
            "Vercel has stopped auto-assigning new deployments to production after this "
            "rollback. To undo it once a fix is ready, promote the fixed deployment: the "
            'dashboard\'s "Undo Rollback", or POST '
            f"{self._config.base_url}/v10/projects/{self._config.project_id}/promote/{dep}{team}"
        )
