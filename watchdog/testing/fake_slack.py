"""A fake Slack incoming webhook: 200 ``ok``, or a scripted plain-text error (EXTERNAL-APIS §5).

The webhook path is part of the secret URL; ``path`` lets tests use a realistic one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from aiohttp import web

from watchdog.testing.server import RECORDED, FakeServer


class FakeSlack(FakeServer):
    route_names: ClassVar[Mapping[str, str]] = {"_post": "webhook"}

    def __init__(self, path: str = "/services/T000/B000/XXXXSECRETXXXX") -> None:
        super().__init__()
        self.path = path
        self.messages: list[str] = []

    @property
    def webhook_url(self) -> str:
        return self.url + self.path

    def routes(self, app: web.Application) -> None:
        app.router.add_post(self.path, self._post)

    async def _post(self, request: web.Request) -> web.Response:
        rec = request[RECORDED]
        if not request.content_type.startswith("application/json"):
            return web.Response(status=400, text="invalid_payload")
        try:
            body = rec.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text:
            return web.Response(status=400, text="no_text")
        self.messages.append(text)
        return web.Response(status=200, text="ok")

    def fail_text(self, status: int, code: str, *, times: int = 1) -> None:
        """Slack's errors are plain text such as ``channel_not_found``."""
        self.fail("webhook", status, code, content_type="text/plain", times=times)
