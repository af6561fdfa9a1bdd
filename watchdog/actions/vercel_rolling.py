"""Vercel Rolling Releases: read a project's rollout, approve its next stage, abort it.

I/O boundary: Vercel's REST API, through the project's :class:`VercelDeployer` (its session,
token, ``teamId`` and redactor), one attempt per call. The endpoints and where each is
documented are listed in ``docs/actions.md``:

- ``GET /v1/projects/{id}/rolling-release``: the rollout whatever its state, or
  ``{"rollingRelease": null}`` when the project has none;
- ``POST /v1/projects/{id}/rolling-release/approve-stage`` with ``nextStageIndex`` and
  ``canaryDeploymentId``;
- aborting has no endpoint of its own: it is the instant rollback to the rollout's
  *current* (base) deployment, ``POST /v1/projects/{id}/rollback/{currentDeployment.id}``, as
  Vercel's docs and its CLI do it, never the canary; the job is then followed through
  ``lastAliasRequest`` like any rollback, and the rollout re-read until it is over.

Vercel's answers are parsed into :class:`~watchdog.actions.base.RollingRelease` here and
nowhere else: no vendor dict leaves this module. What the docs leave open is read
defensively: ``substate``/``currentCanaryPercentage`` are optional, a stage's ``duration``
(documented both in seconds and in minutes) is kept for display and never used for a
deadline, and an unknown ``state`` is an error, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

import structlog

from watchdog.actions.base import (
    Deployment,
    RollbackRequest,
    RollbackResult,
    RollingRelease,
    RolloutStage,
    StageApproval,
)
from watchdog.actions.vercel import SERVICE, VercelDeployer, epoch_ms, parse_deployment
from watchdog.clock import Clock
from watchdog.core.model import RolloutState
from watchdog.numbers import finite
from watchdog.transport import CallError

log = structlog.get_logger(__name__)

_STATES: Final = {
    "ACTIVE": RolloutState.ACTIVE,
    "COMPLETE": RolloutState.COMPLETE,
    "ABORTED": RolloutState.ABORTED,
}


def _share(value: object) -> float | None:
    return finite(value, 0.0, 100.0)


def parse_stage(raw: object, position: int | None = None) -> RolloutStage | None:
    """One stage; its ``index`` is required (the list's position stands in inside
    ``stages``), anything else that is missing or of the wrong type is left out."""
    if not isinstance(raw, Mapping):
        return None
    index = raw.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        if position is None:
            return None
        index = position
    percent = _share(raw.get("targetPercentage"))
    final = raw.get("isFinalStage")
    return RolloutStage(
        index=index,
        percent=percent,
        requires_approval=raw.get("requireApproval") is True,
        final=final if isinstance(final, bool) else percent == 100.0,
        duration=finite(raw.get("duration"), 0.0),
    )


def _deployment(raw: object) -> Deployment | None:
    return parse_deployment(raw) if isinstance(raw, Mapping) else None


def parse_rolling_release(body: Mapping[str, Any]) -> RollingRelease | None:
    """``{"rollingRelease": ...}`` as a :class:`RollingRelease`; None for ``null``.

    Raises a ``malformed`` ``CallError`` for an answer without the key or with a state
    this code does not know: the watchdog must not act on a rollout it cannot read.
    """
    if "rollingRelease" not in body:
        raise CallError(
            f"{SERVICE} rolling release: no 'rollingRelease' in the answer",
            retryable=True,
            reason="malformed",
        )
    raw = body["rollingRelease"]
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise CallError(
            f"{SERVICE} rolling release: 'rollingRelease' is not an object",
            retryable=True,
            reason="malformed",
        )
    state_raw = raw.get("state")
    state = _STATES.get(state_raw.upper()) if isinstance(state_raw, str) else None
    if state is None:
        raise CallError(
            f"{SERVICE} rolling release: unknown state {state_raw!r}",
            retryable=False,
            reason="malformed",
        )
    stages_raw = raw.get("stages")
    stages = tuple(
        s
        for s in (
            parse_stage(item, position)
            for position, item in enumerate(stages_raw if isinstance(stages_raw, list) else [])
        )
        if s is not None
    )
    active = parse_stage(raw.get("activeStage"))
    persisted = _share(raw.get("currentCanaryPercentage"))
    queued = raw.get("queuedDeploymentId")
    return RollingRelease(
        state=state,
        canary=_deployment(raw.get("canaryDeployment")),
        base=_deployment(raw.get("currentDeployment")),
        stages=stages,
        active=active,
        next=parse_stage(raw.get("nextStage")),
        paused=raw.get("substate") == "PAUSED",
        # the persisted share wins (a pause or a linear shift holds the canary below the
        # stage's target); otherwise the active stage's target
        percent=persisted if persisted is not None else (active.percent if active else None),
        manual=raw.get("advancementType") == "manual-approval",
        queued=queued if isinstance(queued, str) and queued else None,
        started_at=epoch_ms(raw.get("startedAt")),
        updated_at=epoch_ms(raw.get("updatedAt")),
    )


class VercelRollingReleases:
    """The :class:`~watchdog.actions.base.RollingReleases` of one Vercel project."""

    def __init__(self, deployer: VercelDeployer, clock: Clock) -> None:
        self._deployer = deployer
        self._clock = clock
        self._config = deployer.config
        self._project = quote(deployer.config.project_id, safe="")
        self._log = log.bind(project=deployer.config.project_id)

    @property
    def project(self) -> str:
        return self._deployer.project

    def _path(self, tail: str = "") -> str:
        return f"/v1/projects/{self._project}/rolling-release{tail}"

    async def read(self) -> RollingRelease | None:
        body = await self._deployer.call_json("GET", self._path(), "get rolling release")
        return parse_rolling_release(body)

    async def approve(self, canary: str, next_stage: int) -> StageApproval:
        """One approve-stage call with the documented body; the answer's rollout, typed."""
        if self._config.shadow:
            return StageApproval(
                next_stage, shadow=True, detail=f"would approve stage {next_stage} of {canary}"
            )
        body = await self._deployer.call_json(
            "POST",
            self._path("/approve-stage"),
            "approve rolling-release stage",
            json_body={"nextStageIndex": next_stage, "canaryDeploymentId": canary},
        )
        self._log.info("vercel_stage_approved", canary=canary, stage=next_stage)
        release = parse_rolling_release(body) if "rollingRelease" in body else None
        return StageApproval(next_stage, release, detail=f"stage {next_stage} approved")

    async def abort(self, release: RollingRelease) -> RollbackRequest:
        """The instant rollback to the rollout's base: Vercel's documented way to stop a
        rolling release and send all traffic back (its CLI's ``rr abort`` does the same)."""
        if release.base is None:
            raise CallError(
                f"{SERVICE}: the rolling release names no current deployment to go back to",
                retryable=False,
                reason="no_base",
            )
        # the base as a plain id: the deployer's promote-or-rollback choice must not see
        # a STAGED substate here, an abort is always the rollback call
        return await self._deployer.request_rollback(Deployment(id=release.base.id))

    async def await_abort(self, release: RollingRelease) -> RollbackResult:
        """The rollback job to the base, then the rollout itself: production serving the
        base proves little while Vercel splits traffic at the edge, so the abort has taken
        only once the rollout is no longer active for this canary (Vercel does not say
        whether its state flips at once or when the job ends: it is re-read a few times)."""
        assert release.base is not None
        assert release.canary is not None
        result = await self._deployer.await_rollback(release.base)
        if not result.ok:
            return result
        canary = release.canary.id
        unread = ""
        for attempt in range(self._config.alias_checks):
            if attempt:
                await self._clock.sleep(self._config.poll_interval.total_seconds())
            try:
                now = await self.read()
            except CallError as exc:
                unread = str(exc)
                continue
            if now is None or not now.active_for(canary):
                state = now.state.value if now is not None else "gone"
                return RollbackResult(
                    True,
                    f"{result.detail}; the rolling release of {canary} is {state}",
                    result.serving,
                    result.job_status,
                )
            unread = ""
        if unread:
            # the job ended and the domain serves the base; verification judges the rest
            return RollbackResult(
                True,
                f"{result.detail}; the rolling release could not be re-read ({unread})",
                result.serving,
                result.job_status,
            )
        return RollbackResult(
            False,
            f"Vercel's job to {release.base.id} ended {result.job_status}, but the rolling "
            f"release of {canary} is still active",
            result.serving,
            result.job_status,
        )

    async def deployment(self, deployment_id: str) -> Deployment:
        return await self._deployer.get_deployment(deployment_id)
