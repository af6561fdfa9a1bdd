"""``smoke``: named smoke checks of key features → ``feature_up.<name>``.

Each check is one request (e.g. ``POST /api/opportunities`` with a test payload) that must
answer an expected status and, optionally, carry an expected value at a JSON path. Like a
health probe, a failed check is a real ``0``: the feature does not work for users. When every
check got no HTTP answer and the optional reachability canary fails too, the checks are
unknown (``watchdog_network``) instead, so a watchdog outage never reads as "feature down".

Checks default to one attempt per poll: smoke checks may not be idempotent (they create
things), and the rule's consecutive count already absorbs a single blip.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watchdog.core.model import Sample, Signal, UnknownReason
from watchdog.core.rules import Duration
from watchdog.fields import Secret
from watchdog.sources.base import MISSING, HttpSource, HttpURL, SourceConfigBase, json_path
from watchdog.transport import CallError, Response

FEATURE_NAME = r"^[a-z0-9][a-z0-9_-]*$"


class SmokeCondition(BaseModel):
    """The JSON body must hold ``equals`` at ``path`` (e.g. ``ok`` equals ``true``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    equals: str | bool | int | float | None


class SmokeCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=FEATURE_NAME, description="the feature: feature_up.<name>")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: HttpURL
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: dict[str, Secret] = Field(
        default_factory=dict, description="headers carrying credentials (never logged)"
    )
    body: Any = Field(default=None, description="JSON request body")
    expected_status: list[int] = Field(default_factory=lambda: [200], min_length=1)
    condition: SmokeCondition | None = None

    @field_validator("expected_status", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value


class SmokeSourceConfig(SourceConfigBase):
    kind: Literal["smoke"] = "smoke"
    checks: list[SmokeCheck] = Field(min_length=1)
    #: a URL outside the app (default: the target's ``canary_url``)
    canary_url: HttpURL | None = None
    attempts: int = Field(default=1, ge=1, le=10)
    interval: Duration = Field(default=timedelta(seconds=60))
    timeout: Duration = Field(default=timedelta(seconds=10))

    @model_validator(mode="after")
    def _unique_names(self) -> SmokeSourceConfig:
        names = [check.name for check in self.checks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"smoke check names must be unique: {', '.join(duplicates)}")
        return self


class SmokeSource(HttpSource[SmokeSourceConfig]):
    service = "the smoke-checked feature"

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(Signal.feature_up(check.name) for check in self.config.checks)

    def _secrets(self) -> list[str]:
        return [
            value.get_secret_value()
            for check in self.config.checks
            for value in check.secret_headers.values()
        ]

    async def _poll(self) -> list[Sample]:
        outcomes = await asyncio.gather(*(self._check(check) for check in self.config.checks))
        unanswered = [o for o in outcomes if isinstance(o, CallError) and o.status is None]
        # a check that got no answer is the watchdog's network when the canary fails too
        blind = bool(unanswered) and await self._network_down(unanswered[0])
        samples: list[Sample] = []
        for check, outcome in zip(self.config.checks, outcomes, strict=True):
            signal = Signal.feature_up(check.name)
            if blind and isinstance(outcome, CallError) and outcome.status is None:
                samples.append(
                    self._unknown(
                        signal,
                        UnknownReason.WATCHDOG_NETWORK,
                        f"{check.name}: {outcome}; the reachability canary failed too: the "
                        "watchdog's own network is down",
                    )
                )
            elif isinstance(outcome, CallError) and outcome.reason == "watchdog_busy":
                samples.append(self._unknown(signal, UnknownReason.PROVIDER_ERROR, str(outcome)))
            elif isinstance(outcome, CallError) and outcome.status in (401, 403):
                # stale smoke credentials must not read as "feature down" and roll back
                samples.append(
                    self._unknown(
                        signal,
                        UnknownReason.PROVIDER_ERROR,
                        f"{check.name}: the app rejected the smoke check's credentials "
                        f"({outcome.status}): check the check's secret_headers",
                    )
                )
            elif isinstance(outcome, CallError):
                samples.append(self._sample(signal, 0.0, detail=f"{check.name}: {outcome}"))
            else:
                samples.append(self._sample(signal, 1.0, detail=outcome))
        return samples

    async def _check(self, check: SmokeCheck) -> CallError | str:
        """The error that failed the check, or a short note on success."""
        headers = dict(check.headers)
        headers.update({k: v.get_secret_value() for k, v in check.secret_headers.items()})

        async def attempt() -> Response:
            return await self._request(
                check.method,
                check.url,
                headers=headers,
                json_body=check.body,
                accept=lambda status: status in check.expected_status,
            )

        try:
            result = await self._with_retries(attempt)
            if check.condition is not None:
                self._verify(check.condition, result)
        except CallError as exc:
            return exc
        return f"HTTP {result.status}"

    @staticmethod
    def _verify(condition: SmokeCondition, result: Response) -> None:
        value = json_path(result.json(SmokeSource.service, retryable=False), condition.path)
        if value is MISSING:
            raise CallError(
                f"the response has no {condition.path!r}", retryable=False, reason="condition"
            )
        if not _same(value, condition.equals):
            raise CallError(
                f"{condition.path}={value!r}, expected {condition.equals!r}",
                retryable=False,
                reason="condition",
            )


def _same(value: object, expected: object) -> bool:
    # JSON true is not 1: compare booleans only with booleans
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    return value == expected
