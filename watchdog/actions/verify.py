"""Did the rollback take? Four checks within ``verify_timeout`` (DESIGN §5 "Verify").

1. Vercel serves the target on the production domain;
2. the health endpoint answers 200;
3. the version endpoint reports the target's deployment id or commit;
4. the error rate falls (below what it was when the rollback started, or under the
   procedure's "normal" 0.5 %).

The judging is pure (:func:`judge_version`, :func:`judge_error_rate`, :func:`decide`); the
loop in :class:`Verifier` does the I/O on an injected clock and re-probes every
``poll_interval`` until every check passes in one round or time runs out. The result names
the checks that never passed, so the P0 page can say *why* the rollback did not take.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, Field

from watchdog.actions.base import Deployer, Deployment
from watchdog.clock import Clock
from watchdog.fields import HttpURL, JobTimeout, PollInterval, Timeout
from watchdog.transport import CallError, send

log = structlog.get_logger(__name__)

ErrorRateProbe = Callable[[], float | None]


class VerifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verify_timeout: JobTimeout = timedelta(minutes=3)
    poll_interval: PollInterval = timedelta(seconds=10)
    health_url: HttpURL | None = None
    version_url: HttpURL | None = None
    #: keys of the version endpoint's JSON that may hold the deployment id or commit SHA
    version_fields: list[str] = Field(
        default_factory=lambda: [
            "deploymentId",
            "deployment",
            "deployment_id",
            "commit",
            "commitSha",
            "sha",
            "gitSha",
            "version",
        ]
    )
    #: an error rate at or under this counts as recovered even without a baseline
    error_rate_ok: float = Field(default=0.005, ge=0, le=1)
    request_timeout: Timeout = timedelta(seconds=5)


class Check(enum.StrEnum):
    SERVES_TARGET = "serves_target"
    HEALTH = "health"
    VERSION = "version"
    ERROR_RATE = "error_rate"


class CheckState(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a check state, not a password
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CheckResult:
    state: CheckState
    detail: str


class RoundOutcome(enum.StrEnum):
    """How one round of checks ends (not the engine's flowchart verdict)."""

    VERIFIED = "verified"
    FAILED = "failed"
    CONTINUE = "continue"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    failed: tuple[str, ...]
    detail: str
    elapsed: timedelta
    checks: Mapping[str, CheckResult] = field(default_factory=dict)


# --------------------------------------------------------------------------- pure judging


def _version_values(body: str, fields: Sequence[str]) -> list[str]:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return [body.strip()] if body.strip() else []
    if isinstance(data, str):
        return [data.strip()]
    if not isinstance(data, Mapping):
        return []
    values: list[str] = []
    for scope in (data, *(v for v in data.values() if isinstance(v, Mapping))):
        for name in fields:
            value = scope.get(name)
            if isinstance(value, str) and value.strip():
                values.append(value.strip())
    return values


def judge_version(body: str, target: Deployment, fields: Sequence[str]) -> CheckResult:
    """Pass when the endpoint names the target's deployment id or (a ≥7-char prefix of) commit."""
    values = _version_values(body, fields)
    if not values:
        return CheckResult(CheckState.UNKNOWN, "the version endpoint named no deployment or commit")
    commit = (target.commit or "").lower()
    for value in values:
        low = value.lower()
        if value == target.id:
            return CheckResult(CheckState.PASS, f"version endpoint reports {value}")
        if commit and len(low) >= 7 and (commit.startswith(low) or low.startswith(commit)):
            return CheckResult(CheckState.PASS, f"version endpoint reports commit {value}")
    return CheckResult(
        CheckState.FAIL,
        f"version endpoint reports {', '.join(values)}, not {target.id}"
        + (f" / {target.commit}" if target.commit else ""),
    )


def judge_error_rate(baseline: float | None, latest: float | None, ok: float) -> CheckResult:
    if latest is None:
        return CheckResult(CheckState.UNKNOWN, "the error rate is unknown")
    if latest <= ok:
        return CheckResult(CheckState.PASS, f"error rate {latest:.2%} is normal (≤ {ok:.2%})")
    if baseline is not None and latest < baseline:
        return CheckResult(
            CheckState.PASS, f"error rate falling: {latest:.2%} < {baseline:.2%} at rollback"
        )
    ref = f"{baseline:.2%} at rollback" if baseline is not None else f"normal {ok:.2%}"
    return CheckResult(CheckState.FAIL, f"error rate {latest:.2%} is not falling (vs {ref})")


def judge_round(
    checks: Mapping[Check, CheckResult], *, elapsed: timedelta, timeout: timedelta
) -> tuple[RoundOutcome, tuple[str, ...]]:
    """All checks passing in one round verifies; at the timeout the non-passing ones fail it."""
    failing = tuple(str(name) for name, res in checks.items() if res.state is not CheckState.PASS)
    if not failing:
        return RoundOutcome.VERIFIED, ()
    if elapsed >= timeout:
        return RoundOutcome.FAILED, failing
    return RoundOutcome.CONTINUE, failing


# --------------------------------------------------------------------------- the loop


class Verifier:
    def __init__(self, config: VerifyConfig, session: aiohttp.ClientSession, clock: Clock) -> None:
        self._config = config
        self._session = session
        self._clock = clock

    async def _get(self, url: str) -> tuple[int, str] | CallError:
        try:
            resp = await send(
                self._session,
                "GET",
                url,
                service="app",
                request_timeout=self._config.request_timeout,
                headers={"Cache-Control": "no-cache"},
            )
        except CallError as exc:
            return exc
        return resp.status, resp.text

    async def probe(
        self,
        deployer: Deployer,
        target: Deployment,
        *,
        baseline_error_rate: float | None,
        error_rate: ErrorRateProbe | None,
    ) -> dict[Check, CheckResult]:
        checks: dict[Check, CheckResult] = {}
        try:
            serving = await deployer.serving()
        except CallError as exc:
            checks[Check.SERVES_TARGET] = CheckResult(CheckState.UNKNOWN, str(exc))
        else:
            checks[Check.SERVES_TARGET] = (
                CheckResult(CheckState.PASS, f"production serves {target.id}")
                if serving == target.id
                else CheckResult(CheckState.FAIL, f"production serves {serving}, not {target.id}")
            )
        if self._config.health_url:
            got = await self._get(self._config.health_url)
            if isinstance(got, CallError):
                checks[Check.HEALTH] = CheckResult(CheckState.FAIL, f"health check: {got}")
            elif got[0] == 200:
                checks[Check.HEALTH] = CheckResult(CheckState.PASS, "health returns 200")
            else:
                checks[Check.HEALTH] = CheckResult(CheckState.FAIL, f"health returns {got[0]}")
        if self._config.version_url:
            got = await self._get(self._config.version_url)
            if isinstance(got, CallError):
                checks[Check.VERSION] = CheckResult(CheckState.UNKNOWN, f"version: {got}")
            elif got[0] != 200:
                checks[Check.VERSION] = CheckResult(CheckState.FAIL, f"version returns {got[0]}")
            else:
                checks[Check.VERSION] = judge_version(got[1], target, self._config.version_fields)
        if error_rate is not None:
            checks[Check.ERROR_RATE] = judge_error_rate(
                baseline_error_rate, error_rate(), self._config.error_rate_ok
            )
        return checks

    async def verify(
        self,
        deployer: Deployer,
        target: Deployment,
        *,
        baseline_error_rate: float | None = None,
        error_rate: ErrorRateProbe | None = None,
    ) -> VerifyResult:
        started = self._clock.monotonic()
        timeout = self._config.verify_timeout
        while True:
            checks = await self.probe(
                deployer, target, baseline_error_rate=baseline_error_rate, error_rate=error_rate
            )
            elapsed = timedelta(seconds=self._clock.monotonic() - started)
            outcome, failing = judge_round(checks, elapsed=elapsed, timeout=timeout)
            named = {str(k): v for k, v in checks.items()}
            if outcome is RoundOutcome.VERIFIED:
                log.info("rollback_verified", to=target.id, elapsed_s=elapsed.total_seconds())
                return VerifyResult(True, (), "every check passed", elapsed, named)
            if outcome is RoundOutcome.FAILED:
                detail = "; ".join(f"{name}: {named[name].detail}" for name in failing)
                log.warning("rollback_verify_failed", to=target.id, failed=failing)
                return VerifyResult(False, failing, detail, elapsed, named)
            remaining = timeout.total_seconds() - elapsed.total_seconds()
            await self._clock.sleep(min(self._config.poll_interval.total_seconds(), remaining))
