"""The stack being cut over: the ``[target]`` table of the bot's TOML config.

The settings module expands environment variables and then calls
``TargetConfig.model_validate(table)``; steps read it from ``ctx.target``. This module holds the
table itself, what the health step checks (health, login, dashboard), the smoke script, the
migrations and the probes; the deployer is ``runbook.target_deployers``'s, the switches
``runbook.target_switches``'s, the rules every table shares ``runbook.target_fields``'s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from runbook.target_deployers import (
    ComposeDeployerConfig,
    DeployerConfig,
    KubernetesDeployerConfig,
)
from runbook.target_fields import ENV_NAME, SECRET_ENV_NAME, TargetTable, dotted, token_format
from runbook.target_switches import (
    ComposeServiceSwitch,
    HttpSwitch,
    MaintenancePage,
    SwitchConfig,
)


class HealthCheck(TargetTable):
    """The health endpoint and the contract its JSON answer must meet."""

    path: str | None = Field(
        default=None, description="the health endpoint on the target, e.g. /api/health; unset: "
        "the health step fails saying to set it (there is no default path)")
    expect: dict[str, Any] = Field(
        default_factory=dict, description="a subset the JSON answer must contain: nested tables "
        "match key by key (the answer may hold more keys), lists and values must be equal; "
        "empty: only HTTP 200 and JSON are checked")
    version_field: str | None = Field(
        default=None, description="dotted path to the version in the answer (e.g. "
        "'build.release'), compared with the deployed tag; unset: the version is not checked")
    revision_field: str | None = Field(
        default=None, description="dotted path to the commit SHA in the answer (e.g. "
        "'build.commit'), compared with the deployed image's revision label (7-character prefix "
        "match); unset: not checked")
    schema_field: str | None = Field(
        default=None, description="dotted path to the database schema revision in the answer "
        "(e.g. 'checks.schema'), compared with the revision the migrate step reached; unset: "
        "not checked")
    expect_version_from_tag: bool = Field(
        default=True, description="compare version_field with the deployed tag (false: ignore "
        "the version even when version_field is set)")
    expect_revision_from_deploy: bool = Field(
        default=True, description="compare revision_field with the deployed image's revision "
        "label when it is known")
    mismatch_repeats: int = Field(
        default=3, ge=0, description="a contract mismatch that repeats with the identical body "
        "this many times in a row fails the check at once, showing the body (masked, cut), "
        "instead of retrying until the step's deadline; 0: retry until the deadline")

    @field_validator("version_field", "revision_field", "schema_field")
    @classmethod
    def _field_ok(cls, v: str | None) -> str | None:
        return dotted(v)


class AdminLogin(TargetTable):
    """A login the health step tries, whose session the dashboard and read-only checks use."""

    path: str | None = Field(
        default=None, description="the login endpoint (POST), e.g. /admin/login; unset: no "
        "login check, and pages are fetched without a session")
    username: str | None = Field(
        default=None, description="the login's user name (required when path is set)")
    password: SecretStr = Field(
        default=SecretStr(""), description="the login's password; secret, masked everywhere")
    body: Literal["form", "json"] = Field(
        default="form", description="how the credentials are sent: 'form' "
        "(application/x-www-form-urlencoded) or 'json' (a JSON object)")
    username_field: str = Field(
        default="username", description="the body field that carries the user name")
    password_field: str = Field(
        default="password", description="the body field that carries the password")
    extra_fields: dict[str, str] = Field(
        default_factory=dict, description="more fields sent with the credentials, e.g. "
        "{ grant_type = \"password\" }")
    success_status: int = Field(
        default=200, description="the HTTP status of a successful login")
    session: Literal["cookie", "bearer"] = Field(
        default="cookie", description="what the login yields: 'cookie' (the client keeps the "
        "cookies it sets) or 'bearer' (a token in the JSON answer, sent as a header)")
    token_field: str | None = Field(
        default=None, description="with session = 'bearer': dotted path to the token in the "
        "login's JSON answer, e.g. 'access_token' or 'session.token'; the token is a secret")
    token_header: str = Field(
        default="Authorization", description="with session = 'bearer': the header that carries "
        "the token")
    token_format: str | None = Field(
        default=None, description="with session = 'bearer': the header's value, {token} "
        "replaced by the token; unset: 'Bearer {token}' in Authorization, the bare token in "
        "any other header")

    @field_validator("token_field")
    @classmethod
    def _field_ok(cls, v: str | None) -> str | None:
        return dotted(v)

    @field_validator("token_format")
    @classmethod
    def _format_ok(cls, v: str | None) -> str | None:
        return token_format(v)

    @model_validator(mode="after")
    def _complete(self) -> AdminLogin:
        if self.path is not None and not self.username:
            raise ValueError("admin_login.username is required when admin_login.path is set")
        if self.session == "bearer" and not self.token_field:
            raise ValueError("session = 'bearer' needs token_field: the dotted path to the "
                             "token in the login's JSON answer, e.g. 'access_token'")
        return self


class Dashboard(TargetTable):
    """A protected page the health step opens with the login's session."""

    path: str | None = Field(
        default=None, description="the page, e.g. /dashboard; unset: no dashboard check")
    expect_text: str | None = Field(
        default=None, description="text the page must contain; unset: HTTP 200 is enough")


class SmokeScript(TargetTable):
    """The team's smoke script, run on the bot's host against the target."""

    path: Path = Field(description="the script; it runs by its own shebang when it is "
                       "executable and no interpreter is set")
    args: list[str] = Field(
        default_factory=lambda: ["{internal_url}"], description="arguments; placeholders "
        "{public_url}, {internal_url} and {deployed_tag} are filled in (a fact the run lacks "
        "becomes empty)")
    interpreter: list[str] = Field(
        default_factory=list, description="argv prefix that runs the script, e.g. ['bash'] or "
        "['python3']; empty: the script runs by its shebang and must be executable")
    timeout_s: float = Field(default=120.0, description="the script is killed after this long")
    env: dict[str, str] = Field(
        default_factory=dict, repr=False, description="environment for the script (besides "
        "PATH, HOME, LANG, TMPDIR); the same placeholders as args; values of secret-looking "
        "names are masked")


_SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


class Migrations(TargetTable):
    """``[target.migrations]``: how ``migrate`` and the rollback's downgrade run alembic.

    One invocation (``command``) serves ``current``, ``upgrade``, ``downgrade`` and ``heads``,
    in the forward migrate and in the rollback alike."""

    mode: Literal["compose-run", "alembic-api", "kubernetes-job"] = Field(
        "compose-run", description="compose-run: `docker compose run --rm --no-deps <service> "
        "<command> ...` with the deployed image (the team's alembic, driver and migrations); "
        "alembic-api: alembic's Python API in golive against script_location; kubernetes-job: "
        "a Job in the deployer's namespace from the deployed image, with the pod template of "
        "`service`'s release container (its env, envFrom, hostNetwork)")
    service: str | None = Field(
        None, description="compose service whose image runs the migrations (compose-run: "
        "required); kubernetes-job: the Deployment (one of [target.deployer] containers) whose "
        "release container the Job copies (default: the first one)")
    command: list[str] = Field(
        default_factory=lambda: ["alembic"], min_length=1,
        description="the alembic invocation inside the image, used for current, upgrade, "
        "downgrade and heads alike, e.g. [\"python3\", \"-m\", \"alembic\"] for an image "
        "without an `alembic` executable")
    script_location: Path | None = Field(
        None, description="the alembic directory on this machine (alembic-api: required; the "
        "rollback plan reads the downgrade path from it when set)")
    database_url: SecretStr | None = Field(
        None, description="the target database (alembic-api; restore; the watches' default)")
    url_variable: str | None = Field(
        None, description="the environment variable the team's env.py reads its database URL "
        "from, e.g. LL_DB_DSN: compose-run passes database_url in it (`-e NAME`), alembic-api "
        "sets it while alembic runs")
    version_table: str = Field(
        "alembic_version", description="the project's alembic version table (env.py's "
        "version_table); golive reads revisions from it")
    version_table_schema: str | None = Field(
        None, description="its schema, when env.py sets version_table_schema")
    timeout_s: float = Field(300.0, gt=0, description="seconds one alembic call may take")

    @field_validator("url_variable")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not ENV_NAME.fullmatch(v):
            raise ValueError("must be an environment variable name (letters, digits, '_')")
        return v

    @field_validator("version_table", "version_table_schema")
    @classmethod
    def _sql_name(cls, v: str | None) -> str | None:
        if v is not None and not _SQL_NAME.fullmatch(v):
            raise ValueError("must be a plain SQL name (letters, digits, '_', at most 63)")
        return v


class Probe(TargetTable):
    """HTTP probe timeouts and retry settings."""

    timeout_s: float = Field(default=5.0, description="per HTTP request, in seconds")
    backoff_initial_s: float = Field(
        default=0.5, description="the first wait between attempts; it doubles each time")
    backoff_max_s: float = Field(default=8.0, description="the longest wait between attempts")
    jitter: float = Field(default=0.2, ge=0, le=1,
                          description="each wait varies by up to this share, randomly")
    verify_tls: bool = Field(default=True, description="verify the target's TLS certificates")


class TargetConfig(TargetTable):
    name: str = Field(default="", description="the stack's name, as messages show it")
    public_url: str = Field(
        default="", description="what customers reach (through the ingress); unset: the steps, "
        "checks and watches that need it are off or fail saying to set it")
    internal_url: str = Field(
        default="", description="the app directly (checked during maintenance); unset: as "
        "public_url")
    deployer: DeployerConfig | None = Field(
        default=None, description="how releases are deployed ([target.deployer]); unset: the "
        "deploy and the rollback's revert are off")
    health: HealthCheck = Field(default_factory=HealthCheck)
    """[target.health]: the health endpoint and its contract."""
    admin_login: AdminLogin = Field(default_factory=AdminLogin)
    """[target.admin_login]: the login the health step, the dashboard and the read-only checks
    use."""
    dashboard: Dashboard = Field(default_factory=Dashboard)
    """[target.dashboard]: a protected page the health step opens with the login's session."""
    readonly_paths: list[str] = Field(
        default_factory=list, description="pages the rollback's verify step loads (with the "
        "login's session) on the old version; empty: health and login only")
    smoke: SmokeScript | None = None
    """[target.smoke]: the team's smoke script; unset: the smoke step is off."""
    maintenance: SwitchConfig | None = None
    """[target.maintenance]: the switch maintenance on/off flips (kind http, command or
    compose-service); unset: off."""
    traffic: SwitchConfig | None = None
    """When unset, opening traffic turns maintenance off and closing turns it on."""
    maintenance_page: MaintenancePage = Field(default_factory=MaintenancePage)
    """[target.maintenance_page]: what the public URL shows while maintenance is on."""
    migrations: Migrations = Field(default_factory=Migrations)
    """[target.migrations]: how migrate and the rollback's downgrade run alembic."""
    probe: Probe = Field(default_factory=Probe)
    """[target.probe]: timeouts and retry backoff of every HTTP probe."""

    @model_validator(mode="before")
    @classmethod
    def _default_deployer_kind(cls, data: Any) -> Any:
        # `[target.deployer]` without `kind` means compose, the only deployer built so far.
        if isinstance(data, dict) and isinstance(data.get("deployer"), dict):
            data = {**data, "deployer": {"kind": "compose", **data["deployer"]}}
        return data

    @field_validator("public_url", "internal_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        if v and not re.match(r"https?://", v):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _switches_fit_the_deployer(self) -> TargetConfig:
        for label, switch in (("maintenance", self.maintenance), ("traffic", self.traffic)):
            if isinstance(switch, ComposeServiceSwitch) and isinstance(
                    self.deployer, KubernetesDeployerConfig):
                raise ValueError(  # noqa: TRY004 - pydantic reports ValueErrors
                    f"[target.{label}] kind = 'compose-service' needs a compose deployer; "
                    "with kind = 'kubernetes' use an 'http' or 'command' switch")
        return self

    @model_validator(mode="after")
    def _internal_defaults_to_public(self) -> TargetConfig:
        if not self.internal_url and self.public_url:
            object.__setattr__(self, "internal_url", self.public_url)
        return self

    def secrets(self) -> dict[str, str]:
        """Every secret value this config holds (name -> value), for masking output."""
        out: dict[str, str] = {}
        if self.admin_login.password.get_secret_value():
            out["admin_password"] = self.admin_login.password.get_secret_value()
        if self.migrations.database_url is not None:
            out["migrations.database_url"] = self.migrations.database_url.get_secret_value()
        for label, switch in (("maintenance", self.maintenance), ("traffic", self.traffic)):
            if isinstance(switch, HttpSwitch) and switch.token is not None:
                out[f"{label}.token"] = switch.token.get_secret_value()
        if isinstance(self.deployer, KubernetesDeployerConfig) and self.deployer.registry_token:
            out["deployer.registry_token"] = self.deployer.registry_token.get_secret_value()
        if isinstance(self.deployer, ComposeDeployerConfig):
            for key, value in self.deployer.env.items():
                if SECRET_ENV_NAME.search(key) and value:
                    out[f"deployer.env.{key}"] = value
            for key in self.deployer.env_passthrough:  # read when the step runs, as compose is
                value = os.environ.get(key, "")
                if SECRET_ENV_NAME.search(key) and value:
                    out[f"deployer.env_passthrough.{key}"] = value
        if self.smoke is not None:
            for key, value in self.smoke.env.items():
                if SECRET_ENV_NAME.search(key) and value:
                    out[f"smoke.env.{key}"] = value
        return {k: v for k, v in out.items() if v}
