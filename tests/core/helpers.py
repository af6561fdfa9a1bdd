"""Driving the engine in tests: a deploy at t=0, then samples at given seconds."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from watchdog.core.engine import Engine
from watchdog.core.model import Decision, DeployEvent, Event, Sample, UnknownReason, from_seconds
from watchdog.core.rules import RulePack
from watchdog.yamlfile import default_rules_path, load_rule_pack

DEFAULT_PACK = load_rule_pack(default_rules_path())


def at(t: float) -> object:
    return from_seconds(t)


#: the request count an error-rate sample carries unless a test says otherwise: a busy app,
#: so the default pack's sample-size rules (min_requests, Wilson bound) do not get in the way
BUSY = 5000


def sample(
    t: float,
    signal: str,
    value: float | str | None,
    *,
    target: str = "web",
    unknown: UnknownReason | None = None,
    requests: int | None = -1,
) -> Sample:
    if value is None and unknown is None:
        unknown = UnknownReason.NO_DATA
    if requests == -1:
        requests = BUSY if signal == "error_rate" else None
    return Sample(target, signal, value, from_seconds(t), unknown=unknown, requests=requests)


def engine(pack: RulePack = DEFAULT_PACK, *, deploy_at: float | None = 0.0, **kw: object) -> Engine:
    eng = Engine(pack, **kw)  # type: ignore[arg-type]
    if deploy_at is not None:
        eng.apply(DeployEvent("web", from_seconds(deploy_at), "dpl_2"))
    return eng


def feed(eng: Engine, items: Iterable[Sample | Event]) -> list[Decision]:
    out: list[Decision] = []
    for item in items:
        if isinstance(item, Sample):
            out.append(eng.observe(item))
        else:
            out.extend(eng.apply(item))
    return out


def series(
    signal: str, values: Iterable[float | None], *, start: float = 10, step: float = 10
) -> list[Sample]:
    return [sample(start + i * step, signal, v) for i, v in enumerate(values)]


def last(decisions: list[Decision]) -> Decision:
    return decisions[-1]


def minutes(m: float) -> timedelta:
    return timedelta(minutes=m)
