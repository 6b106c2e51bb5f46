"""The sources the preflight and the watches read: every URL a preflight check names answers
(HTTP) or connects (PostgreSQL), its paths exist, the release freeze's repository and registry
answer; the watches' logs and the error budget's Prometheus or Sentry."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bot.checkline import Check, database_where
from bot.tries.common import COMPOSE_TIMEOUT_S, DB_TIMEOUT_S, ReadsContext, TryContext, first, off
from bot.tries.deployer import DeployerTries


class SourceTries(ReadsContext):
    """What the preflight checks and the log and metric watches read from."""

    def __init__(self, ctx: TryContext, deployer: DeployerTries) -> None:
        super().__init__(ctx)
        self.deployer = deployer

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
        return out or [off("preflight", self.ctx.needs("check"), "a [preflight.<check>] table "
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
            return Check(False, f"{label} git {url}: {first(r.stderr or 'git ls-remote failed')}",
                         f"correct {key} in {self.where}, or give the bot's user read access")
        tags = sum(1 for line in r.stdout.splitlines() if "refs/tags/" in line)
        return Check(True, f"{label} git {url}: answers ({tags} tag ref(s))")

    def _answers(self, label: str, url: str, key: str) -> Check:
        import httpx

        try:
            with self.ctx.http() as http:
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
            return Check(False, f"{label} {database_where(url)}: cannot connect ({first(e)})",
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
                                  self.ctx.needs("watch.webhooks")))
        budget = getattr(w, "error_budget", None)
        if budget is not None and budget.enabled:
            label, need = "watch error_budget", self.ctx.needs("watch.error_budget")
            if budget.source == "logs":
                out.append(self._logs(label, "[watches.error_budget] logs", budget.logs, need))
            elif budget.source == "prometheus":
                out.append(self._prometheus(label, budget.prometheus, need))
            else:
                out.append(self._answers(f"{label} sentry", budget.sentry.url,
                                         "[watches.error_budget] sentry url"))
        return out

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
            return off(label, needed, f"{table} service (or container)")
        services = self.deployer.compose_services()
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
            return off(label, needed, "[watches.error_budget] prometheus "
                                       + ", ".join(missing))
        url = prom.url.rstrip("/") + "/api/v1/query"
        for key in ("errors_query", "total_query"):
            query = getattr(prom, key).replace("{window}", "5m").replace(
                "{{", "{").replace("}}", "}")
            try:
                with self.ctx.http() as http:
                    r = http.get(url, params={"query": query})
                body = r.json()
            except (httpx.HTTPError, ValueError) as e:
                return Check(False, f"{label}: Prometheus {prom.url} does not answer "
                                    f"({type(e).__name__})",
                             f"start it, or correct [watches.error_budget] prometheus url in "
                             f"{self.where}")
            if body.get("status") != "success":
                return Check(False, f"{label}: Prometheus refuses {key}: "
                                    f"{first(str(body.get('error') or r.status_code))}",
                             f"correct [watches.error_budget] prometheus {key} in "
                             f"{self.where}")
        return Check(True, f"{label}: Prometheus {prom.url} runs both queries")
