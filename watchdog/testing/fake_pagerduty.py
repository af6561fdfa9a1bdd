"""A fake PagerDuty Events API v2: ``/v2/enqueue`` and ``/v2/change/enqueue``.

It validates what PagerDuty requires (EXTERNAL-APIS §3) and answers 400 with ``errors[]``
when something is missing, 202 with the dedup key otherwise; ``fail("enqueue", ...)`` scripts
429/5xx.
Accepted events are kept in ``events`` / ``changes``; ``open_alerts`` follows trigger/resolve.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from watchdog.testing.server import RECORDED, FakeServer

_SEVERITIES = ("critical", "error", "warning", "info")


def _invalid(errors: list[str]) -> web.Response:
    return web.json_response(
        {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
        status=400,
    )


class FakePagerDuty(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self.changes: list[dict[str, Any]] = []
        self.open_alerts: dict[tuple[str, str], dict[str, Any]] = {}
        self._uuid = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/enqueue", self._enqueue)
        app.router.add_post("/v2/change/enqueue", self._change)

    async def _body(self, request: web.Request) -> tuple[Any, web.Response | None]:
        try:
            return request[RECORDED].json(), None
        except ValueError:
            return None, _invalid(["Event object must be valid JSON"])

    async def _enqueue(self, request: web.Request) -> web.Response:
        body, early = await self._body(request)
        if early is not None:
            return early
        errors: list[str] = []
        if not isinstance(body, dict):
            return _invalid(["Event object must be a JSON object"])
        if not isinstance(body.get("routing_key"), str) or not body["routing_key"]:
            errors.append("'routing_key' is missing or blank")
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' must be one of trigger, acknowledge, resolve")
        dedup = body.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not dedup:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if action == "trigger":
            payload = body.get("payload")
            if not isinstance(payload, dict):
                errors.append("'payload' is missing")
            else:
                summary = payload.get("summary")
                if not isinstance(summary, str) or not summary:
                    errors.append("'payload.summary' is missing or blank")
                elif len(summary) > 1024:
                    errors.append("'payload.summary' is longer than 1024 characters")
                if not payload.get("source"):
                    errors.append("'payload.source' is missing or blank")
                if payload.get("severity") not in _SEVERITIES:
                    errors.append("'payload.severity' must be critical, error, warning or info")
        if errors:
            return _invalid(errors)
        if not dedup:
            self._uuid += 1
            dedup = f"generated-{self._uuid}"
        key = (body["routing_key"], dedup)
        if action == "trigger":
            self.open_alerts[key] = body
        elif action == "resolve":
            self.open_alerts.pop(key, None)
        self.events.append(body)
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup}, status=202
        )

    async def _change(self, request: web.Request) -> web.Response:
        body, early = await self._body(request)
        if early is not None:
            return early
        errors: list[str] = []
        if not isinstance(body, dict):
            return _invalid(["Event object must be a JSON object"])
        if not body.get("routing_key"):
            errors.append("'routing_key' is missing or blank")
        payload = body.get("payload")
        if not isinstance(payload, dict) or not payload.get("summary"):
            errors.append("'payload.summary' is missing or blank")
        if errors:
            return _invalid(errors)
        self.changes.append(body)
        return web.json_response(
            {"status": "success", "message": "Change event processed"}, status=202
        )
