"""Every pure parser of outside input, fuzzed (hypothesis): Vercel's deployments, alias jobs,
rolling releases and stages; the control API's fields; Retry-After; durations; Supabase's
metrics text. Each either returns a well-formed value or raises its one documented error
(``CallError`` or ``ValueError``, with a message): no other exception, no hang, and nothing
nonsensical accepted (a share outside 0–100 %, a negative duration, a wait in the past).

The sources' response parsing is fuzzed end to end, over HTTP, in
``tests/sources/test_response_fuzz.py``; the trace and the config in their own fuzz files.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import json_documents
from watchdog.actions.base import RollingRelease
from watchdog.actions.vercel import parse_deployment, parse_job, rate_limit_delay
from watchdog.actions.vercel_rolling import parse_rolling_release, parse_stage
from watchdog.core.model import RolloutState
from watchdog.core.rules import MAX_DURATION, parse_duration
from watchdog.daemon import api_input
from watchdog.sources.supabase import busy_fraction, parse_cpu_counters
from watchdog.transport import CallError, Response, parse_retry_after

KEYS = [
    "uid", "id", "name", "url", "createdAt", "created", "readyState", "readySubstate", "target",
    "meta", "isRollbackCandidate", "githubCommitSha", "toDeploymentId", "requestedAt",
    "jobStatus", "rollingRelease", "state", "substate", "currentDeployment", "canaryDeployment",
    "stages", "activeStage", "nextStage", "index", "targetPercentage", "requireApproval",
    "isFinalStage", "duration", "currentCanaryPercentage", "advancementType",
    "queuedDeploymentId", "startedAt", "updatedAt",
]  # fmt: skip
json_values = json_documents(
    KEYS, ["ACTIVE", "COMPLETE", "ABORTED", "active", "PAUSED", "READY", "dpl_1"]
)
objects = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), json_values, max_size=8)


def deployment_like() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": json_values},
        optional={k: json_values for k in ("uid", "createdAt", "readyState", "target", "meta")},
    )


def stage_like() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "index": st.integers(min_value=-5, max_value=20) | json_values,
            "targetPercentage": st.floats(min_value=-10, max_value=200) | json_values,
            "requireApproval": st.booleans() | json_values,
            "isFinalStage": st.booleans() | json_values,
            "duration": st.floats(min_value=-10, max_value=1e4) | json_values,
        },
    )


rolling_bodies = (
    st.fixed_dictionaries(
        {
            "rollingRelease": st.none()
            | json_values
            | st.fixed_dictionaries(
                {"state": st.sampled_from(["ACTIVE", "COMPLETE", "ABORTED"]) | json_values},
                optional={
                    "canaryDeployment": deployment_like() | json_values,
                    "currentDeployment": deployment_like() | json_values,
                    "stages": st.lists(stage_like() | json_values, max_size=4) | json_values,
                    "activeStage": stage_like() | json_values,
                    "nextStage": stage_like() | json_values,
                    "substate": st.sampled_from(["PAUSED"]) | json_values,
                    "currentCanaryPercentage": st.floats(min_value=-10, max_value=200)
                    | json_values,
                    "advancementType": st.sampled_from(["manual-approval", "automatic"])
                    | json_values,
                    "startedAt": json_values,
                    "updatedAt": json_values,
                },
            )
        }
    )
    | objects
)


def outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, Exception | None]:
    """``fn``'s result, or the documented error it raised (anything else propagates)."""
    try:
        return fn(*args, **kwargs), None
    except (ValueError, CallError) as exc:
        return None, exc


def sane_share(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and 0.0 <= value <= 100.0)


class TestVercel:
    @given(objects | deployment_like())
    def test_deployment(self, raw: dict[str, Any]) -> None:
        dep = parse_deployment(raw)
        if dep is not None:
            assert isinstance(dep.id, str)
            assert dep.id
            assert dep.commit is None or isinstance(dep.commit, str)

    @given(json_values)
    def test_alias_job(self, raw: object) -> None:
        job = parse_job(raw)
        if job is not None:
            assert job.status is None or isinstance(job.status, str)
            assert job.to_deployment is None or isinstance(job.to_deployment, str)

    @given(stage_like() | json_values, st.none() | st.integers(min_value=0, max_value=9))
    def test_stage(self, raw: object, position: int | None) -> None:
        stage = parse_stage(raw, position)
        if stage is not None:
            assert isinstance(stage.index, int)
            assert not isinstance(stage.index, bool)
            assert sane_share(stage.percent), stage
            assert stage.duration is None or (math.isfinite(stage.duration) and stage.duration >= 0)

    @settings(max_examples=300)
    @given(rolling_bodies)
    def test_rolling_release(self, body: dict[str, Any]) -> None:
        release, error = outcome(parse_rolling_release, body)
        if error is not None:
            assert isinstance(error, CallError)
            assert str(error)
            assert error.reason == "malformed"
            return
        if release is None:
            assert body.get("rollingRelease") is None
            return
        assert isinstance(release, RollingRelease)
        assert release.state in (RolloutState.ACTIVE, RolloutState.COMPLETE, RolloutState.ABORTED)
        assert sane_share(release.percent), release
        for stage in (*release.stages, release.active, release.next):
            if stage is not None:
                assert sane_share(stage.percent), stage
        release.event("web", datetime(2026, 1, 1, tzinfo=UTC))  # the engine can take it
        assert isinstance(release.share(), str)


class TestVercelRateLimit:
    @given(
        st.fixed_dictionaries(
            {
                "error": st.fixed_dictionaries(
                    {"code": st.just("rate_limited")},
                    optional={
                        "limit": st.fixed_dictionaries(
                            {}, optional={"resetMs": json_values, "reset": json_values}
                        )
                        | json_values
                    },
                )
            }
        )
        | json_values,
        st.none() | st.text(max_size=20),
    )
    def test_rate_limit_delay(self, body: object, retry_after: str | None) -> None:
        """Whatever a 429 says, the wait is a finite number of seconds, 0 or more, or none."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        resp = Response(429, headers, json.dumps(body).encode(), "application/json")
        delay = rate_limit_delay(resp, 1_790_000_000.0)
        assert delay is None or (math.isfinite(delay) and delay >= 0), delay


class TestControlApi:
    @given(json_values)
    def test_text(self, value: object) -> None:
        got, error = outcome(api_input.text, {"reason": value}, "reason")
        if error is not None:
            assert "'reason'" in str(error)
            return
        assert isinstance(got, str)
        assert got.strip()
        assert len(got) <= api_input.MAX_TEXT

    @given(json_values)
    def test_duration(self, value: object) -> None:
        got, error = outcome(api_input.duration, {"duration": value}, "duration", default="30m")
        if error is not None:
            assert "'duration'" in str(error)
            return
        assert timedelta(0) < got <= MAX_DURATION

    @given(json_values)
    def test_flag(self, value: object) -> None:
        got, error = outcome(api_input.flag, {"on": value}, "on")
        if error is not None:
            assert not isinstance(value, bool)
            return
        assert got is value

    @given(st.binary(max_size=60) | json_values.map(lambda v: json.dumps(v).encode()))
    def test_body(self, raw: bytes) -> None:
        class Request:
            async def json(self) -> Any:
                return json.loads(raw.decode("utf-8"))

        def read() -> dict[str, Any]:
            return asyncio.run(api_input.read_body(Request(), {"target", "reason"}))  # type: ignore[arg-type]

        data, error = outcome(read)
        if error is not None:
            assert str(error)
            return
        assert isinstance(data, dict)
        assert set(data) <= {"target", "reason"}


class TestTimes:
    @given(st.text(max_size=40) | st.sampled_from(["120", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"]))
    def test_retry_after(self, value: str) -> None:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        got = parse_retry_after(value, now)
        assert got is None or (math.isfinite(got) and got >= 0), (value, got)

    @given(json_values | st.sampled_from(["30m", "1h30m", "0s", "-1m", "9999999d", "90"]))
    def test_duration(self, value: object) -> None:
        got, error = outcome(parse_duration, value)
        if error is not None:
            assert str(error)
            return
        assert timedelta(0) <= got <= MAX_DURATION


class TestSupabaseText:
    @given(
        st.lists(
            st.sampled_from(
                [
                    'node_cpu_seconds_total{cpu="0",mode="idle"} 1.5\n',
                    'node_cpu_seconds_total{cpu="1",mode="user"} NaN\n',
                    "# TYPE node_cpu_seconds_total counter\n",
                    'node_cpu_seconds_total{cpu="0",mode="idle"} -3\n',
                    "garbage {{{\n",
                ]
            )
            | st.text(max_size=30),
            max_size=8,
        )
    )
    def test_cpu_counters(self, lines: list[str]) -> None:
        """Text in the exposition format gives counters, anything else a ValueError; and
        whatever two scrapes held, the busy share is a fraction or a reason, never more."""
        text = "".join(lines)
        counters, error = outcome(parse_cpu_counters, text)
        if error is not None:
            assert str(error)
            return
        for instance, per_cpu in counters.items():
            assert isinstance(instance, str)
            for key, value in per_cpu.items():
                assert isinstance(key, tuple)
                assert isinstance(value, float)
            busy = busy_fraction(per_cpu, {k: v + 1.0 for k, v in per_cpu.items()})
            assert isinstance(busy, str) or 0.0 <= busy <= 1.0, busy


@pytest.mark.parametrize(
    "body",
    [
        {"rollingRelease": {"state": "ACTIVE", "currentCanaryPercentage": 250}},
        {
            "rollingRelease": {
                "state": "ACTIVE",
                "activeStage": {"index": 0, "targetPercentage": -5},
            }
        },
    ],
)
def test_control_a_share_outside_0_to_100_is_not_taken(body: dict[str, Any]) -> None:
    """The examples the fuzz above is built to catch: a share that cannot be one."""
    release, error = outcome(parse_rolling_release, body)
    if error is not None:
        return
    assert release is not None
    assert sane_share(release.percent)
    assert release.active is None or sane_share(release.active.percent)


def test_control_an_unparsable_scrape_says_why() -> None:
    """Found by the fuzz above: prometheus_client refuses "{" with an empty ValueError."""
    with pytest.raises(ValueError, match="not a metric sample"):
        parse_cpu_counters("{")


@pytest.mark.parametrize("created", [253402300800000.0, -1e20, 1e300])
def test_control_a_time_out_of_range_is_unknown(created: float) -> None:
    """Year 10000 (found by the fuzz above: it crashed the parser) is no time at all."""
    dep = parse_deployment({"id": "dpl_1", "createdAt": created})
    assert dep is not None
    assert dep.created_at is None


@pytest.mark.parametrize("value", [-(10**400), 10**400])
def test_control_a_huge_integer_duration_is_refused_not_a_crash(value: int) -> None:
    """Found by the fuzz above: a huge negative integer overflowed ``isfinite`` (a control
    API hold with it answered 500, not 400)."""
    with pytest.raises(ValueError, match="duration"):
        api_input.duration({"duration": value}, "duration", default="30m")
