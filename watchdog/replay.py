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

Parsing (``watchdog.trace``) is strict: a malformed line stops the replay with the line
number and the problem, because a backtest that silently skips data lies; no input, however
broken, ends in a traceback.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from watchdog.core.engine import Engine
from watchdog.core.model import (
    Decision,
    RollbackOutcome,
    RollbackResultEvent,
    RolloutEvent,
    RolloutState,
    Sample,
    from_seconds,
    to_seconds,
)
from watchdog.core.rules import RulePack
from watchdog.trace import (
    EARLIEST,
    EARLIEST_S,
    EVENTS,
    LATEST_S,
    Parsed,
    TraceError,
    back_in_time,
    decode,
    parse_line,
    parse_raw,
    parse_time,
    read_trace,
)

__all__ = [
    "EVENTS",
    "Parsed",
    "TraceError",
    "parse_line",
    "parse_time",
    "read_trace",
    "render",
    "replay",
    "replay_file",
]


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
    loads = decode
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
                and EARLIEST_S <= t < LATEST_S
                and math.isfinite(value)
            ):
                if t != cached_t:
                    cached_t, cached_at = t, from_seconds(t)
                at = cached_at
                if previous is not None and at < previous:
                    back_in_time(number, at, previous)
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
        parsed = parse_raw(raw, number)
        if parsed is None:
            continue
        item = parsed.item
        if previous is not None and item.at < previous:
            back_in_time(number, item.at, previous)
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
            # a canary-scoped rollback is the abort of its rolling release
            aborted = decision.deployment or "" if decision.scope == "canary" else ""
            yield from engine.apply(
                RollbackResultEvent(
                    decision.target,
                    decision.at,
                    RollbackOutcome.SUCCEEDED,
                    "",
                    "replay assumes the rollback succeeded",
                    aborted=aborted,
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
