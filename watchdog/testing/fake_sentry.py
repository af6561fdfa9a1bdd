"""A fake of Sentry's Discover table API (``GET /api/0/organizations/{org}/events/``).

It answers in the documented shape (EXTERNAL-APIS §2): one row keyed by the literal field
strings, ``meta.fields`` and ``meta.units``, and the ``X-Sentry-Rate-Limit-*`` headers. It
rejects what real Sentry rejects (no ``field`` or no ``dataset`` → 400 ``{"detail": ..}``, a
wrong token → 401) so a client that sends the wrong request fails here too. Script the
values (``error_rate``, ``p95_ms``, ``count``; ``None`` for a null aggregate), an empty
window (``empty``), or faults such as :meth:`FakeSentry.rate_limited`.

Per release (``releases``): a query with ``field=release`` is answered with one row per
release named in its ``release:`` filter (``release:x`` or ``release:[a, "b"]``) that has
events, as Discover groups by a field when an aggregate is asked for; a release with none is
absent, not a zero row.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from aiohttp import web

from watchdog.testing.server import FakeServer, Fault

#: the token the fake accepts unless told otherwise (not a real credential)
DEFAULT_TOKEN = "sntrys_fake"  # noqa: S105

RATE_LIMIT_MESSAGE = (
    "You are attempting to use this endpoint too frequently. Limit is 40 requests in 1 seconds"
)


_RELEASE_LIST = re.compile(r"release:\[([^\]]*)\]")
_RELEASE_ONE = re.compile(r'release:("[^"]*"|[^\s\[]+)')


@dataclass
class ReleaseStats:
    """What one release's traffic looks like in the window."""

    error_rate: float | None = 0.002
    p95_ms: float | None = 420.0
    count: int = 5000


def releases_asked(query: str) -> list[str] | None:
    """The releases a search query filters on (None: no release filter)."""
    found = _RELEASE_LIST.search(query)
    if found is not None:
        return [v.strip().strip('"') for v in found.group(1).split(",") if v.strip()]
    one = _RELEASE_ONE.search(query)
    return [one.group(1).strip('"')] if one is not None else None


class FakeSentry(FakeServer):
    def __init__(self, *, token: str | None = DEFAULT_TOKEN, org: str = "acme") -> None:
        super().__init__()
        self.token = token
        self.org = org
        self.error_rate: float | None = 0.002
        self.p95_ms: float | None = 420.0
        self.count: int | None = 5000
        self.empty = False
        #: ``X-Sentry-Rate-Limit-*`` on normal answers; None leaves them out (self-hosted)
        self.remaining: int | None = 39
        self.reset_at: float | None = None
        #: per-release traffic, for queries grouped by ``release``
        self.releases: dict[str, ReleaseStats] = {}

    @staticmethod
    def rate_limited(
        reset_epoch_s: float | None = None, *, retry_after: str | None = None
    ) -> Fault:
        """The middleware's 429: a bare JSON string body, the reset header when known."""
        headers = {}
        if reset_epoch_s is not None:
            headers = {
                "X-Sentry-Rate-Limit-Limit": "40",
                "X-Sentry-Rate-Limit-Remaining": "0",
                "X-Sentry-Rate-Limit-Reset": str(int(reset_epoch_s)),
                "X-Sentry-Rate-Limit-ConcurrentLimit": "25",
                "X-Sentry-Rate-Limit-ConcurrentRemaining": "24",
            }
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return Fault(
            status=429,
            body=json.dumps(RATE_LIMIT_MESSAGE),
            content_type="application/json",
            headers=headers,
        )

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/0/organizations/{org}/events/", self._events)

    def _value(self, column: str, stats: ReleaseStats | None = None) -> float | int | None:
        if column == "failure_rate()":
            return stats.error_rate if stats else self.error_rate
        if column.startswith("p95("):
            return stats.p95_ms if stats else self.p95_ms
        if column == "count()":
            return stats.count if stats else self.count
        return None

    def _rows(self, fields: list[str], query: str) -> list[dict[str, object]]:
        if self.empty:
            return []
        if "release" not in fields:
            return [{column: self._value(column) for column in fields}]
        asked = releases_asked(query)
        names = list(self.releases) if asked is None else asked
        return [
            {
                column: name if column == "release" else self._value(column, self.releases[name])
                for column in fields
            }
            for name in names
            if name in self.releases and self.releases[name].count > 0
        ]

    async def _events(self, request: web.Request) -> web.Response:
        if self.token is not None and request.headers.get("Authorization") != (
            f"Bearer {self.token}"
        ):
            return web.json_response({"detail": "Invalid token"}, status=401)
        if request.match_info["org"] != self.org:
            return web.json_response(
                {"detail": "The requested resource does not exist"}, status=404
            )
        fields = request.query.getall("field", [])
        if not fields:
            return web.json_response({"detail": "No columns selected"}, status=400)
        if len(fields) > 20:
            return web.json_response({"detail": "You can view up to 20 fields"}, status=400)
        if not request.query.get("dataset"):
            return web.json_response({"detail": "dataset is a required parameter"}, status=400)
        data = self._rows(fields, request.query.get("query", ""))
        types = {
            column: "percentage"
            if column == "failure_rate()"
            else "duration"
            if column.startswith("p95(")
            else "string"
            if column == "release"
            else "integer"
            for column in fields
        }
        units = {column: "millisecond" for column in fields if column.startswith("p95(")}
        body = {
            "data": data,
            "meta": {"fields": types, "units": units, "dataset": request.query["dataset"]},
        }
        headers = {}
        if self.remaining is not None:
            reset = self.reset_at if self.reset_at is not None else time.time() + 1
            headers = {
                "X-Sentry-Rate-Limit-Limit": "40",
                "X-Sentry-Rate-Limit-Remaining": str(self.remaining),
                "X-Sentry-Rate-Limit-Reset": str(int(reset)),
            }
        return web.json_response(body, headers=headers)
