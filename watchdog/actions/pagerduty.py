"""PagerDuty Events API v2 as the pager: trigger/resolve per incident, a change per rollback.

I/O boundary: :class:`PagerDutyPager` POSTs to ``/v2/enqueue`` and ``/v2/change/enqueue``
(EXTERNAL-APIS §3), one attempt each. Everything that shapes an event is a pure function
above it, tested against exact JSON. The routing key is the credential; it only ever
appears in request bodies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchdog.actions._limiter import TokenBucket
from watchdog.actions.base import Change, Page
from watchdog.actions.details import iso, observation_details, severity_mapping, truncate
from watchdog.clock import Clock
from watchdog.core.model import Severity
from watchdog.fields import HttpURL, LinkTemplate, Secret, Timeout
from watchdog.redact import Redactor
from watchdog.transport import CallError, classify_status, parse_retry_after, send

log = structlog.get_logger(__name__)

SERVICE: Final = "PagerDuty"
SUMMARY_MAX: Final = 1024
DEDUP_MAX: Final = 255

#: the only values Events v2 accepts (EXTERNAL-APIS §3)
EventSeverity = Literal["critical", "error", "warning", "info"]
#: Events v2 ``payload.severity`` per procedure severity (DESIGN §6): PagerDuty has four
#: levels, so each procedure level that pages gets its own
DEFAULT_SEVERITY: Final[Mapping[Severity, EventSeverity]] = {
    Severity.P0: "critical",
    Severity.P1: "error",
    Severity.INVESTIGATE: "warning",
    Severity.P2: "info",
    Severity.P3: "info",
}


class PagerDutyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["pagerduty"] = "pagerduty"
    routing_key: Secret
    #: EU accounts: https://events.eu.pagerduty.com
    base_url: HttpURL = "https://events.pagerduty.com"
    source: str = "rollback-watchdog"
    event_class: str = "deploy-regression"
    runbook_url: HttpURL | None = None
    dashboard_url: HttpURL | None = None
    #: e.g. ``https://vercel.com/acme/web/{deployment}``
    deployment_url: LinkTemplate | None = None
    #: ``payload.severity`` per procedure severity; only the ones named change
    severity: dict[Severity, EventSeverity] = Field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    events_per_minute: int = Field(default=120, ge=1, le=1000)
    request_timeout: Timeout = timedelta(seconds=10)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("severity")
    @classmethod
    def _complete(cls, value: dict[Severity, EventSeverity]) -> dict[Severity, EventSeverity]:
        return severity_mapping(DEFAULT_SEVERITY, value)


# --------------------------------------------------------------------------- pure builders


def dedup_key(target: str, incident: str) -> str:
    """Stable per incident, so a restart's re-trigger updates the same alert."""
    return f"watchdog/{target}/{incident}"[:DEDUP_MAX]


def build_links(
    *,
    deployment: str | None,
    deployment_url: str | None,
    runbook_url: str | None,
    dashboard_url: str | None,
) -> list[dict[str, str]]:
    links: list[dict[str, str]] = []
    if deployment and deployment_url:
        links.append({"href": deployment_url.format(deployment=deployment), "text": "Deployment"})
    if runbook_url:
        links.append({"href": runbook_url, "text": "Runbook"})
    if dashboard_url:
        links.append({"href": dashboard_url, "text": "Dashboard"})
    return links


def trigger_event(
    routing_key: str,
    page: Page,
    *,
    source: str,
    links: Sequence[Mapping[str, str]] = (),
    severity: Mapping[Severity, str] = DEFAULT_SEVERITY,
) -> dict[str, Any]:
    """The Events v2 trigger for ``page`` (EXTERNAL-APIS §3), severity mapped by ``severity``."""
    details: dict[str, Any] = {
        "priority": page.severity.value,
        "reason": page.reason,
        "flowchart_path": list(page.path),
        "rule": page.rule,
        "deployment": page.deployment,
        "incident": page.incident,
        "signals": observation_details(page.observations),
    }
    if page.refused_by:
        details["refused_by"] = page.refused_by
    if page.notes:
        details["notes"] = list(page.notes)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(page.target, page.incident),
        "payload": {
            "summary": truncate(page.summary, SUMMARY_MAX),
            "source": source,
            "severity": severity[page.severity],
            "timestamp": iso(page.at),
            "component": page.target,
            "class": page.event_class,
            "custom_details": details,
        },
    }
    if links:
        event["links"] = [dict(link) for link in links]
    return event


def resolve_event(routing_key: str, target: str, incident: str) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": dedup_key(target, incident),
    }


def change_event(
    routing_key: str,
    change: Change,
    *,
    source: str,
    links: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "payload": {
            "summary": truncate(change.summary, SUMMARY_MAX),
            "source": source,
            "timestamp": iso(change.at),
            "custom_details": {"target": change.target, **dict(change.details)},
        },
    }
    if links:
        event["links"] = [dict(link) for link in links]
    return event


def _pd_errors(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if not isinstance(body, Mapping):
        return ""
    errors = body.get("errors")
    message = body.get("message") if isinstance(body.get("message"), str) else ""
    if isinstance(errors, list) and errors:
        return f"{message}: {'; '.join(str(e) for e in errors)}".strip(": ")
    return str(message)


# --------------------------------------------------------------------------- the pager


class PagerDutyPager:
    """The :class:`~watchdog.actions.base.Pager` for one PagerDuty service (routing key)."""

    def __init__(
        self, config: PagerDutyConfig, session: aiohttp.ClientSession, clock: Clock
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._redact = Redactor.of(config)
        # PD allows ~120 events/min per routing key; staying under it beats a 429 mid-incident
        self._bucket = TokenBucket(
            config.events_per_minute / 60.0, config.events_per_minute, clock.monotonic
        )

    def _links(self, deployment: str | None) -> list[dict[str, str]]:
        return build_links(
            deployment=deployment,
            deployment_url=self._config.deployment_url,
            runbook_url=self._config.runbook_url,
            dashboard_url=self._config.dashboard_url,
        )

    async def trigger(self, page: Page) -> None:
        event = trigger_event(
            self._config.routing_key.get_secret_value(),
            page,
            source=self._config.source,
            links=self._links(page.deployment),
            severity=self._config.severity,
        )
        await self._post("/v2/enqueue", event)
        log.info(
            "page_triggered",
            pager="pagerduty",
            target=page.target,
            incident=page.incident,
            dedup_key=event["dedup_key"],
            severity=event["payload"]["severity"],
            priority=page.severity.value,
            refused_by=page.refused_by,
            summary=page.summary,
        )

    async def resolve(self, target: str, incident: str, at: datetime) -> None:
        event = resolve_event(self._config.routing_key.get_secret_value(), target, incident)
        await self._post("/v2/enqueue", event)
        log.info(
            "page_resolved",
            pager="pagerduty",
            target=target,
            incident=incident,
            dedup_key=event["dedup_key"],
        )

    async def change(self, change: Change) -> None:
        await self._post(
            "/v2/change/enqueue",
            change_event(
                self._config.routing_key.get_secret_value(),
                change,
                source=self._config.source,
                links=self._links(change.deployment),
            ),
        )
        log.info(
            "change_event_sent", pager="pagerduty", target=change.target, summary=change.summary
        )

    async def _post(self, path: str, event: Mapping[str, Any]) -> None:
        wait = self._bucket.take()
        if wait > 0:
            raise CallError(
                f"{SERVICE}: client-side limit of {self._config.events_per_minute} events/min "
                "reached",
                retryable=True,
                reason="client_rate_limited",
                retry_after=wait,
            )
        resp = await send(
            self._session,
            "POST",
            f"{self._config.base_url}{path}",
            service=SERVICE,
            request_timeout=self._config.request_timeout,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            json_body=event,
            redactor=self._redact,
        )
        if resp.ok:  # 202 is documented; any 2xx means the event was taken
            return
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        raise classify_status(
            resp.status,
            SERVICE,
            _pd_errors(resp.text),
            retry_after=retry_after,
            auth_fix="check the integration (routing) key",
        )
