"""The trace format of ``watchdog replay`` (DESIGN §7): JSON Lines, strictly parsed.

One JSON object per line, time-ordered: samples
``{"t": 12.5, "target": "web", "signal": "error_rate", "value": 0.031, "requests": 4000}``
(``value`` null = unknown, with an optional ``reason``; an optional ``deployment`` tags a
release-scoped sample) and events (``deploy``, ``ack``, ``hold``, ``release``, ``declare``,
``kill_switch``, ``rollback_result``, ``rollout``). Parsing is strict: a malformed line is a
:class:`TraceError` naming the line and the problem, because a backtest that silently skips
data lies; no input, however broken, raises anything else (fuzzed in the suite).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from watchdog.core.model import (
    AckDecision,
    AckEvent,
    DeclareEvent,
    DeployEvent,
    Event,
    HoldEvent,
    KillSwitchEvent,
    RollbackOutcome,
    RollbackResultEvent,
    RolloutEvent,
    RolloutState,
    Sample,
    Severity,
    Signal,
    UnknownReason,
    from_seconds,
)
from watchdog.core.rules import parse_duration

_NUMBER = (int, float)
EVENTS = (
    "deploy",
    "ack",
    "hold",
    "release",
    "declare",
    "kill_switch",
    "rollback_result",
    "rollout",
)
#: the times a trace may use; outside them is a mistake (epoch milliseconds, say), and date
#: arithmetic on windows and holds stays far from datetime's limits
EARLIEST: Final = datetime(1900, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)
EARLIEST_S: Final = EARLIEST.timestamp()
LATEST_S: Final = LATEST.timestamp()


class TraceError(Exception):
    """A line of the trace that cannot be used; the message names the line and the fix.

    Line 0 means the trace as a whole (missing, a directory, empty)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.message = message

    def __reduce__(self) -> tuple[type[TraceError], tuple[int, str]]:
        # picklable, so a backtest in a process pool reports it instead of hanging the pool
        return (TraceError, (self.line, self.message))


@dataclass(frozen=True, slots=True)
class Parsed:
    item: Sample | Event
    #: how to print ``t`` back: numeric input gives numeric output
    numeric_time: bool


def parse_time(raw: object, line: int) -> tuple[datetime, bool]:
    if isinstance(raw, bool) or raw is None:
        raise TraceError(line, "'t' must be seconds (a number) or an RFC 3339 string")
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise TraceError(line, f"'t' must be a finite number, got {raw!r}")
        if not EARLIEST_S <= raw < LATEST_S:
            hint = "; epoch milliseconds? divide by 1000" if raw >= LATEST_S else ""
            raise TraceError(
                line,
                f"'t' {raw!r} is out of range: seconds since 1970 between "
                f"{EARLIEST_S:.0f} and {LATEST_S:.0f} (years 1900-8999){hint}",
            )
        return from_seconds(float(raw)), True
    if isinstance(raw, str):
        try:
            at = datetime.fromisoformat(raw)
        except ValueError:
            raise TraceError(
                line, f"'t' {raw[:40]!r} is not RFC 3339 (e.g. 2026-08-20T10:00:00Z)"
            ) from None
        if at.tzinfo is None:
            raise TraceError(line, f"'t' {raw!r} has no timezone: add 'Z' or an offset")
        try:
            at = at.astimezone(UTC)
        except (OverflowError, ValueError):
            raise TraceError(line, f"'t' {raw!r} is out of range (years 1900-8999)") from None
        if not EARLIEST <= at < LATEST:
            raise TraceError(line, f"'t' {raw!r} is out of range (years 1900-8999)")
        return at, False
    raise TraceError(line, f"'t' must be a number or an RFC 3339 string, got {type(raw).__name__}")


def _str_field(obj: dict[str, Any], key: str, line: int, *, required: bool = True) -> str:
    raw = obj.get(key)
    if raw is None and not required:
        return ""
    if not isinstance(raw, str) or not raw:
        raise TraceError(line, f"'{key}' must be a non-empty string")
    return raw


decode = orjson.loads


def parse_line(text: str, line: int) -> Parsed | None:
    """Parse one trace line; blank lines are skipped (None)."""
    try:
        obj = decode(text)
    except orjson.JSONDecodeError as exc:
        if not text.strip():
            return None
        raise TraceError(line, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise TraceError(line, "each line must be a JSON object")
    # fast path for the common sample line; anything unusual takes the careful path below
    t: Any = obj.get("t")
    value: Any = obj.get("value")
    target, signal = obj.get("target"), obj.get("signal")
    if (
        type(t) in _NUMBER
        and type(value) in _NUMBER
        and type(target) is str
        and type(signal) is str
        and target
        and signal
        and "event" not in obj
        and "requests" not in obj
        and "deployment" not in obj
        and EARLIEST_S <= t < LATEST_S
        and math.isfinite(value)
    ):
        return Parsed(Sample(target, signal, float(value), from_seconds(t), source="trace"), True)
    if "t" not in obj:
        raise TraceError(line, "missing 't' (seconds or RFC 3339 time)")
    at, numeric = parse_time(obj["t"], line)
    target = _str_field(obj, "target", line)
    if "event" in obj:
        return Parsed(_parse_event(obj, target, at, line), numeric)
    if "signal" not in obj:
        raise TraceError(line, "a line needs either 'signal' and 'value', or 'event'")
    signal = _str_field(obj, "signal", line)
    if "value" not in obj:
        raise TraceError(line, "missing 'value' (use null for unknown)")
    value = obj["value"]
    unknown: UnknownReason | None = None
    if isinstance(value, bool):
        value = 1.0 if value else 0.0
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise TraceError(line, f"'value' must be finite, got {value!r}")
        value = float(value)
    elif value is None:
        reason = obj.get("reason", UnknownReason.NO_DATA.value)
        try:
            unknown = UnknownReason(reason)
        except ValueError:
            allowed = ", ".join(r.value for r in UnknownReason)
            raise TraceError(line, f"'reason' {reason!r} is not one of {allowed}") from None
    elif not isinstance(value, str):
        raise TraceError(line, "'value' must be a number, a string, or null (unknown)")
    elif signal != Signal.VERSION:
        raise TraceError(
            line,
            f"'value' of {signal!r} must be a number or null (only 'version' takes a string)",
        )
    requests = obj.get("requests")
    if requests is not None and (
        isinstance(requests, bool) or not isinstance(requests, int) or requests < 0
    ):
        raise TraceError(line, "'requests' must be a whole number, 0 or more")
    deployment = obj.get("deployment")
    if deployment is not None and (not isinstance(deployment, str) or not deployment):
        raise TraceError(line, "'deployment' (a release-scoped sample's) must be a string")
    sample = Sample(
        target,
        signal,
        value,
        at,
        unknown=unknown,
        requests=requests,
        source="trace",
        deployment=deployment,
    )
    return Parsed(sample, numeric)


def _duration(obj: dict[str, Any], key: str, line: int) -> timedelta:
    try:
        return parse_duration(obj[key])
    except ValueError as exc:
        raise TraceError(line, f"'{key}': {exc}") from None


def _parse_event(obj: dict[str, Any], target: str, at: datetime, line: int) -> Event:
    kind = obj["event"]
    by = obj.get("by", "") if isinstance(obj.get("by"), str) else ""
    if kind == "deploy":
        rollback = obj.get("rollback", False)
        if not isinstance(rollback, bool):
            raise TraceError(line, "'rollback' must be true or false")
        versions = obj.get("versions", obj.get("version", []))
        if isinstance(versions, str):
            versions = [versions]
        if not isinstance(versions, list) or not all(isinstance(v, str) and v for v in versions):
            raise TraceError(line, "'version' must be a string, 'versions' a list of strings")
        return DeployEvent(
            target,
            at,
            _str_field(obj, "deployment", line),
            rollback=rollback,
            versions=tuple(versions),
        )
    if kind == "ack":
        raw = obj.get("decision", AckDecision.FIX_FORWARD.value)
        try:
            decision = AckDecision(raw)
        except ValueError:
            raise TraceError(
                line, f"'decision' {raw!r} must be 'fix_forward' or 'rollback'"
            ) from None
        window = _duration(obj, "window", line) if "window" in obj else None
        return AckEvent(target, at, decision, window=window, by=by)
    if kind == "hold":
        if "until" in obj:
            until, _ = parse_time(obj["until"], line)
        elif "duration" in obj:
            until = at + _duration(obj, "duration", line)  # bounded: cannot overflow
        else:
            raise TraceError(line, "a hold needs 'duration' (e.g. \"30m\") or 'until'")
        return HoldEvent(target, at, until, reason=_str_field(obj, "reason", line, required=False))
    if kind == "release":
        return HoldEvent(target, at, at, reason="released", by=by)
    if kind == "declare":
        raw = obj.get("severity", "P0")
        try:
            severity = Severity(raw)
        except ValueError:
            raise TraceError(line, f"'severity' {raw!r} is not one of P0, P1") from None
        reason = _str_field(obj, "reason", line, required=False)
        return DeclareEvent(target, at, reason=reason, severity=severity, by=by)
    if kind == "kill_switch":
        on = obj.get("on")
        if not isinstance(on, bool):
            raise TraceError(line, "'on' must be true or false")
        return KillSwitchEvent(at, on, target=target)
    if kind == "rollback_result":
        raw = obj.get("outcome")
        try:
            outcome = RollbackOutcome(str(raw))
        except ValueError:
            allowed = ", ".join(o.value for o in RollbackOutcome)
            raise TraceError(line, f"'outcome' {raw!r} must be one of {allowed}") from None
        deployment = obj.get("deployment", "")
        if not isinstance(deployment, str):
            raise TraceError(line, "'deployment' must be a string")
        detail = obj.get("detail", "")
        aborted = obj.get("aborted", "")
        if not isinstance(aborted, str):
            raise TraceError(line, "'aborted' (the canary whose rollout ended) must be a string")
        return RollbackResultEvent(
            target,
            at,
            outcome,
            deployment,
            detail if isinstance(detail, str) else "",
            aborted=aborted,
        )
    if kind == "rollout":
        return _parse_rollout(obj, target, at, line)
    shown = kind if isinstance(kind, str) else type(kind).__name__
    raise TraceError(
        line, f"unknown event {str(shown)[:40]!r}; expected one of {', '.join(EVENTS)}"
    )


def _parse_rollout(obj: dict[str, Any], target: str, at: datetime, line: int) -> RolloutEvent:
    raw = obj.get("state", "active")
    try:
        state = RolloutState(raw)
    except ValueError:
        allowed = ", ".join(s.value for s in RolloutState)
        raise TraceError(line, f"'state' {str(raw)[:40]!r} must be one of {allowed}") from None
    canary = _str_field(obj, "canary", line, required=state is RolloutState.ACTIVE) or None
    base = _str_field(obj, "base", line, required=False) or None
    stage = _whole(obj, "stage", line)
    next_stage = _whole(obj, "next_stage", line)
    percent = obj.get("percent")
    if percent is not None and (
        isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100
    ):
        raise TraceError(line, "'percent' must be a number from 0 to 100")
    approval = obj.get("approval", False)
    if not isinstance(approval, bool):
        raise TraceError(line, "'approval' must be true or false")
    return RolloutEvent(
        target,
        at,
        state,
        canary=canary,
        base=base,
        stage=stage,
        percent=float(percent) if percent is not None else None,
        requires_approval=approval,
        next_stage=next_stage,
    )


def _whole(obj: dict[str, Any], key: str, line: int) -> int | None:
    raw = obj.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 1000:
        raise TraceError(line, f"'{key}' must be a whole number from 0 to 999")
    return raw


def read_trace(lines: Iterable[str | bytes]) -> Iterator[Parsed]:
    """Parse a trace, enforcing time order across lines (the general path, one object per
    line; :func:`replay` has a faster one for the common sample line)."""
    previous: datetime | None = None
    for number, raw in enumerate(lines, start=1):
        parsed = parse_raw(raw, number)
        if parsed is None:
            continue
        at = parsed.item.at
        if previous is not None and at < previous:
            back_in_time(number, at, previous)
        previous = at
        yield parsed


def parse_raw(raw: str | bytes, number: int) -> Parsed | None:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TraceError(number, f"not UTF-8 text (byte {exc.start + 1} of the line)") from None
    return parse_line(raw, number)


def back_in_time(number: int, at: datetime, previous: datetime) -> None:
    raise TraceError(
        number,
        f"'t' goes back in time ({at.isoformat()} after {previous.isoformat()}); "
        "the trace must be time-ordered",
    )
