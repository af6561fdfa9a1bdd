"""One redaction function for every exit: pages, chat, records, API responses, logs, errors.

A configured secret can reach an exit by accident in many shapes: a vendor's error body
quoting the token it was sent, an exception naming a webhook URL, the Basic-auth header a
provider echoes back. :class:`Redactor` knows each secret with its *label* (the field it
came from, e.g. ``vercel_token``) and replaces every form of it with ``[redacted:<label>]``:

- the raw value, and its JSON-escaped form (as a JSON body or a stored record carries it);
- URL-encoded, as ``quote`` (with and without ``/`` kept) and ``quote_plus`` write it, with
  upper- and lower-case hex digits;
- base64, in any alignment: ``user:secret`` encoded for HTTP Basic (whatever the user) holds
  the secret's bytes at an offset, so the run of base64 characters that depends only on the
  secret is matched, together with the few characters around it that mix in a neighbour;
- for a secret URL (a Slack webhook, a heartbeat URL), also the URL without its scheme, its
  path and query, and its user-info, since a message may quote just one of them.

This module is pure (no I/O) and a leaf: anything may import it. Secrets shorter than
:data:`MIN_SECRET` characters are not matched (they would redact ordinary words).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import quote, quote_plus, unquote, urlsplit

from pydantic import BaseModel, SecretStr

__all__ = ["MIN_SECRET", "NO_SECRETS", "Redactor", "dsn_password", "secret_field_names"]

#: shorter values are not redacted: a 3-character "secret" would blank out ordinary words
MIN_SECRET: Final = 4
#: base64 runs shorter than this would match by chance in unrelated base64 text
_MIN_BASE64: Final = 8
_B64_CHARS: Final = "A-Za-z0-9+/_-"
_HEX: Final = re.compile(r"%[0-9A-F]{2}")
#: URL schemes whose user and path (database name) are not secrets once a password is set
_DATABASE_SCHEMES: Final = frozenset(
    {"postgres", "postgresql", "postgresql+asyncpg", "mysql", "redis", "rediss", "mongodb"}
)
#: patterns kept for the combinations of needles texts were found to hold
_SUBSETS_KEPT: Final = 64

T = TypeVar("T")


def _url_forms(value: str) -> list[str]:
    """Parts of a secret URL that a message may quote on their own."""
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
        return []
    try:
        parts = urlsplit(value)
    except ValueError:
        return []
    forms = [value.split("://", 1)[1]]
    if parts.password:
        forms.append(unquote(parts.password))
    if parts.scheme.lower() in _DATABASE_SCHEMES and parts.password:
        # a database DSN with a password: that is its secret; its user and database name
        # are not, and are often words such as "watchdog" that every metric name holds
        return [f for f in forms if len(f) >= _MIN_BASE64 and f != "/"]
    # anything else (a webhook, a ping URL, a Sentry DSN whose key is its user): the path
    # and the user may be the secret
    forms.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    if parts.username:
        forms.append(unquote(parts.username))
    return [f for f in forms if len(f) >= _MIN_BASE64 and f != "/"]


def _encoded_forms(value: str) -> set[str]:
    """The raw value and how URL encoding and JSON escaping write it."""
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    forms |= {_HEX.sub(lambda m: m.group(0).lower(), f) for f in list(forms)}
    escaped = json.dumps(value)[1:-1]
    forms |= {escaped, escaped.replace("/", "\\/")}
    return forms


def _base64_cores(value: str) -> set[str]:
    """For each of the three alignments a secret can have inside encoded data, the base64
    characters that encode only the secret's own bytes (standard and URL-safe alphabets)."""
    raw = value.encode("utf-8")
    cores: set[str] = set()
    for start in range(3):
        chunk = raw[start:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        if not chunk:
            continue
        encoded = base64.b64encode(chunk).decode("ascii")
        if len(encoded) >= _MIN_BASE64:
            cores.add(encoded)
            cores.add(base64.urlsafe_b64encode(chunk).decode("ascii"))
    return cores


class Redactor:
    """Replaces every known form of every configured secret with ``[redacted:<label>]``."""

    def __init__(self, secrets: Iterable[tuple[str, str]] = ()) -> None:
        self._secrets: dict[str, str] = {}
        for label, value in secrets:
            if len(value) >= MIN_SECRET and value not in self._secrets:
                self._secrets[value] = label
        literal: dict[str, str] = {}
        cores: dict[str, str] = {}
        for value, label in self._secrets.items():
            for part in (value, *_url_forms(value)):
                for form in _encoded_forms(part):
                    if len(form) >= MIN_SECRET:
                        literal.setdefault(form, label)
            for core in _base64_cores(value):
                cores.setdefault(core, label)
        self._labels: dict[str, str] = {}
        #: (what the match must contain, the alternative's pattern)
        alternatives: list[tuple[str, str]] = []
        for index, (form, label) in enumerate(literal.items()):
            self._labels[f"l{index}"] = label
            alternatives.append((form, f"(?P<l{index}>{re.escape(form)})"))
        for index, (core, label) in enumerate(cores.items()):
            self._labels[f"b{index}"] = label
            # the characters around the core mix the secret's first/last bits with a
            # neighbour's (the Basic-auth user): they go too, with the padding
            pattern = f"[{_B64_CHARS}]{{0,3}}{re.escape(core)}[{_B64_CHARS}]{{0,3}}={{0,2}}"
            alternatives.append((core, f"(?P<b{index}>{pattern})"))
        # longest first: a URL is replaced whole before its path could be
        alternatives.sort(key=lambda item: -len(item[0]))
        self._alternatives = alternatives
        # Every match contains its alternative's needle (a literal form, or a base64 core).
        # Substring search finds the needles a text holds some hundred times faster than the
        # whole alternation runs (which may start a match at every position: a /metrics
        # exposition of megabytes took seconds on the event loop); the text is then matched
        # against only the alternatives it can match, in the same order, so the result is
        # what the whole alternation would give (tests/test_redact.py proves it).
        self._subsets: dict[tuple[int, ...], re.Pattern[str]] = {}

    @classmethod
    def of(cls, *models: object, extra: Iterable[tuple[str, str]] = ()) -> Redactor:
        """A redactor for every ``SecretStr`` inside ``models`` (nested models, lists, dicts),
        each labelled by where it sits: ``<kind>_<field>`` for a model with a ``kind``
        (``vercel_token``), else ``<parent>_<field>`` (``heartbeat_url``)."""
        found: list[tuple[str, str]] = []
        for model in models:
            _walk(model, None, found)
        return cls([*found, *extra])

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __add__(self, other: Redactor) -> Redactor:
        return Redactor([*self.secrets(), *other.secrets()])

    def secrets(self) -> list[tuple[str, str]]:
        """``(label, value)`` for each secret this redactor knows."""
        return [(label, value) for value, label in self._secrets.items()]

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(self._secrets.values())

    def text(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``[redacted:<label>]``."""
        if not self._alternatives or not text:
            return text
        present = tuple(i for i, (needle, _) in enumerate(self._alternatives) if needle in text)
        if not present:
            return text
        pattern = self._subsets.get(present)
        if pattern is None:
            if len(self._subsets) >= _SUBSETS_KEPT:
                self._subsets.clear()
            chosen = "|".join(self._alternatives[i][1] for i in present)
            pattern = self._subsets[present] = re.compile(chosen)
        return pattern.sub(self._replacement, text)

    def _replacement(self, match: re.Match[str]) -> str:
        name = match.lastgroup
        label = self._labels.get(name, "secret") if name else "secret"
        return f"[redacted:{label}]"

    def data(self, value: T) -> T:
        """``value`` with every string inside it redacted: strings, mappings (keys too),
        lists, tuples, sets and dataclasses (rebuilt with ``replace``). Anything else, and
        anything that needed no change, is returned as it is (same object, same type)."""
        if not self._alternatives:
            return value
        return self._data(value)  # type: ignore[no-any-return]

    def _data(self, value: Any) -> Any:
        if isinstance(value, str):
            cleaned = self.text(value)
            # a str subclass (an enum member) is kept unless it really held a secret
            return value if cleaned == value else cleaned
        if isinstance(value, Mapping):
            items = [(self._data(k), self._data(v)) for k, v in value.items()]
            if all(a is k and b is v for (a, b), (k, v) in zip(items, value.items(), strict=True)):
                return value
            return dict(items)
        if isinstance(value, list | tuple | set | frozenset):
            cleaned_items = [self._data(item) for item in value]
            if all(a is b for a, b in zip(cleaned_items, value, strict=True)):
                return value
            if isinstance(value, list):
                return cleaned_items
            if isinstance(value, set | frozenset):
                return type(value)(cleaned_items)
            return tuple(cleaned_items)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {}
            for f in dataclasses.fields(value):
                if not f.init:
                    continue
                current = getattr(value, f.name)
                cleaned = self._data(current)
                if cleaned is not current:
                    changes[f.name] = cleaned
            return dataclasses.replace(value, **changes) if changes else value
        return value

    def error(self, exc: BaseException) -> BaseException:
        """``exc`` with its message redacted in place (type and attributes kept)."""
        if self._alternatives and exc.args:
            exc.args = tuple(self._data(arg) for arg in exc.args)
        return exc


#: redacts nothing: for code that has no configured secrets (the demo, tests)
NO_SECRETS: Final = Redactor()


def _walk(value: object, name: str | None, out: list[tuple[str, str]]) -> None:
    if isinstance(value, SecretStr):
        out.append((name or "secret", value.get_secret_value()))
    elif isinstance(value, BaseModel):
        kind = getattr(value, "kind", None)
        prefix = kind if isinstance(kind, str) else name
        for field in type(value).model_fields:
            _walk(getattr(value, field), f"{prefix}_{field}" if prefix else field, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk(item, name, out)
    elif isinstance(value, Mapping):
        for item in value.values():
            _walk(item, name, out)


def dsn_password(url: str) -> str | None:
    """The password in a database URL (``postgresql://user:pass@host/db`` or a
    ``?password=`` parameter), decoded; None when it has none."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password:
        return unquote(parts.password)
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if key == "password" and value:
            return unquote(value)
    return None


def secret_field_names(model: type[BaseModel]) -> frozenset[str]:
    """The names of every field typed as a secret in ``model`` and every model it can hold
    (through unions, lists and dicts): their inputs must never be echoed in an error."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def holds_secret(annotation: object) -> bool:
        if annotation is SecretStr:
            return True
        return any(holds_secret(arg) for arg in getattr(annotation, "__args__", ()))

    def models_in(annotation: object) -> Iterable[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield annotation
        for arg in getattr(annotation, "__args__", ()):
            yield from models_in(arg)

    def visit(cls: type[BaseModel]) -> None:
        if cls in seen:
            return
        seen.add(cls)
        for field_name, info in cls.model_fields.items():
            if holds_secret(info.annotation):
                names.add(field_name)
                if info.alias:
                    names.add(info.alias)
            for inner in models_in(info.annotation):
                visit(inner)

    visit(model)
    return frozenset(names)
