"""What every pager says about a page, in every vendor's payload: times, lengths, the table.

Pure helpers shared by the pager modules, so one vendor never imports another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from watchdog.core.model import Observation, Severity

V = TypeVar("V", bound=str)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def observation_details(observations: Sequence[Observation]) -> list[dict[str, Any]]:
    """Each signal against its threshold, as a human reads it in the incident."""
    rows: list[dict[str, Any]] = []
    for obs in observations:
        row: dict[str, Any] = {
            "rule": obs.rule,
            "signal": obs.signal,
            "value": obs.value,
            "op": obs.op,
            "threshold": obs.threshold,
            "firing": obs.firing,
        }
        if obs.unknown is not None:
            row["unknown"] = str(obs.unknown)
        if obs.since is not None:
            row["since"] = iso(obs.since)
        rows.append(row)
    return rows


def severity_mapping(
    defaults: Mapping[Severity, V], configured: Mapping[Severity, V]
) -> dict[Severity, V]:
    """A pager's ``severity`` option over its defaults, so a config names only what differs.

    Every procedure severity ends up mapped (a P3 is never paged, but a rule pack may still
    page one): a page can never reach a pager without a severity the routing tree expects.
    """
    return {severity: configured.get(severity, defaults[severity]) for severity in Severity}
