"""``prometheus``: any signal from an instant PromQL query (``/api/v1/query``).

Each configured query yields one signal. Prometheus returns values as strings, and "no
traffic" shows up as ``NaN`` (``0/0``), ``±Inf`` or an empty vector: all of those are unknown
(``no_data``), never a healthy zero. An answer with ``status: error`` is an unknown
``provider_error`` naming Prometheus's ``errorType``.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Iterable
from datetime import timedelta
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from watchdog.core.model import Sample, Signal, UnknownReason
from watchdog.core.rules import Duration
from watchdog.fields import Secret
from watchdog.sources.base import HttpSource, HttpURL, SourceConfigBase, basic_auth
from watchdog.transport import CallError, Response

SIGNAL_NAME: Final = r"^[a-z_][a-z0-9_]*(\.[a-z0-9_-]+)*$"
#: statuses whose body is Prometheus's own JSON error (bad_data, execution)
_ERROR_BODY_STATUSES: Final = frozenset({400, 422})


class PromQuery(BaseModel):
    """One PromQL expression → one signal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal: str = Field(pattern=SIGNAL_NAME, description="e.g. latency_p95_s or error_rate")
    query: str = Field(min_length=1)
    reduce: Literal["first", "min", "max", "sum", "avg"] = Field(
        default="first",
        description="how to turn several series into one value; better: aggregate in PromQL",
    )


class PrometheusSourceConfig(SourceConfigBase):
    kind: Literal["prometheus"] = "prometheus"
    base_url: HttpURL = Field(description="Prometheus (or a compatible API) root URL")
    queries: list[PromQuery] = Field(min_length=1)
    method: Literal["GET", "POST"] = Field(
        default="GET", description="POST (form-encoded) for long queries"
    )
    bearer_token: Secret | None = None
    username: str | None = Field(default=None, pattern=r"^[^:]*$")
    password: Secret | None = None
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra headers, e.g. X-Scope-OrgID"
    )
    interval: Duration = Field(default=timedelta(seconds=30))
    timeout: Duration = Field(default=timedelta(seconds=10))

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusSourceConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("basic auth needs both username and password")
        if self.bearer_token is not None and self.username is not None:
            raise ValueError("use either bearer_token or username/password, not both")
        signals = [q.signal for q in self.queries]
        duplicates = sorted({s for s in signals if signals.count(s) > 1})
        if duplicates:
            raise ValueError(f"each signal may come from one query only: {', '.join(duplicates)}")
        return self


class PrometheusSource(HttpSource[PrometheusSourceConfig]):
    service = "Prometheus"
    auth_fix = "check the Prometheus bearer_token or username/password"

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(q.signal for q in self.config.queries)

    def _secrets(self) -> Iterable[str]:
        for secret in (self.config.bearer_token, self.config.password):
            if secret is not None:
                yield secret.get_secret_value()

    def _headers(self) -> dict[str, str]:
        headers = dict(self.config.headers)
        if self.config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.config.bearer_token.get_secret_value()}"
        if self.config.username is not None and self.config.password is not None:
            headers["Authorization"] = basic_auth(
                self.config.username, self.config.password.get_secret_value()
            )
        return headers

    async def _poll(self) -> list[Sample]:
        return list(await asyncio.gather(*(self._one(q) for q in self.config.queries)))

    async def _one(self, query: PromQuery) -> Sample:
        try:
            result = await self._with_retries(lambda: self._fetch(query))
            return self._parse(query, result.json(self.service, retryable=False))
        except CallError as exc:
            self._count_error(exc, final=True)
            return self._unknown(query.signal, UnknownReason.PROVIDER_ERROR, str(exc))

    async def _fetch(self, query: PromQuery) -> Response:
        form = [
            ("query", query.query),
            ("time", f"{self._clock.now().timestamp():.3f}"),
            ("timeout", f"{self.timeout.total_seconds():g}s"),
        ]
        headers = self._headers()
        url = f"{self.config.base_url.rstrip('/')}/api/v1/query"
        readable = lambda status: 200 <= status < 300 or status in _ERROR_BODY_STATUSES  # noqa: E731
        if self.config.method == "POST":
            return await self._request("POST", url, data=form, headers=headers, accept=readable)
        return await self._request("GET", url, params=form, headers=headers, accept=readable)

    def _parse(self, query: PromQuery, document: object) -> Sample:
        signal = query.signal
        if not isinstance(document, dict) or document.get("status") not in ("success", "error"):
            raise CallError(
                "Prometheus's answer is not an API response", retryable=False, reason="malformed"
            )
        if document["status"] == "error":
            error_type = str(document.get("errorType", "unknown"))
            message = str(document.get("error", ""))[:150]
            self.errors[f"query_{error_type}"] += 1
            return self._unknown(
                signal,
                UnknownReason.PROVIDER_ERROR,
                f"Prometheus query failed ({error_type}): {message}",
            )
        data = document.get("data")
        if not isinstance(data, dict):
            raise CallError("Prometheus's answer has no data", retryable=False, reason="malformed")
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            values = [_value(result)]
        elif kind == "vector" and isinstance(result, list):
            if not result:
                return self._unknown(signal, UnknownReason.NO_DATA, "no series matched the query")
            values = [
                _value(series.get("value") if isinstance(series, dict) else None)
                for series in result
            ]
        elif kind in ("matrix", "string"):
            return self._unknown(
                signal,
                UnknownReason.PROVIDER_ERROR,
                f"the query returns a {kind}; use an instant vector or scalar expression",
            )
        else:
            raise CallError(
                f"Prometheus's result type {kind!r} is not readable",
                retryable=False,
                reason="malformed",
            )
        return self._reduce(query, values)

    def _reduce(self, query: PromQuery, values: list[float | None]) -> Sample:
        signal = query.signal
        if any(v is None for v in values):
            raise CallError(
                'a Prometheus sample is not a [time, "value"] pair',
                retryable=False,
                reason="malformed",
            )
        numbers = [v for v in values if v is not None]
        if query.reduce == "first":
            numbers = numbers[:1]
        finite = [v for v in numbers if math.isfinite(v)]
        if not finite:
            # NaN is 0/0 (no traffic), ±Inf a division by zero: no data, never healthy
            return self._unknown(
                signal, UnknownReason.NO_DATA, f"the query returned {_show(numbers[0])}"
            )
        series = f" over {len(values)} series" if len(values) > 1 else ""
        match query.reduce:
            case "first":
                value = finite[0]
            case "min":
                value = min(finite)
            case "max":
                value = max(finite)
            case "sum":
                value = math.fsum(finite)
            case "avg":
                value = statistics.fmean(finite)
        reading = Signal.in_range(signal, value)
        if isinstance(reading, str):
            # nonsense is never a measurement: a query answering percentages for a rate
            # would otherwise read as 100x worse (or better) than it is
            return self._unknown(
                signal,
                UnknownReason.PROVIDER_ERROR,
                f"the query returned {_show(value)}, but {reading}: fix the query",
            )
        return self._sample(signal, reading, detail=f"{query.reduce}{series}" if series else "")


def _value(pair: object) -> float | None:
    """``[<unix_s>, "<value>"]`` → float (``NaN``/``±Inf`` included); None when malformed."""
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        return None
    try:
        return float(pair[1])
    except ValueError:
        return None


def _show(value: float) -> str:
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
