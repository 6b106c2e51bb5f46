"""The stack being cut over: the ``[target]`` table of the bot's TOML config.

The settings module expands environment variables and then calls
``TargetConfig.model_validate(table)``; steps read it from ``ctx.target``.
"""

from __future__ import annotations

import os
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


def image_ref(registry: str, repository: str, tag: str) -> str:
    """The release image's reference, one rule for every deployer."""
    return f"{registry}/{repository}:{tag}"


class ServiceImage(_Model):
    """A compose service that takes the release image: the deploy step sets its tag and
    recreates it (and only it, ``--no-deps``)."""

    service: str = Field(description="the compose service name, e.g. app")
    repository: str = Field(description="image repository without registry, e.g. team/app")
    tag_variable: str = Field(description="env var the compose file reads the tag from, e.g. "
                              "APP_TAG (`image: ${REGISTRY}/team/app:${APP_TAG}`)")

    @field_validator("repository")
    @classmethod
    def _repo_ok(cls, v: str) -> str:
        ref = parse_reference(v)
        if ref.tag or ref.digest:
            raise ValueError("repository must not carry a tag or digest")
        return v

    @field_validator("tag_variable")
    @classmethod
    def _tag_variable_ok(cls, v: str) -> str:
        return _env_name(v)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(v: str) -> str:
    if not _ENV_NAME.fullmatch(v):
        raise ValueError(f"{v!r} is not an environment variable name")
    return v


class ComposeDeployerConfig(_Model):
    """A Docker Compose v2 project. The deploy (and the rollback's revert) recreates only
    ``services``, with ``--no-deps``, and waits for those to be healthy; every other service
    of the project is left as it runs."""

    kind: Literal["compose"] = Field(default="compose", description="the deployer kind")
    compose_file: Path = Field(
        description="the project's compose file (relative paths from where the bot runs)")
    project: str = Field(description="the compose project name (`docker compose -p`)")
    env: dict[str, str] = Field(
        default_factory=dict, repr=False,
        description="variables passed to every compose call (`${VAR}` in the golive config "
        "expands from the bot's environment at load); values whose names look secret (TOKEN, "
        "PASSWORD, SECRET, DSN, ...) are masked in all output")
    env_passthrough: list[str] = Field(
        default_factory=list,
        description="names of variables taken from the bot's environment when the step runs "
        "and passed to compose as they are (the deploy refuses when one is unset, rather than "
        "let the compose file's default reach the service); secret-looking values are masked")
    services: list[ServiceImage] = Field(
        min_length=1,
        description="the services that take the release image: the only ones the deploy "
        "recreates and waits for")
    allow_recreate: list[str] = Field(
        default_factory=list,
        description="other services the deploy may recreate along when compose says it would "
        "(e.g. one that shares a deployed service's network namespace); '*' allows any. "
        "Default: none, the deploy refuses and names them before anything changes")
    registry: str = Field(description="the registry the images are pulled from, e.g. "
                          "registry.example.com or 127.0.0.1:5000")
    registry_variable: str | None = Field(
        default=None, description="env var through which the compose file reads the registry"
    )
    docker_host: str | None = Field(default=None, description="DOCKER_HOST; default from env")
    compose_command: list[str] | None = Field(
        default=None, description="override the compose CLI argv prefix, e.g. ['docker','compose']"
    )
    pull_timeout_s: float = Field(default=600.0, description="deadline of each image pull")
    up_timeout_s: float = Field(default=300.0, description="deadline of `docker compose up` "
                                "(its --wait-timeout)")

    @field_validator("env_passthrough")
    @classmethod
    def _passthrough_ok(cls, v: list[str]) -> list[str]:
        return [_env_name(name) for name in v]

    @field_validator("project")
    @classmethod
    def _project_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", v):
            raise ValueError("compose project names are lowercase letters, digits, '_' and '-'")
        return v

    def image(self, svc: ServiceImage, tag: str) -> str:
        return image_ref(self.registry, svc.repository, tag)


class ContainerImage(_Model):
    """A container of a Deployment that takes the release image: the deploy sets its image
    (by digest) and waits for the Deployment's rollout."""

    deployment: str = Field(description="the Deployment's name (in the deployer's namespace)")
    container: str = Field(description="the container's name in its pod template")
    repository: str = Field(description="image repository without registry, e.g. team/app")

    @field_validator("repository")
    @classmethod
    def _repo_ok(cls, v: str) -> str:
        ref = parse_reference(v)
        if ref.tag or ref.digest:
            raise ValueError("repository must not carry a tag or digest")
        return v


class KubernetesDeployerConfig(_Model):
    """A namespace of a Kubernetes cluster. The deploy server-side applies the team's
    manifests (field manager ``field_manager``) with the release image, pinned by digest, in
    the ``containers`` named here, then waits until every Deployment of the manifests has
    rolled out. The rollback's revert re-applies them with the images recorded before."""

    kind: Literal["kubernetes"] = Field(description="the deployer kind")
    kubeconfig: Path | None = Field(
        default=None, description="the kubeconfig file the bot uses; unset: $KUBECONFIG or "
        "~/.kube/config, unless in_cluster")
    in_cluster: bool = Field(
        default=False, description="use the pod's service account (the bot runs in the "
        "cluster); kubeconfig and context are then ignored")
    context: str | None = Field(
        default=None, description="the kubeconfig context; unset: its current-context")
    namespace: str = Field(description="the namespace the manifests are applied to")
    manifests: Path = Field(
        description="the team's manifests: a directory of YAML files (*.yaml, *.yml; several "
        "documents a file; applied in file-name order) or one YAML file. Kustomizations are "
        "not rendered: render them to a file first (`kubectl kustomize`)")
    containers: list[ContainerImage] = Field(
        min_length=1, description="the containers that take the release image: "
        "[{ deployment, container, repository }]")
    registry: str = Field(description="the registry the cluster pulls the images from, e.g. "
                          "registry.example.com or 127.0.0.1:5000; the deploy reads each tag's "
                          "digest and revision label from it")
    registry_scheme: Literal["https", "http"] = Field(
        default="https", description="how golive reaches the registry's v2 API (http for a "
        "plain local registry such as 127.0.0.1:5000)")
    registry_token: SecretStr | None = Field(
        default=None, description="bearer token for the registry's v2 API; secret, masked")
    field_manager: str = Field(
        default="golive", description="the server-side apply field manager")
    rollout_timeout_s: float = Field(
        default=300.0, gt=0, description="how long the deploy waits for every Deployment's "
        "rollout to complete (within the step's own timeout)")
    poll_interval_s: float = Field(
        default=0.5, gt=0, description="how often the rollout's status is read")
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="deadline of each API request")

    @field_validator("namespace")
    @classmethod
    def _namespace_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", v):
            raise ValueError("a namespace is lowercase letters, digits and '-' (RFC 1123)")
        return v

    def image(self, c: ContainerImage, tag: str) -> str:
        return image_ref(self.registry, c.repository, tag)


DeployerConfig = Annotated[
    ComposeDeployerConfig | KubernetesDeployerConfig, Field(discriminator="kind")
]


def _dotted(v: str | None) -> str | None:
    if v is not None and (not v or any(not part for part in v.split("."))):
        raise ValueError(f"{v!r} is not a dotted field path like 'build.release'")
    return v


def _token_format(v: str | None) -> str | None:
    if v is None:
        return v
    if "{token}" not in v:
        raise ValueError("the format must contain {token}, e.g. 'Bearer {token}'")
    try:
        v.format(token="x")
    except (KeyError, IndexError, ValueError):
        raise ValueError("the format may contain only the placeholder {token}") from None
    return v


def header_value(header: str, fmt: str | None, token: str) -> str:
    """The auth header's value: ``fmt`` with the token, or by default ``Bearer <token>`` in
    ``Authorization`` and the bare token in any other header (e.g. ``X-Ops-Token``)."""
    if fmt is None:
        fmt = "Bearer {token}" if header.lower() == "authorization" else "{token}"
    return fmt.format(token=token)


class HealthCheck(_Model):
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
        return _dotted(v)


class AdminLogin(_Model):
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
        return _dotted(v)

    @field_validator("token_format")
    @classmethod
    def _format_ok(cls, v: str | None) -> str | None:
        return _token_format(v)

    @model_validator(mode="after")
    def _complete(self) -> AdminLogin:
        if self.path is not None and not self.username:
            raise ValueError("admin_login.username is required when admin_login.path is set")
        if self.session == "bearer" and not self.token_field:
            raise ValueError("session = 'bearer' needs token_field: the dotted path to the "
                             "token in the login's JSON answer, e.g. 'access_token'")
        return self


class Dashboard(_Model):
    """A protected page the health step opens with the login's session."""

    path: str | None = Field(
        default=None, description="the page, e.g. /dashboard; unset: no dashboard check")
    expect_text: str | None = Field(
        default=None, description="text the page must contain; unset: HTTP 200 is enough")


class SmokeScript(_Model):
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


class HttpSwitch(_Model):
    """Flip a switch by an HTTP request to ``url`` (JSON ``on_body`` / ``off_body``)."""

    kind: Literal["http"] = "http"
    url: str = Field(description="the switch's endpoint")
    method: Literal["POST", "PUT", "PATCH", "DELETE"] = Field(
        default="POST", description="the HTTP method that turns it on (and off, unless "
        "off_method is set)")
    off_method: Literal["POST", "PUT", "PATCH", "DELETE"] | None = Field(
        default=None, description="the method that turns it off; unset: method")
    on_body: dict[str, Any] = Field(
        default_factory=lambda: {"enabled": True},
        description="JSON body that turns it on")
    off_body: dict[str, Any] = Field(
        default_factory=lambda: {"enabled": False},
        description="JSON body that turns it off")
    send_body: bool = Field(
        default=True, description="false: the requests carry no body (on_body/off_body unused)")
    token: SecretStr | None = Field(
        default=None, description="the switch's credential; secret, masked everywhere; unset: "
        "no auth header")
    token_header: str = Field(
        default="Authorization", description="the header that carries the token, e.g. "
        "'Authorization' or 'X-Ops-Token'")
    token_format: str | None = Field(
        default=None, description="the header's value, {token} replaced by the token; unset: "
        "'Bearer {token}' in Authorization, the bare token in any other header")
    success_status: list[int] = Field(
        default_factory=list, description="statuses that mean the switch flipped; empty: any 2xx")

    @field_validator("token_format")
    @classmethod
    def _format_ok(cls, v: str | None) -> str | None:
        return _token_format(v)

    def auth_headers(self) -> dict[str, str]:
        """The header that carries the token (none without a token)."""
        if self.token is None:
            return {}
        return {self.token_header: header_value(self.token_header, self.token_format,
                                                self.token.get_secret_value())}


class CommandSwitch(_Model):
    """Flip a switch by running a command (argv, no shell); exit 0 means done."""

    kind: Literal["command"] = "command"
    on: list[str] = Field(description="argv that turns it on")
    off: list[str] = Field(description="argv that turns it off")
    timeout_s: float = Field(default=60.0, description="each command is killed after this long")


class ComposeServiceSwitch(_Model):
    """``on`` starts the compose service (e.g. a maintenance page), ``off`` stops it."""

    kind: Literal["compose-service"] = "compose-service"
    service: str = Field(description="the compose service (in the deployer's project) that is "
                         "started for on and stopped for off")


SwitchConfig = Annotated[
    HttpSwitch | CommandSwitch | ComposeServiceSwitch, Field(discriminator="kind")
]


class MaintenancePage(_Model):
    """What the public URL shows while maintenance is on."""

    path: str = Field(default="/", description="the public page checked while maintenance is on")
    status: int = Field(default=503, description="the HTTP status it answers while on")
    expect_text: str | None = Field(
        default=None, description="text the maintenance page must contain; unset: the status "
        "alone is checked")


_SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


class Migrations(_Model):
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
        if v is not None and not _ENV_NAME.fullmatch(v):
            raise ValueError("must be an environment variable name (letters, digits, '_')")
        return v

    @field_validator("version_table", "version_table_schema")
    @classmethod
    def _sql_name(cls, v: str | None) -> str | None:
        if v is not None and not _SQL_NAME.fullmatch(v):
            raise ValueError("must be a plain SQL name (letters, digits, '_', at most 63)")
        return v


class Probe(_Model):
    """HTTP probe timeouts and retry settings."""

    timeout_s: float = Field(default=5.0, description="per HTTP request, in seconds")
    backoff_initial_s: float = Field(
        default=0.5, description="the first wait between attempts; it doubles each time")
    backoff_max_s: float = Field(default=8.0, description="the longest wait between attempts")
    jitter: float = Field(default=0.2, ge=0, le=1,
                          description="each wait varies by up to this share, randomly")
    verify_tls: bool = Field(default=True, description="verify the target's TLS certificates")


class TargetConfig(_Model):
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
                if _SECRET_ENV_NAME.search(key) and value:
                    out[f"deployer.env.{key}"] = value
            for key in self.deployer.env_passthrough:  # read when the step runs, as compose is
                value = os.environ.get(key, "")
                if _SECRET_ENV_NAME.search(key) and value:
                    out[f"deployer.env_passthrough.{key}"] = value
        if self.smoke is not None:
            for key, value in self.smoke.env.items():
                if _SECRET_ENV_NAME.search(key) and value:
                    out[f"smoke.env.{key}"] = value
        return {k: v for k, v in out.items() if v}
