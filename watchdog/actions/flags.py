"""Feature-flag kill switches (the procedure's Method 4): Unleash and LaunchDarkly.

I/O boundary: :meth:`disable` makes one request per flag, exactly as EXTERNAL-APIS §8
documents (headers, content types, bodies). Both calls are idempotent (turning off a flag
that is off is a no-op), so the dispatcher may retry them freely.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final, Literal
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchdog.clock import Clock
from watchdog.fields import HttpURL, Secret, Timeout
from watchdog.redact import Redactor
from watchdog.transport import (
    Response,
    classify_status,
    parse_retry_after,
    reset_header_delay,
    send,
)

LD_CONTENT_TYPE: Final = "application/json; domain-model=launchdarkly.semanticpatch"
LD_API_VERSION: Final = "20240415"


class UnleashConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["unleash"] = "unleash"
    #: the Unleash server, without ``/api``: e.g. https://unleash.example.com
    base_url: HttpURL
    #: admin or personal access token, sent raw in ``Authorization`` (no "Bearer")
    token: Secret
    project: str = "default"
    environment: str = "production"
    features: list[str] = Field(min_length=1)
    request_timeout: Timeout = timedelta(seconds=10)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


class LaunchDarklyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["launchdarkly"] = "launchdarkly"
    #: federal instances: https://app.launchdarkly.us
    base_url: HttpURL = "https://app.launchdarkly.com"
    #: access token, sent raw in ``Authorization`` (no "Bearer")
    token: Secret
    project_key: str
    environment_key: str = "production"
    flags: list[str] = Field(min_length=1)
    api_version: str = LD_API_VERSION
    request_timeout: Timeout = timedelta(seconds=10)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


FlagConfig = UnleashConfig | LaunchDarklyConfig


# --------------------------------------------------------------------------- pure builders


def unleash_off_path(project: str, feature: str, environment: str) -> str:
    return (
        f"/api/admin/projects/{quote(project, safe='')}/features/{quote(feature, safe='')}"
        f"/environments/{quote(environment, safe='')}/off"
    )


def launchdarkly_path(project_key: str, flag_key: str) -> str:
    return f"/api/v2/flags/{quote(project_key, safe='')}/{quote(flag_key, safe='')}"


def launchdarkly_off_body(environment_key: str, comment: str) -> dict[str, Any]:
    """A semantic patch: all-or-nothing and idempotent."""
    return {
        "environmentKey": environment_key,
        "comment": comment,
        "instructions": [{"kind": "turnFlagOff"}],
    }


def _message(resp: Response) -> str:
    try:
        body = json.loads(resp.text)
    except ValueError:
        return resp.text.strip()[:200]
    if isinstance(body, Mapping):
        message = body.get("message")
        return message if isinstance(message, str) else ""
    return ""


# --------------------------------------------------------------------------- the switches


class UnleashFlag:
    def __init__(self, config: UnleashConfig, session: aiohttp.ClientSession, clock: Clock) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._redact = Redactor.of(config)

    @property
    def flags(self) -> Sequence[str]:
        return tuple(self._config.features)

    async def disable(self, flag: str, reason: str) -> None:
        resp = await send(
            self._session,
            "POST",
            self._config.base_url
            + unleash_off_path(self._config.project, flag, self._config.environment),
            service="Unleash",
            request_timeout=self._config.request_timeout,
            headers={
                "Authorization": self._config.token.get_secret_value(),
                "Accept": "application/json",
            },
            redactor=self._redact,
        )
        if resp.ok:
            return
        raise classify_status(
            resp.status,
            "Unleash",
            f"feature {flag}: {_message(resp)}",
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            auth_fix="check the admin token (and its 'skip change requests' permission)",
        )


class LaunchDarklyFlag:
    def __init__(
        self, config: LaunchDarklyConfig, session: aiohttp.ClientSession, clock: Clock
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._redact = Redactor.of(config)

    @property
    def flags(self) -> Sequence[str]:
        return tuple(self._config.flags)

    async def disable(self, flag: str, reason: str) -> None:
        resp = await send(
            self._session,
            "PATCH",
            self._config.base_url + launchdarkly_path(self._config.project_key, flag),
            service="LaunchDarkly",
            request_timeout=self._config.request_timeout,
            headers={
                "Authorization": self._config.token.get_secret_value(),
                "Content-Type": LD_CONTENT_TYPE,
                "LD-API-Version": self._config.api_version,
            },
            data=json.dumps(
                launchdarkly_off_body(self._config.environment_key, reason),
                separators=(",", ":"),
                ensure_ascii=False,
            ),
            redactor=self._redact,
        )
        if resp.ok:
            return
        retry_after: float | None = None
        if resp.status == 429:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if retry_after is None:
                # LaunchDarkly's reset header is epoch *milliseconds*
                retry_after = reset_header_delay(
                    resp.headers, "X-Ratelimit-Reset", self._clock.now().timestamp(), millis=True
                )
        raise classify_status(
            resp.status,
            "LaunchDarkly",
            f"flag {flag}: {_message(resp)}",
            retry_after=retry_after,
            auth_fix="check the access token's role on the project and environment",
        )


def build_flag(
    config: FlagConfig, session: aiohttp.ClientSession, clock: Clock
) -> UnleashFlag | LaunchDarklyFlag:
    if isinstance(config, UnleashConfig):
        return UnleashFlag(config, session, clock)
    return LaunchDarklyFlag(config, session, clock)
