"""``detailed``: component states from a detailed health endpoint, mapped by field paths.

Apps commonly expose ``GET /api/health/detailed`` as JSON such as
``{"components": {"database": {"status": "ok"}}, "payments": {"failures_5m": 0}}`` and answer
503 with the same body when a component is down, so the body is read on 503 as well. Each
configured path becomes one signal: ``db_connection_up``, ``payment_failures`` or
``feature_up.<name>``. A path the body lacks or a value of the wrong type is an unknown
``provider_error`` for that signal alone; ``null`` is ``no_data``; a status outside
``up_values`` is a real ``0``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from watchdog.core.model import Sample, Signal, UnknownReason
from watchdog.sources.base import (
    MISSING,
    HttpSource,
    HttpURL,
    SourceConfigBase,
    as_number,
    json_path,
)
from watchdog.transport import CallError, Response, body_hint, classify_status

FEATURE_NAME = r"^[a-z0-9][a-z0-9_-]*$"
DEFAULT_UP_VALUES: tuple[str | bool | int, ...] = ("ok", "healthy", "up", "pass", True)


class UpField(BaseModel):
    """A status field: up when its value is one of ``up_values`` (strings case-insensitive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="dotted JSON path, e.g. components.database.status")
    up_values: list[str | bool | int] = Field(
        default_factory=lambda: list(DEFAULT_UP_VALUES),
        min_length=1,
    )

    def is_up(self, value: str | bool | int | float) -> bool:
        for up in self.up_values:
            if isinstance(up, str) and isinstance(value, str):
                if up.casefold() == value.casefold():
                    return True
            elif type(up) is type(value) and up == value:
                return True
        return False


class DetailedSourceConfig(SourceConfigBase):
    kind: Literal["detailed"] = "detailed"
    url: HttpURL
    db_connection: UpField | None = Field(default=None, description="→ db_connection_up")
    payment_failures: str | None = Field(
        default=None, min_length=1, description="path of a count → payment_failures"
    )
    features: dict[str, UpField] = Field(
        default_factory=dict, description="feature name → status field → feature_up.<name>"
    )
    body_statuses: list[int] = Field(
        default_factory=lambda: [503],
        description="non-2xx statuses whose JSON body still reports component states",
    )
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _maps_something(self) -> DetailedSourceConfig:
        if self.db_connection is None and self.payment_failures is None and not self.features:
            raise ValueError("map at least one of db_connection, payment_failures, features")
        for name in self.features:
            if not re.match(FEATURE_NAME, name):
                raise ValueError(f"feature name {name!r} must match {FEATURE_NAME}")
        return self


class DetailedSource(HttpSource[DetailedSourceConfig]):
    service = "the detailed health endpoint"

    @property
    def signals(self) -> tuple[str, ...]:
        signals: list[str] = []
        if self.config.db_connection is not None:
            signals.append(Signal.DB_CONNECTION_UP)
        if self.config.payment_failures is not None:
            signals.append(Signal.PAYMENT_FAILURES)
        signals.extend(Signal.feature_up(name) for name in self.config.features)
        return tuple(signals)

    def _readable(self, status: int) -> bool:
        return 200 <= status < 300 or status in self.config.body_statuses

    async def _fetch(self) -> Response:
        result = await self._request(
            "GET", self.config.url, headers=self.config.headers, accept=self._readable
        )
        if not 200 <= result.status < 300:
            try:
                result.json(self.service, retryable=False)
            except CallError:
                # a 503 without a JSON body is an ordinary server error: retry it like one
                raise classify_status(
                    result.status,
                    self.service,
                    body_hint(result.body, result.content_type),
                    retry_after=self._retry_after(result),
                ) from None
        return result

    async def _poll(self) -> list[Sample]:
        result = await self._with_retries(self._fetch)
        document = result.json(self.service, retryable=False)
        samples: list[Sample] = []
        if self.config.db_connection is not None:
            samples.append(self._up(Signal.DB_CONNECTION_UP, self.config.db_connection, document))
        if self.config.payment_failures is not None:
            samples.append(self._count_at(self.config.payment_failures, document))
        for name, up_field in self.config.features.items():
            samples.append(self._up(Signal.feature_up(name), up_field, document))
        return samples

    def _up(self, signal: str, up_field: UpField, document: object) -> Sample:
        value = json_path(document, up_field.path)
        if value is MISSING:
            return self._unknown(
                signal, UnknownReason.PROVIDER_ERROR, f"the response has no {up_field.path!r}"
            )
        if value is None:
            return self._unknown(signal, UnknownReason.NO_DATA, f"{up_field.path!r} is null")
        if not isinstance(value, str | bool | int | float):
            return self._unknown(
                signal,
                UnknownReason.PROVIDER_ERROR,
                f"{up_field.path!r} is a {type(value).__name__}, not a status",
            )
        up = up_field.is_up(value)
        return self._sample(signal, 1.0 if up else 0.0, detail=f"{up_field.path}={value!r}")

    def _count_at(self, path: str, document: object) -> Sample:
        signal = Signal.PAYMENT_FAILURES
        value = json_path(document, path)
        if value is MISSING:
            return self._unknown(
                signal, UnknownReason.PROVIDER_ERROR, f"the response has no {path!r}"
            )
        if value is None:
            return self._unknown(signal, UnknownReason.NO_DATA, f"{path!r} is null")
        number = as_number(value)
        if number is None or number < 0:
            return self._unknown(
                signal, UnknownReason.PROVIDER_ERROR, f"{path!r} is {value!r}, not a count"
            )
        return self._sample(signal, number)
