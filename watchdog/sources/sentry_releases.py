"""Naming a deployment's Sentry release, and the ``release:`` filter that asks for several.

Pure. ``@sentry/nextjs`` on Vercel names the release after the full commit SHA
(``VERCEL_GIT_COMMIT_SHA``, the deployment's ``meta.githubCommitSha``) unless the app sets
``SENTRY_RELEASE``; a template (``{commit}``, ``{short_commit}``, ``{deployment}``) covers
the apps that do (``web@{commit}``). Sentry's search syntax takes a list as
``release:[a, b]`` (the same as ``release:a OR release:b``); values with characters outside
the plain ones are quoted.
"""

from __future__ import annotations

import re
import string
from typing import Final

from watchdog.sources.releases import ScopedDeployment

PLACEHOLDERS: Final = frozenset({"commit", "short_commit", "deployment"})
#: what a release name may contain (SHAs, ids, ``app@1.2.3+build``): nothing that could
#: break out of a quoted search value
_ALLOWED: Final = re.compile(r"^[A-Za-z0-9._@+:/-]+$")
_PLAIN: Final = re.compile(r"^[A-Za-z0-9._-]+$")


def check_template(template: str) -> str:
    """The template, or ValueError naming what is wrong with it (for the config)."""
    fields = []
    literal = []
    try:
        for text, field, spec, conversion in string.Formatter().parse(template):
            literal.append(text)
            if field is not None:
                if field not in PLACEHOLDERS or spec or conversion:
                    raise ValueError(
                        f"unknown placeholder {{{field}}} in release template {template!r}: use "
                        + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
                    )
                fields.append(field)
    except ValueError as exc:
        if "placeholder" in str(exc):
            raise
        raise ValueError(f"release template {template!r} is not valid: {exc}") from None
    if not fields:
        raise ValueError(
            f"release template {template!r} names no deployment: include {{commit}} (what "
            "@sentry/nextjs uses on Vercel) or {deployment}"
        )
    text = "".join(literal)
    if text and not _ALLOWED.match(text):
        raise ValueError(
            f"release template {template!r} may only contain letters, digits and . _ @ + : / -"
        )
    return template


def release_name(template: str, scoped: ScopedDeployment) -> str | None:
    """The Sentry release of ``scoped``; None when the template needs a commit nobody knows."""
    if ("{commit}" in template or "{short_commit}" in template) and not scoped.commit:
        return None
    commit = scoped.commit or ""
    name = template.format(commit=commit, short_commit=commit[:7], deployment=scoped.deployment)
    return name if _ALLOWED.match(name) else None


def release_filter(names: list[str]) -> str:
    """``release:[a,b]``: Sentry's list syntax, quoting what is not a plain token."""
    values = [n if _PLAIN.match(n) else f'"{n}"' for n in names]
    return f"release:[{','.join(values)}]"
