"""Times and durations as the person woken at 3 a.m. reads them: "3 min ago (09:12:40 UTC)".

Pure: the caller passes ``now`` (the daemon's clock, or the time a status answer was made), so
the status page, ``watchdog status`` and tests all word the same moment the same way. Raw ISO
stamps with microseconds, and bare local times, are what this replaces.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

#: an RFC 3339 time as ``datetime.isoformat`` writes it (the engine's reasons carry these)
_STAMP: Final = re.compile(
    r"(?:\bat )?\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"
)


def utc(at: datetime) -> datetime:
    """An aware UTC time; a naive one (a backend that dropped the offset) is read as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def clock(at: datetime, now: datetime) -> str:
    """``09:12:40 UTC``, with the date in front when it is not ``now``'s day."""
    at = utc(at)
    if at.date() == utc(now).date():
        return at.strftime("%H:%M:%S UTC")
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def span(delta: timedelta) -> str:
    """A length of time to the precision that matters: ``45 s``, ``2 min 30 s``, ``3 h 05 min``."""
    seconds = max(0, round(abs(delta.total_seconds())))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 10:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def relative(at: datetime, now: datetime) -> str:
    """``3 min ago (09:12:40 UTC)``, ``in 45 s (09:13:25 UTC)`` or ``now (09:12:40 UTC)``."""
    delta = utc(at) - utc(now)
    when = clock(at, now)
    if abs(delta) < timedelta(seconds=1):
        return f"now ({when})"
    if delta > timedelta(0):
        return f"in {span(delta)} ({when})"
    return f"{span(delta)} ago ({when})"


def parse(text: object) -> datetime | None:
    """An RFC 3339 string from the JSON API back to an aware datetime (None if it is not one)."""
    if not isinstance(text, str):
        return None
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def times_in(text: str, now: datetime) -> str:
    """``text`` with each ISO time in it read as :func:`relative` (reasons quote raw stamps)."""

    def swap(match: re.Match[str]) -> str:
        # "resolves at <stamp>" reads "resolves in 5 min (...)": the relative words replace "at"
        at = parse(match.group(0).removeprefix("at "))
        return relative(at, now) if at is not None else match.group(0)

    return _STAMP.sub(swap, text)
