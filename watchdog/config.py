"""Daemon settings: a YAML file plus ``WATCHDOG_*`` environment variables (environment wins).

Two planes (STYLE.md): *settings* (this module: where things are, credentials, intervals) and
*rules* (the rule pack: thresholds and flowchart). Unknown keys are errors, so a typo cannot
silently switch a safety feature off.

Secrets are ``SecretStr`` and never logged. Any string in the YAML file may be written as
``${env:NAME}`` or ``${file:/run/secrets/watchdog/name}`` to read it from the environment or a
mounted file at start-up; a missing variable or file stops start-up with the file and line.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from watchdog.actions.alertmanager import AlertmanagerConfig
from watchdog.actions.dispatcher import DispatcherConfig
from watchdog.actions.flags import LaunchDarklyConfig, UnleashConfig
from watchdog.actions.pagerduty import PagerDutyConfig
from watchdog.actions.slack import SlackConfig
from watchdog.actions.vercel import VercelConfig
from watchdog.actions.verify import VerifyConfig
from watchdog.core.model import Window
from watchdog.core.rules import MAX_DURATION, Duration, format_duration
from watchdog.fields import HttpURL, Period, Secret, SecretHttpURL, at_least
from watchdog.redact import Redactor, dsn_password, secret_field_names
from watchdog.sources import SourceConfig
from watchdog.yamlfile import (
    FileError,
    Loc,
    Problem,
    _dotted,
    _line_for,
    problems_from_validation,
    read_text_file,
    read_yaml,
)

_NAME = r"^[a-z0-9][a-z0-9_.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PagerConfig = Annotated[PagerDutyConfig | AlertmanagerConfig, Field(discriminator="kind")]
FlagConfig = Annotated[UnleashConfig | LaunchDarklyConfig, Field(discriminator="kind")]


class TargetConfig(_Strict):
    """One watched app: where its signals come from and how to roll it back."""

    name: str = Field(pattern=_NAME)
    #: ``watchdog drill`` only runs against a target marked staging
    environment: Literal["production", "staging"] = "production"
    sources: list[SourceConfig] = Field(min_length=1)
    #: a URL outside the app that every HTTP source of the target consults before it blames
    #: the app for not answering: if it fails too, the watchdog is blind, never "app down"
    canary_url: HttpURL | None = None
    deployer: VercelConfig | None = None
    verify: VerifyConfig = VerifyConfig()
    flags: list[FlagConfig] = Field(default_factory=list)
    dashboard_url: HttpURL | None = None
    runbook_url: HttpURL | None = None

    @model_validator(mode="after")
    def _unique_sources(self) -> TargetConfig:
        names = [s.source_name(self.name) for s in self.sources]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(
                f"two sources are both named {sorted(dupes)[0]!r}: give one a distinct 'name'"
            )
        return self


#: the chores' period: shorter is a busy loop, not a faster watchdog
MIN_TICK = timedelta(milliseconds=100)
#: the lease's least length (the lease request itself gets half of it)
MIN_TTL = timedelta(seconds=1)


class StoreSettings(_Strict):
    #: sqlite:///path, postgresql://... (several replicas, leader election), or memory://
    url: str = "sqlite:////var/lib/watchdog/watchdog.db"
    #: decisions older than this are pruned (open incidents and in-flight rollbacks never are)
    retention: Annotated[
        Duration,
        at_least(timedelta(hours=1), "the audit trail would be pruned as soon as it is written"),
    ] = timedelta(days=90)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        from watchdog.store.factory import store_from_url

        store_from_url(url)  # raises ValueError naming the accepted schemes; no I/O
        return url


class ServerSettings(_Strict):
    host: str = "0.0.0.0"  # noqa: S104 - a container's port is the point
    port: int = Field(default=8080, ge=0, le=65535)
    #: bearer token for the control API; without one the control API answers 403
    api_token: Secret | None = None
    #: public URL of this watchdog, for links in pages
    public_url: HttpURL | None = None


class SchedulerSettings(_Strict):
    #: polls running at once across all sources
    max_concurrency: int = Field(default=32, ge=1, le=1024)
    #: each source starts at a stable offset within this fraction of its interval
    jitter: float = Field(default=1.0, ge=0.0, le=1.0)
    #: the period of the daemon's chores: time-based decisions (fix-forward windows, resolve
    #: periods) are re-checked, the lease renewed, updates posted and the store pinged this often
    tick: Annotated[Duration, at_least(MIN_TICK, "the chores would run in a busy loop")] = (
        timedelta(seconds=5)
    )
    #: how often the deployer is asked what production serves (also on any version change)
    deploy_poll: Period = timedelta(seconds=30)
    #: in-flight actions get this long to finish on SIGTERM
    shutdown_grace: Duration = timedelta(seconds=20)


class LeaderSettings(_Strict):
    #: lease length; a failover completes within two lease periods. At least 1s, and at least
    #: two chore ticks (the lease is renewed every tick: one late renewal must not lose it)
    ttl: Annotated[
        Duration, at_least(MIN_TTL, "the lease would lapse before it can be renewed")
    ] = timedelta(seconds=15)
    holder: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    #: several replicas run with this config (the Helm chart's HA mode sets it): refuse any
    #: store the replicas do not share, where each would lead and act on its own
    required: bool = False


SHARED_STORES = ("postgresql", "postgres")


class HeartbeatSettings(_Strict):
    """Dead man's switch: a URL pinged each cycle (e.g. healthchecks.io, Cronitor)."""

    url: SecretHttpURL | None = None
    interval: Period = timedelta(seconds=60)


FREEZE_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FREEZE_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class FreezeSettings(_Strict):
    start: datetime
    end: datetime
    reason: str = ""
    targets: list[str] = Field(default_factory=lambda: ["*"])

    @model_validator(mode="after")
    def _ordered(self) -> FreezeSettings:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("freeze start/end need a timezone, e.g. 2026-12-24T00:00:00Z")
        for when in (self.start, self.end):
            # date arithmetic near year 1 or 9999 overflows; no freeze is that far out
            if not FREEZE_EARLIEST <= when < FREEZE_LATEST:
                raise ValueError(
                    f"freeze times must be from {FREEZE_EARLIEST:%Y-%m-%d} to before "
                    f"{FREEZE_LATEST:%Y-%m-%d}, not {when.isoformat()}"
                )
        if self.end <= self.start:
            raise ValueError("freeze end must be after its start")
        if self.end - self.start > MAX_DURATION:
            raise ValueError(
                f"a freeze may last at most {MAX_DURATION.days} days: for longer, turn "
                "automatic actions off with kill_switch"
            )
        return self

    def window(self) -> Window:
        return Window(self.start, self.end, self.reason, tuple(self.targets))


class LogSettings(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class Settings(BaseSettings):
    """Everything ``watchdog run`` needs. See deploy/config.example.yaml for every option."""

    model_config = SettingsConfigDict(
        env_prefix="WATCHDOG_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    #: rule pack file, or a list of them merged into one pack (rule names unique across the
    #: files, ``flowchart:`` set in at most one); the built-in default pack when unset
    rules: Path | list[Path] | None = None
    targets: list[TargetConfig] = Field(min_length=1)
    store: StoreSettings = StoreSettings()
    server: ServerSettings = ServerSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    leader: LeaderSettings = LeaderSettings()
    heartbeat: HeartbeatSettings = HeartbeatSettings()
    log: LogSettings = LogSettings()
    pager: PagerConfig | None = None
    chat: SlackConfig | None = None
    dispatcher: DispatcherConfig = DispatcherConfig()
    #: everything runs, but rollbacks are recorded as "would roll back", never performed
    shadow: bool = False
    #: global "no automatic actions" switch (the control API can flip it at run time)
    kill_switch: bool = False
    freezes: list[FreezeSettings] = Field(default_factory=list)
    #: the daemon's own crashes go to Sentry when set
    sentry_dsn: Secret | None = None

    @field_validator("leader")
    @classmethod
    def _lease_outlives_a_tick(cls, leader: LeaderSettings, info: ValidationInfo) -> Any:
        scheduler = info.data.get("scheduler")
        if isinstance(scheduler, SchedulerSettings) and leader.ttl < 2 * scheduler.tick:
            # renewed once per tick: a lease shorter than two ticks lapses between renewals,
            # and a replica without a lease never pages
            raise ValueError(
                f"leader.ttl ({format_duration(leader.ttl)}) must be at least twice "
                f"scheduler.tick ({format_duration(scheduler.tick)}), the period the lease is "
                "renewed at: raise the ttl or shorten the tick"
            )
        return leader

    @field_validator("leader")
    @classmethod
    def _shared_store_when_required(cls, leader: LeaderSettings, info: ValidationInfo) -> Any:
        store = info.data.get("store")
        if not leader.required or not isinstance(store, StoreSettings):
            return leader
        scheme = store.url.partition("://")[0].lower()
        if scheme not in SHARED_STORES:
            # only the scheme: the rest of a URL may hold credentials
            raise ValueError(
                f"leader.required is true but store.url is a {scheme}:// store, which the "
                "replicas do not share: each would lead, page and roll back on its own. Set "
                "store.url (or WATCHDOG_STORE__URL) to a postgresql:// DSN, or leader.required "
                "to false for a single replica"
            )
        return leader

    @field_validator("rules")
    @classmethod
    def _some_rules(cls, rules: Path | list[Path] | None) -> Path | list[Path] | None:
        if isinstance(rules, list) and not rules:
            raise ValueError("an empty list: name at least one rule pack, or remove the key")
        return rules

    def redactor(self) -> Redactor:
        """The redactor for every secret in these settings: each ``SecretStr`` field and the
        password in the store URL (a plain string, since the rest of it is not secret)."""
        password = dsn_password(self.store.url)
        return Redactor.of(self, extra=[("store_password", password)] if password else [])

    def rule_files(self) -> list[Path]:
        """The configured rule pack files (empty: the built-in default pack)."""
        if self.rules is None:
            return []
        return self.rules if isinstance(self.rules, list) else [self.rules]

    @model_validator(mode="after")
    def _unique_targets(self) -> Settings:
        names = [t.name for t in self.targets]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"target name {name!r} is used twice; names must be unique")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the environment wins over the file (passed as init kwargs)
        return (env_settings, init_settings)


_REF = re.compile(r"^\$\{(env|file):([^}]*)\}$")
#: anything that looks like the start of a reference, to catch one written wrong
_REF_LIKE = re.compile(r"\$\{\s*(env|file)\s*:", re.IGNORECASE)
#: a secret file is a token or a URL: anything bigger is the wrong file
MAX_SECRET_FILE_BYTES = 64 * 1024


def _reference(kind: str, name: str) -> tuple[str | None, str | None]:
    """The value a reference stands for, or why there is none (a sentence with the fix)."""
    if not name.strip():
        if kind == "env":
            return None, "${env:} names no environment variable: write ${env:NAME}"
        return None, "${file:} names no file: write ${file:/run/secrets/watchdog/NAME}"
    if kind == "env":
        if name not in os.environ:
            return None, f"environment variable {name} is not set"
        value = os.environ[name]
        if not value.strip():
            return None, f"environment variable {name} is empty: set it to the value"
        return value, None
    try:
        value = read_text_file(Path(name), max_bytes=MAX_SECRET_FILE_BYTES, what="secret file")
    except FileError as exc:
        return None, f"{name}: {exc.problems[0].message}"
    value = value.rstrip("\r\n")
    if not value.strip():
        return None, f"{name}: secret file is empty: write the value into it"
    return value, None


def resolve_references(
    data: Any, positions: dict[Loc, int], file: str, loc: Loc = ()
) -> tuple[Any, list[Problem]]:
    """Replace ``${env:NAME}`` / ``${file:PATH}`` strings; collect problems instead of failing
    at the first so one ``watchdog check`` run lists them all.

    A reference is the whole value: one written inside other text, with the wrong case or
    unclosed, is an error rather than a literal string a secret field would silently keep.
    An unset or empty variable, a missing, unreadable or empty file are errors too.
    """
    problems: list[Problem] = []
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out[key], sub = resolve_references(value, positions, file, (*loc, key))
            problems += sub
        return out, problems
    if isinstance(data, list):
        items = []
        for index, value in enumerate(data):
            item, sub = resolve_references(value, positions, file, (*loc, index))
            items.append(item)
            problems += sub
        return items, problems
    if isinstance(data, str):
        match = _REF.match(data.strip())
        if match is None and _REF_LIKE.search(data):
            problems.append(
                Problem(
                    file,
                    _line_for(loc, positions),
                    _dotted(loc),
                    "looks like a reference but is not one: a reference is the whole value, "
                    "exactly ${env:NAME} or ${file:/path}",
                )
            )
            return "", problems
        if match:
            value, problem = _reference(*match.groups())
            if problem is not None:
                problems.append(Problem(file, _line_for(loc, positions), _dotted(loc), problem))
                return "", problems
            return value, problems
    return data, problems


def load_settings(path: Path) -> Settings:
    """Read the YAML config, resolve references, apply ``WATCHDOG_*`` overrides, validate.

    Every problem is a :class:`FileError` line naming where the value came from: the file
    and line, or the environment variable that overrode it.
    """
    data, positions = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FileError([Problem(str(path), 1, "", "the config must be a YAML mapping")])
    data, problems = resolve_references(data, positions, str(path))
    if problems:
        raise FileError(problems)
    try:
        # BaseSettings reads the environment in __init__, not in model_validate
        return Settings(**data)
    except SettingsError as exc:
        raise FileError([_env_problem(exc)]) from None
    except ValidationError as exc:
        raise FileError(
            problems_from_validation(
                exc,
                str(path),
                data,
                positions,
                _target_name,
                secret_field_names(Settings),
                source=_env_override,
            )
        ) from None


_ENV_PREFIX = "WATCHDOG_"
_NESTED = "__"


def _env_override(loc: Loc) -> str | None:
    """The ``WATCHDOG_*`` variable that set the value at ``loc`` (or a section above it)."""
    names = {name.upper() for name in os.environ if name.upper().startswith(_ENV_PREFIX)}
    for end in range(len(loc), 0, -1):
        name = _ENV_PREFIX + _NESTED.join(str(part).upper() for part in loc[:end])
        if name in names:
            return name
    return None


def _env_problem(exc: SettingsError) -> Problem:
    """pydantic-settings could not decode a ``WATCHDOG_*`` variable (a list or a section
    must be JSON there): say which variable and what it must hold, never its value."""
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else ""
    variable = _ENV_PREFIX + field.upper() if field else "a WATCHDOG_* variable"
    why = f" ({exc.__cause__})" if isinstance(exc.__cause__, ValueError) else ""
    return Problem(
        f"environment variable {variable}",
        None,
        field,
        f"not valid JSON{why}: a list or a section set from the environment must be JSON, "
        'e.g. \'[{"name": "web", ...}]\'; fix it, or unset it to use the config file',
    )


def _target_name(data: Any, loc: Loc) -> str | None:
    if len(loc) >= 2 and loc[0] == "targets" and isinstance(loc[1], int):
        try:
            return f"target {data['targets'][loc[1]]['name']!r}"
        except (KeyError, IndexError, TypeError):
            return None
    return None
