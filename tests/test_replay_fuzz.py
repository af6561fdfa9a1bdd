"""Replay never crashes on input: whatever the bytes, a trace replays or stops with a
:class:`TraceError` naming a line. Property-based (hypothesis) over raw bytes, over JSON
objects shaped like trace lines, and over the events' fields."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.helpers import DEFAULT_PACK
from watchdog.replay import EVENTS, TraceError, replay

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["2026-08-20T10:00:00Z", "1e9", "999999999d", "5m", "", "P0", "rollback"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = [
    "t",
    "target",
    "signal",
    "value",
    "event",
    "deployment",
    "decision",
    "window",
    "duration",
    "until",
    "reason",
    "severity",
    "on",
    "outcome",
    "requests",
    "rollback",
    "version",
    "versions",
    "by",
    "detail",
]


def _replay(lines: list[bytes] | list[str]) -> None:
    """Replay, or a TraceError with a message; any other exception fails the test."""
    message = "ok"
    try:
        replay(lines, DEFAULT_PACK, io.StringIO())
    except TraceError as exc:
        message = str(exc)
    assert message


class TestReplayFuzz:
    @_SETTINGS
    @given(st.lists(st.binary(max_size=80), max_size=6))
    def test_any_bytes(self, lines: list[bytes]) -> None:
        """Arbitrary bytes: a TraceError at worst, never another exception."""
        _replay(lines)

    @_SETTINGS
    @given(
        st.lists(
            st.dictionaries(st.sampled_from(KEYS), values, max_size=8).map(json.dumps),
            max_size=6,
        )
    )
    def test_trace_shaped_objects(self, lines: list[str]) -> None:
        """Objects with the trace's keys and any values: a TraceError at worst."""
        _replay(lines)

    @_SETTINGS
    @given(
        st.lists(
            st.fixed_dictionaries(
                {
                    "t": st.one_of(st.integers(0, 10**7), scalars),
                    "target": st.sampled_from(["web", "api"]),
                    "event": st.sampled_from(EVENTS),
                },
                optional={k: values for k in KEYS if k not in ("t", "target", "event")},
            ).map(json.dumps),
            max_size=8,
        )
    )
    def test_events_with_any_fields(self, lines: list[str]) -> None:
        """Every event kind with arbitrary fields: replays or stops with a TraceError."""
        _replay(lines)

    def test_deep_nesting(self) -> None:
        """Deeply nested JSON is refused, not a RecursionError."""
        _replay(["[" * 100_000 + "]" * 100_000])
        _replay(
            ['{"t": 0, "target": "web", "signal": "x", "value": ' + "[" * 5000 + "]" * 5000 + "}"]
        )
