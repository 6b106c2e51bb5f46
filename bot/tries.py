"""`golive config check`, the stack half: each line is a read-only try of what the night does.

The compose file is parsed by `docker compose config` (it must name the configured services and
read their tag variables), the smoke script must be able to execute, the health path must
answer 2xx and its contract (the health step's own check) hold against today's answer, one
login, the maintenance switch URL must answer (never toggled), the migration tool must answer
``current`` where the migrate step runs it, the preflight's sources must answer, every watch and
canary query must plan (``EXPLAIN``) on the target database, and the Docker engine must answer.
Every try has its own timeout and the tries run side by side, so the whole check stays short.
A section that is not configured is "off": a ⚠️ when the runbook needs it, never a ❌.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bot.checkline import Check, database_where
from bot.settings import Settings

HTTP_TIMEOUT_S = 5.0
DB_TIMEOUT_S = 5
DOCKER_TIMEOUT_S = 15.0
COMPOSE_TIMEOUT_S = 30.0
MIGRATION_TIMEOUT_S = 90.0
SENTINEL_TAG = "golive-config-check"
"""What the tag variables are set to while the compose file is parsed: the configured
services' images must then end in it (proof the file reads the variable)."""

Try = Callable[[], list[Check]]


def _first(e: BaseException | str) -> str:
    text = str(e).strip()
    return (text.splitlines() or [type(e).__name__])[0][:300]


def _off(what: str, needed: bool, where: str) -> Check:
    """A section that is not configured: ⚠️ when the runbook needs it, else a plain "off"."""
    if needed:
        return Check(True, f"{what}: off — the runbook needs it; add {where}", warn=True)
    return Check(True, f"{what}: off (not configured)", off=True)


class StackTries:
    """The tries for one settings object; ``checks()`` runs them all, in a stable order."""

    def __init__(self, settings: Settings, kinds: Iterable[str] = (),
                 down: Iterable[str] = ()) -> None:
        self.settings = settings
        self.down = set(down)
        """``public_url`` / ``internal_url`` when it did not answer (already one ❌)."""
        self.cfg = settings.config
        self.target = settings.config.target
        self.where = settings.config_path or "the config"
        self.kinds = set(kinds)
        self.secrets = settings.secrets()
        self._compose: dict[str, Any] | None = None
        self._compose_error: str | None = None

    # ------------------------------------------------------------------ helpers

    def needs(self, *kinds: str) -> bool:
        return any(k in self.kinds or any(x.startswith(k + ".") for x in self.kinds)
                   for k in kinds)

    def _compose_deployer(self) -> Any | None:
        from runbook.target import ComposeDeployerConfig

        d = getattr(self.target, "deployer", None)
        return d if isinstance(d, ComposeDeployerConfig) else None

    def _http(self):
        from runbook.adapters.http import client

        probe = self.target.probe.model_copy(update={"timeout_s": min(
            self.target.probe.timeout_s, HTTP_TIMEOUT_S)})
        return client(probe)

    # ------------------------------------------------------------------ docker

    def docker_engine(self) -> list[Check]:
        d = self._compose_deployer()
        if getattr(getattr(self.target, "deployer", None), "kind", None) == "kubernetes":
            return []  # the cluster is tried instead (``cluster``)
        if d is None:
            return [_off("Docker engine", self.needs("deploy"), "[target.deployer]")]
        docker = shutil.which("docker")
        if docker is None:
            return [Check(False, "Docker engine: the `docker` CLI is not installed",
                          "install Docker Engine and the compose plugin on the bot's host")]
        env = dict(os.environ)
        if d.docker_host:
            env["DOCKER_HOST"] = d.docker_host
        host = env.get("DOCKER_HOST", "the local socket")
        try:
            r = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], env=env,
                               capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S,
                               check=False)
        except subprocess.TimeoutExpired:
            return [Check(False, f"Docker engine at {host}: no answer in "
                                 f"{DOCKER_TIMEOUT_S:.0f}s",
                          "start the Docker daemon, or correct [target.deployer] docker_host")]
        if r.returncode != 0 or not r.stdout.strip():
            return [Check(False, f"Docker engine at {host}: does not answer "
                                 f"({_first(r.stderr or r.stdout or 'no output')})",
                          "start the Docker daemon (and let the bot's user use it), or "
                          f"correct [target.deployer] docker_host in {self.where}")]
        return [Check(True, f"Docker engine at {host}: answers (server {r.stdout.strip()})")]

    def cluster(self) -> list[Check]:
        """A Kubernetes deployer: the API server answers, the namespace exists, the bot may do
        what the deploy needs (SelfSubjectAccessReviews, read-only), the manifests parse."""
        import time

        from runbook.errors import StepFailed

        d = getattr(self.target, "deployer", None)
        if getattr(d, "kind", None) != "kubernetes":
            return []
        fix = (f"start the cluster, or correct [target.deployer] (kubeconfig, context, "
               f"namespace) in {self.where}")
        try:
            from runbook.adapters.kubernetes import KubernetesDeployer

            k8s = KubernetesDeployer(d, secrets=self.secrets, clock=time.monotonic,
                                     sleep=time.sleep, cwd=Path.cwd())
            review = getattr(k8s, "access_review", None)
            lines = review() if review is not None else []
        except ImportError as e:
            return [Check(False, f"Kubernetes: the client library is missing ({_first(e)})",
                          "install golive with its kubernetes extra")]
        except StepFailed as e:
            return [Check(False, f"Kubernetes cluster: {_first(e.message)}", fix)]
        # A refused line already says what to do (create the namespace, grant the verbs).
        checks = [Check(ok, f"Kubernetes: {line}") for ok, line in lines]
        try:
            objects = k8s.manifests()
        except StepFailed as e:
            checks.append(Check(False, f"Kubernetes manifests {d.manifests}: {_first(e.message)}",
                                f"fix the manifests, or correct [target.deployer] manifests in "
                                f"{self.where}"))
        else:
            checks.append(Check(True, f"Kubernetes manifests {d.manifests}: {len(objects)} "
                                      "object(s) parse"))
        return checks

    def compose_file(self) -> list[Check]:
        from runbook.adapters.compose import ComposeProject
        from runbook.errors import StepFailed

        d = self._compose_deployer()
        if getattr(getattr(self.target, "deployer", None), "kind", None) == "kubernetes":
            return []
        if d is None:
            return [_off("compose file", self.needs("deploy"), "[target.deployer]")]
        path = Path(d.compose_file)
        shown = path if path.is_absolute() else f"{path} (from {Path.cwd()})"
        if not path.is_file():
            self._compose_error = "missing"
            return [Check(False, f"compose file {shown}: no such file",
                          f"correct [target.deployer] compose_file in {self.where} (relative "
                          "paths are resolved from where the bot runs)")]
        sentinel = {svc.tag_variable: SENTINEL_TAG for svc in d.services}
        try:
            r = ComposeProject(d, secrets=self.secrets, cwd=Path.cwd()).compose(
                "config", "--format", "json", env=sentinel, timeout=COMPOSE_TIMEOUT_S,
                check=False, what="docker compose config")
        except StepFailed as e:
            self._compose_error = e.message
            return [Check(False, f"compose file {shown}: cannot be parsed ({_first(e.message)})",
                          "install the docker compose plugin on the bot's host")]
        if r.returncode != 0:
            self._compose_error = r.stderr or r.stdout
            return [Check(False, f"compose file {shown}: `docker compose config` refuses it: "
                                 f"{_first(r.stderr or r.stdout or f'exit {r.returncode}')}",
                          f"fix the compose file (or the variables [target.deployer] env "
                          f"passes) until `docker compose -f {path} config` accepts it")]
        try:
            self._compose = json.loads(r.stdout)
        except ValueError:
            self._compose_error = "not JSON"
            return [Check(False, f"compose file {shown}: `docker compose config --format json` "
                                 "did not print JSON",
                          "use Docker Compose v2.2 or newer")]
        services = self._compose.get("services") or {}
        checks: list[Check] = []
        for svc in d.services:
            found = services.get(svc.service)
            if found is None:
                checks.append(Check(False, f"compose file {shown}: no service {svc.service!r} "
                                           f"(it has {', '.join(sorted(services)) or 'none'})",
                                    f"correct [target.deployer] services in {self.where}, or "
                                    "add the service to the compose file"))
            elif not str(found.get("image") or "").endswith(":" + SENTINEL_TAG):
                checks.append(Check(False, f"compose file {shown}: service {svc.service!r} "
                                           f"does not take its tag from ${{{svc.tag_variable}}} "
                                           f"(image {found.get('image') or 'unset'})",
                                    f"write `image: …:${{{svc.tag_variable}}}` for "
                                    f"{svc.service} in the compose file, or correct its "
                                    f"tag_variable in {self.where}"))
        if not checks:
            names = ", ".join(f"{s.service} (${{{s.tag_variable}}})" for s in d.services)
            checks.append(Check(True, f"compose file {shown}: parses; services {names} "
                                      "take the release tag"))
        return checks

    def compose_services(self) -> set[str] | None:
        """The compose file's services (None when it could not be parsed)."""
        if self._compose is None:
            return None
        return set((self._compose.get("services") or {}).keys())

    # ------------------------------------------------------------------ smoke

    def smoke(self) -> list[Check]:
        s = self.target.smoke
        if s is None:
            return [_off("smoke script", self.needs("smoke"), "[target.smoke]")]
        path = Path(s.path)
        shown = path if path.is_absolute() else f"{path} (from {Path.cwd()})"
        if not path.is_file():
            return [Check(False, f"smoke script {shown}: no such file",
                          f"correct [target.smoke] path in {self.where}")]
        interpreter = list(getattr(s, "interpreter", None) or [])
        if interpreter:
            found = shutil.which(interpreter[0])
            if found is None:
                return [Check(False, f"smoke script {shown}: its interpreter "
                                     f"{interpreter[0]!r} is not on the bot's PATH",
                              f"install it, or correct [target.smoke] interpreter in "
                              f"{self.where}")]
            return [Check(True, f"smoke script {shown}: exists, runs with {found}")]
        if not os.access(path, os.X_OK):
            return [Check(False, f"smoke script {shown}: not executable",
                          f"`chmod +x {path}` (with a #! line), or set [target.smoke] "
                          "interpreter")]
        with path.open("rb") as f:
            head = f.readline(200)
        if head.startswith(b"#!"):
            argv = head[2:].decode(errors="replace").split()
            if argv and not (Path(argv[0]).is_file() and os.access(argv[0], os.X_OK)):
                return [Check(False, f"smoke script {shown}: its #! interpreter {argv[0]} "
                                     "does not exist on the bot's host",
                              "correct the #! line, or set [target.smoke] interpreter")]
            how = " ".join(argv)
        else:
            how = "itself (a binary)"
        return [Check(True, f"smoke script {shown}: exists and is executable (runs by {how})")]

    # ------------------------------------------------------------------ HTTP

    def health(self) -> list[Check]:
        import httpx

        h = getattr(self.target, "health", None)
        if h is None or not getattr(h, "path", None):
            return [_off("health", self.needs("health"), "[target.health]")]
        base = self.target.internal_url
        url = base + h.path
        if "internal_url" in self.down:
            return [Check(False, f"health {url}: not tried (internal_url does not answer)",
                          skipped=True)]
        with self._http() as http:
            try:
                r = http.get(url)
            except httpx.HTTPError as e:
                return [Check(False, f"health {url}: does not answer ({type(e).__name__})",
                              f"start the stack, or correct [target] internal_url in "
                              f"{self.where}")]
            if r.status_code == 404:
                return [Check(False, f"health {url}: HTTP 404, no such path",
                              f"correct [target.health] path in {self.where} (the app's "
                              "health endpoint, e.g. /healthz)")]
            if not 200 <= r.status_code < 300:
                return [Check(False, f"health {url}: HTTP {r.status_code} (expected 2xx)",
                              "make the app healthy, or correct [target.health] path")]
            problem = health_contract(http, base, h)
        if problem:
            return [Check(False, f"health {url}: answers HTTP {r.status_code}, but the contract "
                                 f"does not hold: {problem}",
                          f"correct [target.health] (expect, fields) in {self.where} to match "
                          "what the app answers")]
        checks = [Check(True, f"health {url}: HTTP {r.status_code}, the contract holds")]
        watch = getattr(self.cfg.watches, "health", None)
        if watch is not None and watch.enabled:  # after the health line: one cause, one ❌
            checks.append(self._health_watch(watch))
        return checks

    def login(self) -> list[Check]:
        from runbook.adapters.http import ProbeError, check_admin_login

        login = getattr(self.target, "admin_login", None)
        if login is None or not getattr(login, "path", None):
            return [_off("login", False, "[target.admin_login]")]
        url = self.target.internal_url + login.path
        if "internal_url" in self.down:
            return [Check(False, f"login {url}: not tried (internal_url does not answer)",
                          skipped=True)]
        with self._http() as http:
            try:
                how = check_admin_login(http, self.target.internal_url, login,
                                        secrets=self.secrets)
            except ProbeError as e:
                return [Check(False, f"login {url}: {_first(e)}",
                              f"correct [target.admin_login] (path, username, the password's "
                              f"variable) in {self.where}")]
        return [Check(True, f"login {url}: {how}")] + self.dashboard()

    def dashboard(self) -> list[Check]:
        """The protected page the health step opens with the login's session."""
        from runbook.adapters.http import ProbeError, check_dashboard, login_session

        dash = getattr(self.target, "dashboard", None)
        if dash is None or not getattr(dash, "path", None):
            return []
        base = self.target.internal_url
        with self._http() as http:
            try:
                login_session(http, base, self.target.admin_login, "dashboard",
                              secrets=self.secrets)
                how = check_dashboard(http, base, dash)
            except ProbeError as e:
                return [Check(False, f"dashboard {base + dash.path}: {_first(e)}",
                              f"correct [target.dashboard] (path, expect_text) in "
                              f"{self.where}")]
        return [Check(True, f"dashboard {base + dash.path}: {how}")]

    def switches(self) -> list[Check]:
        out = [self._switch("maintenance", self.target.maintenance, self.needs("maintenance"))]
        if self.target.traffic is not None:
            out.append(self._switch("traffic", self.target.traffic, False))
        return out

    def _switch(self, label: str, switch: Any, needed: bool) -> Check:
        import httpx

        from runbook.target import CommandSwitch, ComposeServiceSwitch, HttpSwitch

        if switch is None:
            if label == "maintenance":
                return _off("maintenance switch", needed, "[target.maintenance]")
            return Check(True, "traffic switch: off (opening traffic turns maintenance off)",
                         off=True)
        if isinstance(switch, HttpSwitch):
            try:
                with self._http() as http:
                    r = http.get(switch.url)
            except httpx.HTTPError as e:
                return Check(False, f"{label} switch {switch.url}: does not answer "
                                    f"({type(e).__name__})",
                             f"start the stack, or correct [target.{label}] url in {self.where}")
            if r.status_code == 404 or r.status_code >= 500:
                return Check(False, f"{label} switch {switch.url}: GET answers HTTP "
                                    f"{r.status_code}",
                             f"correct [target.{label}] url in {self.where}")
            return Check(True, f"{label} switch {switch.url}: answers (GET: HTTP "
                               f"{r.status_code}; not toggled)")
        if isinstance(switch, CommandSwitch):
            for state, argv in (("on", switch.on), ("off", switch.off)):
                exe = argv[0] if argv else ""
                if not exe or not (shutil.which(exe) or (Path(exe).is_file()
                                                         and os.access(exe, os.X_OK))):
                    return Check(False, f"{label} switch: the {state} command {exe!r} cannot "
                                        "be run on the bot's host",
                                 f"install it, or correct [target.{label}] {state} in "
                                 f"{self.where}")
            return Check(True, f"{label} switch: commands {switch.on[0]} / {switch.off[0]} "
                               "found (not run)")
        if isinstance(switch, ComposeServiceSwitch):
            services = self.compose_services()
            if services is None:
                return Check(False, f"{label} switch: compose service {switch.service!r} not "
                                    "checked (the compose file did not parse)", skipped=True)
            if switch.service not in services:
                return Check(False, f"{label} switch: the compose file has no service "
                                    f"{switch.service!r}",
                             f"correct [target.{label}] service in {self.where}")
            return Check(True, f"{label} switch: compose service {switch.service!r} exists "
                               "(not started)")
        return Check(True, f"{label} switch: kind {getattr(switch, 'kind', '?')} (not tried)")

    # ------------------------------------------------------------------ migrations

    def migrations(self) -> list[Check]:
        import time

        from runbook.adapters import stepkit
        from runbook.context import StepContext
        from runbook.errors import StepFailed

        m = getattr(self.target, "migrations", None)
        if m is None or (m.mode == "compose-run" and not (
                getattr(m, "service", None) and self._compose_deployer() is not None)) or (
                m.mode == "alembic-api" and m.database_url is None):
            need = ("service and [target.deployer]" if m is not None and m.mode == "compose-run"
                    else "database_url")
            return [_off("migrations", self.needs("migrate"), f"[target.migrations] {need}")]
        if m.mode != "alembic-api" and self._compose_deployer() is not None \
                and self._compose is None:
            return [Check(False, "migrations: `current` not tried (the compose file did not "
                                 "parse)", skipped=True)]
        ctx = StepContext(run_id=0, step_id="config-check", params={}, facts={},
                          target=self.target, progress=lambda _line: None,
                          deadline=time.monotonic() + MIGRATION_TIMEOUT_S,
                          secrets=self.secrets, config=self.cfg)
        where = {"compose-run": f"service {m.service} of the running release",
                 "alembic-api": f"{m.script_location} (alembic API)"}.get(
                     m.mode, f"a {m.mode} from the running release")
        try:
            migrator = stepkit.make_migrator(ctx, self.target)
            current = migrator.current_revision()
        except StepFailed as e:
            return [Check(False, f"migrations: `current` in {where} fails: {_first(e.message)}",
                          f"bring up the release the migrate step runs in (its image must carry "
                          f"the migration tool), or correct [target.migrations] (mode, service, "
                          f"command, database_url) in {self.where}")]
        return [Check(True, f"migrations: `current` in {where} answers: "
                            f"{current or 'empty database (no revision yet)'}")]

    # ------------------------------------------------------------------ preflight

    def preflight(self) -> list[Check]:
        from pydantic import BaseModel

        p = self.cfg.preflight
        chosen = getattr(p, "checks", None)  # [preflight] checks: only those run
        out: list[Check] = []
        for name in type(p).model_fields:
            section = getattr(p, name)
            if name in ("timeouts", "max_age_minutes") or not isinstance(section, BaseModel):
                continue
            if chosen is not None and name not in chosen:
                out.append(Check(True, f"preflight {name}: off (not in [preflight] checks)",
                                 off=True))
                continue
            out.extend(self._sources(f"preflight {name}", f"[preflight.{name}]", section))
        return out or [_off("preflight", self.needs("check"), "a [preflight.<check>] table "
                                                               "per check it runs")]

    def _sources(self, label: str, table: str, section: Any) -> list[Check]:
        """Every URL (HTTP answers, PostgreSQL connects) and plain path (exists) of a section."""
        from pydantic import SecretStr

        tried: list[Check] = []
        explicit = set(section.model_fields_set)  # a default the team did not set is no source
        if label == "preflight release_freeze":
            tried.extend(self._release_sources(section))
            explicit -= {"api_url", "git_url", "image"}
        for key in type(section).model_fields:
            if key not in explicit:
                continue
            value = getattr(section, key)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, str) and value.startswith(("http://", "https://")) \
                    and "{" not in value:
                tried.append(self._answers(f"{label} {key}", value, f"{table} {key}"))
            elif isinstance(value, str) and value.startswith(("postgresql://", "postgres://")):
                tried.append(self._connects(f"{label} {key}", value, f"{table} {key}"))
            elif isinstance(value, Path) and "{" not in str(value) and key != "pg_bin_dir":
                shown = value if value.is_absolute() else f"{value} (from {Path.cwd()})"
                if key == "snapshot_dir" and not value.exists():
                    tried.append(Check(True, f"{label} {key} {shown}: will be created"))
                elif value.exists():
                    tried.append(Check(True, f"{label} {key} {shown}: exists"))
                else:
                    tried.append(Check(False, f"{label} {key} {shown}: no such file or folder",
                                       f"correct {table} {key} in {self.where}"))
        if not tried:
            tried.append(Check(True, f"{label}: configured (nothing to reach ahead of the "
                                     "night)"))
        return tried

    def _release_sources(self, cfg: Any) -> list[Check]:
        """The release freeze's sources: GitHub's API or the git repository, and the registry
        that holds the release image."""
        label, table = "preflight release_freeze", "[preflight.release_freeze]"
        out: list[Check] = []
        source = getattr(cfg, "source", "github")
        if source == "git" and getattr(cfg, "git_url", None):
            out.append(self._git(label, cfg.git_url, f"{table} git_url"))
        elif source == "github" and getattr(cfg, "api_url", None):
            out.append(self._answers(f"{label} api_url", cfg.api_url, f"{table} api_url"))
        image = getattr(cfg, "image", None)
        if image:
            from runbook.docker_ref import parse_reference

            try:
                registry = parse_reference(image.replace("{tag}", "v0")).domain or ""
            except Exception:  # noqa: BLE001 - an invalid reference is the check's to report
                registry = ""
            if registry:
                scheme = getattr(cfg, "registry_scheme", "https")
                out.append(self._answers(f"{label} registry", f"{scheme}://{registry}/v2/",
                                         f"{table} image / registry_scheme"))
        return out

    def _git(self, label: str, url: str, key: str) -> Check:
        git = shutil.which("git")
        if git is None:
            return Check(False, f"{label}: `git` is not installed on the bot's host",
                         "install git (the release freeze reads the tag with it)")
        try:
            r = subprocess.run([git, "ls-remote", "--tags", url], capture_output=True, text=True,
                               timeout=COMPOSE_TIMEOUT_S, check=False,
                               env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        except subprocess.TimeoutExpired:
            return Check(False, f"{label} git {url}: no answer in {COMPOSE_TIMEOUT_S:.0f}s",
                         f"correct {key} in {self.where}")
        if r.returncode != 0:
            return Check(False, f"{label} git {url}: {_first(r.stderr or 'git ls-remote failed')}",
                         f"correct {key} in {self.where}, or give the bot's user read access")
        tags = sum(1 for line in r.stdout.splitlines() if "refs/tags/" in line)
        return Check(True, f"{label} git {url}: answers ({tags} tag ref(s))")

    def _answers(self, label: str, url: str, key: str) -> Check:
        import httpx

        try:
            with self._http() as http:
                r = http.get(url)
        except httpx.HTTPError as e:
            return Check(False, f"{label} {url}: does not answer ({type(e).__name__})",
                         f"start it, or correct {key} in {self.where}")
        if r.status_code >= 500:
            return Check(False, f"{label} {url}: HTTP {r.status_code}",
                         f"check the service, or correct {key} in {self.where}")
        return Check(True, f"{label} {url}: answers (HTTP {r.status_code})")

    def _connects(self, label: str, url: str, key: str) -> Check:
        import psycopg


        try:
            with psycopg.connect(url, connect_timeout=DB_TIMEOUT_S) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as e:
            return Check(False, f"{label} {database_where(url)}: cannot connect ({_first(e)})",
                         f"start the database, or correct {key} in {self.where}")
        return Check(True, f"{label} {database_where(url)}: connects")

    # ------------------------------------------------------------------ watch sources

    def watch_sources(self) -> list[Check]:
        """Where the log-reading watches read from, and the error budget's metrics source."""
        w = self.cfg.watches
        out: list[Check] = []
        hooks = getattr(w, "webhooks", None)
        if hooks is not None and hooks.enabled:
            out.append(self._logs("watch webhooks", "[watches.webhooks] logs", hooks.logs,
                                  self.needs("watch.webhooks")))
        budget = getattr(w, "error_budget", None)
        if budget is not None and budget.enabled:
            label, need = "watch error_budget", self.needs("watch.error_budget")
            if budget.source == "logs":
                out.append(self._logs(label, "[watches.error_budget] logs", budget.logs, need))
            elif budget.source == "prometheus":
                out.append(self._prometheus(label, budget.prometheus, need))
            else:
                out.append(self._answers(f"{label} sentry", budget.sentry.url,
                                         "[watches.error_budget] sentry url"))
        return out

    def _health_watch(self, watch: Any) -> Check:
        """The health watch's URL (through the ingress by default) answers 2xx today."""
        import httpx

        path = getattr(watch, "path", None) or getattr(self.target.health, "path", None)
        if not path:
            return _off("watch health", False, "[watches.health] path or [target.health] path")
        base = getattr(watch, "base", "public")
        if f"{base}_url" in self.down:
            return Check(False, f"watch health: not tried ({base}_url does not answer)",
                         skipped=True)
        url = (self.target.public_url if base == "public" else self.target.internal_url) + path
        try:
            with self._http() as http:
                r = http.get(url)
        except httpx.HTTPError as e:
            return Check(False, f"watch health {url}: does not answer ({type(e).__name__})",
                         f"correct [watches.health] base / path, or [target] {base}_url, in "
                         f"{self.where}")
        if not 200 <= r.status_code < 300:
            return Check(False, f"watch health {url}: HTTP {r.status_code} (expected 2xx)",
                         f"correct [watches.health] base / path in {self.where} (the "
                         f"{base} URL must route to the health endpoint)")
        return Check(True, f"watch health {url}: HTTP {r.status_code}")

    def _logs(self, label: str, table: str, logs: Any, needed: bool) -> Check:
        if logs.kind == "file":
            path = Path(logs.path)
            if path.is_file():
                return Check(True, f"{label}: log file {path} exists")
            return Check(False, f"{label}: log file {path}: no such file",
                         f"correct {table} path in {self.where}")
        if logs.container:
            return Check(True, f"{label}: reads container {logs.container}'s log (not tried)")
        if not logs.service:
            return _off(label, needed, f"{table} service (or container)")
        services = self.compose_services()
        if services is None:
            return Check(False, f"{label}: service {logs.service!r} not checked (no compose "
                                "file parsed)", skipped=True)
        if logs.service not in services:
            return Check(False, f"{label}: the compose file has no service {logs.service!r}",
                         f"correct {table} service in {self.where}")
        return Check(True, f"{label}: reads compose service {logs.service}'s log")

    def _prometheus(self, label: str, prom: Any, needed: bool) -> Check:
        import httpx

        missing = [k for k in ("url", "errors_query", "total_query") if not getattr(prom, k)]
        if missing:
            return _off(label, needed, "[watches.error_budget] prometheus "
                                       + ", ".join(missing))
        url = prom.url.rstrip("/") + "/api/v1/query"
        for key in ("errors_query", "total_query"):
            query = getattr(prom, key).replace("{window}", "5m").replace(
                "{{", "{").replace("}}", "}")
            try:
                with self._http() as http:
                    r = http.get(url, params={"query": query})
                body = r.json()
            except (httpx.HTTPError, ValueError) as e:
                return Check(False, f"{label}: Prometheus {prom.url} does not answer "
                                    f"({type(e).__name__})",
                             f"start it, or correct [watches.error_budget] prometheus url in "
                             f"{self.where}")
            if body.get("status") != "success":
                return Check(False, f"{label}: Prometheus refuses {key}: "
                                    f"{_first(str(body.get('error') or r.status_code))}",
                             f"correct [watches.error_budget] prometheus {key} in "
                             f"{self.where}")
        return Check(True, f"{label}: Prometheus {prom.url} runs both queries")

    # ------------------------------------------------------------------ queries

    def queries(self) -> list[Check]:
        """Every SQL query a watch or the canary runs, planned with EXPLAIN on its database."""
        from pydantic import SecretStr

        w, c = self.cfg.watches, self.cfg.canary
        default = self.target.migrations.database_url if self.target.migrations else None
        groups: list[tuple[str, str, Any, dict[str, str]]] = []

        def url_of(own: SecretStr | None) -> str:
            v = own or default
            return v.get_secret_value() if v is not None else ""

        off: list[Check] = []
        payouts = getattr(w, "payouts", None)
        if payouts is not None and payouts.enabled and getattr(payouts, "sql", None):
            groups.append(("watch payouts", "[watches.payouts]", url_of(payouts.database_url),
                           {"sql": payouts.sql}))
        else:
            off.append(_off("watch payouts", False, "[watches.payouts] sql"))
        ledger = getattr(w, "ledger", None)
        if ledger is not None and ledger.enabled and getattr(ledger, "invariants", None):
            groups.append(("watch ledger", "[watches.ledger]", url_of(ledger.database_url),
                           {f"invariants.{k}": v for k, v in ledger.invariants.items()}))
        else:
            off.append(_off("watch ledger", self.needs("watch.ledger"),
                            "[watches.ledger] invariants"))
        q = c.queries if c.enabled else None
        sqls = {k: getattr(q, k) for k in ("balances", "deposit", "withdrawal")
                if q is not None and getattr(q, k, None)}
        sqls.update({f"invariants.{k}": v for k, v in ((q.invariants if q else None) or {}
                                                       ).items()})
        if sqls:
            groups.append(("canary", "[canary.queries]", url_of(c.database_url), sqls))
        else:
            off.append(_off("canary queries", c.enabled and self.needs("canary"),
                            "[canary.queries]"))
        out: list[Check] = []
        for label, table, url, sqls in groups:
            if not url:
                out.append(Check(True, f"{label} queries: not tried, no database — set "
                                       f"database_url in {table.removesuffix('.queries]')}"
                                       f"{']' if table.endswith('.queries]') else ''} or "
                                       "[target.migrations]", warn=True))
                continue
            out.extend(self._explain(label, table, url, sqls))
        return out + off

    def _explain(self, label: str, table: str, url: str, sqls: dict[str, str]) -> list[Check]:
        import psycopg


        params = {"window_s": 60, "account": "golive-config-check",
                  "reference": "golive-config-check"}
        bad: list[Check] = []
        try:
            with psycopg.connect(url, connect_timeout=DB_TIMEOUT_S, autocommit=True,
                                 cursor_factory=psycopg.ClientCursor) as conn:
                conn.execute(f"SET statement_timeout = {DB_TIMEOUT_S * 1000}")
                conn.execute("SET default_transaction_read_only = on")
                for key, sql in sqls.items():
                    try:
                        conn.execute("EXPLAIN " + sql, params if "%(" in sql else None)
                    except psycopg.Error as e:
                        bad.append(Check(False, f"{label} query {key} on {database_where(url)}: "
                                                f"{_first(e)}",
                                         f"correct {table} {key.split('.')[0]} in "
                                         f"{self.where} (it must run on the target's schema)"))
        except psycopg.Error as e:
            return [Check(False, f"{label} queries: cannot connect to {database_where(url)} "
                                 f"({_first(e)})",
                          f"start the database, or correct the database_url {table} uses")]
        return bad or [Check(True, f"{label}: {len(sqls)} quer{'y' if len(sqls) == 1 else 'ies'} "
                                   f"plan on {database_where(url)} (EXPLAIN)")]

    # ------------------------------------------------------------------ all

    def checks(self) -> list[Check]:
        # The compose file first: the migration and compose-service tries read its services.
        first = _safe(self.compose_file)
        tries: list[Try] = [self.docker_engine, self.cluster, self.smoke, self.health, self.login,
                            self.switches, self.migrations, self.preflight, self.watch_sources,
                            self.queries]
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="golive-try") as pool:
            results = list(pool.map(_safe, tries))
        docker, cluster, *rest = results
        return docker + cluster + first + [c for r in rest for c in r]


def _safe(fn: Try) -> list[Check]:
    """A try that raises is one ❌ line, never a traceback."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - an unexpected error is a finding, not a crash
        name = getattr(fn, "__name__", "try").replace("_", " ")
        return [Check(False, f"{name}: could not be tried ({type(e).__name__}: {_first(e)})",
                      "correct that section of the config")]


def health_contract(http: Any, base: str, cfg: Any) -> str:
    """The health step's own contract check against today's answer ('' when it holds).

    Today's answer is the release that runs now, so the deploy-time expectations (version from
    the tag, revision from the image) are not applied; the configured fields and ``expect`` are.
    """
    from runbook.adapters.http import ProbeError, check_health
    from runbook.health_contract import MISSING, compact, dig

    try:
        body = check_health(http, base, cfg)
    except ProbeError as e:
        return _first(e)
    absent = [f"{name} {path!r}" for name in ("version_field", "revision_field", "schema_field")
              if (path := getattr(cfg, name, None)) and dig(body, path) is MISSING]
    if absent:
        return (f"{', '.join(absent)} not in today's answer {compact(body, 200)} (the night "
                "compares the deployed release there)")
    return ""


def stack_checks(settings: Settings, kinds: Iterable[str] = (),
                 down: Iterable[str] = ()) -> list[Check]:
    return StackTries(settings, kinds, down).checks()
