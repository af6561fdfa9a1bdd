"""Every source against whatever a provider might answer (hypothesis): a loopback server answers
each poll with a drawn status, content type and body — JSON of the right shape with wrong
types and values, JSON of any shape, text, bytes. The source must never crash (no parser
error caught by the poll's safety net), never report a value outside its signal's domain, and
report each of its signals exactly once per poll; a body it cannot read is a provider error,
never a made-up number.

The server and the sources live on one event loop in a background thread, so hypothesis
drives a plain test and each example is one poll over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sources.conftest import parse_config
from tests.strategies import json_documents, json_scalars
from watchdog.core.model import Sample, Signal
from watchdog.sources import HttpSource, build_source
from watchdog.testing.clock import FakeClock

SECRET = "sk-fuzz-canary-3e1b7c"


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"


class Provider:
    """One loopback server that answers every request with :attr:`answer`."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = self.run(self._start())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.session = aiohttp.ClientSession()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def _answer(self, request: web.Request) -> web.Response:
        a = self.answer
        return web.Response(status=a.status, body=a.body, headers={"Content-Type": a.content_type})

    async def _close(self) -> None:
        await self.session.close()
        await self._runner.cleanup()

    def close(self) -> None:
        self.run(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


def configs(url: str) -> dict[str, dict[str, Any]]:
    one_try = {"attempts": 1, "timeout": 2}
    return {
        "health": {"kind": "health", "url": f"{url}/api/health", **one_try},
        "version": {
            "kind": "version",
            "url": f"{url}/api/version",
            "field": "deployment.id",
            **one_try,
        },
        "detailed": {
            "kind": "detailed",
            "url": f"{url}/api/health/detailed",
            "db_connection": {"path": "components.database.status"},
            "payment_failures": "payments.failures_5m",
            "features": {"checkout": {"path": "components.payments.status"}},
            **one_try,
        },
        "smoke": {
            "kind": "smoke",
            "checks": [
                {"name": "search", "url": f"{url}/api/search"},
                {
                    "name": "create",
                    "method": "POST",
                    "url": f"{url}/api/create",
                    "body": {"dry_run": True},
                    "condition": {"path": "ok", "equals": True},
                },
            ],
            **one_try,
        },
        "sentry": {
            "kind": "sentry",
            "base_url": url,
            "org": "acme",
            "project": ["web"],
            "token": SECRET,
            **one_try,
        },
        "prometheus": {
            "kind": "prometheus",
            "base_url": url,
            "bearer_token": SECRET,
            "queries": [
                {"signal": "error_rate", "query": "sum(rate(errors[5m]))"},
                {"signal": "latency_p95_s", "query": "histogram_quantile(0.95, x)"},
            ],
            **one_try,
        },
        "supabase": {
            "kind": "supabase",
            "base_url": url,
            "project_ref": "abcdefghijklmnop",
            "secret_key": SECRET,
            **one_try,
        },
    }


# -- what providers might answer --------------------------------------------------------

#: words the real answers use, so drawn documents come close to the parsers' shapes
KEYS = [
    "data", "meta", "fields", "units", "status", "result", "resultType", "value", "values",
    "metric", "deployment", "id", "components", "database", "payments", "failures_5m", "ok",
    "failure_rate()", "p95(span.duration)", "p95(transaction.duration)", "count()", "error",
    "detail", "release", "errorType", "warnings", "healthy",
]  # fmt: skip
WORDS = ["ok", "up", "down", "success", "error", "vector", "scalar", "NaN", "1e9"]
scalars = json_scalars(WORDS)
documents = json_documents(KEYS, WORDS)
PROM_TEXT = (
    'node_cpu_seconds_total{cpu="0",mode="idle"} 1234.5\n'
    'node_cpu_seconds_total{cpu="0",mode="user"} 99\n'
)


#: values a field might hold: mostly plausible, sometimes not
numbers = (
    st.floats(min_value=0, max_value=1)
    | st.integers(min_value=0, max_value=10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**70), max_value=2**70)
)
fields = numbers | scalars | documents


def maybe(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> Any:
    """Four times in five ``valid``, else anything: the accepting paths get exercised."""
    return draw(valid) if draw(st.integers(min_value=0, max_value=4)) else draw(fields)


@st.composite
def shaped(draw: st.DrawFn, kind: str) -> Any:
    """A document in the provider's documented shape, with drawn values (and holes)."""
    if kind == "version":
        return {"deployment": {"id": maybe(draw, st.text(min_size=1, max_size=12))}}
    if kind == "detailed":
        status = st.sampled_from(["ok", "healthy", "up", "down", "error"])
        return {
            "components": {
                "database": {"status": maybe(draw, status)},
                "payments": {"status": maybe(draw, status)},
            },
            "payments": {"failures_5m": maybe(draw, st.integers(min_value=0, max_value=9))},
        }
    if kind == "sentry":
        row = {
            "failure_rate()": maybe(draw, st.floats(min_value=0, max_value=1)),
            "p95(span.duration)": maybe(draw, st.floats(min_value=0, max_value=1e5)),
            "count()": maybe(draw, st.integers(min_value=0, max_value=10**6)),
        }
        for key in list(row):
            if not draw(st.integers(min_value=0, max_value=9)):
                del row[key]
        doc: dict[str, Any] = {"data": maybe(draw, st.just([row]))}
        if draw(st.booleans()):
            unit = maybe(draw, st.sampled_from(["millisecond", "second", "nanosecond"]))
            doc["meta"] = {"units": {"p95(span.duration)": unit}}
        return doc
    if kind == "prometheus":
        value = [maybe(draw, numbers), maybe(draw, numbers.map(str))]
        result = [{"metric": {}, "value": maybe(draw, st.just(value))}]
        return {
            "status": maybe(draw, st.just("success")),
            "data": maybe(
                draw,
                st.just(
                    {
                        "resultType": maybe(draw, st.just("vector")),
                        "result": maybe(draw, st.just(result)),
                    }
                ),
            ),
        }
    return None


@st.composite
def supabase_text(draw: st.DrawFn) -> bytes:
    """node_cpu_seconds_total lines in the Prometheus text format, with drawn values."""
    lines = []
    for cpu in range(draw(st.integers(min_value=0, max_value=3))):
        modes = maybe(draw, st.just(["idle", "user", "system"]))
        for mode in modes if isinstance(modes, list) else [str(modes)]:
            value = maybe(draw, st.floats(min_value=0, max_value=1e6))
            lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} {value}\n')
    return "".join(lines).encode()


@st.composite
def supabase_pair(draw: st.DrawFn) -> list[Answer]:
    """Two scrapes a minute apart whose CPU counters mostly move on (the CPU is their rate),
    sometimes backwards (a restart) or not at all."""
    cpus = draw(st.integers(min_value=1, max_value=3))
    first = {
        (cpu, mode): draw(st.floats(min_value=0, max_value=1e6))
        for cpu in range(cpus)
        for mode in ("idle", "user", "system")
    }
    second = {key: value + draw(mostly_up) for key, value in first.items()}

    def text(counters: dict[tuple[int, str], float]) -> bytes:
        return "".join(
            f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} {value}\n'
            for (cpu, mode), value in counters.items()
        ).encode()

    return [Answer(200, text(c), "text/plain; version=0.0.4") for c in (first, second)]


mostly_up = st.floats(min_value=0, max_value=60) | st.floats(min_value=-1e6, max_value=60)


@st.composite
def answers(draw: st.DrawFn, kind: str = "") -> Answer:
    if kind == "supabase" and draw(st.booleans()):
        return Answer(200, draw(supabase_text()), "text/plain; version=0.0.4")
    if kind and kind != "supabase" and draw(st.booleans()):
        body = json.dumps(draw(shaped(kind)), allow_nan=True).encode()
        status = 500 if not draw(st.integers(min_value=0, max_value=4)) else 200
        return Answer(status, body, "application/json")
    kind = draw(st.sampled_from(["json", "json", "json", "text", "bytes", "prom"]))
    if kind == "json":
        doc = draw(documents)
        body = json.dumps(doc, allow_nan=True).encode()
        ctype = "application/json"
    elif kind == "prom":
        lines = draw(
            st.lists(
                st.sampled_from([*PROM_TEXT.splitlines(keepends=True), "# HELP x y\n", "x 1\n"])
                | st.text(max_size=40).map(lambda t: t + "\n"),
                max_size=6,
            )
        )
        body = "".join(lines).encode()
        ctype = "text/plain; version=0.0.4"
    elif kind == "text":
        body = draw(st.text(max_size=80)).encode()
        ctype = draw(st.sampled_from(["text/plain", "application/json", "text/html"]))
    else:
        body = draw(st.binary(max_size=80))
        ctype = draw(st.sampled_from(["application/json", "application/octet-stream"]))
    status = draw(st.sampled_from([200, 200, 200, 200, 201, 204, 400, 401, 404, 429, 500, 503]))
    return Answer(status, body, ctype)


# -- what a sample may say ---------------------------------------------------------------

RATES = {Signal.ERROR_RATE, Signal.DB_CPU}
BINARY = {Signal.HEALTH_UP, Signal.DB_CONNECTION_UP}


def check(sample: Sample) -> None:
    value = sample.value
    if value is None:
        assert sample.unknown is not None, sample
        return
    assert sample.unknown is None, sample
    if sample.signal == Signal.VERSION:
        assert isinstance(value, str), sample
        assert value, sample
        return
    assert isinstance(value, int | float), sample
    assert not isinstance(value, bool), sample
    assert math.isfinite(value), sample
    if sample.signal in RATES:
        assert 0.0 <= value <= 1.0, sample
    elif sample.signal in BINARY or sample.signal.startswith("feature_up."):
        assert value in (0.0, 1.0), sample
    else:
        assert value >= 0, sample
    if sample.requests is not None:
        assert isinstance(sample.requests, int), sample
        assert sample.requests >= 0, sample


def poll(
    provider: Provider, raw: dict[str, Any], *answers: Answer
) -> tuple[list[list[Sample]], HttpSource[Any]]:
    """One source, one poll per answer, the clock a minute on between them (the Supabase
    source's CPU is a rate between two polls)."""

    async def go() -> tuple[list[list[Sample]], HttpSource[Any]]:
        clock = FakeClock()
        source = build_source(
            parse_config(raw),
            target="web",
            session=provider.session,
            clock=clock,
            semaphore=asyncio.Semaphore(4),
        )
        polls = []
        for answer in answers:
            provider.answer = answer
            polls.append(await source.poll())
            clock.advance(60)
        return polls, source

    result: tuple[list[list[Sample]], HttpSource[Any]] = provider.run(go())
    return result


@pytest.mark.parametrize(
    "kind", ["health", "version", "detailed", "smoke", "sentry", "prometheus", "supabase"]
)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_answer_is_read_or_refused_never_a_crash(
    provider: Provider, kind: str, data: st.DataObject
) -> None:
    if kind == "supabase" and data.draw(st.booleans()):
        drawn = data.draw(supabase_pair())
    else:
        drawn = [data.draw(answers(kind)) for _ in range(2)]
    polls, source = poll(provider, configs(provider.url)[kind], *drawn)
    assert source.errors.get("internal", 0) == 0, (kind, drawn, polls)
    for answer, samples in zip(drawn, polls, strict=True):
        signals = [s.signal for s in samples]
        assert sorted(signals) == sorted(source.signals), (kind, answer, signals)
        for sample in samples:
            check(sample)
            assert SECRET not in (sample.detail or ""), sample
        if answer.status >= 400 and kind != "smoke":
            # an error answer is never a measurement (a smoke check's status is the measurement)
            assert all(s.value is None or s.signal == Signal.HEALTH_UP for s in samples), samples
        if kind == "health" and answer.status >= 500:
            # a 5xx from the health endpoint is the app down: 0, not unknown
            assert [s.value for s in samples if s.signal == Signal.HEALTH_UP] == [0.0], samples


def documented(body: object, ctype: str = "application/json") -> Answer:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return Answer(200, raw, ctype)


CPU = (
    'node_cpu_seconds_total{{cpu="0",mode="idle"}} {idle}\n'
    'node_cpu_seconds_total{{cpu="0",mode="user"}} {user}\n'
)
VALID: dict[str, tuple[list[Answer], dict[str, object]]] = {
    "health": ([documented({"status": "ok"})], {"health_up": 1.0}),
    "version": ([documented({"deployment": {"id": "dpl_1"}})], {"version": "dpl_1"}),
    "detailed": (
        [
            documented(
                {
                    "components": {"database": {"status": "ok"}, "payments": {"status": "down"}},
                    "payments": {"failures_5m": 2},
                }
            )
        ],
        {"db_connection_up": 1.0, "payment_failures": 2.0, "feature_up.checkout": 0.0},
    ),
    "smoke": ([documented({"ok": True})], {"feature_up.search": 1.0, "feature_up.create": 1.0}),
    "sentry": (
        [
            documented(
                {
                    "data": [
                        {"failure_rate()": 0.02, "p95(span.duration)": 850.0, "count()": 4000}
                    ],
                    "meta": {"units": {"p95(span.duration)": "millisecond"}},
                }
            )
        ],
        {"error_rate": 0.02, "latency_p95_s": 0.85, "request_count": 4000.0},
    ),
    "prometheus": (
        [
            documented(
                {
                    "status": "success",
                    "data": {
                        "resultType": "vector",
                        "result": [{"metric": {}, "value": [1, "0.25"]}],
                    },
                }
            )
        ],
        {"error_rate": 0.25, "latency_p95_s": 0.25},
    ),
    "supabase": (
        [
            documented(CPU.format(idle=100, user=10), "text/plain; version=0.0.4"),
            documented(CPU.format(idle=130, user=40), "text/plain; version=0.0.4"),
        ],
        {"db_cpu": 0.5},
    ),
}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_control_a_documented_answer_is_read(provider: Provider, kind: str) -> None:
    """The harness reaches the accepting path: a documented answer gives known values."""
    answers_, expected = VALID[kind]
    polls, source = poll(provider, configs(provider.url)[kind], *answers_)
    got = {s.signal: s.value for s in polls[-1] if s.value is not None}
    assert {k: got.get(k) for k in expected} == expected, polls[-1]
    assert source.errors.get("internal", 0) == 0
