"""``health``: is the app answering? ``GET url`` → ``health_up`` and ``health_latency_s``.

A failed probe is a real measurement (``health_up = 0``), not an unknown: the app not
answering *is* the outage the procedure's "system down" rule looks for. The one exception is
the watchdog's own network: when the probe got no HTTP answer at all and the reachability
canary (the source's ``canary_url``, else the target's) fails too, both signals are unknown
(``watchdog_network``), so a cut cable at the watchdog pages "blind" and never rolls
production back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from watchdog.core.model import Sample, Signal, UnknownReason
from watchdog.core.rules import Duration
from watchdog.sources.base import HttpSource, HttpURL, SourceConfigBase
from watchdog.transport import CallError, Response

HEALTH_LATENCY_S = "health_latency_s"


class HealthSourceConfig(SourceConfigBase):
    """Probe a health endpoint; 2xx (or one of ``expected_status``) within ``timeout`` is up."""

    kind: Literal["health"] = "health"
    url: HttpURL
    expected_status: list[int] | None = Field(
        default=None, description="statuses that mean up (default: any 2xx)"
    )
    canary_url: HttpURL | None = Field(
        default=None,
        description="a URL outside the app; if it fails too, the watchdog's network is down "
        "(default: the target's canary_url)",
    )
    headers: dict[str, str] = Field(default_factory=dict)
    # one probe per poll: the rule's consecutive count is the retry, and a retried probe
    # would hide a flapping app behind a green sample
    attempts: int = Field(default=1, ge=1, le=10)
    interval: Duration = Field(default=timedelta(seconds=15))
    timeout: Duration = Field(default=timedelta(seconds=5))


class HealthSource(HttpSource[HealthSourceConfig]):
    service = "the health endpoint"

    @property
    def signals(self) -> tuple[str, ...]:
        return (Signal.HEALTH_UP, HEALTH_LATENCY_S)

    def _is_up(self, status: int) -> bool:
        if self.config.expected_status is not None:
            return status in self.config.expected_status
        return 200 <= status < 300

    async def _probe(self) -> Response:
        return await self._request(
            "GET", self.config.url, headers=self.config.headers, accept=self._is_up
        )

    async def _poll(self) -> list[Sample]:
        try:
            result = await self._with_retries(self._probe)
        except CallError as exc:
            return await self._down(exc)
        return [
            self._sample(Signal.HEALTH_UP, 1.0, detail=f"HTTP {result.status}"),
            self._sample(HEALTH_LATENCY_S, round(result.elapsed, 6)),
        ]

    async def _down(self, exc: CallError) -> list[Sample]:
        if exc.reason == "watchdog_busy":
            # our own congestion says nothing about the app
            return self._unknown_all(UnknownReason.PROVIDER_ERROR, str(exc))
        # no HTTP answer at all: check whether we can reach anything before blaming the app
        if await self._network_down(exc):
            return self._unknown_all(
                UnknownReason.WATCHDOG_NETWORK,
                f"{exc}; the reachability canary failed too: the watchdog's own network "
                "is down, not the app",
            )
        return [
            self._sample(Signal.HEALTH_UP, 0.0, detail=str(exc)),
            self._unknown(HEALTH_LATENCY_S, UnknownReason.NO_DATA, "no successful answer"),
        ]
