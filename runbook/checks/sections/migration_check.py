"""``[preflight.migration_check]``: the migration dry run on a scratch copy (in the RC's image or
with golive's alembic)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from runbook.checks.sections.base import Section


class MigrationCheckConfig(Section):
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
    pull: Literal["always", "missing", "never"] = Field(
        "always", description="`docker run --pull` for the RC's image: always (a tag pushed "
        "again is fetched again), missing, or never (the image is already on this engine)")
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
