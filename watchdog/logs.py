"""structlog set-up: JSON lines with bound context, and a last line of defence for secrets.

The code never logs a secret on purpose; the redacting processor makes sure an accident (a
URL with a token in an exception message, a vendor's error body quoting the token) does not
either: every form of every configured secret (:class:`watchdog.redact.Redactor`) is
replaced in every string of every log line, tracebacks included. Records of the standard
``logging`` module (asyncio, aiohttp, asyncpg) go through the same redactor to stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from watchdog.redact import NO_SECRETS, Redactor


class RedactingProcessor:
    """The structlog processor that runs last before rendering: scrubs every value."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self.redactor:
            return event
        for key, value in list(event.items()):
            event[key] = self.redactor.data(value)
        return event


class RedactingFormatter(logging.Formatter):
    """Formats a standard-library record, then redacts the whole text (traceback included)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(super().format(record))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one root handler :func:`configure` owns (replaced, never stacked, on reconfigure).

    It writes to whatever ``sys.stderr`` is when a record arrives, as structlog's print
    logger does, so a replaced stderr (a test's capture) is never written after closing.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def unconfigure() -> None:
    """Remove the root handler :func:`configure` installed (tests reset between runs)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)


def configure(level: str = "info", fmt: str = "json", redactor: Redactor = NO_SECRETS) -> None:
    """Route structlog (and stdlib logging at warning and above) to stderr, redacted."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            RedactingProcessor(redactor),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    unconfigure()
    handler = _StderrHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(RedactingFormatter(redactor))
    logging.getLogger().addHandler(handler)
