"""Looking for secrets where they must not be: the canary tests' grep.

Written apart from :mod:`watchdog.redact` on purpose: a form the redactor forgot must still
be found here. A secret counts as leaked in any of the shapes an exit could carry it: raw,
URL-encoded (``quote`` with and without ``/``, ``quote_plus``, either hex case),
JSON-escaped, or base64 in any alignment and either alphabet (which is how HTTP Basic's
``user:secret`` carries it, whatever the user).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus


def forms(secret: str) -> dict[str, str]:
    """Every shape of ``secret`` worth looking for, by a name for the report."""
    found = {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote_path": quote(secret),
        "quote_plus": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
    }
    found["quote_lower"] = "".join(
        part[:2].lower() + part[2:] if i else part
        for i, part in enumerate(found["quote"].split("%"))
    )
    raw = secret.encode("utf-8")
    for offset in range(3):
        # the base64 characters that encode only the secret's bytes at this alignment
        chunk = raw[offset:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        if len(chunk) >= 6:
            found[f"base64@{offset}"] = base64.b64encode(chunk).decode("ascii")
            found[f"base64url@{offset}"] = base64.urlsafe_b64encode(chunk).decode("ascii")
    return found


def find_leaks(texts: Iterable[tuple[str, str]], secrets: Mapping[str, str]) -> list[str]:
    """``"<where>: <secret label> as <form>"`` for every secret found in every text."""
    leaks = []
    for where, text in texts:
        for label, secret in secrets.items():
            for name, form in forms(secret).items():
                if form and form in text:
                    leaks.append(f"{where}: {label} as {name}")
    return leaks
