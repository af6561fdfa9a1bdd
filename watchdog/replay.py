"""``watchdog replay``: the backtest over a recorded JSON Lines trace (DESIGN §7).

Input, one JSON object per line, time-ordered::

    {"t": 12.5, "target": "web", "signal": "error_rate", "value": 0.031}
    {"t": 0, "target": "web", "event": "deploy", "deployment": "dpl_2"}
    {"t": 300, "target": "web", "event": "ack", "decision": "fix_forward"}

Output, one JSON object per line each time a target's action or severity changes::

    {"t": 40.0, "target": "web", "action": "rollback", "severity": "P0", "rule": "system-down",
     "reason": "..."}

Replay never performs actions: it feeds the same :class:`~watchdog.core.engine.Engine` the
daemon uses and prints what it decided. Where the daemon's dispatcher would report back, replay
stands in for an ideal deployer: a rollback the engine commits succeeds at once, unless the
trace itself carries ``rollback_result`` events saying otherwise (which production then
serves is only known if the trace says so, with a ``deploy`` event and ``"rollback": true``).

Parsing is strict: a malformed line stops the replay with the line number and the problem,
because a backtest that silently skips data lies; no input, however broken, ends in a
traceback.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

import orjson

from watchdog.core.engine import Engine
from watchdog.core.model import (
    AckDecision,
    AckEvent,
    Decision,
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
    to_seconds,
)
from watchdog.core.rules import RulePack, parse_duration

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
_EARLIEST_S: Final = EARLIEST.timestamp()
_LATEST_S: Final = LATEST.timestamp()


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
        if not _EARLIEST_S <= raw < _LATEST_S:
            hint = "; epoch milliseconds? divide by 1000" if raw >= _LATEST_S else ""
            raise TraceError(
                line,
                f"'t' {raw!r} is out of range: seconds since 1970 between "
                f"{_EARLIEST_S:.0f} and {_LATEST_S:.0f} (years 1900-8999){hint}",
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


_decode = orjson.loads


def parse_line(text: str, line: int) -> Parsed | None:
    """Parse one trace line; blank lines are skipped (None)."""
    try:
        obj = _decode(text)
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
        and _EARLIEST_S <= t < _LATEST_S
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
        return RollbackResultEvent(
            target, at, outcome, deployment, detail if isinstance(detail, str) else ""
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
        parsed = _parse_raw(raw, number)
        if parsed is None:
            continue
        at = parsed.item.at
        if previous is not None and at < previous:
            _back_in_time(number, at, previous)
        previous = at
        yield parsed


def render(decision: Decision, numeric_time: bool, *, explain: bool = False) -> str:
    t: float | str = (
        to_seconds(decision.at) if numeric_time else decision.at.isoformat().replace("+00:00", "Z")
    )
    out: dict[str, Any] = {
        "t": t,
        "target": decision.target,
        "action": decision.action.value,
        "severity": decision.severity.value if decision.severity else None,
        "rule": decision.rule,
        "reason": decision.reason,
    }
    if decision.deployment is not None:
        out["deployment"] = decision.deployment
    if decision.scope != "production" and decision.action.value == "rollback":
        out["scope"] = decision.scope
    if decision.approve_stage is not None:
        out["approve_stage"] = decision.approve_stage
    if explain:
        out["path"] = list(decision.path)
        out["incident"] = decision.incident
        out["refused_by"] = decision.refused_by
        out["execute_rollback"] = decision.execute_rollback
    return json.dumps(out)


def replay(
    lines: Iterable[str | bytes], pack: RulePack, out: TextIO, *, explain: bool = False
) -> int:
    """Run the trace through a fresh engine, writing changed decisions; returns lines written.

    Raises :class:`TraceError` for the first unusable line; an empty trace is one too.

    The common line (a numeric sample at a numeric time) takes a fast path that builds no
    intermediate objects and reuses the time of the line before when it repeats; everything
    else goes through :func:`parse_line`. ``tests/core/test_fast_paths.py`` proves both
    print the same bytes.
    """
    engine = Engine(pack)
    observe = engine.observe_value
    last: dict[str, tuple[object, object]] = {}
    standing: dict[str, Decision] = {}
    written = 0
    seen = False
    previous: datetime | None = None
    cached_t: float | None = None
    cached_at = EARLIEST
    loads = _decode
    number = 0
    for raw in lines:
        number += 1
        try:
            obj = loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if type(obj) is dict:
            t = obj.get("t")
            value = obj.get("value")
            target = obj.get("target")
            signal = obj.get("signal")
            requests = obj.get("requests")
            if (
                (type(t) is float or type(t) is int)
                and (type(value) is float or type(value) is int)
                and type(target) is str
                and type(signal) is str
                and target
                and signal
                and (requests is None or (type(requests) is int and requests >= 0))
                and "event" not in obj
                and "deployment" not in obj
                and _EARLIEST_S <= t < _LATEST_S
                and math.isfinite(value)
            ):
                if t != cached_t:
                    cached_t, cached_at = t, from_seconds(t)
                at = cached_at
                if previous is not None and at < previous:
                    _back_in_time(number, at, previous)
                previous = at
                seen = True
                decision = observe(target, signal, float(value), at, None, requests)
                if decision is standing.get(target):
                    continue  # the engine reused its standing decision: nothing changed
                standing[target] = decision
                if (
                    last.get(target, _INITIAL) != decision.key
                    or decision.execute_rollback
                    or decision.approve_stage is not None
                ):
                    written += _emit(engine, [decision], last, out, True, explain)
                continue
        parsed = _parse_raw(raw, number)
        if parsed is None:
            continue
        item = parsed.item
        if previous is not None and item.at < previous:
            _back_in_time(number, item.at, previous)
        previous = item.at
        seen = True
        if isinstance(item, Sample):
            decisions: list[Decision] = [engine.observe(item)]
        else:
            decisions = engine.apply(item)
        written += _emit(engine, decisions, last, out, parsed.numeric_time, explain)
    if not seen:
        raise TraceError(0, "the trace is empty: no samples or events")
    return written


def _parse_raw(raw: str | bytes, number: int) -> Parsed | None:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TraceError(number, f"not UTF-8 text (byte {exc.start + 1} of the line)") from None
    return parse_line(raw, number)


def _back_in_time(number: int, at: datetime, previous: datetime) -> None:
    raise TraceError(
        number,
        f"'t' goes back in time ({at.isoformat()} after {previous.isoformat()}); "
        "the trace must be time-ordered",
    )


def _emit(
    engine: Engine,
    decisions: list[Decision],
    last: dict[str, tuple[object, object]],
    out: TextIO,
    numeric_time: bool,
    explain: bool,
) -> int:
    written = 0
    for decision in _with_deployer(engine, decisions):
        key = decision.key
        if last.get(decision.target, _INITIAL) != key or decision.approve_stage is not None:
            last[decision.target] = key
            out.write(render(decision, numeric_time, explain=explain) + "\n")
            written += 1
    return written


def _with_deployer(engine: Engine, decisions: list[Decision]) -> Iterator[Decision]:
    """Stand in for the dispatcher: a committed rollback succeeds at once, and so does an
    approved stage of a rolling release (the trace says what the next stage looks like)."""
    for decision in decisions:
        yield decision
        if decision.approve_stage is not None:
            rollout = engine.targets[decision.target].rollout
            if rollout is not None:
                yield from engine.apply(
                    RolloutEvent(
                        decision.target,
                        decision.at,
                        RolloutState.ACTIVE,
                        canary=rollout.canary,
                        base=rollout.base,
                        stage=decision.approve_stage,
                    )
                )
        if decision.execute_rollback:
            yield from engine.apply(
                RollbackResultEvent(
                    decision.target,
                    decision.at,
                    RollbackOutcome.SUCCEEDED,
                    "",
                    "replay assumes the rollback succeeded",
                )
            )


def replay_file(path: str, pack: RulePack, out: TextIO, *, explain: bool = False) -> int:
    """Replay a trace file (``-`` for standard input). Every problem with the file, as with
    its lines, is a :class:`TraceError` whose message names the file."""
    if path == "-":
        return replay(_lines(os.fdopen(os.dup(0), "rb")), pack, out, explain=explain)
    target = Path(path)
    try:
        info = target.stat()
    except OSError as exc:
        raise TraceError(0, f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise TraceError(0, f"{path} is a directory, not a trace file")
    if not stat.S_ISREG(info.st_mode):
        raise TraceError(0, f"{path} is not a regular file (a FIFO or device?)")
    try:
        handle = target.open("rb")
    except OSError as exc:
        raise TraceError(0, f"cannot read {path}: {exc.strerror}") from None
    return replay(_lines(handle), pack, out, explain=explain)


def _lines(handle: Any) -> Iterator[bytes]:
    with handle:
        yield from handle


_INITIAL = ("monitor", None)
