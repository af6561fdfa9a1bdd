"""The last step before a page or a chat message leaves: redact every configured secret.

A page's summary and details, and a chat message, are built from decisions whose reasons
quote upstream answers (a rollback that failed, a guard rail that refused). The vendors need
their own credentials in the request (PagerDuty's routing key is in the body), so the
redaction is of what the message *says*: :class:`RedactingPager` hands the vendor a redacted
:class:`~watchdog.actions.base.Page` or :class:`~watchdog.actions.base.Change`, and
:class:`RedactingNotifier` redacted text, and :class:`RedactingFlag` a redacted reason (a
flag service keeps it as the change's comment). No I/O here; the wrapped vendor does it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watchdog.actions.base import Change, FeatureFlag, Notifier, Page, Pager
from watchdog.redact import Redactor


class RedactingPager:
    """A :class:`~watchdog.actions.base.Pager` that redacts every page before ``inner``."""

    def __init__(self, inner: Pager, redactor: Redactor) -> None:
        self.inner = inner
        self._redact = redactor

    @classmethod
    def wrap(cls, inner: Pager | None, redactor: Redactor) -> Pager | None:
        return None if inner is None else cls(inner, redactor)

    async def trigger(self, page: Page) -> None:
        await self.inner.trigger(self._redact.data(page))

    async def resolve(self, target: str, incident: str, at: datetime) -> None:
        await self.inner.resolve(target, incident, at)

    async def change(self, change: Change) -> None:
        await self.inner.change(self._redact.data(change))


class RedactingNotifier:
    """A :class:`~watchdog.actions.base.Notifier` that redacts every message before ``inner``."""

    def __init__(self, inner: Notifier, redactor: Redactor) -> None:
        self.inner = inner
        self._redact = redactor

    @classmethod
    def wrap(cls, inner: Notifier | None, redactor: Redactor) -> Notifier | None:
        return None if inner is None else cls(inner, redactor)

    async def send(self, text: str) -> None:
        await self.inner.send(self._redact.text(text))


class RedactingFlag:
    """A :class:`~watchdog.actions.base.FeatureFlag` whose change comment is redacted."""

    def __init__(self, inner: FeatureFlag, redactor: Redactor) -> None:
        self.inner = inner
        self._redact = redactor

    @property
    def flags(self) -> Sequence[str]:
        return self.inner.flags

    async def disable(self, flag: str, reason: str) -> None:
        await self.inner.disable(flag, self._redact.text(reason))
