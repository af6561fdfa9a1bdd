"""The one interface every signal source implements, and the HTTP plumbing they share.

This module is the I/O boundary of ``watchdog.sources``: every request a source makes goes
through :meth:`HttpSource._request`, which holds the global concurrency slot and hands the one
attempt to :func:`watchdog.transport.send` (the layer the actions use too, with the same
failure vocabulary), then counts the failure. Retrying is :class:`watchdog.retry.Retrier`'s
job, with a deadline that keeps a poll inside its interval. A source never raises out of
:meth:`Source.poll` for an upstream problem: it returns samples whose value is unknown, with a
reason and a short detail.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar, runtime_checkable

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from watchdog.clock import Clock
from watchdog.core.model import Sample, UnknownReason
from watchdog.core.rules import Duration, format_duration
from watchdog.fields import MIN_TIMEOUT, HttpURL
from watchdog.numbers import finite
from watchdog.redact import Redactor
from watchdog.retry import Retrier, RetryPolicy
from watchdog.sources.releases import ReleaseView
from watchdog.transport import (
    Caller,
    CallError,
    Response,
    classify_status,
    parse_retry_after,
    send,
)

__all__ = [
    "MISSING",
    "Canary",
    "HttpSource",
    "HttpURL",
    "Source",
    "SourceConfigBase",
    "SourceContext",
    "json_path",
]

#: details end up in records, pages and the status page: keep them to one readable line
MAX_DETAIL: Final = 300

#: unknown reasons that mean "the source could not poll", as opposed to "nothing to report"
FAILING_REASONS: Final = frozenset({UnknownReason.PROVIDER_ERROR, UnknownReason.WATCHDOG_NETWORK})


@runtime_checkable
class Source(Protocol):
    """Something the scheduler polls every ``interval`` for samples of one target."""

    name: str
    target: str
    interval: timedelta

    async def poll(self) -> list[Sample]:
        """Observe now. Upstream failures come back as unknown samples, never as exceptions."""
        ...


class Canary:
    """The target's reachability canary: one URL outside the app that every HTTP source of
    the target asks before it blames the app for not answering (DESIGN §3).

    When a source got no HTTP answer and the canary fails too (no answer, or 500 and up),
    the failure is the watchdog's own network: ``watchdog_network`` unknowns, which page
    "blind" and never roll back, so a partition never reads as "feature down". One answer is
    shared for ``ttl`` seconds, so the sources of one poll cycle agree and the canary is not
    asked once per source.
    """

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession,
        clock: Clock,
        timeout: timedelta = timedelta(seconds=5),
        ttl: float = 2.0,
    ) -> None:
        self.url = url
        self._session = session
        self._clock = clock
        self._timeout = timeout
        self._ttl = ttl
        self._answer: tuple[float, bool] | None = None
        self._lock = asyncio.Lock()

    async def reachable(self) -> bool:
        async with self._lock:
            now = self._clock.monotonic()
            if self._answer is not None and now - self._answer[0] < self._ttl:
                return self._answer[1]
            ok = await canary_answers(self._session, self.url, request_timeout=self._timeout)
            self._answer = (self._clock.monotonic(), ok)
            return ok


async def canary_answers(
    session: aiohttp.ClientSession, url: str, *, request_timeout: timedelta
) -> bool:
    """Whether ``url`` answers at all: any status below 500 means the network works."""
    try:
        result = await send(
            session,
            "GET",
            url,
            service="the reachability canary",
            request_timeout=request_timeout,
            follow_redirects=True,
        )
    except CallError:
        return False
    return result.status < 500


@dataclass(frozen=True)
class SourceContext:
    """What the daemon injects into every source: shared by all, owned by none."""

    target: str
    session: aiohttp.ClientSession
    clock: Clock
    semaphore: asyncio.Semaphore
    #: the target's reachability canary (``targets[].canary_url``), if configured
    canary: Canary | None = None
    #: the deployments a release-scoped source measures apart (a rolling release's)
    releases: ReleaseView | None = None


# --------------------------------------------------------------------------- config


#: polls more often than ten times a second only load the upstream (and the watchdog)
MIN_INTERVAL: Final = timedelta(milliseconds=100)

_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_.-]*$"


class SourceConfigBase(BaseModel):
    """Options every source kind shares. ``kind`` is declared by each subclass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        default=None,
        pattern=_NAME_PATTERN,
        description="source name within the target (default: the kind); must be unique",
    )
    interval: Duration = Field(default=timedelta(seconds=30), description="time between polls")
    timeout: Duration = Field(default=timedelta(seconds=10), description="per-request timeout")
    attempts: int = Field(default=3, ge=1, le=10, description="tries per poll (retries + 1)")

    @model_validator(mode="after")
    def _timeout_fits_interval(self) -> SourceConfigBase:
        # checked here, not by the fields' types: each kind re-declares them for its defaults
        if self.interval < MIN_INTERVAL:
            raise ValueError(
                f"interval {format_duration(self.interval)} is too short: the source would "
                f"poll in a near-busy loop; use at least {format_duration(MIN_INTERVAL)}"
            )
        if self.timeout < MIN_TIMEOUT:
            raise ValueError(
                f"timeout {format_duration(self.timeout)} is too short: every request would "
                f"time out (and 0s means none at all); use at least {format_duration(MIN_TIMEOUT)}"
            )
        if self.timeout >= self.interval:
            # a poll must finish before the next one is due
            raise ValueError(
                f"timeout ({format_duration(self.timeout)}) must be shorter than "
                f"interval ({format_duration(self.interval)})"
            )
        return self

    def source_name(self, target: str) -> str:
        kind = getattr(self, "kind", "source")
        return f"{target}/{self.name or kind}"


C = TypeVar("C", bound=SourceConfigBase)


# --------------------------------------------------------------------------- helpers


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def json_path(document: object, path: str) -> object:
    """Follow ``a.b.0.c`` through dicts and lists; :data:`MISSING` when any step is absent."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict):
            if part not in node:
                return MISSING
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


_COUNTED: Final = "_watchdog_counted"


def mark_counted(exc: CallError) -> CallError:
    """Flag an error as already in :attr:`HttpSource.errors` (e.g. a re-worded re-raise)."""
    setattr(exc, _COUNTED, True)
    return exc


def basic_auth(username: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP Basic (RFC 7617)."""
    if ":" in username:
        raise ValueError("a Basic-auth username cannot contain ':'")
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def as_number(value: object) -> float | None:
    """A finite JSON number (bools are not numbers here), else None."""
    return finite(value)


Accept = Callable[[int], bool]


def _is_2xx(status: int) -> bool:
    return 200 <= status < 300


# --------------------------------------------------------------------------- base class


class HttpSource(Generic[C]):
    """Shared machinery: bounded, counted, retried HTTP calls and transition logging.

    Subclasses implement :meth:`_poll`; anything it raises is turned into unknown samples
    for :attr:`signals`, so one bad answer can never take the scheduler down.
    """

    #: service name used in human messages ("Sentry answered 503")
    service: ClassVar[str] = "the upstream"
    #: what to do about a 401/403, said in every such message
    auth_fix: ClassVar[str] = "check the credentials"

    def __init__(self, config: C, context: SourceContext) -> None:
        self.config = config
        self.name = config.source_name(context.target)
        self.target = context.target
        self.interval = config.interval
        self.timeout = config.timeout
        self.errors: Counter[str] = Counter()
        self._session = context.session
        self._clock = context.clock
        self._semaphore = context.semaphore
        self._canary = context.canary
        self._attempts = config.attempts
        self._failing_since: datetime | None = None
        self._log = structlog.get_logger(__name__).bind(source=self.name, target=context.target)
        #: every secret of the config in every form (a Basic-auth header echoed back too)
        self._redact = Redactor.of(config, extra=(("source_secret", s) for s in self._secrets()))
        # what every request and every poll shares, built once: a source polls all day
        self._caller = Caller.of(
            self.service,
            self.timeout,
            timeout_text=format_duration(self.timeout),
            follow_redirects=True,
            name_endpoint=True,
            redactor=self._redact,
        )
        self._retry = self._retrier()
        self._slot_wait = self.interval.total_seconds()
        #: the wall time the samples built from the latest answer carry (see :meth:`_now`)
        self._stamp: datetime | None = None

    # -- to implement -------------------------------------------------------------------

    @property
    def signals(self) -> tuple[str, ...]:
        """Every signal this source reports; all of them become unknown when a poll fails."""
        raise NotImplementedError

    async def _poll(self) -> list[Sample]:
        raise NotImplementedError

    def _secrets(self) -> Iterable[str]:
        """Secret values to scrub from any detail, however they got there."""
        return ()

    # -- the interface ------------------------------------------------------------------

    async def poll(self) -> list[Sample]:
        self._stamp = None
        try:
            samples = await self._poll()
        except CallError as exc:
            self._count_error(exc, final=True)
            if await self._network_down(exc):
                samples = self._unknown_all(
                    UnknownReason.WATCHDOG_NETWORK,
                    f"{exc}; the reachability canary failed too: the watchdog's own network "
                    "is down",
                )
            else:
                samples = self._unknown_all(UnknownReason.PROVIDER_ERROR, str(exc))
        except Exception as exc:
            # a bug in a parser must not stop the watchdog; it shows as a provider error
            self.errors["internal"] += 1
            self._log.error("source_poll_crashed", error_type=type(exc).__name__, exc_info=True)
            samples = self._unknown_all(
                UnknownReason.PROVIDER_ERROR, f"internal error in the source ({type(exc).__name__})"
            )
        self._note_transition(samples)
        self._stamp = None
        return samples

    # -- helpers for subclasses ---------------------------------------------------------

    def _now(self) -> datetime:
        """The wall time of the latest answer's samples: one clock read per answer.

        The samples one answer yields are stamped with one instant, read when the first of
        them is built; every answer (:meth:`_send`) starts a new one, so a source that asks
        several things in one poll still stamps each answer's samples when it came.
        """
        stamp = self._stamp
        if stamp is None:
            stamp = self._stamp = self._clock.now()
        return stamp

    def _sample(
        self, signal: str, value: float | str, *, requests: int | None = None, detail: str = ""
    ) -> Sample:
        return Sample(
            target=self.target,
            signal=signal,
            value=value,
            at=self._now(),
            requests=requests,
            source=self.name,
            detail=self._clean(detail),
        )

    def _unknown(
        self, signal: str, reason: UnknownReason, detail: str, *, requests: int | None = None
    ) -> Sample:
        return Sample(
            target=self.target,
            signal=signal,
            value=None,
            at=self._now(),
            unknown=reason,
            requests=requests,
            source=self.name,
            detail=self._clean(detail),
        )

    def _unknown_all(self, reason: UnknownReason, detail: str) -> list[Sample]:
        return [self._unknown(signal, reason, detail) for signal in self.signals]

    def _clean(self, detail: str) -> str:
        detail = " ".join(self._redact.text(detail).split())
        return detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 1] + "…"

    def _retrier(self) -> Retrier:
        """The source's retry policy (built once, in ``__init__``)."""
        interval = self.interval.total_seconds()
        timeout = self.timeout.total_seconds()
        policy = RetryPolicy(
            attempts=self._attempts,
            initial=min(1.0, interval / 10),
            maximum=max(1.0, interval / 4),
            # the last attempt must start early enough to end within the interval
            deadline=max(0.0, interval - timeout),
        )
        return Retrier(policy, self._clock)

    async def _with_retries(self, attempt: Callable[[], Awaitable[Response]]) -> Response:
        """Run ``attempt`` under the source's retry policy, counting every failed try."""
        try:
            return await self._retry(attempt, on_retry=self._count_retried)
        except CallError as exc:
            self._count_error(exc, final=True)
            raise

    def _count_retried(self, exc: CallError, _wait: float) -> None:
        self._count_error(exc)

    def _count_error(self, exc: CallError, *, final: bool = False) -> None:
        """Count each failed attempt once by reason (the daemon exports :attr:`errors`)."""
        if getattr(exc, _COUNTED, False):
            return
        self.errors[exc.reason] += 1
        if final:
            mark_counted(exc)

    async def _canary_ok(self, url: str) -> bool:
        """Whether the watchdog can reach the outside world: any answer below 500 counts."""
        try:
            result = await self._send("GET", url)
        except CallError:
            return False
        return result.status < 500

    async def _network_down(self, exc: CallError) -> bool:
        """Did ``exc`` come from the watchdog's own network rather than the upstream?

        Only a failure with no HTTP answer at all can be the network's (an HTTP error is
        the upstream talking), and only a failing canary says so: the source's own
        ``canary_url`` where it has one, else the target's.
        """
        if exc.status is not None or exc.reason == "watchdog_busy":
            return False
        own = getattr(self.config, "canary_url", None)
        if isinstance(own, str):
            return not await self._canary_ok(own)
        if self._canary is not None:
            return not await self._canary.reachable()
        return False

    def _retry_after(self, result: Response) -> float | None:
        """The server's own back-off hint on a 429/5xx; vendors override for reset headers."""
        return parse_retry_after(result.headers.get("Retry-After"), self._clock.now())

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: Iterable[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        accept: Accept = _is_2xx,
    ) -> Response:
        """One attempt. Statuses ``accept`` rejects raise a classified :class:`CallError`."""
        result = await self._send(
            method,
            url,
            params=params,
            headers=headers,
            json_body=json_body,
            data=data,
        )
        if not accept(result.status):
            raise classify_status(
                result.status,
                self.service,
                result.hint(),
                retry_after=self._retry_after(result),
                auth_fix=self.auth_fix,
            )
        return result

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Iterable[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
    ) -> Response:
        """Send one request in a concurrency slot; transport failures become a CallError."""
        semaphore = self._semaphore
        if semaphore.locked():
            await self._wait_for_slot()
        else:
            # a free slot is taken at once (no wait, so nothing to time out): no timer
            await semaphore.acquire()
        try:
            return await self._caller.send(
                self._session,
                method,
                url,
                params=params,
                headers=headers,
                json_body=json_body,
                data=data,
            )
        finally:
            semaphore.release()
            self._stamp = None  # a new answer (or none): its samples get their own time

    async def _wait_for_slot(self) -> None:
        try:
            # waiting for a slot is the watchdog's own congestion, not the upstream's slowness
            async with asyncio.timeout(self._slot_wait):
                await self._semaphore.acquire()
        except TimeoutError:
            raise CallError(
                "the watchdog had no free request slot for a whole interval",
                retryable=False,
                reason="watchdog_busy",
            ) from None

    # -- transitions --------------------------------------------------------------------

    def _note_transition(self, samples: list[Sample]) -> None:
        failure = next((s for s in samples if s.unknown in FAILING_REASONS), None)
        now = self._now()
        if failure is not None and self._failing_since is None:
            self._failing_since = now
            self._log.warning("source_failed", reason=str(failure.unknown), detail=failure.detail)
        elif failure is None and self._failing_since is not None:
            down_for = now - self._failing_since
            self._failing_since = None
            self._log.info("source_recovered", failed_for_s=down_for.total_seconds())

    @property
    def failing(self) -> bool:
        """Whether the last poll could not reach or read its upstream."""
        return self._failing_since is not None
