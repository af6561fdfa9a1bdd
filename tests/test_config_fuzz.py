"""Config and rule-pack parsing never crash, never hang, never accept nonsense.

Property-based (hypothesis), in three shapes: arbitrary text as the YAML file; the shipped
example config and default rule pack with one value (anywhere) replaced by a nasty one;
and arbitrary ``WATCHDOG_*`` environment variables over a valid file. Every example must
end in a validated result or a :class:`FileError` whose problems are sentences naming a
file, within a second or two. Whatever is accepted is checked against the invariants the
daemon relies on (:func:`assert_sane`): a bounded duration is bounded, a URL it calls is
http(s) with a host, no secret is empty, the lease outlives a tick. (Trace parsing for
``watchdog replay`` is fuzzed in ``tests/test_replay_fuzz.py``.)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import example as also
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from watchdog.config import MIN_TICK, MIN_TTL, Settings, load_settings
from watchdog.core.rules import MAX_DURATION, RulePack
from watchdog.fields import check_url
from watchdog.yamlfile import FileError, load_rule_pack

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "deploy" / "config.example.yaml"
DEFAULT_RULES = ROOT / "rules" / "default.yaml"
#: a whole example, bounded: parsing the biggest legal file takes well under this
LIMIT_S = 2.0

_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

nasty_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 0, -1, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            " ",
            "0s",
            "0",
            "-1s",
            "999999999d",
            "367d",
            "1ms",
            "1e309",
            "not a url",
            "ftp://x",
            "https://",
            "https://u:p@host/x",
            "http://host:port/",
            "${env:}",
            "${file:}",
            "${env:WATCHDOG_FUZZ_UNSET}",
            "${file:/dev/null}",
            "x${env:HOME}",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "2026-13-45",
            "P0",
            "*",
            "\x00",
            "é" * 5,
        ]
    ),
)
nasty_values = st.recursive(
    nasty_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def example(workdir: Path) -> Any:
    return _example_data(workdir / "secrets")


@pytest.fixture(scope="module")
def default_pack() -> Any:
    return yaml.safe_load(DEFAULT_RULES.read_text())


def _example_data(secrets: Path) -> Any:
    """The shipped example, its secret files pointed at real (fuzz) files."""
    secrets.mkdir(exist_ok=True)
    for name in (
        "api_token",
        "pagerduty_routing_key",
        "vercel_token",
        "sentry_token",
        "supabase_secret_key",
        "smoke_token",
    ):
        (secrets / name).write_text(f"fuzz-{name}\n")
    (secrets / "heartbeat_url").write_text("https://hc-ping.example.com/fuzz\n")
    (secrets / "slack_webhook_url").write_text("https://hooks.slack.com/services/T/B/fuzz\n")
    text = (
        EXAMPLE.read_text()
        .replace("/run/secrets/watchdog/", f"{secrets}/")
        .replace("/etc/watchdog/rules/default.yaml", str(DEFAULT_RULES))
    )
    return yaml.safe_load(text)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*here, index))


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {k: (_replace(v, rest, value) if k == head else v) for k, v in node.items()}
    return [(_replace(v, rest, value) if i == head else v) for i, v in enumerate(node)]


def _dump(data: Any) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError):
        return repr(data)  # not representable: feed the text as it is


def _load(path: Path, loader: Any) -> Any:
    """Load, returning the result or the FileError; anything else, or too long, fails."""
    started = time.monotonic()
    try:
        result = loader(path)
    except FileError as exc:
        result = exc
    elapsed = time.monotonic() - started
    assert elapsed < LIMIT_S, f"took {elapsed:.1f}s"
    if isinstance(result, FileError):
        assert result.problems, "a FileError with no problem"
        for problem in result.problems:
            line = str(problem)
            assert line.strip()
            assert str(path) in line or line.startswith("environment variable"), line
    return result


def assert_sane(model: object, where: str = "") -> None:
    """What the daemon relies on, for everything a validated config can hold."""
    if isinstance(model, SecretStr):
        assert model.get_secret_value().strip(), f"{where}: an empty secret was accepted"
        if where.endswith(("webhook_url", "heartbeat.url")):
            check_url(model.get_secret_value(), secret=True)
    elif isinstance(model, timedelta):
        assert timedelta(0) <= model <= MAX_DURATION, f"{where}: {model} accepted"
    elif isinstance(model, datetime):
        assert 2000 <= model.year < 2100, f"{where}: {model} accepted"
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            value = getattr(model, name)
            path = f"{where}.{name}" if where else name
            if isinstance(value, str) and name.endswith("url") and path != "store.url":
                check_url(_filled(value))
            assert_sane(value, path)
    elif isinstance(model, list | tuple):
        for index, item in enumerate(model):
            assert_sane(item, f"{where}[{index}]")
    elif isinstance(model, dict):
        for key, item in model.items():
            assert isinstance(key, str), f"{where}: a non-text key {key!r} accepted"
            assert_sane(item, f"{where}.{key}")
    if isinstance(model, Settings):
        assert model.scheduler.tick >= MIN_TICK
        assert model.leader.ttl >= max(MIN_TTL, 2 * model.scheduler.tick)
        for target in model.targets:
            for source in target.sources:
                assert timedelta(0) < source.timeout < source.interval


def _filled(template: str) -> str:
    for placeholder in ("{deployment}", "{incident}", "{target}"):
        template = template.replace(placeholder, "x")
    return template


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("WATCHDOG_")}


#: inputs that once crashed or hung the parser: always tried, whatever hypothesis draws
KNOWN_BAD = [
    "1: x\n",
    "a: " + "[" * 3000,
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
        for p, n in zip("abcdefg", "bcdefgh", strict=True)
    ),
    "scheduler: {tick: " + "9" * 400 + "}\n",
    "targets: [{name: web, sources: [{kind: health, url: https://x.example.com}]}]\n"
    "leader: {ttl: 0s}\nscheduler: {tick: 0s}\n",
    "a: " + "9" * 5000 + "\n",
]


class TestConfigFuzz:
    @_SETTINGS
    @given(st.text(max_size=300))
    @also(KNOWN_BAD[0])
    @also(KNOWN_BAD[1])
    @also(KNOWN_BAD[2])
    @also(KNOWN_BAD[3])
    @also(KNOWN_BAD[4])
    @also(KNOWN_BAD[5])
    def test_any_text(self, workdir: Path, text: str) -> None:
        """Any text as the config file: a config or a FileError naming the file."""
        path = workdir / "any.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with mock.patch.dict(os.environ, _clean_env(), clear=True):
            result = _load(path, load_settings)
        if isinstance(result, Settings):
            assert_sane(result)

    @_SETTINGS
    @given(st.data())
    def test_example_with_one_nasty_value(
        self, workdir: Path, example: Any, data: st.DataObject
    ) -> None:
        """The shipped example with any one value (or section) replaced by a nasty one."""
        original = example
        paths = list(_paths(original))[1:]
        where = data.draw(st.sampled_from(paths), label="path")
        value = data.draw(nasty_values, label="value")
        path = workdir / "mutated.yaml"
        path.write_text(_dump(_replace(original, where, value)), encoding="utf-8")
        with mock.patch.dict(os.environ, _clean_env(), clear=True):
            result = _load(path, load_settings)
        if isinstance(result, Settings):
            assert_sane(result)

    @_SETTINGS
    @given(
        st.dictionaries(
            st.sampled_from(
                [
                    "WATCHDOG_TARGETS",
                    "WATCHDOG_STORE__URL",
                    "WATCHDOG_STORE__RETENTION",
                    "WATCHDOG_LEADER__TTL",
                    "WATCHDOG_SCHEDULER__TICK",
                    "WATCHDOG_SCHEDULER",
                    "WATCHDOG_SERVER__PORT",
                    "WATCHDOG_SERVER__API_TOKEN",
                    "WATCHDOG_PAGER",
                    "WATCHDOG_PAGER__BASE_URL",
                    "WATCHDOG_HEARTBEAT__URL",
                    "WATCHDOG_FREEZES",
                    "WATCHDOG_SHADOW",
                    "WATCHDOG_RULES",
                    "WATCHDOG_NOPE",
                ]
            ),
            st.one_of(
                st.text(max_size=40),
                nasty_values.map(lambda v: json.dumps(v, default=str)),
            ),
            max_size=3,
        )
    )
    def test_environment(self, workdir: Path, example: Any, env: dict[str, str]) -> None:
        """Any WATCHDOG_* variables over the example: never a SettingsError traceback."""
        (workdir / "env.yaml").write_text(_dump(example))
        values = {k: v.replace("\x00", "") for k, v in env.items()}
        with mock.patch.dict(os.environ, {**_clean_env(), **values}, clear=True):
            result = _load(workdir / "env.yaml", load_settings)
        if isinstance(result, Settings):
            assert_sane(result)


class TestRulePackFuzz:
    @_SETTINGS
    @given(st.text(max_size=300))
    @also(KNOWN_BAD[0])
    @also(KNOWN_BAD[1])
    @also(KNOWN_BAD[2])
    @also(KNOWN_BAD[5])
    @also(
        "rules: [{name: r, signal: error_rate, op: '>', threshold: 1, severity: P0, "
        "sustain: {for: " + "9" * 400 + "}}]\n"
    )
    def test_any_text(self, workdir: Path, text: str) -> None:
        """Any text as a rule pack: a pack or a FileError naming the file."""
        path = workdir / "rules-any.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = _load(path, load_rule_pack)
        if isinstance(result, RulePack):
            assert_sane(result)

    @_SETTINGS
    @given(st.data())
    def test_default_pack_with_one_nasty_value(
        self, workdir: Path, default_pack: Any, data: st.DataObject
    ) -> None:
        """The default pack with any one value (or rule) replaced by a nasty one."""
        original = default_pack
        where = data.draw(st.sampled_from(list(_paths(original))[1:]), label="path")
        value = data.draw(nasty_values, label="value")
        path = workdir / "rules-mutated.yaml"
        path.write_text(_dump(_replace(original, where, value)), encoding="utf-8")
        result = _load(path, load_rule_pack)
        if isinstance(result, RulePack):
            assert_sane(result)
            for rule in result.rules:
                assert math.isfinite(rule.threshold)
