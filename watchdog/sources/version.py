"""``version``: which deployment is the app serving? ``GET version_url`` → ``version``.

The value is a string attribute (a deployment id or commit SHA) that rollback verification
compares with the deployment it rolled back to. It is never guessed: a body the source cannot
read is an unknown ``provider_error``, an empty or null version is ``no_data``.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from watchdog.core.model import Sample, Signal, UnknownReason
from watchdog.sources.base import MISSING, HttpSource, HttpURL, SourceConfigBase, json_path
from watchdog.transport import CallError, Response, body_hint

#: longer than any deployment id or SHA; a longer "version" is an error page
MAX_VERSION_LENGTH: Final = 200


class VersionSourceConfig(SourceConfigBase):
    """Read the deployed version from a JSON field (``field``) or a plain-text body."""

    kind: Literal["version"] = "version"
    url: HttpURL
    field: str | None = Field(
        default=None,
        min_length=1,
        description="dotted JSON path such as 'commit' or 'deployment.id'; "
        "unset: the body is the version as plain text",
    )
    headers: dict[str, str] = Field(default_factory=dict)


class VersionSource(HttpSource[VersionSourceConfig]):
    service = "the version endpoint"

    @property
    def signals(self) -> tuple[str, ...]:
        return (Signal.VERSION,)

    async def _fetch(self) -> Response:
        return await self._request("GET", self.config.url, headers=self.config.headers)

    async def _poll(self) -> list[Sample]:
        result = await self._with_retries(self._fetch)
        if self.config.field is None:
            raw: object = self._plain_text(result)
        else:
            raw = json_path(result.json(self.service, retryable=False), self.config.field)
            if raw is MISSING:
                raise CallError(
                    f"the version response has no field {self.config.field!r}",
                    retryable=False,
                    reason="malformed",
                )
        if raw is not None and (isinstance(raw, bool) or not isinstance(raw, str | int)):
            raise CallError(
                f"the version field {self.config.field!r} is a {type(raw).__name__}, not a string",
                retryable=False,
                reason="malformed",
            )
        version = "" if raw is None else str(raw).strip()
        if not version:
            # blank is no version at all, never a deployment called " "
            return [self._unknown(Signal.VERSION, UnknownReason.NO_DATA, "the version is empty")]
        if len(version) > MAX_VERSION_LENGTH or not version.isprintable():
            raise CallError(
                "the version is too long or holds control characters: not a deployment id",
                retryable=False,
                reason="malformed",
            )
        return [self._sample(Signal.VERSION, version)]

    @staticmethod
    def _plain_text(result: Response) -> str:
        text = result.body.decode("utf-8", "replace").strip()
        if "html" in result.content_type.lower() or text.startswith("<"):
            raise CallError(
                f"expected a plain-text version, got {body_hint(result.body, 'html')}",
                retryable=False,
                reason="malformed",
            )
        return text
