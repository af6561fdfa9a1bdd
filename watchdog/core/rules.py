"""The rule-pack schema: rules are data, validated strictly, never evaluated as code.

A pack holds the procedure's thresholds as rules plus the flowchart's parameters. Unknown keys
are rejected so that a typo (``treshold``) fails ``watchdog check`` instead of silently
disabling a rule. Reading files and mapping errors to line numbers lives in
``watchdog.rulefile``; this module is pure.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from watchdog.core.model import Severity

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: no duration the watchdog uses (windows, holds, retention) is longer than a year; a bound
#: keeps date arithmetic from overflowing and catches typos such as ``999999999d``
MAX_DURATION: Final = timedelta(days=366)


def parse_duration(value: object) -> timedelta:
    """Accept seconds (int/float) or a Prometheus-style duration such as ``90s``, ``1h30m``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("expected a duration such as '90s', '2m' or '1h', not a boolean")
    elif isinstance(value, int) and value > MAX_DURATION.total_seconds():
        seconds = math.inf  # too long (below); float() of a huge integer would overflow
    elif isinstance(value, int | float):
        # the sign first: isfinite() of a huge negative integer would overflow
        if value < 0 or not math.isfinite(value):
            raise ValueError("a duration must be a finite number of seconds, 0 or more")
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if not text or pos != len(text):
            raise ValueError(
                f"invalid duration {value!r}: use seconds (e.g. 120) "
                "or a duration like '90s', '2m', '1h30m'"
            )
    else:
        shown = repr(value) if not isinstance(value, str) else repr(value[:40] + "...")
        raise ValueError(
            f"invalid duration {shown}: use seconds (e.g. 120) "
            "or a duration like '90s', '2m', '1h30m'"
        )
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        shown = repr(value)
        raise ValueError(
            f"duration {shown if len(shown) <= 40 else shown[:37] + '...'} is too long: "
            "durations may be at most "
            f"{format_duration(MAX_DURATION)} ({MAX_DURATION.days} days)"
        )
    if seconds < 0:
        raise ValueError("a duration must be 0 or more")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Render a duration the way rule packs write them (``2m``, ``1h30m``, ``90s``)."""
    seconds = int(delta.total_seconds())
    if seconds != delta.total_seconds():
        return f"{delta.total_seconds():g}s"
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

Comparison = Literal[">", ">=", "<", "<=", "==", "!="]

COMPARATORS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}

_NAME: Final = r"^[a-z0-9][a-z0-9_.-]*$"
_SIGNAL: Final = r"^[a-z_][a-z0-9_]*(\.[a-z0-9_*-]+)*\*?$|^[a-z_][a-z0-9_]*\.\*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sustain(_Strict):
    """How long a condition must hold before the rule fires.

    Both may be given; then both must be met. Unknown samples neither count nor reset.
    """

    consecutive: int = Field(default=1, ge=1, description="consecutive satisfying samples")
    for_: Duration | None = Field(
        default=None,
        alias="for",
        description="the condition has held for at least this long (first to last sample)",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Trend(_Strict):
    """Getting worse (DESIGN §4 step 3), a statistical claim made honestly.

    The trend signal's samples since the condition started (at most ``window`` back) must
    rise by a Mann-Kendall test at significance ``alpha`` (its false-positive rate on
    stationary noise is controlled, whatever the noise's distribution), **and** the robust
    fitted level now (Sen's line) must exceed the level just before the condition started
    (the median over ``baseline`` before it) by at least ``min_delta`` in the signal's own
    unit. Unknown samples are skipped, never imputed. See ``benchmarks/false_rollbacks.py``
    for the false-positive rate these defaults give.
    """

    signal: str | None = Field(
        default=None, pattern=_SIGNAL, description="defaults to the rule's own signal"
    )
    window: Duration = timedelta(minutes=15)
    baseline: Duration = Field(
        default=timedelta(minutes=10),
        description="how far before the condition started to read the level it is compared to",
    )
    alpha: float = Field(
        default=0.01, gt=0.0, lt=0.5, description="one-sided Mann-Kendall significance level"
    )
    min_samples: int = Field(default=6, ge=4, description="samples since the condition started")
    min_delta: float = Field(
        gt=0.0,
        description="the practical minimum change, in the signal's unit (error_rate 0.01 = +1 pp)",
    )
    #: which way is worse; defaults to the rule's direction, or "up" for another signal
    direction: Literal["up", "down"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "min_change" in data or "min_slope" in data:
                raise ValueError(
                    "trend.min_change (a share of the level) and trend.min_slope are gone: "
                    "set min_delta, the minimum rise in the signal's own unit "
                    "(error_rate: 0.01 = +1 percentage point), and alpha, the trend test's "
                    "significance level"
                )
            if "min_delta" not in data:
                raise ValueError(
                    "a trend needs min_delta: the smallest rise that matters, in the signal's "
                    "own unit (error_rate: 0.01 = +1 percentage point)"
                )
        return data


class Baseline(_Strict):
    """Judge the new deployment against the old one over the same minutes.

    The rule's samples are then release-scoped (tagged with a deployment): a sample of the
    new deployment (a rolling release's canary, or the live one) is compared with the old
    deployment's latest sample taken within ``pairing`` of it. The condition holds when the
    new one is worse by the test *and* its value also passes the rule's own threshold (use
    ``threshold: 0`` to judge on the comparison alone).

    - ``test: proportions`` (rates with request counts): Newcombe's interval on the
      difference excludes zero at ``confidence``, the difference is at least ``min_effect``
      (0.01 = +1 percentage point), and each side has ``min_requests``.
    - ``test: ratio`` (latency): new / old is at least ``min_effect`` (e.g. 1.5) and new minus
      old at least ``min_delta`` in the signal's unit (e.g. 0.5 s).
    """

    test: Literal["proportions", "ratio"]
    min_effect: float = Field(gt=0.0)
    min_delta: float = Field(default=0.0, ge=0.0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    min_requests: int = Field(default=100, ge=1)
    pairing: Duration = timedelta(minutes=2)

    @model_validator(mode="after")
    def _coherent(self) -> Baseline:
        if self.test == "ratio" and self.min_effect <= 1.0:
            raise ValueError("a ratio test's min_effect is a ratio above 1 (e.g. 1.5)")
        if self.test == "proportions" and self.min_effect >= 1.0:
            raise ValueError(
                "a proportions test's min_effect is a difference of rates (0.01 = +1 pp)"
            )
        return self


class Rule(_Strict):
    """One threshold of the procedure, e.g. ``error_rate > 0.05`` for 2 samples → P1 rollback."""

    name: str = Field(pattern=_NAME)
    description: str = ""
    signal: str = Field(pattern=_SIGNAL, description="exact name or a pattern like feature_up.*")
    op: Comparison
    threshold: float
    sustain: Sustain = Sustain()
    severity: Severity
    rollback: bool = Field(
        default=False,
        description='the procedure marks this threshold "(rollback)": flowchart step 2',
    )
    require_trend: bool = Field(
        default=False,
        description="roll back only if also trending worse (matrix: 'if trending up')",
    )
    trend: Trend | None = None
    fix_forward_window: Duration | None = None
    min_requests: int | None = Field(
        default=None,
        ge=1,
        description="a rate from fewer requests is unknown (too_few_requests), never judged",
    )
    confidence: float | None = Field(
        default=None,
        gt=0.5,
        lt=1.0,
        description="judge a rate on its Wilson lower bound at this confidence (e.g. 0.95)",
    )
    predates_lookback: Duration | None = Field(
        default=None,
        description="deploy correlation looks this far before go-live (flowchart default)",
    )
    baseline: Baseline | None = Field(
        default=None,
        description="compare the new deployment's release-scoped samples with the old one's",
    )
    during: Literal["always", "normal", "intensive_watch"] = "always"
    targets: tuple[str, ...] = ("*",)
    labels: dict[str, str] = Field(default_factory=dict)
    runbook: str = ""

    @model_validator(mode="after")
    def _coherent(self) -> Rule:
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be a finite number")
        if self.rollback and self.severity not in (Severity.P0, Severity.P1):
            raise ValueError(
                f"rollback: true needs severity P0 or P1, not {self.severity.value}: "
                "the procedure only rolls back for P0/P1 issues"
            )
        if self.require_trend and self.trend is None:
            raise ValueError("require_trend: true needs a trend: {window: ..} block")
        if self.confidence is not None and self.min_requests is None:
            raise ValueError("confidence (Wilson lower bound) needs min_requests as well")
        if self.baseline is not None and self.op in ("==", "!="):
            raise ValueError("a baseline comparison needs an ordering op (>, >=, <, <=)")
        if not self.targets:
            raise ValueError("targets must list at least one target name or pattern ('*')")
        return self

    @property
    def is_pattern(self) -> bool:
        return "*" in self.signal

    def matches_signal(self, signal: str) -> bool:
        if self.is_pattern:
            return fnmatch.fnmatchcase(signal, self.signal)
        return signal == self.signal

    def applies_to(self, target: str) -> bool:
        return any(fnmatch.fnmatchcase(target, pattern) for pattern in self.targets)

    @property
    def worse_when_higher(self) -> bool:
        """Direction of "getting worse": up for >/>=, down for </<=; == 0 on 1/0 means down."""
        if self.op in (">", ">="):
            return True
        if self.op in ("<", "<="):
            return False
        return self.threshold > 0.5 if self.op == "==" else self.threshold < 0.5

    @property
    def condition(self) -> str:
        """The rule's condition as a human reads it: ``error_rate > 0.05``."""
        return f"{self.signal} {self.op} {self.threshold:g}"

    @property
    def sustain_text(self) -> str:
        parts = []
        if self.sustain.consecutive > 1:
            parts.append(f"{self.sustain.consecutive} consecutive samples")
        if self.sustain.for_ is not None:
            parts.append(f"for {format_duration(self.sustain.for_)}")
        return " and ".join(parts) if parts else "1 sample"


class Flowchart(_Strict):
    """The flowchart's parameters (DESIGN §4–§5), with the procedure's defaults."""

    fix_forward_window: Duration = timedelta(minutes=15)
    resolve_period: Duration = timedelta(minutes=5)
    max_deploy_age: Duration = timedelta(hours=6)
    cooldown: Duration = timedelta(minutes=30)
    rollback_budget: int = Field(default=2, ge=0)
    budget_window: Duration = timedelta(hours=24)
    intensive_watch: Duration = timedelta(hours=2)
    blind_after: Duration = timedelta(minutes=5)
    #: after a rollback completes, how long the signals get to recover before "did not help"
    verify_timeout: Duration = timedelta(minutes=3)
    #: True: a deployment whose go-live time is unknown never rolls back automatically
    require_known_deployment: bool = True
    #: deploy correlation: did the condition hold in this span before go-live? (at least the
    #: rule's own sustain span is always looked at)
    predates_lookback: Duration = timedelta(minutes=2)
    #: a rate without its own request count pairs with the target's request_count sample
    #: taken within this span of it (one poll's samples carry slightly different times)
    request_pairing: Duration = timedelta(seconds=60)
    #: the app serves a version no known deployment carries: a rollback waits this long for
    #: the live deployment to be looked up before it is refused as "deployment unknown"
    deploy_wait: Duration = timedelta(minutes=2)
    #: a rolling release's stage that waits for approval is approved by the watchdog once
    #: its canary has been healthy this long (off unless approve_stages is true)
    approve_stages: bool = False
    approve_after: Duration = timedelta(minutes=10)
    #: deploy correlation: the old deployment's release-scoped samples count as "the same
    #: minutes" when taken within this of the new one's
    baseline_pairing: Duration = timedelta(minutes=2)

    @model_validator(mode="after")
    def _floors(self) -> Flowchart:
        # below these a knob stops meaning what it says: blind on every unknown sample, "did
        # not help" the moment a rollback lands, a budget that never counts anything
        # (a second, not more: the demo and the tests run the pack with time compressed)
        floors = dict.fromkeys(
            (
                "blind_after",
                "verify_timeout",
                "budget_window",
                "max_deploy_age",
                "request_pairing",
                "baseline_pairing",
                "approve_after",
            ),
            timedelta(seconds=1),
        )
        for name, floor in floors.items():
            value: timedelta = getattr(self, name)
            if value < floor:
                raise ValueError(
                    f"flowchart.{name} {format_duration(value)} is too short: use at least "
                    f"{format_duration(floor)}"
                )
        if self.budget_window < self.cooldown:
            raise ValueError(
                f"flowchart.budget_window ({format_duration(self.budget_window)}) is shorter "
                f"than cooldown ({format_duration(self.cooldown)}): the budget would never count"
            )
        return self


class RulePack(_Strict):
    """A whole rule pack: ``version``, ``flowchart`` parameters and ``rules``."""

    version: Literal[1] = 1
    description: str = ""
    flowchart: Flowchart = Flowchart()
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> RulePack:
        if not self.rules:
            raise ValueError("a rule pack needs at least one rule under 'rules:'")
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice; names must be unique")
            seen.add(rule.name)
        return self

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)


def pack_from_data(data: Any) -> RulePack:
    """Validate already-parsed YAML/JSON data as a rule pack (raises pydantic's error)."""
    return RulePack.model_validate(data)
