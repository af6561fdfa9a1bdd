"""A fake Alertmanager v2: ``POST /api/v2/alerts`` (JSON array) and ``GET /api/v2/alerts``.

Validates like the real server (EXTERNAL-APIS §6): a JSON array whose alerts all have
labels with an ``alertname``; otherwise 400 with a plain string. Posts are kept in ``posts``;
``alerts`` holds the latest state per label set (``endsAt`` marks a resolved one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from watchdog.testing.server import RECORDED, FakeServer


class FakeAlertmanager(FakeServer):
    route_names: ClassVar[Mapping[str, str]] = {"_post": "alerts"}

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[list[dict[str, Any]]] = []
        self.alerts: dict[str, dict[str, Any]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v2/alerts", self._post)
        app.router.add_get("/api/v2/alerts", self._list)

    async def _post(self, request: web.Request) -> web.Response:
        rec = request[RECORDED]
        try:
            body = rec.json()
        except ValueError:
            return web.Response(status=400, text='"body is not JSON"', content_type="text/plain")
        if not isinstance(body, list):
            return web.Response(status=400, text='"expected an array of alerts"')
        for alert in body:
            labels = alert.get("labels") if isinstance(alert, dict) else None
            if not isinstance(labels, dict) or not labels.get("alertname"):
                return web.Response(status=400, text='"alert has no alertname label"')
        for alert in body:
            self.alerts[json.dumps(alert["labels"], sort_keys=True)] = alert
        self.posts.append(body)
        return web.Response(status=200)

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.alerts.values()))
