"""One HTTP attempt, and the one vocabulary every failed call is described in.

This is the I/O boundary shared by sources and actions: :func:`send` makes exactly one request
and never retries (:mod:`watchdog.retry` does). Every failure, a transport problem or a status
that :func:`classify_status` turns down, becomes a :class:`CallError` saying whether retrying
can help and why, in one set of ``reason`` labels, the same for sources and actions:
``timeout``, ``tls``, ``connect``, ``network``, ``malformed``, ``rate_limited``,
``http_<status>``, plus labels the callers add for their own refusals (``watchdog_busy``,
``conflict``, ``target_gone`` ...). Whether the *message* names the endpoint is the caller's
choice (an action's URL may be a secret); the label never depends on it.

An upstream can only echo back the secrets it was sent, and the caller knows which those are:
it hands :func:`send` a :class:`~watchdog.redact.Redactor` for them, and every message built
from the answer (:attr:`Response.text`, :meth:`Response.hint`, :meth:`Response.json`'s
error) has them redacted, so a vendor's error body quoting the token never becomes an
error message, a record or a page.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiohttp
from multidict import CIMultiDict

from watchdog.redact import NO_SECRETS, Redactor

#: the most of a response body anyone reads; an API answering megabytes is broken
MAX_BODY_BYTES: Final = 1 << 20

#: statuses that a later attempt may fix; everything else 4xx is a configuration problem
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class CallError(Exception):
    """One failed call to an external API.

    ``retryable`` says whether trying again can help; ``retry_after`` (seconds) is the
    server's own hint (``Retry-After`` or a rate-limit reset header). ``reason`` is a short
    machine-readable label for metrics (``timeout``, ``http_503``, ``malformed`` ...). The
    message must never contain a secret: callers build it from status and body only.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        reason: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` is either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def reset_header_delay(
    headers: Mapping[str, str], name: str, now_epoch_s: float, *, millis: bool = False
) -> float | None:
    """Seconds until an epoch rate-limit reset header (Vercel/Sentry: s; LaunchDarkly: ms)."""
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        reset = float(raw)
    except ValueError:
        return None
    if millis:
        reset /= 1000.0
    if not math.isfinite(reset):
        return None
    return max(0.0, reset - now_epoch_s)


def classify_status(
    status: int,
    service: str,
    body_hint: str = "",
    *,
    retry_after: float | None = None,
    auth_fix: str = "check the token and its scopes",
) -> CallError:
    """Build the :class:`CallError` for a non-success status, with a message a human can act on."""
    hint = f": {body_hint[:200]}" if body_hint else ""
    if status in (401, 403):
        return CallError(
            f"{service} rejected the credentials ({status}){hint}: {auth_fix}",
            retryable=False,
            reason=f"http_{status}",
            status=status,
        )
    if status == 429:
        return CallError(
            f"{service} rate-limited the request (429)",
            retryable=True,
            reason="rate_limited",
            status=status,
            retry_after=retry_after,
        )
    if status in RETRYABLE_STATUSES or status >= 500:
        return CallError(
            f"{service} answered {status}{hint}",
            retryable=True,
            reason=f"http_{status}",
            status=status,
            retry_after=retry_after,
        )
    return CallError(
        f"{service} refused the request ({status}){hint}: fix the configuration",
        retryable=False,
        reason=f"http_{status}",
        status=status,
    )


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP answer, read in full (bounded) so the connection goes back to the pool."""

    status: int
    #: case-insensitive: proxies (HTTP/2) send header names in lower case
    headers: Mapping[str, str]
    body: bytes
    content_type: str = ""
    #: seconds from sending the request to the end of the body, by the event loop's clock
    elapsed: float = 0.0
    #: the secrets the request carried: redacted from every message built from this answer
    redactor: Redactor = field(default=NO_SECRETS, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body as text, for error messages: the request's secrets are redacted."""
        return self.redactor.text(self.body.decode("utf-8", "replace"))

    def hint(self) -> str:
        """:func:`body_hint` of this answer, with the request's secrets redacted (before it is
        shortened, so a secret cut in half cannot slip through)."""
        body = self.body if not self.redactor else self.text.encode("utf-8")
        return body_hint(body, self.content_type)

    def json(self, service: str, *, retryable: bool) -> Any:
        """The body as JSON, or a ``malformed`` :class:`CallError`.

        Whether another attempt can help is the caller's call: a deployer retries a garbled
        answer within the same action, a source leaves that to its next poll.
        """
        try:
            return json.loads(self.body)
        except ValueError:
            what = self.hint() or "an empty body"
            raise CallError(
                f"{service} answered {self.status} with {what}, not JSON",
                retryable=retryable,
                reason="malformed",
                status=self.status,
            ) from None


def body_hint(body: bytes, content_type: str = "") -> str:
    """A short, single-line description of an error body for a human reading a page."""
    text = body[:2000].decode("utf-8", "replace").strip()
    if not text:
        return ""
    if "html" in content_type.lower() or text.startswith("<"):
        return "an HTML page"
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, str):
        text = parsed
    elif isinstance(parsed, dict):
        for key in ("detail", "error", "message"):
            value = parsed.get(key)
            if isinstance(value, str):
                text = value
                break
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                text = value["message"]
                break
    return " ".join(text.split())[:120]


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Caller:
    """What every request of one caller shares, built once rather than per request.

    A source makes the same kind of request hundreds of times a day; its timeout, the
    wording of a timeout and whether its messages may name the endpoint never change, so it
    builds one :class:`Caller` and sends through it (:func:`send` builds one per call for
    callers that call rarely). The fields mean what :func:`send`'s arguments of the same
    names mean.
    """

    service: str
    timeout: aiohttp.ClientTimeout
    timeout_text: str
    follow_redirects: bool = False
    name_endpoint: bool = False
    redactor: Redactor = field(default=NO_SECRETS, repr=False)

    @classmethod
    def of(
        cls,
        service: str,
        request_timeout: timedelta,
        *,
        timeout_text: str | None = None,
        follow_redirects: bool = False,
        name_endpoint: bool = False,
        redactor: Redactor = NO_SECRETS,
    ) -> Caller:
        seconds = request_timeout.total_seconds()
        return cls(
            service,
            aiohttp.ClientTimeout(total=seconds),
            timeout_text or _format_seconds(seconds),
            follow_redirects,
            name_endpoint,
            redactor,
        )

    async def send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
    ) -> Response:
        """One request (see :func:`send`)."""
        body: Any = data
        sent_headers = headers
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False)
            sent_headers = dict(headers or {})
            sent_headers.setdefault("Content-Type", "application/json")
        if isinstance(params, Mapping):
            query: list[tuple[str, str]] | None = list(params.items())
        else:
            query = list(params) if params is not None else None
        loop = asyncio.get_running_loop()
        try:
            started = loop.time()
            async with session.request(
                method,
                url,
                headers=sent_headers or None,
                params=query or None,
                data=body,
                timeout=self.timeout,
                allow_redirects=self.follow_redirects,
            ) as resp:
                content = await resp.content.read(MAX_BODY_BYTES)
                return Response(
                    status=resp.status,
                    headers=CIMultiDict(resp.headers),
                    body=content,
                    content_type=resp.headers.get("Content-Type", ""),
                    elapsed=loop.time() - started,
                    redactor=self.redactor,
                )
        except TimeoutError:
            raise CallError(
                f"{self.service} did not answer within {self.timeout_text}",
                retryable=True,
                reason="timeout",
            ) from None
        except aiohttp.ClientError as exc:
            error = _transport_error(self.service, exc, name_endpoint=self.name_endpoint)
            raise self.redactor.error(error) from None


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    service: str,
    request_timeout: timedelta,
    headers: Mapping[str, str] | None = None,
    params: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
    json_body: Any = None,
    data: Any = None,
    follow_redirects: bool = False,
    name_endpoint: bool = False,
    timeout_text: str | None = None,
    redactor: Redactor = NO_SECRETS,
) -> Response:
    """Make one request. Transport failures raise a :class:`CallError`; statuses do not.

    ``redactor`` knows the secrets this request carries (its token, its secret URL): the
    :class:`Response` keeps it, so messages built from the answer never quote them.

    By default the message keeps host and port out: a Slack webhook URL *is* the secret, and
    an aiohttp exception's text can contain it, so only the exception's type is named.
    Sources, whose URLs are not secret, pass ``name_endpoint=True`` for a message that names
    where the connection went. The ``reason`` label is the same either way.
    """
    caller = Caller.of(
        service,
        request_timeout,
        timeout_text=timeout_text,
        follow_redirects=follow_redirects,
        name_endpoint=name_endpoint,
        redactor=redactor,
    )
    return await caller.send(
        session, method, url, headers=headers, params=params, json_body=json_body, data=data
    )


def _transport_error(service: str, exc: aiohttp.ClientError, *, name_endpoint: bool) -> CallError:
    kind = type(exc).__name__
    if isinstance(exc, aiohttp.ClientSSLError):
        return CallError(
            f"TLS handshake with {service} failed ({kind})", retryable=False, reason="tls"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        if not name_endpoint:
            # only the exception's type: its text may carry the URL (a webhook URL is a secret)
            return CallError(
                f"cannot connect to {service} ({kind})", retryable=True, reason="connect"
            )
        why = exc.os_error.strerror or type(exc.os_error).__name__
        return CallError(
            f"cannot connect to {service} at {exc.host}:{exc.port} ({why})",
            retryable=True,
            reason="connect",
        )
    return CallError(f"{service} connection failed ({kind})", retryable=True, reason="network")
