"""When to poll: pure helpers, tested with tables of times, no sleeping.

Polls are planned on a fixed grid (``start + phase + k * interval``) so they never drift,
whatever each poll costs. A poll that would start late by more than a whole interval is
skipped, not stacked: the watchdog wants the freshest data, not a backlog. Each source gets a
stable phase inside its first interval (from a hash of its name) so a thousand targets do not
all poll in the same millisecond.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass


def phase(name: str, interval: float, jitter: float) -> float:
    """A deterministic offset in [0, jitter * interval) for ``name``."""
    if interval <= 0 or jitter <= 0:
        return 0.0
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return fraction * min(jitter, 1.0) * interval


@dataclass(frozen=True, slots=True)
class Slot:
    """The next planned poll and how many planned polls were skipped to reach it."""

    at: float
    skipped: int


def next_slot(planned: float, interval: float, now: float) -> Slot:
    """The first grid point after ``planned`` that is not already in the past.

    ``planned`` is the slot just polled. If polling overran (now past the next slot),
    the missed slots are skipped and counted rather than run back to back.
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    nxt = planned + interval
    if now <= nxt:
        return Slot(nxt, 0)
    missed = math.ceil((now - nxt) / interval)
    return Slot(nxt + missed * interval, missed)
