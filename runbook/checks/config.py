"""The ``[preflight]`` section of the golive TOML: which checks run, one sub-section each.

``[preflight] checks`` names the checks the preflight runs; a check it does not list is not
run (shown as not configured, never as failing). Without ``checks`` the five core checks run
(plus the team's scripts when configured), and a listed check whose section is absent fails
with "not configured: add [preflight.<check>]" so nobody mistakes a missing check for a
passing one. Nothing here knows the sample stack: every file, route, rule and table is the
team's to name (golive.example.toml shows the sample's).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

CHECK_NAMES = ("release_freeze", "prod_config", "backup_drill", "migration_check",
               "rc_evidence", "team_scripts")
"""Every preflight check golive knows, in checklist order."""
CORE_CHECKS = CHECK_NAMES[:5]
"""What runs when ``[preflight] checks`` is unset (plus team_scripts when configured)."""
_ALIASES = {"migration_dry_run": "migration_check"}


def normalise_check(word: str) -> str:
    """A check's name as typed (``prod-config``, ``migration_dry_run``) -> its name; ValueError
    naming the known ones if unknown."""
    name = word.strip().lower().replace("-", "_")
    name = _ALIASES.get(name, name)
    if name not in CHECK_NAMES:
        raise ValueError(f"unknown check `{word}` (known: {', '.join(CHECK_NAMES)})")
    return name


def _renamed(data: Any, section: str, moved: dict[str, str]) -> Any:
    """A clear error for keys an older golive accepted in ``section`` (not a bare 'extra')."""
    if isinstance(data, dict):
        old = [k for k in moved if k in data]
        if old:
            raise ValueError("; ".join(f"{k} is no longer a key of {section}: {moved[k]}"
                                       for k in old) + " (see golive.example.toml)")
    return data


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Timeouts(_Section):
    """Seconds each check may take before it is reported as timed out."""

    release_freeze: float = Field(30, gt=0, le=3600, description="Release freeze, seconds.")
    prod_config: float = Field(30, gt=0, le=3600, description="Prod config, seconds.")
    backup_drill: float = Field(300, gt=0, le=6 * 3600, description="Backup drill, seconds.")
    migration_check: float = Field(300, gt=0, le=6 * 3600,
                                   description="Migration dry run, seconds.")
    rc_evidence: float = Field(30, gt=0, le=3600, description="RC evidence, seconds.")
    team_scripts: float = Field(120, gt=0, le=3600,
                                description="All of the team's scripts together, seconds.")


class ReleaseFreezeConfig(_Section):
    """``[preflight.release_freeze]``: the RC tag's commit, the RC image's revision label and,
    where the forge offers it (GitHub), the branch lock."""

    source: Literal["github", "git"] = Field(
        "github", description='Where the tag is resolved: "github" (the REST API: tag, branch '
        'protection and rulesets) or "git" (any repository `git ls-remote` can read: tag -> '
        "commit only; branch protection is shown as not applicable).")
    repo: str | None = Field(None, description='source = "github": the repository, owner/name.')
    git_url: str | None = Field(
        None, description='source = "git": a local path or a URL git can read (https://, '
        "ssh://, git@host:path, file://). Credentials come from the bot's own git setup (ssh "
        "key, credential helper); git never prompts.")
    api_url: str = Field("https://api.github.com",
                         description="GitHub's API; GitHub Enterprise: https://HOST/api/v3.")
    token: SecretStr | None = Field(
        None, description="GitHub token (admin read, to see branch protection and rulesets).")
    api_version: str = Field("2022-11-28", description="The X-GitHub-Api-Version header.")
    branch: str = Field("main", description="The branch that must be locked (GitHub only).")
    image: str | None = Field(
        None, description="The RC image, {tag} replaced by the RC tag "
        "(registry.example.com/team/app:{tag}); its org.opencontainers.image.revision label "
        "must equal the tag's commit. Unset: the label is not checked.")
    registry_scheme: Literal["https", "http"] = Field(
        "https", description='The registry\'s v2 API scheme ("http" for a local registry).')
    registry_token: SecretStr | None = Field(
        None, description="Bearer token for the registry's v2 API (anonymous when unset).")
    max_rate_limit_wait_s: float = Field(
        20, ge=0, le=600, description="Longest wait for GitHub's rate limit to reset.")

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is not None and (v.count("/") != 1 or not all(v.split("/"))):
            raise ValueError("must be owner/name")
        return v

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL (GitHub Enterprise: https://HOST/api/v3)")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _source(self) -> ReleaseFreezeConfig:
        if self.source == "github" and not self.repo:
            raise ValueError('source = "github" needs repo = "owner/name" (a repository '
                             'without GitHub: source = "git" with git_url)')
        if self.source == "git" and not self.git_url:
            raise ValueError('source = "git" needs git_url (a local path or a URL git can '
                             "read)")
        if self.source == "git" and self.repo:
            raise ValueError('repo is GitHub\'s owner/name; with source = "git" use git_url')
        return self


RULE_CHECKS = ("networks", "database", "stripe_livemode")
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE|HMAC|DATABASE_URL|DSN|"
                          r"CREDENTIAL|_KEY$", re.IGNORECASE)


class EnvRule(_Section):
    """One ``[[preflight.prod_config.rules]]``: what one variable of the target must hold."""

    key: str = Field(description="The environment variable, e.g. APP_DEBUG.")
    required: bool = Field(
        True, description="The variable must be set and non-empty. false: an unset variable "
        "passes and the other conditions apply only when it is set.")
    equals: str | None = Field(None, description="The value must be exactly this.")
    not_equals: str | None = Field(None, description="The value must not be this.")
    one_of: list[str] | None = Field(None, description="The value must be one of these.")
    matches: str | None = Field(
        None, description="A Python regular expression the value must match (searched, not "
        "anchored: write ^...$ to match the whole value), e.g. ^sk_live_.")
    not_matches: str | None = Field(
        None, description="A regular expression the value must not match, e.g. _test_.")
    check: Literal["networks", "database", "stripe_livemode"] | None = Field(
        None, description='A built-in test: "networks" (a list of IP networks under strict '
        'parsing: no *, no 0.0.0.0/0, no hostnames or host bits), "database" (a PostgreSQL '
        'URL that answers a read-only query), "stripe_livemode" (Stripe\'s GET /v1/balance '
        "with this key says livemode: true; needs api_url).")
    api_url: str | None = Field(
        None, description='check = "stripe_livemode": the API, https://api.stripe.com.')
    secret: bool | None = Field(
        None, description="Never show the value (at most its last 4 characters). Default: "
        "true when the name looks secret (SECRET, TOKEN, PASSWORD, KEY, DSN, DATABASE_URL...).")
    hint: str | None = Field(
        None, description="What a right value looks like, shown when the rule fails, e.g. "
        '"a live Stripe secret key (sk_live_...)".')

    @model_validator(mode="before")
    @classmethod
    def _old(cls, data: Any) -> Any:
        return _renamed(data, "a prod_config rule", {
            "name": 'write key = "VAR"', "set": "write required = true"})

    @field_validator("matches", "not_matches")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"not a regular expression: {e}") from None
        return v

    @model_validator(mode="after")
    def _api(self) -> EnvRule:
        if self.check == "stripe_livemode" and not self.api_url:
            raise ValueError('check = "stripe_livemode" needs api_url (https://api.stripe.com)')
        return self

    @property
    def is_secret(self) -> bool:
        return self.secret if self.secret is not None else bool(SECRET_NAME.search(self.key))


class ProdConfigConfig(_Section):
    """``[preflight.prod_config]``: where the target's environment is read, and the team's rules
    for it (``[[preflight.prod_config.rules]]``; none are built in)."""

    source: Literal["container", "env_file", "process"] = Field(
        description='Where the environment is read: "container" (the running app container\'s '
        'environment), "env_file" (a KEY=value file) or "process" (the bot\'s own).')
    container: str | None = Field(None, description='source = "container": its name.')
    docker_host: str | None = Field(
        None, description="The Docker engine (unix:// or tcp://); default: DOCKER_HOST.")
    env_file: Path | None = Field(None, description='source = "env_file": its path.')
    rules: list[EnvRule] = Field(
        default_factory=list, description="What the variables must hold, checked in order.")

    @model_validator(mode="before")
    @classmethod
    def _old(cls, data: Any) -> Any:
        why = "the PSP, database, proxy and bootstrap rules are [[preflight.prod_config.rules]]"
        return _renamed(data, "[preflight.prod_config]", {
            "psps": why, "stripe_api_url": why + ' (check = "stripe_livemode", api_url)',
            "check_database": why + ' (check = "database")',
            "variables": "a rule names its variable itself (key)"})

    @model_validator(mode="after")
    def _where(self) -> ProdConfigConfig:
        if self.source == "env_file" and self.env_file is None:
            raise ValueError('source = "env_file" needs env_file')
        if self.source == "container" and not self.container:
            raise ValueError('source = "container" needs container (the app container\'s name)')
        return self


class BackupDrillConfig(_Section):
    """``[preflight.backup_drill]``: snapshot the database, restore it into a scratch database
    and compare."""

    database_url: SecretStr = Field(
        description="The source database (prod), read through an exported snapshot.")
    scratch_url: SecretStr = Field(
        description="A maintenance database on the server where the scratch copy is created "
        "and dropped.")
    snapshot_dir: Path = Field(description="Where snapshots are written (durable storage).")
    snapshot_command: list[str] = Field(
        default_factory=list, description="Instead of pg_dump: argv whose {path} is where the "
        "custom-format dump must go.")
    ledger_tables: list[str] = Field(
        default_factory=list, description="Tables (schema.table or table) whose rows are "
        "compared by md5 besides the row counts every table gets, e.g. your ledger's; each "
        "needs a primary key. Empty: row counts only.")
    pg_bin_dir: Path | None = Field(
        None, description="Directory of pg_dump/pg_restore (default: PATH).")
    keep_snapshots: int = Field(5, ge=1, description="Snapshots of one RC kept on disk.")


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


class JUnitSuite(_Section):
    """One ``[[preflight.rc_evidence.junit]]``: a suite whose JUnit reports must all pass."""

    name: str = Field(description="What the checklist calls it, e.g. \"E2E money loop\".")
    files: list[str] = Field(min_length=1, description="Its JUnit XML files, relative to dir.")
    min_tests: int = Field(
        1, ge=1, description="Fewer test cases than this fails (the wrong file, or a suite "
        "that did not run).")


_ALIVE = "any answer but 404, 405, 501 or 5xx"


class Route(_Section):
    """One ``[[preflight.rc_evidence.routes]]``: a route the release must serve."""

    name: str = Field(description="What the checklist calls it, e.g. \"payouts\".")
    url: str | None = Field(None, description=f"Ask this URL; the route is there on {_ALIVE} "
                            "(or on expect_status).")
    method: Literal["GET", "POST", "PUT", "HEAD", "OPTIONS"] = Field(
        "GET", description="The method for url.")
    body: dict[str, Any] | None = Field(None, description="JSON body sent with url.")
    expect_status: list[int] = Field(
        default_factory=list, description=f"The statuses that count as there (empty: {_ALIVE}).")
    openapi_url: str | None = Field(
        None, description="Instead of url: an OpenAPI document that must list path.")
    path: str | None = Field(None, description="With openapi_url: the path, e.g. /v1/transfers.")

    @model_validator(mode="after")
    def _one(self) -> Route:
        if bool(self.url) == bool(self.openapi_url):
            raise ValueError(f"route {self.name!r}: set url, or openapi_url and path")
        if self.openapi_url and not self.path:
            raise ValueError(f"route {self.name!r}: openapi_url needs path")
        return self


class RcEvidenceConfig(_Section):
    """``[preflight.rc_evidence]``: the release's evidence. Every item is the team's to name and
    optional, but at least one must be configured."""

    dir: str | None = Field(
        None, description="The release's evidence directory, {tag} replaced by the RC tag; the "
        "junit files and the manifest are relative to it.")
    junit: list[JUnitSuite] = Field(
        default_factory=list, description="Test suites whose JUnit reports must all pass.")
    manifest: str | None = Field(
        None, description="A sha256sum-format file (relative to dir); the files it lists, "
        "relative to artifacts_dir, must match it exactly: nothing missing, changed or extra.")
    artifacts_dir: str | None = Field(
        None, description="The directory the manifest describes (relative to dir); default: "
        "the manifest's own directory.")
    routes: list[Route] = Field(
        default_factory=list, description="Routes the running release must serve.")

    @model_validator(mode="before")
    @classmethod
    def _old(cls, data: Any) -> Any:
        junit = "write [[preflight.rc_evidence.junit]] name, files"
        route = "write [[preflight.rc_evidence.routes]] name, url, method (or openapi_url, path)"
        return _renamed(data, "[preflight.rc_evidence]", {
            "e2e_junit": junit, "regression_junit": junit, "payouts_url": route,
            "payouts_method": route, "openapi_url": route, "payouts_path": route})

    @model_validator(mode="after")
    def _dir(self) -> RcEvidenceConfig:
        if (self.junit or self.manifest) and not self.dir:
            raise ValueError("junit and manifest are relative to dir: set dir")
        if self.artifacts_dir and not self.manifest:
            raise ValueError("artifacts_dir needs manifest (the sha256sum file describing it)")
        return self

    @property
    def empty(self) -> bool:
        return not (self.junit or self.manifest or self.routes)


class TeamScript(_Section):
    """One ``[[preflight.team_scripts]]``: the team's own script as an extra check."""

    name: str = Field(description="What the checklist calls it.")
    command: list[str] = Field(min_length=1, description="argv, e.g. [\"scripts/verify.sh\"].")
    where: Literal["host", "container"] = Field(
        "host", description='"host" (next to the bot) or "container" (docker exec).')
    container: str | None = Field(None, description='where = "container": its name.')
    docker_host: str | None = Field(
        None, description="The Docker engine (unix:// or tcp://); default: DOCKER_HOST.")
    env: dict[str, str] = Field(default_factory=dict,
                                description="Variables the script gets (values secret when "
                                "their name looks secret).")
    env_passthrough: list[str] = Field(
        default_factory=list, description="Names of the bot's own environment variables the "
        "script also gets (on the host it gets only PATH, HOME, LANG, LC_ALL, TZ and TMPDIR "
        "besides env, never the bot's secrets).")
    timeout_s: float = Field(60, gt=0, le=3600, description="Seconds before it is killed.")
    cwd: Path | None = Field(None, description="Working directory (host only).")

    @model_validator(mode="after")
    def _where(self) -> TeamScript:
        if self.where == "container" and not self.container:
            raise ValueError(f'team script {self.name!r}: where = "container" needs container')
        return self


class PreflightConfig(_Section):
    """``[preflight]``: the pre-cutover checks, their timeouts and how fresh they must be."""

    checks: list[str] | None = Field(
        None, description="The checks the preflight runs, e.g. [\"release_freeze\", "
        "\"rc_evidence\"]; one not listed is not run and shows as not configured. Unset: "
        "release_freeze, prod_config, backup_drill, migration_check and rc_evidence (and "
        "team_scripts when configured), each failing until its section exists.")
    max_age_minutes: int = Field(
        60, ge=1, le=24 * 60, description="Gated steps need a green preflight for the run's RC "
        "SHA younger than this.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Seconds per check.")
    release_freeze: ReleaseFreezeConfig | None = Field(None, description="The release freeze.")
    prod_config: ProdConfigConfig | None = Field(None, description="The prod config rules.")
    backup_drill: BackupDrillConfig | None = Field(None, description="The backup drill.")
    migration_check: MigrationCheckConfig | None = Field(
        None, description="The migration dry run.")
    rc_evidence: RcEvidenceConfig | None = Field(None, description="The RC evidence.")
    team_scripts: list[TeamScript] = Field(default_factory=list,
                                           description="The team's own scripts.")

    @field_validator("checks")
    @classmethod
    def _checks(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        names = [normalise_check(w) for w in v]
        if not names:
            raise ValueError("lists no check (leave checks out to run the core checks, or "
                             "take the preflight step out of the runbook)")
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _sections(self) -> PreflightConfig:
        missing = [n for n in self.checks or () if not self.section(n)]
        if missing:
            raise ValueError("checks lists " + ", ".join(missing) + " without its section: add "
                             + ", ".join("[[preflight.team_scripts]]" if n == "team_scripts"
                                         else f"[preflight.{n}]" for n in missing)
                             + " (see golive.example.toml), or leave it out of checks")
        return self

    def section(self, name: str) -> Any:
        """The config of check ``name`` (None, or [] for team_scripts, when absent)."""
        return getattr(self, name)

    def selected(self) -> list[str]:
        """The checks ``check.all`` runs, in checklist order."""
        if self.checks is not None:
            return [n for n in CHECK_NAMES if n in self.checks]
        return [n for n in CHECK_NAMES if n != "team_scripts" or self.team_scripts]

    def not_selected(self) -> list[str]:
        """The checks ``[preflight] checks`` leaves out (shown as not configured)."""
        chosen = set(self.selected())
        return [n for n in CHECK_NAMES if n not in chosen] if self.checks is not None else []
