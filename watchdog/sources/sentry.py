"""``sentry``: error rate, p95 latency and request count from Sentry's Discover table API.

One request per poll: ``GET {base}/api/0/organizations/{org}/events/`` with the three
aggregates as repeated ``field`` parameters (EXTERNAL-APIS §2). The window ends ``lag`` in
the past because events arrive late; a window that ended "now" would under-count failures and
read healthier than production is.

During a rolling release (the daemon keeps the source's :class:`ReleaseView` current) one
more request comes first, over the same window: ``field=release`` with the same aggregates
and ``release:[<base>,<canary>]`` in the query, one row per release. Its samples are tagged
with their deployment (base first, then canary, so the canary's is compared with this poll's
base) and come before the overall, untagged ones: the engine's deploy correlation reads the
tagged readings when the overall sample arrives. A release Sentry has no events of is
absent from the answer, so its samples are unknown (``no_data``), never zero.

Sentry rate-limits per caller and endpoint in fixed windows, and its 429 carries
``X-Sentry-Rate-Limit-Reset`` (epoch seconds) rather than ``Retry-After``. After a 429 the
source does not call again until that reset (each skipped poll is an unknown
``provider_error`` saying until when); without the header it spaces polls out exponentially.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from pydantic import Field, field_validator, model_validator

from watchdog.core.model import Sample, Signal, UnknownReason
from watchdog.core.rules import Duration
from watchdog.fields import Secret
from watchdog.sources.base import (
    MISSING,
    HttpSource,
    HttpURL,
    SourceConfigBase,
    SourceContext,
    as_number,
    mark_counted,
)
from watchdog.sources.releases import ScopedDeployment
from watchdog.sources.sentry_releases import check_template, release_filter, release_name
from watchdog.transport import CallError, Response, parse_retry_after, reset_header_delay

RESET_HEADER: Final = "X-Sentry-Rate-Limit-Reset"
REMAINING_HEADER: Final = "X-Sentry-Rate-Limit-Remaining"
FAILURE_RATE: Final = "failure_rate()"
COUNT: Final = "count()"
RELEASE: Final = "release"
#: p95 units Sentry reports in ``meta.units``, to seconds
_UNIT_SECONDS: Final = {
    "nanosecond": 1e-9,
    "microsecond": 1e-6,
    "millisecond": 1e-3,
    "second": 1.0,
}
#: the longest a rate-limited source stays quiet without a reset header
MAX_BACKOFF: Final = timedelta(minutes=10)


class SentrySourceConfig(SourceConfigBase):
    kind: Literal["sentry"] = "sentry"
    org: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", description="organization slug")
    project: list[str] = Field(min_length=1, description="project ids or slugs")
    environment: list[str] = Field(default_factory=list)
    dataset: Literal["spans", "transactions"] = "spans"
    query: str = Field(default="", description="extra search filter, e.g. 'transaction:/api/*'")
    region: Literal["us", "de"] = "us"
    base_url: HttpURL | None = Field(
        default=None, description="self-hosted Sentry (or a test fake); overrides region"
    )
    token: Secret = Field(description="org auth token with org:read")
    window: Duration = Field(default=timedelta(minutes=5), description="aggregation window")
    lag: Duration = Field(
        default=timedelta(seconds=90),
        description="end the window this far in the past (ingestion delay); 0 uses statsPeriod",
    )
    interval: Duration = Field(default=timedelta(seconds=60))
    timeout: Duration = Field(default=timedelta(seconds=10))
    release_scoped: bool = Field(
        default=True,
        description="during a rolling release, also measure its base and canary per release",
    )
    release: str = Field(
        default="{commit}",
        description="a deployment's Sentry release: {commit} (what @sentry/nextjs uses on "
        "Vercel), {short_commit}, {deployment}, or a template such as 'web@{commit}'",
    )

    @field_validator("release")
    @classmethod
    def _release_template(cls, value: str) -> str:
        return check_template(value)

    @field_validator("project", "environment", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str | int) else value

    @field_validator("project", mode="after")
    @classmethod
    def _as_strings(cls, value: list[str]) -> list[str]:
        return [str(v) for v in value]

    @model_validator(mode="after")
    def _sane_window(self) -> SentrySourceConfig:
        if self.window < timedelta(minutes=1):
            raise ValueError("window must be at least 1m")
        if self.window.total_seconds() % 1 or self.lag.total_seconds() % 1:
            raise ValueError("window and lag must be whole seconds")
        return self

    @property
    def base(self) -> str:
        return (self.base_url or f"https://{self.region}.sentry.io").rstrip("/")

    @property
    def p95_field(self) -> str:
        column = "span.duration" if self.dataset == "spans" else "transaction.duration"
        return f"p95({column})"


def stats_period(window: timedelta) -> str:
    """Sentry's ``statsPeriod`` takes one number and one unit (``90s``, ``5m``), not ``1m30s``."""
    seconds = int(window.total_seconds())
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _sentry_time(at: datetime) -> str:
    # Sentry reads start/end as UTC and ignores offsets: send plain UTC
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class SentrySource(HttpSource[SentrySourceConfig]):
    service = "Sentry"
    auth_fix = (
        "check the Sentry token (sentry token setting): it must be valid and have the "
        "org:read scope for this organization"
    )

    def __init__(self, config: SentrySourceConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self._blocked_until: datetime | None = None
        self._strikes = 0
        self._skip_polls = 0
        self._releases = context.releases if config.release_scoped else None
        #: the release-scoped samples of the last poll (empty outside a rolling release)
        self.last_scoped: tuple[Sample, ...] = ()

    @property
    def signals(self) -> tuple[str, ...]:
        return (Signal.ERROR_RATE, Signal.LATENCY_P95_S, Signal.REQUEST_COUNT)

    def _secrets(self) -> Iterable[str]:
        return (self.config.token.get_secret_value(),)

    def params(self, now: datetime, releases: Sequence[str] = ()) -> list[tuple[str, str]]:
        """The query string, in the documented shape (repeated ``field``, ``project``...);
        with ``releases``, grouped by release and filtered to them."""
        cfg = self.config
        params: list[tuple[str, str]] = [("field", RELEASE)] if releases else []
        params += [
            ("field", FAILURE_RATE),
            ("field", cfg.p95_field),
            ("field", COUNT),
            ("dataset", cfg.dataset),
        ]
        params += [("project", p) for p in cfg.project]
        params += [("environment", e) for e in cfg.environment]
        scope = release_filter(list(releases)) if releases else ""
        query = " ".join(
            q
            for q in ("is_transaction:true" if cfg.dataset == "spans" else "", scope, cfg.query)
            if q
        )
        if query:
            params.append(("query", query))
        if cfg.lag:
            end = now - cfg.lag
            params += [
                ("start", _sentry_time(end - cfg.window)),
                ("end", _sentry_time(end)),
            ]
        else:
            params.append(("statsPeriod", stats_period(cfg.window)))
        return params

    def _retry_after(self, result: Response) -> float | None:
        reset = reset_header_delay(result.headers, RESET_HEADER, self._clock.now().timestamp())
        if reset is not None:
            return reset
        return parse_retry_after(result.headers.get("Retry-After"), self._clock.now())

    async def _fetch(self, params: list[tuple[str, str]]) -> Response:
        return await self._request(
            "GET",
            f"{self.config.base}/api/0/organizations/{self.config.org}/events/",
            params=params,
            headers={"Authorization": f"Bearer {self.config.token.get_secret_value()}"},
        )

    async def _poll(self) -> list[Sample]:
        now = self._clock.now()
        if self._blocked_until is not None and now < self._blocked_until:
            until = self._blocked_until.strftime("%H:%M:%SZ")
            return self._unknown_all(
                UnknownReason.PROVIDER_ERROR, f"Sentry rate-limited the watchdog until {until}"
            )
        self._blocked_until = None
        if self._skip_polls > 0:
            self._skip_polls -= 1
            return self._unknown_all(
                UnknownReason.PROVIDER_ERROR,
                "Sentry rate-limited the watchdog (no reset time given): backing off",
            )
        scoped = self._releases.scoped() if self._releases is not None else ()
        tagged = await self._scoped_samples(scoped, now) if scoped else []
        self.last_scoped = tuple(tagged)
        result = await self._call(self.params(now))
        return [*tagged, *self._parse(result)]

    async def _call(self, params: list[tuple[str, str]]) -> Response:
        """One Discover query with retries; a 429 blocks the source until Sentry's reset."""
        try:
            result = await self._with_retries(functools.partial(self._fetch, params))
        except CallError as exc:
            if exc.reason != "rate_limited":
                raise
            self._back_off(exc)
            if self._blocked_until is None:
                raise
            until = self._blocked_until.strftime("%H:%M:%SZ")
            raise mark_counted(
                CallError(
                    f"Sentry rate-limited the watchdog until {until}",
                    retryable=False,
                    reason=exc.reason,
                    status=exc.status,
                )
            ) from None
        self._strikes = 0
        self._note_budget(result)
        return result

    def _back_off(self, exc: CallError) -> None:
        now = self._clock.now()
        if exc.retry_after is not None:
            self._blocked_until = now + timedelta(seconds=exc.retry_after)
            return
        # no reset header (e.g. a proxy in front of Sentry): skip 0, 1, 3, 7 ... polls;
        # counted in polls, not time, so scheduler jitter cannot shorten the back-off
        self._strikes += 1
        most = max(1, int(MAX_BACKOFF / self.interval))
        self._skip_polls = min(most, 2 ** (self._strikes - 1) - 1)

    def _note_budget(self, result: Response) -> None:
        """The last call of a window spent the budget: wait for the reset instead of a 429."""
        if result.headers.get(REMAINING_HEADER, "").strip() != "0":
            return
        delay = reset_header_delay(result.headers, RESET_HEADER, self._clock.now().timestamp())
        if delay:
            self._blocked_until = self._clock.now() + timedelta(seconds=delay)

    def _parse(self, result: Response) -> list[Sample]:
        document = result.json(self.service, retryable=False)
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, list):
            raise CallError(
                "Sentry's answer has no 'data' list", retryable=False, reason="malformed"
            )
        if not data:
            return self._unknown_all(UnknownReason.NO_DATA, "Sentry has no events in the window")
        row = data[0]
        if not isinstance(row, dict):
            raise CallError(
                "Sentry's data row is not an object", retryable=False, reason="malformed"
            )
        return self._row(row, document)

    def _row(self, row: dict[str, object], document: object) -> list[Sample]:
        count_sample, count = self._count(row)
        return [self._error_rate(row, count), self._latency(row, count, document), count_sample]

    # -- release-scoped ------------------------------------------------------------------

    async def _scoped_samples(
        self, scoped: Sequence[ScopedDeployment], now: datetime
    ) -> list[Sample]:
        """The base's and the canary's samples, each tagged with its deployment, from one
        query grouped by release. A failure here leaves them unknown and the overall query
        still runs (a rate limit blocks the whole source, as for the overall one)."""
        names = {s.deployment: release_name(self.config.release, s) for s in scoped}
        known = [n for n in names.values() if n is not None]
        if len(set(known)) < len(known):
            # a redeploy of one commit: the release cannot tell canary from base
            return self._tagged_unknown(
                scoped,
                UnknownReason.NO_DATA,
                f"the rolling release's deployments share Sentry release {known[0]}: their "
                "traffic cannot be told apart",
            )
        out: list[Sample] = []
        rows: dict[str, dict[str, object]] = {}
        document: object = None
        if known:
            try:
                result = await self._call(self.params(now, known))
                document = result.json(self.service, retryable=False)
                data = document.get("data") if isinstance(document, dict) else None
                if not isinstance(data, list):
                    raise CallError(
                        "Sentry's per-release answer has no 'data' list",
                        retryable=False,
                        reason="malformed",
                    )
            except CallError as exc:
                if exc.reason == "rate_limited":
                    raise
                return self._tagged_unknown(scoped, UnknownReason.PROVIDER_ERROR, str(exc))
            for row in data:
                if isinstance(row, dict) and isinstance(row.get(RELEASE), str):
                    rows[str(row[RELEASE])] = row
        for item in scoped:
            name = names[item.deployment]
            if name is None:
                why = f"no commit SHA known for {item.deployment}: its Sentry release is unknown"
                out += self._tagged_unknown([item], UnknownReason.NO_DATA, why)
            elif name not in rows:
                why = f"Sentry has no events of release {name} ({item.role}) in the window"
                out += self._tagged_unknown([item], UnknownReason.NO_DATA, why)
            else:
                out += [
                    replace(s, deployment=item.deployment) for s in self._row(rows[name], document)
                ]
        return out

    def _tagged_unknown(
        self, scoped: Sequence[ScopedDeployment], reason: UnknownReason, detail: str
    ) -> list[Sample]:
        return [
            replace(sample, deployment=item.deployment)
            for item in scoped
            for sample in self._unknown_all(reason, detail)
        ]

    def _count(self, row: dict[str, object]) -> tuple[Sample, int | None]:
        signal = Signal.REQUEST_COUNT
        raw = row.get(COUNT, MISSING)
        if raw is MISSING:
            return self._unknown(
                signal, UnknownReason.PROVIDER_ERROR, f"no {COUNT} in the row"
            ), None
        if raw is None:
            return self._unknown(signal, UnknownReason.NO_DATA, f"{COUNT} is null"), None
        number = as_number(raw)
        if number is None or number < 0 or number != math.floor(number):
            return (
                self._unknown(signal, UnknownReason.PROVIDER_ERROR, f"{COUNT} is {raw!r}"),
                None,
            )
        return self._sample(signal, number), int(number)

    def _error_rate(self, row: dict[str, object], count: int | None) -> Sample:
        signal = Signal.ERROR_RATE
        raw = row.get(FAILURE_RATE, MISSING)
        if raw is MISSING:
            return self._unknown(
                signal, UnknownReason.PROVIDER_ERROR, f"no {FAILURE_RATE} in the row"
            )
        if count == 0:
            # a rate over no requests says nothing, whatever Sentry put there
            return self._unknown(
                signal, UnknownReason.NO_DATA, "no requests in the window", requests=0
            )
        if raw is None:
            return self._unknown(
                signal, UnknownReason.NO_DATA, f"{FAILURE_RATE} is null", requests=count
            )
        number = as_number(raw)
        if number is None or not 0.0 <= number <= 1.0:
            return self._unknown(
                signal, UnknownReason.PROVIDER_ERROR, f"{FAILURE_RATE} is {raw!r}, not a fraction"
            )
        return self._sample(signal, number, requests=count)

    def _latency(self, row: dict[str, object], count: int | None, document: object) -> Sample:
        signal = Signal.LATENCY_P95_S
        key = self.config.p95_field
        raw = row.get(key, MISSING)
        if raw is MISSING:
            return self._unknown(signal, UnknownReason.PROVIDER_ERROR, f"no {key} in the row")
        if count == 0:
            return self._unknown(signal, UnknownReason.NO_DATA, "no requests in the window")
        if raw is None:
            return self._unknown(signal, UnknownReason.NO_DATA, f"{key} is null")
        number = as_number(raw)
        if number is None or number < 0:
            return self._unknown(
                signal, UnknownReason.PROVIDER_ERROR, f"{key} is {raw!r}, not a duration"
            )
        unit = _unit(document, key)
        if unit not in _UNIT_SECONDS:
            return self._unknown(
                signal, UnknownReason.PROVIDER_ERROR, f"{key} is in an unknown unit {unit!r}"
            )
        return self._sample(signal, number * _UNIT_SECONDS[unit], requests=count)


def _unit(document: object, key: str) -> str:
    """``meta.units[key]``; Sentry reports durations in milliseconds when it says nothing."""
    meta = document.get("meta") if isinstance(document, dict) else None
    units = meta.get("units") if isinstance(meta, dict) else None
    unit = units.get(key) if isinstance(units, dict) else None
    return unit if isinstance(unit, str) else "millisecond"
