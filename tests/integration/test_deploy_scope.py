"""A deploy touches only the services that take the release image (real Docker, registry and
compose): another service, whose environment the bot does not hold, keeps its container; the
environment the team names reaches the deployed service, secret values masked on the card; a
service compose would recreate along is named and refused before anything changes.

Each test runs its own small compose project (busybox from the sample's tools image, in a
registry repository of its own), so it never shares a container or an image tag with the
paybox stacks other tests run at the same time.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runbook.adapters.compose import compose_cli
from runbook.steps.base import StepContext, StepFailed, StepResult
from runbook.steps.deploy import run as deploy
from runbook.steps.rollback import revert_deploy
from runbook.target import TargetConfig
from tests.support.paybox_env import REGISTRY, worker_tag

pytestmark = pytest.mark.docker

TOOLS = f"{REGISTRY}/paybox/tools:v1"  # static busybox: sleep, true

SERVICE = """
    image: ${{SCOPE_REGISTRY}}/{repo}:{tag}
    network_mode: {network}
    init: true
    command: ["sleep", "86400"]
    stop_grace_period: 1s
"""
COMPOSE = """
services:
  web:
    image: ${{SCOPE_REGISTRY}}/{repo}:${{SCOPE_WEB_TAG:-one}}
    network_mode: none
    init: true
    command: ["sleep", "86400"]
    stop_grace_period: 1s
    environment:
      SCOPE_API_TOKEN: ${{SCOPE_API_TOKEN:-compose-default-token}}
      SCOPE_REGION: ${{SCOPE_REGION:-compose-default-region}}
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      start_period: 1s
  gate:{gate}
    environment:
      GATE_KEY: ${{GATE_KEY:-compose-default-key}}
"""
SIDE = """
  side:{side}"""


def _run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=180, **kw)
    assert r.returncode == 0, f"{' '.join(argv)} failed:\n{r.stderr[-1500:]}"
    return r


@pytest.fixture(scope="module")
def repo() -> Iterator[str]:
    """A registry repository of this module's own with two busybox images, tags one and two."""
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("Docker Engine not reachable (run `bash .ci/docker-up.sh`)")
    if subprocess.run(["docker", "pull", "-q", TOOLS], capture_output=True,
                      check=False).returncode != 0:
        pytest.fail(f"registry {REGISTRY} lacks {TOOLS} (run `bash .ci/docker-up.sh`)")
    name = f"golive-scope-{worker_tag()}-{pysecrets.token_hex(3)}/web".lower()
    refs = [f"{REGISTRY}/{name}:{tag}" for tag in ("one", "two")]
    for ref, tag in zip(refs, ("one", "two"), strict=True):
        _run(["docker", "build", "-q", "-t", ref, "-"],
             input=f"FROM {TOOLS}\nLABEL golive.scope.build={tag}\n")
        _run(["docker", "push", ref])
    yield name
    subprocess.run(["docker", "rmi", "--force", *refs], capture_output=True, check=False)


@dataclass
class Project:
    name: str
    file: Path
    repo: str

    def compose(self, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
        base = {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_HOST") if k in os.environ}
        return _run([*compose_cli(), "-f", str(self.file), "-p", self.name, *args],
                    env={**base, "SCOPE_REGISTRY": REGISTRY, **(env or {})})

    def container(self, service: str) -> dict[str, Any]:
        ids = self.compose("ps", "-q", service).stdout.split()
        assert len(ids) == 1, f"{service}: containers {ids}"
        return json.loads(_run(["docker", "inspect", ids[0]]).stdout)[0]

    def target(self, **deployer: Any) -> TargetConfig:
        return TargetConfig.model_validate({"deployer": {
            "compose_file": str(self.file), "project": self.name, "registry": REGISTRY,
            "registry_variable": "SCOPE_REGISTRY",
            "services": [{"service": "web", "repository": self.repo,
                          "tag_variable": "SCOPE_WEB_TAG"}],
            **deployer}})


def _project(repo: str, tmp_path: Path, *, side: bool) -> Iterator[Project]:
    gate = SERVICE.format(repo=repo, tag="one", network="none")
    text = COMPOSE.format(repo=repo, gate=gate.rstrip("\n"))
    if side:
        text += SIDE.format(side=SERVICE.format(repo=repo, tag="one", network='"service:web"'))
    file = tmp_path / "compose.yaml"
    file.write_text(text)
    p = Project(f"golive-scope-{worker_tag()}-{pysecrets.token_hex(4)}".lower(), file, repo)
    # Started by the team with its own environment, which the bot does not hold.
    p.compose("up", "-d", "--wait", env={"GATE_KEY": "the-teams-real-gate-key"})
    try:
        yield p
    finally:
        subprocess.run([*compose_cli(), "-f", str(file), "-p", p.name, "down", "-t", "1"],
                       capture_output=True, check=False, timeout=120,
                       env={"PATH": os.environ.get("PATH", ""),
                            "SCOPE_REGISTRY": REGISTRY})


@pytest.fixture
def project(repo: str, tmp_path: Path) -> Iterator[Project]:
    yield from _project(repo, tmp_path, side=False)


@pytest.fixture
def sidecar_project(repo: str, tmp_path: Path) -> Iterator[Project]:
    """web plus a service in web's network namespace (network_mode: service:web)."""
    yield from _project(repo, tmp_path, side=True)


@dataclass
class Outcome:
    result: StepResult | None
    error: StepFailed | None
    progress: list[str]

    @property
    def text(self) -> str:
        out = list(self.progress)
        if self.result:
            out += [self.result.summary, self.result.detail, json.dumps(self.result.facts)]
        if self.error:
            out += [self.error.message, json.dumps(self.error.facts, default=str)]
        return "\n".join(out)


def _step(fn: Any, target: TargetConfig, *, params: dict[str, Any] | None = None,
          facts: dict[str, Any] | None = None) -> Outcome:
    lines: list[str] = []
    ctx = StepContext(run_id=1, step_id="scope", params=dict(params or {}),
                      facts=dict(facts or {}), target=target, progress=lines.append,
                      deadline=time.monotonic() + 150, clock=time.monotonic, sleep=time.sleep,
                      secrets=target.secrets())
    try:
        return Outcome(fn(ctx), None, lines)
    except StepFailed as e:
        return Outcome(None, e, lines)


def _env(container: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container["Config"]["Env"])


def test_deploy_and_revert_leave_a_service_the_bot_lacks_env_for_untouched(project: Project):
    gate, web = project.container("gate"), project.container("web")
    target = project.target()  # the bot holds no GATE_KEY: compose's default would apply

    out = _step(deploy, target, params={"tag": "two"})
    assert out.error is None, out.text
    assert project.container("gate")["Id"] == gate["Id"], "deploy recreated gate:\n" + out.text
    assert _env(project.container("gate"))["GATE_KEY"] == "the-teams-real-gate-key"
    now = project.container("web")
    assert now["Id"] != web["Id"] and now["Config"]["Image"].endswith(":two")
    assert now["State"]["Health"]["Status"] == "healthy"
    assert any(line.startswith("left as they run: gate") for line in out.progress), out.progress
    assert out.result.facts["previous_images"]["web"]["tag"] == "one"

    back = _step(revert_deploy, target, facts=out.result.facts)
    assert back.error is None, back.text
    assert project.container("web")["Config"]["Image"].endswith(":one")
    assert project.container("gate")["Id"] == gate["Id"], "revert recreated gate:\n" + back.text


def test_env_passthrough_reaches_the_service_and_secret_values_are_masked(
        project: Project, monkeypatch: pytest.MonkeyPatch):
    token = "scopetok-" + pysecrets.token_hex(8)
    monkeypatch.setenv("SCOPE_API_TOKEN", token)
    monkeypatch.setenv("SCOPE_REGION", "eu-test-1")
    target = project.target(env_passthrough=["SCOPE_API_TOKEN", "SCOPE_REGION"])

    out = _step(deploy, target, params={"tag": "two"})
    assert out.error is None, out.text
    env = _env(project.container("web"))
    assert env["SCOPE_API_TOKEN"] == token
    assert env["SCOPE_REGION"] == "eu-test-1"
    assert "environment passed through: SCOPE_API_TOKEN=****, SCOPE_REGION=eu-test-1" \
        in out.progress, out.progress
    assert token not in out.text


def test_env_passthrough_unset_in_the_bot_is_refused_before_anything(
        project: Project, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SCOPE_API_TOKEN", raising=False)
    web = project.container("web")
    out = _step(deploy, project.target(env_passthrough=["SCOPE_API_TOKEN"]),
                params={"tag": "two"})
    assert out.error is not None
    assert "env_passthrough names SCOPE_API_TOKEN" in out.error.message
    assert "nothing was changed" in out.error.message
    assert out.progress == [], "refused before the pull"
    assert project.container("web")["Id"] == web["Id"]


def test_a_service_compose_would_recreate_along_is_named_and_refused(sidecar_project: Project):
    p = sidecar_project
    before = {s: p.container(s)["Id"] for s in ("web", "side", "gate")}

    out = _step(deploy, p.target(), params={"tag": "two"})
    assert out.error is not None, out.text
    msg = out.error.message
    assert msg.startswith("refusing to deploy: docker compose would also recreate side"), msg
    assert "network_mode" in msg and "allow_recreate" in msg and "Nothing was changed" in msg
    assert any("compose would also recreate side" in line for line in out.progress)
    assert {s: p.container(s)["Id"] for s in before} == before, "something was recreated"

    # Allowed: side is recreated along, into the new web container's namespace; gate is not.
    ok = _step(deploy, p.target(allow_recreate=["side"]), params={"tag": "two"})
    assert ok.error is None, ok.text
    web, side = p.container("web"), p.container("side")
    assert web["Id"] != before["web"] and side["Id"] != before["side"]
    assert side["HostConfig"]["NetworkMode"] == f"container:{web['Id']}"
    assert side["State"]["Running"]
    assert p.container("gate")["Id"] == before["gate"]
