"""A fake Prometheus HTTP API: instant queries (``GET``/``POST /api/v1/query``).

Script answers per PromQL expression: :meth:`FakePrometheus.vector`, :meth:`scalar` or
:meth:`error` (``{"status":"error","errorType":..}`` with the status Prometheus uses).
Values are strings, as Prometheus sends them (``"NaN"`` and ``"+Inf"`` included). An
unscripted query matches nothing (an empty vector). Optional bearer or basic auth.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from watchdog.testing.server import FakeServer

_ERROR_STATUS = {"bad_data": 400, "execution": 422, "timeout": 503, "canceled": 503}


class FakePrometheus(FakeServer):
    def __init__(
        self,
        *,
        bearer_token: str | None = None,
        basic: tuple[str, str] | None = None,
        at: float = 1_787_220_000.0,
    ) -> None:
        super().__init__()
        self.bearer_token = bearer_token
        self.basic = basic
        self.at = at
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}

    def vector(self, query: str, *series: tuple[dict[str, str], str]) -> None:
        """Answer ``query`` with these (labels, value-string) series."""
        result = [{"metric": labels, "value": [self.at, value]} for labels, value in series]
        self.answers[query] = (
            200,
            {"status": "success", "data": {"resultType": "vector", "result": result}},
        )

    def scalar(self, query: str, value: str) -> None:
        self.answers[query] = (
            200,
            {"status": "success", "data": {"resultType": "scalar", "result": [self.at, value]}},
        )

    def matrix(self, query: str, labels: dict[str, str], *values: str) -> None:
        result = [
            {"metric": labels, "values": [[self.at + i * 15, v] for i, v in enumerate(values)]}
        ]
        self.answers[query] = (
            200,
            {"status": "success", "data": {"resultType": "matrix", "result": result}},
        )

    def error(self, query: str, error_type: str, message: str) -> None:
        self.answers[query] = (
            _ERROR_STATUS.get(error_type, 500),
            {"status": "error", "errorType": error_type, "error": message},
        )

    def routes(self, app: web.Application) -> None:
        app.router.add_route("GET", "/api/v1/query", self._query)
        app.router.add_route("POST", "/api/v1/query", self._query)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.bearer_token is not None:
            return header == f"Bearer {self.bearer_token}"
        if self.basic is not None:
            expected = base64.b64encode(":".join(self.basic).encode()).decode()
            return header == f"Basic {expected}"
        return True

    async def _query(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, text="Unauthorized\n")
        params = await request.post() if request.method == "POST" else request.query
        query = params.get("query")
        if not isinstance(query, str) or not query:
            return web.json_response(
                {"status": "error", "errorType": "bad_data", "error": "query is required"},
                status=400,
            )
        status, body = self.answers.get(
            query, (200, {"status": "success", "data": {"resultType": "vector", "result": []}})
        )
        return web.json_response(body, status=status)
