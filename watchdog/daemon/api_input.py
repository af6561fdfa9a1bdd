"""Reading the control API's requests: every problem is a ``ValueError`` naming the field.

The server's error middleware answers a ``ValueError`` with 400 and its message, so a bad
request never becomes a 500 or, worse, a silently applied default: an unknown field (a typo
such as ``duraton``) is refused, not ignored; a duration is bounded (at most
:data:`~watchdog.core.rules.MAX_DURATION`, more than 0s); free text has a length limit, since
it is stored, paged and posted. No I/O beyond reading the request body.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any, Final

from aiohttp import web

from watchdog.core.rules import parse_duration

#: a reason is read by people on a page and in Slack: a few sentences, not a document
MAX_TEXT: Final = 1000
#: who asked (``X-Watchdog-User``): a name, not a paragraph
MAX_USER: Final = 200


async def read_body(request: web.Request, fields: Collection[str]) -> dict[str, Any]:
    """The JSON object in the body, with no field outside ``fields``."""
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        # ValueError covers a JSON error and a number over Python's 4300-digit limit
        raise ValueError("the body must be a JSON object (UTF-8)") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(str(key) for key in data if key not in fields)
    if unknown:
        raise ValueError(
            f"unknown field {unknown[0][:40]!r}: the fields are {', '.join(sorted(fields))}"
        )
    return data


def text(data: dict[str, Any], name: str, *, default: str | None = None) -> str:
    """A string field; non-empty unless it has a default, at most :data:`MAX_TEXT` long."""
    value = data.get(name, default)
    if value is None:
        raise ValueError(f"'{name}' is required")
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string, not {type(value).__name__}")
    if default is None and not value.strip():
        raise ValueError(f"'{name}' must not be empty")
    if len(value) > MAX_TEXT:
        raise ValueError(f"'{name}' is {len(value)} characters long: at most {MAX_TEXT}")
    return value


def choice(data: dict[str, Any], name: str, choices: Collection[str], *, default: str) -> str:
    value = text(data, name, default=default)
    if value not in choices:
        raise ValueError(f"'{name}' must be one of {', '.join(repr(c) for c in choices)}")
    return value


def duration(
    data: dict[str, Any], name: str, *, default: str, allow_zero: bool = False
) -> timedelta:
    """A duration such as ``30m``: more than 0s (or exactly 0s where that means "end it",
    as for a hold) and at most 366 days."""
    try:
        value = parse_duration(data.get(name, default))
    except ValueError as exc:
        raise ValueError(f"'{name}': {exc}") from None
    if value <= timedelta(0) and not (allow_zero and value == timedelta(0)):
        raise ValueError(f"'{name}' must be more than 0s, e.g. '30m'")
    return value


def flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise ValueError(f"'{name}' must be true or false")
    return value


def user(request: web.Request) -> str:
    """Who is asking, from ``X-Watchdog-User`` (recorded and logged with the event)."""
    name = request.headers.get("X-Watchdog-User", "api")
    if not name.strip() or len(name) > MAX_USER or not name.isprintable():
        raise ValueError(
            f"'X-Watchdog-User' must be a printable name of at most {MAX_USER} characters"
        )
    return name
