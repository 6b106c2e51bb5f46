"""Settings: where the bot reads the environment.

Two layers: process settings from environment variables (tokens, database, where the config
file is) and the team's TOML config (`GOLIVE_CONFIG`, modelled in ``bot.team_config``):
channels, approvers, thresholds and the target stack. ``${VAR}`` in the TOML is expanded here,
so secrets can stay in the environment (``GoliveConfig.secret_values`` reads the variables its
``secrets`` names, to mask them).
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.team_config import Approvers, Channels, GoliveConfig


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


def config_hash(data: bytes) -> str:
    """The short content hash that names a config file's bytes (logged when the bot starts and
    shown by `/golive status`, so a team can tell which config the running bot loaded)."""
    return hashlib.sha256(data).hexdigest()[:12]


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

