"""One HTTP attempt for the action modules, turned into a response or a :class:`CallError`.

This is the I/O boundary every vendor module goes through. It makes exactly one request and
never retries (the dispatcher does, through ``watchdog.retry.call_with_retries``). Transport
failures become retryable errors whose messages name the service and the failure kind only:
an aiohttp exception's text can contain the URL, and a Slack webhook URL *is* the secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict

from watchdog.retry import CallError


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self, service: str) -> Any:
        """The body as JSON; a body that is not JSON is the provider's fault, so retryable."""
        try:
            return json.loads(self.text)
        except ValueError:
            raise CallError(
                f"{service} answered {self.status} with a body that is not JSON",
                retryable=True,
                reason="malformed",
                status=self.status,
            ) from None


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    service: str,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json_body: Any = None,
    data: str | bytes | None = None,
) -> Response:
    """Make one request; timeouts and connection failures raise a retryable :class:`CallError`."""
    kwargs: dict[str, Any] = {}
    if json_body is not None:
        kwargs["data"] = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False)
    elif data is not None:
        kwargs["data"] = data
    try:
        async with session.request(
            method,
            url,
            headers=dict(headers or {}),
            params=dict(params or {}),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
            **kwargs,
        ) as resp:
            text = await resp.text(errors="replace")
            return Response(resp.status, CIMultiDict(resp.headers), text)
    except TimeoutError:
        raise CallError(
            f"{service} did not answer within {timeout_s:g}s", retryable=True, reason="timeout"
        ) from None
    except aiohttp.ClientError as exc:
        # only the exception's type: its text may carry the URL (and a webhook URL is a secret)
        raise CallError(
            f"{service} unreachable ({type(exc).__name__})", retryable=True, reason="connection"
        ) from None
