"""Field types the settings models share: URLs the daemon calls, secrets, bounded durations.

A value that validates here can be used at 3 a.m. without surprises: a URL has an http(s)
scheme, a host and no credentials (those belong in secret fields, which are redacted; a URL
is logged and linked), a secret is not empty, and a duration is inside the range the code
using it can work with: a ``0s`` request timeout means "never time out" to aiohttp, a
``0s`` period is a busy loop. Every message names the allowed range. Pure (no I/O): sources,
actions and the config all import it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final
from urllib.parse import urlsplit

from pydantic import AfterValidator, SecretStr

from watchdog.core.rules import MAX_DURATION, Duration, format_duration

__all__ = [
    "HttpURL",
    "JobTimeout",
    "LinkTemplate",
    "Period",
    "PollInterval",
    "Secret",
    "SecretHttpURL",
    "Timeout",
    "UpdateInterval",
    "at_least",
    "check_url",
]


def check_url(value: str, *, secret: bool = False) -> str:
    """``value`` if it is an ``http(s)://`` URL with a host and no credentials, else a
    ``ValueError`` saying what to fix. A ``secret`` URL, or one that may carry credentials
    (an ``@``), is never quoted in the message."""
    shown = "" if secret or "@" in value else f", got {value[:80]!r}"
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError(f"a URL cannot contain spaces or control characters{shown}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check (a non-number raises)
    except ValueError:
        raise ValueError(f"not a valid URL{shown}: check the host and port") from None
    if parts.scheme.lower() not in ("http", "https") or not value.lower().startswith(
        ("http://", "https://")
    ):
        raise ValueError(f"expected an http:// or https:// URL{shown}")
    if "@" in parts.netloc:
        raise ValueError(
            "do not put credentials in the URL; use the secret fields (token, password), "
            "which are never logged"
        )
    if not parts.hostname:
        raise ValueError(f"the URL has no host{shown}: write it as https://host/path")
    return value


def _secret_url(value: SecretStr) -> SecretStr:
    check_url(value.get_secret_value(), secret=True)
    return value


def _not_empty(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        # an empty API token would accept "Authorization: Bearer " as valid
        raise ValueError("the secret is empty: set it, or remove the key")
    return value


def _link_template(value: str) -> str:
    # the placeholders are filled in per page; the rest must be a URL already
    filled = value
    for placeholder in ("{deployment}", "{incident}", "{target}"):
        filled = filled.replace(placeholder, "x")
    check_url(filled)
    return value


#: a URL the daemon calls or links to
HttpURL = Annotated[str, AfterValidator(check_url)]
#: a URL that is itself the credential (a Slack webhook, a heartbeat ping URL)
SecretHttpURL = Annotated[SecretStr, AfterValidator(_not_empty), AfterValidator(_secret_url)]
#: a credential: never empty, never echoed (see :func:`watchdog.redact.secret_field_names`)
Secret = Annotated[SecretStr, AfterValidator(_not_empty)]
#: a link with ``{deployment}``/``{incident}``/``{target}`` placeholders
LinkTemplate = Annotated[str, AfterValidator(_link_template)]


def at_least(minimum: timedelta, why: str) -> AfterValidator:
    """A validator for a :data:`~watchdog.core.rules.Duration` of at least ``minimum``;
    ``why`` says what a shorter one would do."""

    def check(value: timedelta) -> timedelta:
        if value < minimum:
            raise ValueError(
                f"{format_duration(value)} is too short: {why}; use at least "
                f"{format_duration(minimum)} (and at most {format_duration(MAX_DURATION)})"
            )
        return value

    return AfterValidator(check)


#: the shortest request timeout worth trying: 0 would mean "never time out"
MIN_TIMEOUT: Final = timedelta(milliseconds=10)
#: the shortest pause between two polls of one upstream: 0 would poll in a busy loop
MIN_POLL: Final = timedelta(milliseconds=10)

#: a request timeout (0s would mean no timeout at all)
Timeout = Annotated[
    Duration,
    at_least(MIN_TIMEOUT, "every request would time out (and 0s means no timeout at all)"),
]
#: the pause between two polls of the same upstream (a job, an alias, a health check)
PollInterval = Annotated[Duration, at_least(MIN_POLL, "it would poll in a busy loop")]
#: how long to wait for something that takes seconds (a rollback job, its verification)
JobTimeout = Annotated[
    Duration, at_least(timedelta(seconds=1), "nothing it waits for finishes that fast")
]
#: a periodic chore against an upstream (a re-post, a heartbeat, a look-up)
Period = Annotated[Duration, at_least(timedelta(seconds=1), "it would run many times a second")]
#: how often a status message goes to people
UpdateInterval = Annotated[
    Duration, at_least(timedelta(seconds=10), "people would be flooded with messages")
]
