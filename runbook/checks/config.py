"""The ``[preflight]`` section of the golive TOML: one sub-section per check.

A check whose section is absent is still run when asked for, and fails with "not configured:
add [preflight.<check>]" so nobody mistakes a missing check for a passing one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Timeouts(_Section):
    """Seconds each check may take before it is reported as timed out."""

    release_freeze: float = Field(30, gt=0, le=3600)
    prod_config: float = Field(30, gt=0, le=3600)
    backup_drill: float = Field(300, gt=0, le=6 * 3600)
    migration_check: float = Field(300, gt=0, le=6 * 3600)
    rc_evidence: float = Field(30, gt=0, le=3600)
    team_scripts: float = Field(120, gt=0, le=3600)


class ReleaseFreezeConfig(_Section):
    repo: str
    """owner/name on GitHub."""
    api_url: str = "https://api.github.com"
    """GitHub Enterprise: https://HOST/api/v3."""
    token: SecretStr | None = None
    api_version: str = "2022-11-28"
    branch: str = "main"
    image: str | None = None
    """The image to deploy, ``{tag}`` replaced by the RC tag (127.0.0.1:5000/paybox/app:{tag})."""
    registry_scheme: Literal["https", "http"] = "https"
    registry_token: SecretStr | None = None
    """Bearer token for the registry's v2 API (anonymous when unset)."""
    max_rate_limit_wait_s: float = Field(20, ge=0, le=600)

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        if v.count("/") != 1 or not all(v.split("/")):
            raise ValueError("must be owner/name")
        return v

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL (GitHub Enterprise: https://HOST/api/v3)")
        return v.rstrip("/")


class EnvRule(_Section):
    name: str
    equals: str | None = None
    set: bool = False
    secret: bool = False
    """Never show the value (only its last 4 characters)."""


class ProdConfigConfig(_Section):
    source: Literal["container", "env_file", "process"]
    container: str | None = None
    docker_host: str | None = None
    env_file: Path | None = None
    psps: list[Literal["stripe", "adyen"]] = Field(default_factory=lambda: ["stripe"])
    stripe_api_url: str | None = None
    """When set, confirm ``livemode: true`` with GET {url}/v1/balance (read-only)."""
    check_database: bool = True
    variables: dict[str, str] = Field(default_factory=dict)
    """Rename the variables the rules read, e.g. TRUSTED_PROXIES = "FORWARDED_ALLOW_IPS"."""
    rules: list[EnvRule] = Field(default_factory=list)


class BackupDrillConfig(_Section):
    database_url: SecretStr
    """The source database (prod), read through an exported snapshot."""
    scratch_url: SecretStr
    """A maintenance database on the server where the scratch copy is created and dropped."""
    snapshot_dir: Path
    snapshot_command: list[str] = Field(default_factory=list)
    """Instead of pg_dump: argv whose ``{path}`` is where the custom-format dump must go."""
    ledger_tables: list[str] = Field(
        default_factory=lambda: ["accounts", "payouts", "transactions"])
    pg_bin_dir: Path | None = None
    keep_snapshots: int = Field(5, ge=1)


class MigrationCheckConfig(_Section):
    """``[preflight.migration_check]``: the migration dry run, which can reach only the copy.

    The team's env.py runs with an environment holding only what the dry run passes (the
    scratch copy's URL in ``url_variable``), never the bot's own environment."""

    mode: Literal["image", "alembic-api"] | None = Field(
        None, description="image: run the configured alembic command inside the release "
        "candidate's image (`docker run --rm`, as the forward migrate does); alembic-api: "
        "golive's alembic on a local script_location, in a child process. Default: image when "
        "`image` is set, else alembic-api")
    image: str | None = Field(
        None, description="the RC's image, `{tag}` replaced by the RC tag, e.g. "
        "registry.example.com/team/app:{tag} (mode image)")
    command: list[str] = Field(
        default_factory=lambda: ["alembic"], min_length=1,
        description="the alembic invocation inside the image (as [target.migrations] command), "
        "e.g. [\"python3\", \"-m\", \"alembic\"]")
    url_variable: str | None = Field(
        None, description="the environment variable the team's env.py reads its database URL "
        "from (e.g. LL_DB_DSN): the dry run sets it to the SCRATCH copy's URL (alembic's "
        "sqlalchemy.url is set to it too)")
    env: dict[str, str] = Field(
        default_factory=dict, description="other variables env.py needs, passed as written "
        "(the bot's own environment is never passed)")
    network: str | None = Field(
        None, description="docker network of the dry-run container (e.g. host, or the one the "
        "scratch database is reachable on); default: Docker's default bridge")
    docker_host: str | None = Field(None, description="DOCKER_HOST; default from the bot's env")
    version_table: str = Field(
        "alembic_version", description="the project's alembic version table, read for current")
    version_table_schema: str | None = Field(None, description="its schema, when not the default")
    script_location: Path | None = Field(
        None, description="the alembic directory on this machine (mode alembic-api: required)")
    database_url: SecretStr | None = Field(
        None, description="the target database, read only (SELECT of the version table); "
        "default: the backup drill's")
    scratch_url: SecretStr | None = Field(
        None, description="a maintenance database on the scratch server, where a copy is "
        "made when the backup drill does not run; default: the backup drill's")
    lint: bool = Field(True, description="lint the pending SQL with squawk (findings warn)")
    squawk: str = Field("squawk", description="the squawk executable")
    squawk_exclude: list[str] = Field(default_factory=list, description="squawk rules to skip")
    pg_version: str | None = Field(None, description="squawk's --pg-version")

    @field_validator("url_variable")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError("must be an environment variable name (letters, digits, '_')")
        return v

    @field_validator("version_table", "version_table_schema")
    @classmethod
    def _sql_name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]{0,62}", v):
            raise ValueError("must be a plain SQL name (letters, digits, '_', at most 63)")
        return v

    @model_validator(mode="after")
    def _runner(self) -> MigrationCheckConfig:
        if self.run_mode == "image" and not self.image:
            raise ValueError("mode 'image' needs image (the RC's image, with {tag})")
        if self.run_mode == "alembic-api" and self.script_location is None:
            raise ValueError("set image (to run the dry run inside the RC's image) or "
                             "script_location (mode alembic-api)")
        return self

    @property
    def run_mode(self) -> str:
        return self.mode or ("image" if self.image else "alembic-api")


class RcEvidenceConfig(_Section):
    dir: Path
    """The release's evidence directory; ``{tag}`` is the RC tag."""
    e2e_junit: list[str] = Field(default_factory=lambda: ["junit/e2e-money-loop.xml"])
    regression_junit: list[str] = Field(default_factory=lambda: ["junit/backend-regression.xml"])
    artifacts_dir: str = "artifacts"
    manifest: str = "SHA256SUMS"
    """Relative to ``artifacts_dir``; sha256sum format."""
    payouts_url: str | None = None
    payouts_method: Literal["GET", "POST", "HEAD", "OPTIONS"] = "POST"
    openapi_url: str | None = None
    payouts_path: str = "/api/payouts"


class TeamScript(_Section):
    name: str
    command: list[str] = Field(min_length=1)
    where: Literal["host", "container"] = "host"
    container: str | None = None
    docker_host: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(60, gt=0, le=3600)
    cwd: Path | None = None


class PreflightConfig(_Section):
    """``[preflight]``: the pre-cutover checks, their timeouts and how fresh they must be."""

    max_age_minutes: int = Field(60, ge=1, le=24 * 60)
    """Gated steps need a green preflight for the run's RC SHA younger than this."""
    timeouts: Timeouts = Field(default_factory=Timeouts)
    release_freeze: ReleaseFreezeConfig | None = None
    prod_config: ProdConfigConfig | None = None
    backup_drill: BackupDrillConfig | None = None
    migration_check: MigrationCheckConfig | None = None
    rc_evidence: RcEvidenceConfig | None = None
    team_scripts: list[TeamScript] = Field(default_factory=list)
