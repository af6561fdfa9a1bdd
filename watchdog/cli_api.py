"""One call to the running daemon's HTTP API, for the CLI's API commands.

I/O boundary: one HTTP request (30 s at most) and, with a token file, one file read. The token
comes from the file (``--token-file`` or ``$WATCHDOG_API_TOKEN_FILE``) or ``$WATCHDOG_API_TOKEN``
and is only ever sent as the bearer header.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp


class ApiCallError(Exception):
    """The call could not be made (no token file, daemon unreachable): a one-line reason."""


def call_api(
    url: str, token_file: str | None, method: str, path: str, body: dict[str, object] | None
) -> tuple[int, object]:
    """``(status, JSON answer)``; an answer that is not JSON comes back as ``{"error": ...}``."""
    from watchdog.config import MAX_SECRET_FILE_BYTES
    from watchdog.yamlfile import FileError, read_text_file

    token = os.environ.get("WATCHDOG_API_TOKEN", "")
    if token_file:
        try:
            # read like a secret file: a FIFO or a huge file must not hang the command
            text = read_text_file(
                Path(token_file), max_bytes=MAX_SECRET_FILE_BYTES, what="token file"
            )
        except FileError as exc:
            raise ApiCallError(str(exc)) from None
        token = text.strip()
        if not token:
            raise ApiCallError(f"{token_file}: token file is empty: write the API token into it")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers["X-Watchdog-User"] = os.environ.get("USER", "cli")

    async def call() -> tuple[int, object]:
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url.rstrip("/") + path, json=body, headers=headers) as resp,
        ):
            try:
                data = await resp.json(content_type=None)
            except (json.JSONDecodeError, aiohttp.ContentTypeError):
                data = {"error": (await resp.text())[:200]}
            return resp.status, data

    try:
        return asyncio.run(call())
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ApiCallError(
            f"cannot reach the watchdog at {url}: {type(exc).__name__} {exc}"
        ) from None
