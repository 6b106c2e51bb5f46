"""Settings: the only module that reads the environment.

Two layers: process settings from environment variables (tokens, database, where the config
file is) and the team's TOML config (`GOLIVE_CONFIG`): channels, approvers, thresholds and the
target stack. ``${VAR}`` in the TOML is expanded here, so secrets can stay in the environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runbook.target import TargetConfig

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
    golive_config: Path | None = None
    golive_log_level: str = "INFO"
    port: int = 3000

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
    incident: list[str] = Field(default_factory=list)

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
    groups: dict[str, str] = Field(default_factory=dict)
    """Approver group name (used by runbook gates) -> Slack user group ID (S...)."""
    expiry_minutes: int = Field(15, ge=1, le=24 * 60)
    group_cache_seconds: int = Field(60, ge=0, le=3600)
    rollback_requires_approval: bool = True

    @field_validator("users")
    @classmethod
    def _users(cls, v: list[str]) -> list[str]:
        return _slack_ids(v, SLACK_ID, "user")

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: dict[str, str]) -> dict[str, str]:
        _slack_ids(list(v.values()), SLACK_ID, "user group")
        return v


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payout_failure_rate: float = Field(0.15, ge=0, le=1)
    error_rate_5xx: float = Field(0.02, ge=0, le=1)
    ledger_violations: int = Field(0, ge=0)
    watch_interval_seconds: int = Field(30, ge=5, le=3600)


class GoliveConfig(BaseModel):
    """The team's TOML config (GOLIVE_CONFIG)."""

    model_config = ConfigDict(extra="forbid")
    environment: str = "production"
    runbook: Path | None = None
    channels: Channels
    approvers: Approvers
    thresholds: Thresholds = Field(default_factory=Thresholds)
    target: TargetConfig = Field(default_factory=TargetConfig)


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

    def secrets(self) -> dict[str, str]:
        """Every secret value this process knows, by name, for masking outgoing text."""
        out: dict[str, str] = {}
        for name in ("slack_bot_token", "slack_signing_secret", "slack_app_token", "database_url"):
            v = getattr(self.env, name)
            if v is not None and v.get_secret_value():
                out[name.upper()] = v.get_secret_value()
        out.update(self.config.target.secrets())
        return out


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, environ: dict[str, str], missing: list[str], where: str = "") -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            missing.append(f"{where or 'config'}: ${{{name}}} is not set in the environment")
            return ""

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, environ, missing, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, missing, where) for v in value]
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
    raw = _expand(raw, dict(os.environ if environ is None else environ), missing)
    try:
        cfg = GoliveConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(missing + _problems(e, f"{source}: ")) from None
    if missing:
        raise ConfigError([f"{source}: {m}" for m in missing])
    return cfg


def load_settings(*, require_slack: bool = True, require_db: bool = True,
                  require_config: bool = True, environ: dict[str, str] | None = None
                  ) -> Settings:
    """Read the environment and the config file; raise ConfigError listing every problem."""
    environ = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    try:
        env = Env(_env_file=None, **{k.lower(): v for k, v in environ.items()
                                     if k.lower() in Env.model_fields})
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
            config = parse_config(path.read_text(encoding="utf-8"), source=str(path),
                                  environ=environ)
        except ConfigError as e:
            problems.extend(e.problems)
    if problems or config is None:
        raise ConfigError(problems)
    if path is not None and config.runbook is not None and not config.runbook.is_absolute():
        config = config.model_copy(update={"runbook": (path.parent / config.runbook).resolve()})
    return Settings(env=env, config=config, config_path=path)

