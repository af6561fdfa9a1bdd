"""Prometheus Alertmanager as the pager: one alert per incident, re-posted while it is open.

I/O boundary: :class:`AlertmanagerPager` POSTs JSON arrays to ``/api/v2/alerts``
(EXTERNAL-APIS §6). Alertmanager forgets an alert that is not re-sent, so the pager remembers
what it has open and :meth:`AlertmanagerPager.repost` re-sends whatever
:func:`due_for_repost` says is due; the daemon calls it every cycle. Labels identify an
alert, so a severity change resolves the alert under the old labels in the same request.
Alertmanager has no change events: :meth:`change` does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchdog.actions.base import Change, Page
from watchdog.actions.details import iso, observation_details, severity_mapping, truncate
from watchdog.clock import Clock
from watchdog.core.model import Severity
from watchdog.fields import HttpURL, LinkTemplate, Period, Secret, Timeout
from watchdog.redact import Redactor
from watchdog.transport import classify_status, parse_retry_after, send

log = structlog.get_logger(__name__)

SERVICE: Final = "Alertmanager"

#: the ``severity`` label per procedure severity (DESIGN §6). Routing trees conventionally
#: match critical/warning/info, and both P0 and P1 roll back, so both are critical; the
#: procedure's own level travels in the ``priority`` annotation.
DEFAULT_SEVERITY: Final[Mapping[Severity, str]] = {
    Severity.P0: "critical",
    Severity.P1: "critical",
    Severity.INVESTIGATE: "warning",
    Severity.P2: "info",
    Severity.P3: "info",
}

#: a label value a routing tree's matcher can name without quoting surprises
_LABEL_VALUE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}")


class AlertmanagerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["alertmanager"] = "alertmanager"
    base_url: HttpURL
    alertname: str = "WatchdogIncident"
    #: static labels added to every alert (e.g. team, service) for routing
    labels: dict[str, str] = Field(default_factory=dict)
    #: ``{incident}`` and ``{target}`` are filled in
    generator_url: LinkTemplate | None = None
    runbook_url: HttpURL | None = None
    dashboard_url: HttpURL | None = None
    #: e.g. ``https://vercel.com/acme/web/{deployment}``
    deployment_url: LinkTemplate | None = None
    #: the ``severity`` label per procedure severity; only the ones named change
    severity: dict[Severity, str] = Field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    #: Alertmanager expires alerts that are not re-sent (every 30 s to 3 min is advised)
    repost_interval: Period = timedelta(seconds=60)
    bearer_token: Secret | None = None
    request_timeout: Timeout = timedelta(seconds=10)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("severity")
    @classmethod
    def _complete(cls, value: dict[Severity, str]) -> dict[Severity, str]:
        for severity, label in value.items():
            if not _LABEL_VALUE.fullmatch(label):
                raise ValueError(
                    f"the severity label for {severity.value} must be 1-63 letters, digits or "
                    f"'_.:-', starting with a letter or digit (got {label!r})"
                )
        return severity_mapping(DEFAULT_SEVERITY, value)


# --------------------------------------------------------------------------- pure builders


def alert_labels(
    target: str, incident: str, severity: str, *, alertname: str, extra: Mapping[str, str]
) -> dict[str, str]:
    return {
        **dict(extra),
        "alertname": alertname,
        "target": target,
        "incident": incident,
        "severity": severity,
    }


def build_alert(page: Page, config: AlertmanagerConfig) -> dict[str, Any]:
    """The alert for ``page``; ``startsAt`` is the decision time so re-posts keep it stable."""
    annotations: dict[str, str] = {
        "summary": truncate(page.summary, 1024),
        "description": page.reason,
        # the label says critical for both P0 and P1; the person paged still needs which
        "priority": page.severity.value,
        "flowchart_path": " → ".join(page.path),
    }
    if page.deployment:
        annotations["deployment"] = page.deployment
        if config.deployment_url:
            annotations["deployment_url"] = config.deployment_url.format(deployment=page.deployment)
    if page.refused_by:
        annotations["refused_by"] = page.refused_by
    signals = observation_details(page.observations)
    if signals:
        annotations["signals"] = "; ".join(
            f"{s['signal']}={_number(s['value'])} {s['op']} {_number(s['threshold'])}"
            for s in signals
        )
    if page.notes:
        annotations["notes"] = " ".join(page.notes)
    if config.runbook_url:
        annotations["runbook_url"] = config.runbook_url
    if config.dashboard_url:
        annotations["dashboard_url"] = config.dashboard_url
    alert: dict[str, Any] = {
        "labels": alert_labels(
            page.target,
            page.incident,
            config.severity[page.severity],
            alertname=config.alertname,
            extra=config.labels,
        ),
        "annotations": annotations,
        "startsAt": iso(page.at),
    }
    if config.generator_url:
        alert["generatorURL"] = config.generator_url.format(
            incident=page.incident, target=page.target
        )
    return alert


def _number(value: object) -> str:
    """A value as a person reads it in a notification: 0.1113, not 0.11128315138625093."""
    if value is None:
        return "unknown"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def resolved(alert: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """The same alert with ``endsAt`` = ``at``: how Alertmanager is told it is over."""
    return {**alert, "endsAt": iso(at)}


def due_for_repost(last_sent: datetime, now: datetime, interval: timedelta) -> bool:
    return now - last_sent >= interval


# --------------------------------------------------------------------------- the pager


@dataclass(frozen=True, slots=True)
class _Active:
    alert: dict[str, Any]
    last_sent: datetime


class AlertmanagerPager:
    def __init__(
        self, config: AlertmanagerConfig, session: aiohttp.ClientSession, clock: Clock
    ) -> None:
        self._config = config
        self._session = session
        self._clock = clock
        self._redact = Redactor.of(config)
        self._active: dict[tuple[str, str], _Active] = {}

    @property
    def active(self) -> Mapping[tuple[str, str], Mapping[str, Any]]:
        return {k: v.alert for k, v in self._active.items()}

    async def trigger(self, page: Page) -> None:
        alert = build_alert(page, self._config)
        key = (page.target, page.incident)
        batch = [alert]
        old = self._active.get(key)
        if old is not None and old.alert["labels"] != alert["labels"]:
            # labels are the alert's identity: a new severity is a new alert, end the old one
            batch.append(resolved(old.alert, self._clock.now()))
        await self._post(batch)
        self._active[key] = _Active(alert, self._clock.now())
        log.info(
            "page_triggered",
            pager="alertmanager",
            target=page.target,
            incident=page.incident,
            severity=alert["labels"]["severity"],
            priority=page.severity.value,
            refused_by=page.refused_by,
            summary=page.summary,
        )

    async def resolve(self, target: str, incident: str, at: datetime) -> None:
        old = self._active.get((target, incident))
        if old is not None:
            batch = [resolved(old.alert, at)]
        else:
            # after a restart the labels' severity is unknown: end every variant
            batch = [
                {
                    "labels": alert_labels(
                        target,
                        incident,
                        sev,
                        alertname=self._config.alertname,
                        extra=self._config.labels,
                    ),
                    "endsAt": iso(at),
                }
                for sev in sorted(set(self._config.severity.values()))
            ]
        await self._post(batch)
        self._active.pop((target, incident), None)
        log.info("page_resolved", pager="alertmanager", target=target, incident=incident)

    async def change(self, change: Change) -> None:
        log.debug("alertmanager_change_ignored", target=change.target)

    def due_for_repost(self, now: datetime) -> list[tuple[str, str]]:
        return [
            key
            for key, active in self._active.items()
            if due_for_repost(active.last_sent, now, self._config.repost_interval)
        ]

    async def repost(self, now: datetime) -> int:
        """Re-send every open alert that is due, in one request; returns how many."""
        due = self.due_for_repost(now)
        if not due:
            return 0
        await self._post([self._active[key].alert for key in due])
        for key in due:
            self._active[key] = _Active(self._active[key].alert, now)
        return len(due)

    async def _post(self, alerts: list[dict[str, Any]]) -> None:
        headers = {"Content-Type": "application/json"}
        if self._config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self._config.bearer_token.get_secret_value()}"
        resp = await send(
            self._session,
            "POST",
            f"{self._config.base_url}/api/v2/alerts",
            service=SERVICE,
            request_timeout=self._config.request_timeout,
            headers=headers,
            json_body=alerts,
            redactor=self._redact,
        )
        if resp.ok:
            return
        raise classify_status(
            resp.status,
            SERVICE,
            resp.text.strip()[:200],
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
        )
