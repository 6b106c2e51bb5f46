"""Settings: the only module that reads the environment.

Two layers: process settings from environment variables (tokens, database, where the config
file is) and the team's TOML config (`GOLIVE_CONFIG`): channels, approvers, thresholds and the
target stack. ``${VAR}`` in the TOML is expanded here, so secrets can stay in the environment.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from runbook.break_glass import RollbackSettings
from runbook.canary.config import CanaryConfig
from runbook.checks.config import PreflightConfig
from runbook.target import TargetConfig
from runbook.watches.config import WatchesConfig

SLACK_ID = re.compile(r"^[UWBS][A-Z0-9]{2,}$|^[UWBS]_[A-Z0-9_]+$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$|^[CGD]_[A-Z0-9_]+$")


class ConfigError(Exception):
    """Settings or config are missing or invalid; ``problems`` has one clear line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Env(BaseSettings):
    """Process settings from the environment (never from the TOML)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: SecretStr | None = None
    golive_migrations_database_url: SecretStr | None = None
    golive_runtime_role: str = "golive_runtime"
    golive_door_database_url: SecretStr | None = None
    golive_door_role: str = "golive_door"
    golive_audit_key: SecretStr | None = None
    golive_config: Path | None = None
    golive_log_level: str = "INFO"
    port: int = 3000

    @field_validator("golive_audit_key")
    @classmethod
    def _audit_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return v

    @field_validator("golive_runtime_role", "golive_door_role")
    @classmethod
    def _role_name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", v):
            raise ValueError("must be a lowercase PostgreSQL role name")
        return v

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v if v.endswith("/") else v + "/"


def _slack_ids(values: list[str], pattern: re.Pattern[str], what: str) -> list[str]:
    bad = [v for v in values if not pattern.match(v)]
    if bad:
        raise ValueError(f"not a Slack {what} ID: {', '.join(bad)}")
    return values


class Channels(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cutover: str
    """The cutover channel's ID (C...): commands, approval cards, progress and the summary."""
    incident: list[str] = Field(default_factory=list)
    """Incident channel IDs: rollback, incident, status and help also work there."""

    @field_validator("cutover")
    @classmethod
    def _cutover(cls, v: str) -> str:
        return _slack_ids([v], CHANNEL_ID, "channel")[0]

    @field_validator("incident")
    @classmethod
    def _incident(cls, v: list[str]) -> list[str]:
        return _slack_ids(v, CHANNEL_ID, "channel")


class Approvers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: list[str] = Field(default_factory=list)
    """Slack user IDs (U...) who may approve gated steps (never their own request)."""
    groups: dict[str, str] = Field(default_factory=dict)
    """Approver group name (used by runbook gates) -> Slack user group ID (S...)."""
    expiry_minutes: int = Field(15, ge=1, le=24 * 60)
    """An approval request nobody answered expires after this many minutes."""
    group_cache_seconds: int | None = Field(None, ge=0, le=3600)
    """Ignored, kept so older configs load: membership is looked up fresh on every click."""
    rollback_requires_approval: bool = True
    """A rollback needs a second person's approval (break-glass aside)."""
    deadline_minutes: int | None = Field(None, ge=1, le=24 * 60)
    """An approval request's deadline unless its step sets ``deadline``: a reminder at half
    time, the backup group at the deadline, then it expires; unset: expiry_minutes."""
    decision_deadline_minutes: int = Field(30, ge=1, le=24 * 60)
    """A failed step's decision card's deadline unless its step sets ``deadline``."""
    backup_group: str | None = None
    """Approver group name (a key of groups) asked when a deadline passes unanswered; the
    deadline then extends by half once before the request expires. Unset: it just expires."""

    @field_validator("users")
    @classmethod
    def _users(cls, v: list[str]) -> list[str]:
        return _slack_ids(v, SLACK_ID, "user")

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: dict[str, str]) -> dict[str, str]:
        _slack_ids(list(v.values()), SLACK_ID, "user group")
        return v

    @model_validator(mode="after")
    def _backup_is_a_group(self) -> Approvers:
        if self.backup_group is not None and self.backup_group not in self.groups:
            names = ", ".join(sorted(self.groups)) or "(none configured)"
            raise ValueError(f"backup_group {self.backup_group!r} is not one of the approver "
                             f"groups: {names}")
        return self

    @property
    def deadline(self) -> int:
        """Minutes an approval request waits: deadline_minutes, else expiry_minutes."""
        return self.deadline_minutes or self.expiry_minutes


class Operators(BaseModel):
    """Who may start and finish a run and request steps; absent: the approvers."""

    model_config = ConfigDict(extra="forbid")
    users: list[str] = Field(default_factory=list)
    """Slack user IDs (U...) who may start and finish runs and request steps."""
    groups: list[str] = Field(default_factory=list)
    """Slack user group IDs (S...); membership is looked up at request time."""

    @field_validator("users")
    @classmethod
    def _users(cls, v: list[str]) -> list[str]:
        return _slack_ids(v, SLACK_ID, "user")

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        return _slack_ids(v, SLACK_ID, "user group")


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payout_failure_rate: float = Field(0.15, ge=0, le=1)
    """The payout watch's rollback trigger: a failure rate above this (0.15 = 15 %)."""
    error_rate_5xx: float = Field(0.02, ge=0, le=1)
    """The error budget: the share of requests that may answer 5xx."""
    ledger_violations: int = Field(0, ge=0)
    """Ledger invariant violations tolerated before the ledger watch is a rollback trigger."""
    watch_interval_seconds: int = Field(30, ge=5, le=3600)
    """Seconds between a watch's measurements, unless the watch sets interval_s."""


class GoliveConfig(BaseModel):
    """The team's TOML config (GOLIVE_CONFIG)."""

    model_config = ConfigDict(extra="forbid")
    environment: str = "production"
    """A label on cards and the summary; "production" also requires GOLIVE_AUDIT_KEY."""
    runbook: Path | None = None
    """Your own runbook TOML (relative to this file); unset: the packaged runbook/cutover.toml."""
    channels: Channels
    """``[channels]``: where the bot works."""
    approvers: Approvers
    """``[approvers]``: who approves gated steps, overrides and rollbacks."""
    operators: Operators | None = None
    """``[operators]``: who runs the cutover; unset: the approvers."""
    thresholds: Thresholds = Field(default_factory=Thresholds)
    """``[thresholds]``: the runbook's rollback triggers and the watches' defaults."""
    watches: WatchesConfig = Field(default_factory=WatchesConfig)
    """The post-cutover watches; unset thresholds come from ``thresholds``."""
    target: TargetConfig = Field(default_factory=TargetConfig)
    """``[target]``: the stack being cut over (URLs, deployer, health, switches, migrations)."""
    preflight: PreflightConfig = Field(default_factory=PreflightConfig)
    """``[preflight]``: the pre-cutover checks and how fresh their result must be."""
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    """The real-money canary and its sign-off (runbook 2C)."""
    rollback: RollbackSettings = Field(default_factory=RollbackSettings)
    """``[rollback.break_glass]``: when one person may roll back alone (runbook 3)."""
    secrets: list[str] = Field(default_factory=list)
    """Environment variables whose values are secret wherever ``${VAR}`` puts them."""
    _expanded_secrets: dict[str, str] = PrivateAttr(default_factory=dict)
    _identity: str = PrivateAttr(default="")

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not _VAR_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"not environment variable names: {', '.join(bad)}")
        return v

    def identity(self) -> str:
        """Which config this is: its file and short content hash ("" when not from a file)."""
        return self._identity

    def effective_operators(self) -> Operators:
        """``[operators]``, or the approvers (their users and groups) when it is absent."""
        if self.operators is not None:
            return self.operators
        return Operators(users=list(self.approvers.users),
                         groups=list(self.approvers.groups.values()))

    def secret_values(self) -> dict[str, str]:
        """Every value the config marks secret (SecretStr fields, secret-looking env keys) and
        every value ``${VAR}`` expanded from a variable named in ``secrets``."""
        out = {f"config.{k}": v for k, v in _secret_strs(self).items()}
        out.update(self.target.secrets())
        out.update({f"${{{k}}}": v for k, v in self._expanded_secrets.items()})
        out.update({f"${{{k}}}": os.environ[k] for k in self.secrets if os.environ.get(k)})
        return {k: v for k, v in out.items() if v}


def config_hash(data: bytes) -> str:
    """The short content hash that names a config file's bytes (logged when the bot starts and
    shown by `/golive status`, so a team can tell which config the running bot loaded)."""
    return hashlib.sha256(data).hexdigest()[:12]


def _secret_strs(value: Any, where: str = "") -> dict[str, str]:
    """Every SecretStr value inside a config model, by its dotted path."""
    out: dict[str, str] = {}
    if isinstance(value, SecretStr):
        out[where] = value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            out.update(_secret_strs(getattr(value, name), f"{where}.{name}" if where else name))
    elif isinstance(value, dict):
        for k, v in value.items():
            out.update(_secret_strs(v, f"{where}.{k}"))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            out.update(_secret_strs(v, f"{where}.{i}"))
    return out


@dataclass(frozen=True)
class Settings:
    env: Env
    config: GoliveConfig
    config_path: Path | None

    @property
    def bot_token(self) -> str:
        return self.env.slack_bot_token.get_secret_value() if self.env.slack_bot_token else ""

    @property
    def signing_secret(self) -> str:
        s = self.env.slack_signing_secret
        return s.get_secret_value() if s else ""

    @property
    def database_url(self) -> str:
        return self.env.database_url.get_secret_value() if self.env.database_url else ""

    @property
    def door_database_url(self) -> str:
        """The door's URL, as the door role (the only role that may write an inbox row);
        DATABASE_URL when unset (one-role setups)."""
        v = self.env.golive_door_database_url
        return v.get_secret_value() if v else self.database_url

    @property
    def migrations_database_url(self) -> str:
        """The owner role's URL for migrations; DATABASE_URL when unset (one-role setups)."""
        v = self.env.golive_migrations_database_url
        return v.get_secret_value() if v else self.database_url

    @property
    def audit_key(self) -> bytes:
        """The audit chain's HMAC key; outside production a public development key when
        GOLIVE_AUDIT_KEY is unset (production refuses to start without it)."""
        v = self.env.golive_audit_key
        return (v.get_secret_value() if v else DEV_AUDIT_KEY).encode()

    @property
    def audit_key_is_dev(self) -> bool:
        return self.env.golive_audit_key is None

    def secrets(self) -> dict[str, str]:
        """Every secret value this process knows, by name, for masking outgoing text."""
        out: dict[str, str] = {}
        for name in ("slack_bot_token", "slack_signing_secret", "slack_app_token", "database_url",
                     "golive_door_database_url", "golive_migrations_database_url",
                     "golive_audit_key"):
            v = getattr(self.env, name)
            if v is not None and v.get_secret_value():
                out[name.upper()] = v.get_secret_value()
        out.update(self.config.secret_values())
        return out


_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, environ: dict[str, str], missing: list[str], where: str = "",
            used: dict[str, str] | None = None) -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}``; ``used`` collects each variable expanded."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in environ:
                if used is not None:
                    used[name] = environ[name]
                return environ[name]
            if default is not None:
                return default
            missing.append(f"{where or 'config'}: ${{{name}}} is not set in the environment")
            return ""

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, environ, missing, f"{where}.{k}" if where else k, used)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, missing, where, used) for v in value]
    return value


def _problems(err: ValidationError, prefix: str) -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "is required"
        lines.append(f"{prefix}{loc}: {msg}")
    return lines


def parse_config(text: str, *, source: str = "config", environ: dict[str, str] | None = None
                 ) -> GoliveConfig:
    """Parse and validate the TOML config text, expanding ``${VAR}`` from the environment."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{source}: not valid TOML: {e}"]) from None
    missing: list[str] = []
    used: dict[str, str] = {}
    names = raw.pop("secrets", None)  # variable names, not values: never expanded
    raw = _expand(raw, dict(os.environ if environ is None else environ), missing, used=used)
    if names is not None:
        raw["secrets"] = names
    try:
        cfg = GoliveConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(missing + _problems(e, f"{source}: ")) from None
    if missing:
        raise ConfigError([f"{source}: {m}" for m in missing])
    cfg._expanded_secrets = {n: v for n, v in used.items() if n in set(cfg.secrets)}
    return cfg


DEV_AUDIT_KEY = "golive-public-development-audit-key (not secret, not for production)"
AUDIT_KEY_MISSING = ("GOLIVE_AUDIT_KEY is not set (the audit log's HMAC key, kept outside the "
                     "database; at least 32 characters, e.g. `openssl rand -hex 32`)")


def load_settings(*, require_slack: bool = True, require_db: bool = True,
                  require_config: bool = True, environ: dict[str, str] | None = None,
                  require_audit_key: bool | None = None) -> Settings:
    """Read the environment and the config file; raise ConfigError listing every problem.

    The audit key is required (``require_audit_key``, default: when Slack is) in production.
    """
    environ = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    try:
        given: dict[str, Any] = {k.lower(): v for k, v in environ.items()
                                 if k.lower() in Env.model_fields}
        env = Env(_env_file=None, **given)
    except ValidationError as e:
        raise ConfigError(_problems(e, "env ")) from None
    if require_slack:
        if not env.slack_bot_token:
            problems.append("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)")
        if not env.slack_signing_secret:
            problems.append("SLACK_SIGNING_SECRET is not set (Basic Information -> App Credentials)")
    if require_db and not env.database_url:
        problems.append("DATABASE_URL is not set (postgresql://user@host:5432/dbname)")
    elif env.database_url and not env.database_url.get_secret_value().startswith(
            ("postgresql://", "postgres://")):
        problems.append("DATABASE_URL must start with postgresql://")
    for name in ("golive_migrations_database_url", "golive_door_database_url"):
        other = getattr(env, name)
        if other and not other.get_secret_value().startswith(("postgresql://", "postgres://")):
            problems.append(f"{name.upper()} must start with postgresql://")
    config: GoliveConfig | None = None
    path = env.golive_config
    if path is None and not require_config:
        config = GoliveConfig(channels=Channels(cutover="C_UNSET"), approvers=Approvers())
    elif path is None:
        problems.append("GOLIVE_CONFIG is not set (path to your golive TOML; see golive.example.toml)")
    elif not path.is_file():
        problems.append(f"GOLIVE_CONFIG: no such file: {path}")
    else:
        try:
            data = path.read_bytes()
            config = parse_config(data.decode("utf-8", errors="replace"), source=str(path),
                                  environ=environ)
        except ConfigError as e:
            problems.extend(e.problems)
    if (require_slack if require_audit_key is None else require_audit_key) and config \
            and config.environment == "production" and not env.golive_audit_key:
        problems.append(AUDIT_KEY_MISSING)
    if problems or config is None:
        raise ConfigError(problems)
    if path is not None and config.runbook is not None and not config.runbook.is_absolute():
        config = config.model_copy(update={"runbook": (path.parent / config.runbook).resolve()})
    if path is not None:
        config._identity = f"{path.resolve()} (sha256 {config_hash(data)})"
    return Settings(env=env, config=config, config_path=path)

