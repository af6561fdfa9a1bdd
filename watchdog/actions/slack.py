"""Slack incoming webhook with the procedure's communication templates.

The templates ("Rollback Communication" in ROLLBACK-PROCEDURES.md) are rendered by pure
functions; :class:`SlackNotifier` makes one POST per message (EXTERNAL-APIS §5). The webhook
URL is the credential, so it is a secret and never appears in errors or logs. Chat is the
least important side effect: the dispatcher sends it in the background with a short deadline,
so a failing Slack never delays a rollback or a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from watchdog.actions._limiter import TokenBucket
from watchdog.clock import Clock
from watchdog.core.model import Observation
from watchdog.fields import SecretHttpURL, Timeout, UpdateInterval
from watchdog.redact import Redactor
from watchdog.transport import CallError, classify_status, parse_retry_after, send

SERVICE: Final = "Slack"


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["slack"] = "slack"
    webhook_url: SecretHttpURL
    incident_commander: str = "rollback-watchdog (automatic); on-call takes over when paged"
    point_of_contact: str = "the on-call engineer (see the page)"
    #: while an incident is open, post the procedure's status update this often
    update_interval: UpdateInterval = timedelta(minutes=5)
    #: Slack allows about one message per second, with short bursts
    messages_per_second: float = Field(default=1.0, gt=0, le=10)
    burst: int = Field(default=3, ge=1, le=20)
    request_timeout: Timeout = timedelta(seconds=5)


# --------------------------------------------------------------------------- templates


def hhmm(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H:%M UTC")


def stamp(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "an unknown time"


def human_duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def describe_impact(observations: Sequence[Observation], fallback: str) -> str:
    """The firing signals against their thresholds, e.g. ``error_rate 0.072 > 0.05``."""
    firing = [o for o in observations if o.firing]
    if not firing:
        return fallback
    return (
        "; ".join(
            f"{o.signal} {o.value:g} {o.op} {o.threshold:g}" for o in firing if o.value is not None
        )
        or fallback
    )


def _with_notes(text: str, notes: Sequence[str]) -> str:
    if not notes:
        return text
    return text + "\n\n" + "\n".join(f"⚠️ {note}" for note in notes)


def render_rollback_in_progress(
    *,
    issue: str,
    severity: str,
    impact: str,
    target_deployment: str,
    target_created_at: datetime | None,
    eta: datetime,
    commander: str,
    notes: Sequence[str] = (),
    action: str | None = None,
) -> str:
    """``action`` replaces the template's "Rolling back to deployment from ..." (an abort
    says what it does in its own words)."""
    action = action or (
        f"Rolling back to deployment from {stamp(target_created_at)} ({target_deployment})"
    )
    return _with_notes(
        "🚨 PRODUCTION ROLLBACK IN PROGRESS\n"
        "\n"
        f"Issue: {issue}\n"
        f"Severity: {severity}\n"
        f"Impact: {impact}\n"
        f"Action: {action}\n"
        f"ETA: {hhmm(eta)}\n"
        f"Incident Commander: {commander}\n"
        "\n"
        "Updates will be posted here every 5 minutes.",
        notes,
    )


def render_update(
    *,
    at: datetime,
    status: Literal["In Progress", "Completed", "Blocked"],
    progress: str,
    next_step: str,
    eta: str,
    notes: Sequence[str] = (),
) -> str:
    return _with_notes(
        f"⏱️ UPDATE {hhmm(at)}\n"
        "\n"
        f"Status: {status}\n"
        f"Progress: {progress}\n"
        f"Next: {next_step}\n"
        f"ETA: {eta}",
        notes,
    )


def render_rollback_complete(
    *,
    issue: str,
    method: str,
    duration: timedelta,
    impact: str,
    contact: str,
    root_cause: str = "not yet known: root cause analysis pending",
    notes: Sequence[str] = (),
) -> str:
    return _with_notes(
        "✅ ROLLBACK COMPLETE\n"
        "\n"
        f"Issue: {issue}\n"
        f"Root Cause: {root_cause}\n"
        f"Rollback Method: {method}\n"
        f"Duration: {human_duration(duration)}\n"
        f"Impact: {impact}\n"
        "\n"
        "Current Status: System operational and stable\n"
        "Monitoring: Intensive monitoring for next 2 hours\n"
        "\n"
        "Next Steps:\n"
        "1. Root cause analysis (ETA: set by the incident commander)\n"
        "2. Fix implementation (ETA: set by the incident commander)\n"
        "3. Testing in staging (ETA: set by the incident commander)\n"
        "4. Next deployment attempt (ETA: set by the incident commander)\n"
        "\n"
        f"Point of Contact: {contact}",
        notes,
    )


def render_page(
    *,
    issue: str,
    severity: str,
    impact: str,
    action: str,
    commander: str,
    notes: Sequence[str] = (),
) -> str:
    """For incidents that page a human without (or instead of) an automatic rollback."""
    return _with_notes(
        "📟 PRODUCTION INCIDENT: ON-CALL PAGED\n"
        "\n"
        f"Issue: {issue}\n"
        f"Severity: {severity}\n"
        f"Impact: {impact}\n"
        f"Action: {action}\n"
        f"Incident Commander: {commander}\n"
        "\n"
        "Updates will be posted here every 5 minutes.",
        notes,
    )


def render_rollout(
    *,
    headline: str,
    canary: str,
    stage: str,
    why: str,
    next_step: str,
    commander: str,
) -> str:
    """A rolling release's stage approved (or not): no incident, no page, the channel told."""
    return (
        f"{headline}\n"
        "\n"
        f"Deployment: {canary} (the canary)\n"
        f"Stage: {stage}\n"
        f"Why: {why}\n"
        f"Next: {next_step}\n"
        f"Incident Commander: {commander}"
    )


def render_resolved(
    *, issue: str, duration: timedelta, contact: str, notes: Sequence[str] = ()
) -> str:
    return _with_notes(
        "✅ INCIDENT RESOLVED\n"
        "\n"
        f"Issue: {issue}\n"
        f"Duration: {human_duration(duration)}\n"
        "Current Status: every signal has stayed within its thresholds for the resolve period\n"
        "\n"
        f"Point of Contact: {contact}",
        notes,
    )


def webhook_body(text: str) -> dict[str, str]:
    return {"text": text}


# --------------------------------------------------------------------------- the notifier


class SlackNotifier:
    def __init__(self, config: SlackConfig, session: aiohttp.ClientSession, clock: Clock) -> None:
        self._config = config
        self._session = session
        self._redact = Redactor.of(config)
        self._bucket = TokenBucket(config.messages_per_second, config.burst, clock.monotonic)

    @property
    def config(self) -> SlackConfig:
        return self._config

    async def send(self, text: str) -> None:
        wait = self._bucket.take()
        if wait > 0:
            raise CallError(
                f"{SERVICE}: client-side limit of {self._config.messages_per_second:g} msg/s",
                retryable=True,
                reason="client_rate_limited",
                retry_after=wait,
            )
        resp = await send(
            self._session,
            "POST",
            self._config.webhook_url.get_secret_value(),
            service=SERVICE,
            request_timeout=self._config.request_timeout,
            headers={"Content-Type": "application/json"},
            json_body=webhook_body(text),
            redactor=self._redact,
        )
        if resp.ok:
            return
        # Slack's errors are plain-text codes such as "channel_not_found"
        hint = resp.text.strip()[:100]
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if 400 <= resp.status < 500 and resp.status != 429:
            raise CallError(
                f"{SERVICE} refused the message ({resp.status}: {hint}): fix the webhook "
                "configuration",
                retryable=False,
                reason=f"http_{resp.status}",
                status=resp.status,
            )
        raise classify_status(resp.status, SERVICE, hint, retry_after=retry_after)
