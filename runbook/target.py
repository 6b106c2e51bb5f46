"""The stack being cut over: the ``[target]`` table of the bot's TOML config.

The settings module expands environment variables and then calls
``TargetConfig.model_validate(table)``; steps read it from ``ctx.target``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from runbook.docker_ref import parse_reference

_SECRET_ENV_NAME = re.compile(
    r"(PASSWORD|PASSWD|TOKEN|SECRET|DATABASE_URL|DSN|API_KEY|PRIVATE)", re.IGNORECASE
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceImage(_Model):
    """A compose service whose image tag the deploy step sets."""

    service: str
    repository: str = Field(description="image repository without registry, e.g. paybox/app")
    tag_variable: str = Field(description="env var the compose file reads the tag from")

    @field_validator("repository")
    @classmethod
    def _repo_ok(cls, v: str) -> str:
        ref = parse_reference(v)
        if ref.tag or ref.digest:
            raise ValueError("repository must not carry a tag or digest")
        return v


class ComposeDeployerConfig(_Model):
    kind: Literal["compose"] = "compose"
    compose_file: Path = Path("examples/paybox/compose.yaml")
    project: str = "paybox"
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    """Passed to compose; values whose names look secret are masked in all output."""
    services: list[ServiceImage] = Field(
        default_factory=lambda: [
            ServiceImage(service="app", repository="paybox/app", tag_variable="PAYBOX_APP_TAG")
        ]
    )
    registry: str = "127.0.0.1:5000"
    registry_variable: str | None = Field(
        default=None, description="env var through which the compose file reads the registry"
    )
    docker_host: str | None = Field(default=None, description="DOCKER_HOST; default from env")
    compose_command: list[str] | None = Field(
        default=None, description="override the compose CLI argv prefix, e.g. ['docker','compose']"
    )
    pull_timeout_s: float = 600.0
    up_timeout_s: float = 300.0

    @field_validator("project")
    @classmethod
    def _project_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", v):
            raise ValueError("compose project names are lowercase letters, digits, '_' and '-'")
        return v

    def image(self, svc: ServiceImage, tag: str) -> str:
        return f"{self.registry}/{svc.repository}:{tag}"


class KubernetesDeployerConfig(_Model):
    """Listed so configs can name it; rejected until the kubernetes deployer is built."""

    kind: Literal["kubernetes"]

    @model_validator(mode="after")
    def _not_built(self) -> KubernetesDeployerConfig:
        raise ValueError("deployer kind 'kubernetes' is not available yet; use 'compose'")


DeployerConfig = Annotated[
    ComposeDeployerConfig | KubernetesDeployerConfig, Field(discriminator="kind")
]


class HealthCheck(_Model):
    path: str = "/api/health"
    expect: dict[str, Any] = Field(default_factory=lambda: {"status": "ok", "db": "ok"})
    expect_version_from_tag: bool = True
    """The JSON ``version`` must equal the deployed tag (``facts['deployed_tag']``)."""
    expect_revision_from_deploy: bool = True
    """The JSON ``revision`` must equal the deployed image's revision label when known."""


class AdminLogin(_Model):
    path: str = "/admin/login"
    username: str = "admin"
    password: SecretStr = SecretStr("")
    success_status: int = 200
    username_field: str = "username"
    password_field: str = "password"


class Dashboard(_Model):
    path: str = "/dashboard"
    expect_text: str = "<title>Paybox Dashboard</title>"


class SmokeScript(_Model):
    path: Path = Path("examples/paybox/scripts/go_live_smoke.sh")
    args: list[str] = Field(default_factory=lambda: ["{internal_url}"])
    """Placeholders ``{public_url}``, ``{internal_url}`` and ``{deployed_tag}`` are filled in
    (in ``args`` and ``env`` values; a fact the run lacks becomes empty)."""
    interpreter: list[str] = Field(default_factory=lambda: ["bash"])
    timeout_s: float = 120.0
    env: dict[str, str] = Field(default_factory=dict, repr=False)


class HttpSwitch(_Model):
    """Flip a switch by POSTing JSON (``on_body`` / ``off_body``) to ``url``."""

    kind: Literal["http"] = "http"
    url: str
    on_body: dict[str, Any] = Field(default_factory=lambda: {"enabled": True})
    off_body: dict[str, Any] = Field(default_factory=lambda: {"enabled": False})
    token: SecretStr | None = None
    token_header: str = "X-Ops-Token"
    method: Literal["POST", "PUT"] = "POST"


class CommandSwitch(_Model):
    kind: Literal["command"] = "command"
    on: list[str]
    off: list[str]
    timeout_s: float = 60.0


class ComposeServiceSwitch(_Model):
    """``on`` starts the compose service (e.g. a maintenance page), ``off`` stops it."""

    kind: Literal["compose-service"] = "compose-service"
    service: str


SwitchConfig = Annotated[
    HttpSwitch | CommandSwitch | ComposeServiceSwitch, Field(discriminator="kind")
]


class MaintenancePage(_Model):
    """What the public URL shows while maintenance is on."""

    path: str = "/"
    status: int = 503
    expect_text: str = "Scheduled maintenance"


class Migrations(_Model):
    mode: Literal["compose-run", "alembic-api"] = "compose-run"
    service: str = "app"
    command: list[str] = Field(default_factory=lambda: ["alembic"])
    script_location: Path = Path("examples/paybox/app/migrations")
    database_url: SecretStr | None = None
    timeout_s: float = 300.0


class Probe(_Model):
    """HTTP probe timeouts and retry settings."""

    timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    jitter: float = Field(default=0.2, ge=0, le=1)
    verify_tls: bool = True


class TargetConfig(_Model):
    name: str = "paybox"
    public_url: str = "http://127.0.0.1:18080"
    internal_url: str = "http://127.0.0.1:18081"
    deployer: DeployerConfig = Field(default_factory=ComposeDeployerConfig)
    health: HealthCheck = Field(default_factory=HealthCheck)
    admin_login: AdminLogin = Field(default_factory=AdminLogin)
    dashboard: Dashboard = Field(default_factory=Dashboard)
    readonly_paths: list[str] = Field(default_factory=lambda: ["/dashboard"])
    smoke: SmokeScript | None = None
    maintenance: SwitchConfig | None = None
    traffic: SwitchConfig | None = None
    """When unset, opening traffic turns maintenance off and closing turns it on."""
    maintenance_page: MaintenancePage = Field(default_factory=MaintenancePage)
    migrations: Migrations = Field(default_factory=Migrations)
    probe: Probe = Field(default_factory=Probe)

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
        if not re.match(r"https?://", v):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

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
        if isinstance(self.deployer, ComposeDeployerConfig):
            for key, value in self.deployer.env.items():
                if _SECRET_ENV_NAME.search(key) and value:
                    out[f"deployer.env.{key}"] = value
        if self.smoke is not None:
            for key, value in self.smoke.env.items():
                if _SECRET_ENV_NAME.search(key) and value:
                    out[f"smoke.env.{key}"] = value
        return {k: v for k, v in out.items() if v}


def paybox_target(
    *,
    edge_port: int = 18080,
    app_port: int = 18081,
    project: str = "paybox",
    database_url: str = "",
    ops_token: str = "",
    admin_user: str = "admin",
    admin_password: str = "",
    app_tag: str = "v1",
    compose_file: str | Path = "examples/paybox/compose.yaml",
    registry: str = "127.0.0.1:5000",
    root: str | Path = ".",
    extra_env: dict[str, str] | None = None,
    **overrides: Any,
) -> TargetConfig:
    """A ``TargetConfig`` for the sample paybox stack (tests and ``golive demo``)."""
    root = Path(root)
    env = {
        "PAYBOX_APP_TAG": app_tag,
        "PAYBOX_APP_PORT": str(app_port),
        "PAYBOX_EDGE_PORT": str(edge_port),
        "PAYBOX_DATABASE_URL": database_url,
        "PAYBOX_OPS_TOKEN": ops_token,
        "PAYBOX_ADMIN_USER": admin_user,
        "PAYBOX_ADMIN_PASSWORD": admin_password,
        "PAYBOX_REGISTRY": registry,
        **(extra_env or {}),
    }
    edge = f"http://127.0.0.1:{edge_port}"
    data: dict[str, Any] = {
        "name": "paybox",
        "public_url": edge,
        "internal_url": f"http://127.0.0.1:{app_port}",
        "deployer": {
            "kind": "compose",
            "compose_file": str(root / compose_file),
            "project": project,
            "env": env,
            "registry": registry,
            "registry_variable": "PAYBOX_REGISTRY",
        },
        "admin_login": {"username": admin_user, "password": admin_password},
        "smoke": {
            "path": str(root / "examples/paybox/scripts/go_live_smoke.sh"),
            # Through the edge: the ops token lets the checks past the maintenance page.
            "args": ["{public_url}"],
            "env": {
                "PAYBOX_ADMIN_USER": admin_user,
                "PAYBOX_ADMIN_PASSWORD": admin_password,
                "PAYBOX_SMOKE_BYPASS_TOKEN": ops_token,
                "PAYBOX_EXPECT_VERSION": "{deployed_tag}",
            },
        },
        "maintenance": {"kind": "http", "url": f"{edge}/ops/maintenance", "token": ops_token},
        "migrations": {
            "mode": "compose-run",
            "script_location": str(root / "examples/paybox/app/migrations"),
            "database_url": database_url,
        },
    }
    for key, value in overrides.items():
        same_kind = isinstance(value, dict) and value.get("kind", (data.get(key) or {}).get(
            "kind")) == (data.get(key) or {}).get("kind")
        if isinstance(value, dict) and isinstance(data.get(key), dict) and same_kind:
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return TargetConfig.model_validate(data)
