"""``supabase``: database CPU from Supabase's Prometheus-format metrics endpoint.

``GET https://<ref>.supabase.co/customer/v1/privileged/metrics`` with HTTP Basic
(``service_role`` and a secret API key) returns the text exposition format (EXTERNAL-APIS §4).
There is no Prometheus in between, so the source computes what the Supabase dashboard's
"CPU Busy" panel shows itself, from two consecutive scrapes of the ``node_cpu_seconds_total``
counters, per instance (``supabase_identifier``: the primary and any read replicas)::

    db_cpu = 1 - Δidle / Δtotal      (summed over all CPUs and modes)

``db_cpu`` is the **busiest instance** (the maximum across instances) unless ``instance``
names one: a saturated replica degrades the app as surely as a saturated primary. The first
scrape only takes a baseline (``no_data``). If any counter went backwards (a restart), that
interval is unknown (``no_data``) and the source re-baselines; it never reports a made-up
rate from a reset counter. The endpoint repeats label sets; repeated series are read once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta
from typing import Final, Literal

from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field, model_validator

from watchdog.core.model import Sample, Signal, UnknownReason
from watchdog.core.rules import Duration
from watchdog.fields import Secret
from watchdog.sources.base import (
    HttpSource,
    HttpURL,
    SourceConfigBase,
    SourceContext,
    basic_auth,
)
from watchdog.transport import CallError, Response, body_hint

CPU_METRIC: Final = "node_cpu_seconds_total"
INSTANCE_LABEL: Final = "supabase_identifier"
METRICS_PATH: Final = "/customer/v1/privileged/metrics"

#: one instance's counters: (cpu, mode) → seconds
CpuCounters = dict[tuple[str, str], float]


class SupabaseSourceConfig(SourceConfigBase):
    kind: Literal["supabase"] = "supabase"
    project_ref: str | None = Field(
        default=None, pattern=r"^[a-z0-9]+$", description="the <ref> in <ref>.supabase.co"
    )
    base_url: HttpURL | None = Field(
        default=None, description="overrides https://<project_ref>.supabase.co"
    )
    username: str = Field(default="service_role", pattern=r"^[^:]+$")
    secret_key: Secret = Field(description="a Secret API key (sb_secret_...)")
    instance: str | None = Field(
        default=None,
        description="report this supabase_identifier only (default: the busiest instance)",
    )
    # Supabase recommends scraping once a minute
    interval: Duration = Field(default=timedelta(seconds=60))
    timeout: Duration = Field(default=timedelta(seconds=10))

    @model_validator(mode="after")
    def _where(self) -> SupabaseSourceConfig:
        if self.project_ref is None and self.base_url is None:
            raise ValueError("set project_ref (or base_url)")
        return self

    @property
    def url(self) -> str:
        base = self.base_url or f"https://{self.project_ref}.supabase.co"
        return base.rstrip("/") + METRICS_PATH


def parse_cpu_counters(text: str) -> dict[str, CpuCounters]:
    """``node_cpu_seconds_total`` by instance. Repeated series keep their highest value.

    Raises :class:`ValueError` for text that is not the exposition format.
    """
    try:
        return _cpu_counters(text)
    except ValueError as exc:
        # prometheus_client raises some of its errors without a message ("{" alone)
        raise ValueError(str(exc) or "a line is not a metric sample") from None


def _cpu_counters(text: str) -> dict[str, CpuCounters]:
    instances: dict[str, CpuCounters] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != CPU_METRIC:
                continue
            labels = sample.labels
            key = (labels.get("cpu", ""), labels.get("mode", ""))
            counters = instances.setdefault(labels.get(INSTANCE_LABEL, ""), {})
            try:
                value = float(sample.value)
            except OverflowError:  # a number beyond any float (found by the response fuzz)
                raise ValueError(f"{CPU_METRIC} value out of range") from None
            # a repeated label set is the same counter read twice: keep one reading
            counters[key] = max(value, counters.get(key, value))
    return instances


def busy_fraction(previous: CpuCounters, current: CpuCounters) -> float | str:
    """Busy share between two scrapes, or why there is none (reset, no time passed)."""
    if previous.keys() != current.keys():
        return "the set of CPU series changed"
    if any(current[k] < previous[k] for k in current):
        return "CPU counters went backwards (restart?)"
    total = math.fsum(current.values()) - math.fsum(previous.values())
    idle = math.fsum(current[k] - previous[k] for k in current if k[1] == "idle")
    if not math.isfinite(total) or total <= 0:
        return "no CPU time elapsed between scrapes"
    return min(1.0, max(0.0, 1.0 - idle / total))


class SupabaseSource(HttpSource[SupabaseSourceConfig]):
    service = "Supabase metrics"
    auth_fix = (
        "check the Supabase secret_key: it must be a Secret API key (sb_secret_...) or the "
        "service_role key of this project, sent as user service_role"
    )

    def __init__(self, config: SupabaseSourceConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self._previous: dict[str, CpuCounters] = {}

    @property
    def signals(self) -> tuple[str, ...]:
        return (Signal.DB_CPU,)

    def _secrets(self) -> Iterable[str]:
        return (self.config.secret_key.get_secret_value(),)

    async def _fetch(self) -> Response:
        return await self._request(
            "GET",
            self.config.url,
            headers={
                "Authorization": basic_auth(
                    self.config.username, self.config.secret_key.get_secret_value()
                )
            },
        )

    async def _poll(self) -> list[Sample]:
        result = await self._with_retries(self._fetch)
        current = self._parse(result)
        previous, self._previous = self._previous, current
        return [self._db_cpu(previous, current)]

    def _parse(self, result: Response) -> dict[str, CpuCounters]:
        text = result.body.decode("utf-8", "replace")
        if "html" in result.content_type.lower() or text.lstrip().startswith("<"):
            raise CallError(
                f"expected Prometheus text, got {body_hint(result.body, 'html')}",
                retryable=False,
                reason="malformed",
            )
        try:
            instances = parse_cpu_counters(text)
        except ValueError as exc:
            raise CallError(
                f"the metrics are not in the Prometheus text format ({str(exc)[:80]})",
                retryable=False,
                reason="malformed",
            ) from None
        if not instances:
            raise CallError(f"the scrape has no {CPU_METRIC}", retryable=False, reason="malformed")
        for counters in instances.values():
            if not all(math.isfinite(v) for v in counters.values()):
                raise CallError(
                    f"{CPU_METRIC} has a non-finite value", retryable=False, reason="malformed"
                )
        return instances

    def _db_cpu(self, previous: dict[str, CpuCounters], current: dict[str, CpuCounters]) -> Sample:
        signal = Signal.DB_CPU
        wanted = self.config.instance
        if wanted is not None and wanted not in current:
            return self._unknown(
                signal,
                UnknownReason.PROVIDER_ERROR,
                f"no instance {wanted!r} in the scrape (has: {', '.join(sorted(current))})",
            )
        names = [wanted] if wanted is not None else sorted(current)
        busy: dict[str, float] = {}
        for name in names:
            if name not in previous:
                continue
            outcome = busy_fraction(previous[name], current[name])
            if isinstance(outcome, str):
                # one bad interval is unknown; the current scrape is the new baseline
                return self._unknown(
                    signal, UnknownReason.NO_DATA, f"{outcome} on {name or 'the instance'}"
                )
            busy[name] = outcome
        if not busy:
            return self._unknown(signal, UnknownReason.NO_DATA, "first scrape: baseline taken")
        name = max(busy, key=lambda n: busy[n])
        return self._sample(signal, busy[name], detail=f"instance {name}" if name else "")
