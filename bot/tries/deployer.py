"""The deployer's tries: the Docker engine answers, or the Kubernetes cluster (API server,
namespace, the bot's permissions, the manifests); the compose file parses and its services take
the release tag from their variables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bot.checkline import Check
from bot.tries.common import (
    COMPOSE_TIMEOUT_S,
    DOCKER_TIMEOUT_S,
    SENTINEL_TAG,
    ReadsContext,
    TryContext,
    first,
    off,
)


class DeployerTries(ReadsContext):
    """What the deploy step drives; keeps the parsed compose file for the tries that read its
    services (switches, logs, migrations)."""

    def __init__(self, ctx: TryContext) -> None:
        super().__init__(ctx)
        self.compose: dict[str, Any] | None = None
        self.compose_error: str | None = None

    def docker_engine(self) -> list[Check]:
        d = self.ctx.compose_deployer()
        if getattr(getattr(self.target, "deployer", None), "kind", None) == "kubernetes":
            return []  # the cluster is tried instead (``cluster``)
        if d is None:
            return [off("Docker engine", self.ctx.needs("deploy"), "[target.deployer]")]
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
                                 f"({first(r.stderr or r.stdout or 'no output')})",
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
            from runbook.adapters.kubernetes.deployer import KubernetesDeployer

            k8s = KubernetesDeployer(d, secrets=self.secrets, clock=time.monotonic,
                                     sleep=time.sleep, cwd=Path.cwd())
            review = getattr(k8s, "access_review", None)
            lines = review() if review is not None else []
        except ImportError as e:
            return [Check(False, f"Kubernetes: the client library is missing ({first(e)})",
                          "install golive with its kubernetes extra")]
        except StepFailed as e:
            return [Check(False, f"Kubernetes cluster: {first(e.message)}", fix)]
        # A refused line already says what to do (create the namespace, grant the verbs).
        checks = [Check(ok, f"Kubernetes: {line}") for ok, line in lines]
        try:
            objects = k8s.manifests()
        except StepFailed as e:
            checks.append(Check(False, f"Kubernetes manifests {d.manifests}: {first(e.message)}",
                                f"fix the manifests, or correct [target.deployer] manifests in "
                                f"{self.where}"))
        else:
            checks.append(Check(True, f"Kubernetes manifests {d.manifests}: {len(objects)} "
                                      "object(s) parse"))
        return checks

    def compose_file(self) -> list[Check]:
        from runbook.adapters.compose import ComposeProject
        from runbook.errors import StepFailed

        d = self.ctx.compose_deployer()
        if getattr(getattr(self.target, "deployer", None), "kind", None) == "kubernetes":
            return []
        if d is None:
            return [off("compose file", self.ctx.needs("deploy"), "[target.deployer]")]
        path = Path(d.compose_file)
        shown = path if path.is_absolute() else f"{path} (from {Path.cwd()})"
        if not path.is_file():
            self.compose_error = "missing"
            return [Check(False, f"compose file {shown}: no such file",
                          f"correct [target.deployer] compose_file in {self.where} (relative "
                          "paths are resolved from where the bot runs)")]
        sentinel = {svc.tag_variable: SENTINEL_TAG for svc in d.services}
        try:
            r = ComposeProject(d, secrets=self.secrets, cwd=Path.cwd()).compose(
                "config", "--format", "json", env=sentinel, timeout=COMPOSE_TIMEOUT_S,
                check=False, what="docker compose config")
        except StepFailed as e:
            self.compose_error = e.message
            return [Check(False, f"compose file {shown}: cannot be parsed ({first(e.message)})",
                          "install the docker compose plugin on the bot's host")]
        if r.returncode != 0:
            self.compose_error = r.stderr or r.stdout
            return [Check(False, f"compose file {shown}: `docker compose config` refuses it: "
                                 f"{first(r.stderr or r.stdout or f'exit {r.returncode}')}",
                          f"fix the compose file (or the variables [target.deployer] env "
                          f"passes) until `docker compose -f {path} config` accepts it")]
        try:
            self.compose = json.loads(r.stdout)
        except ValueError:
            self.compose_error = "not JSON"
            return [Check(False, f"compose file {shown}: `docker compose config --format json` "
                                 "did not print JSON",
                          "use Docker Compose v2.2 or newer")]
        services = self.compose.get("services") or {}
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
        if self.compose is None:
            return None
        return set((self.compose.get("services") or {}).keys())
