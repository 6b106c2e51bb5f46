"""A real paybox stack per test session: own compose project, ports, ledger DB and secrets.

Needs the Docker Engine, the local registry with the paybox images (``bash .ci/docker-up.sh``)
and the host Postgres. Missing pieces fail the tests with a clear message; they never skip.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runbook.adapters.docker import compose_cli
from runbook.steps.base import StepContext, StepFailed, StepResult
from runbook.target import TargetConfig
from tests.support.paybox_env import PAYBOX, PG_ADMIN_URL, REGISTRY, ROOT, free_port, worker_tag
from tests.support.paybox_target import paybox_target


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    return free_port()


class FakeClock:
    """A monotonic clock that only moves when the step sleeps."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


@dataclass
class Paybox:
    project: str
    edge_port: int
    app_port: int
    database_url: str
    ops_token: str
    admin_password: str
    revisions: dict[str, str]
    secret_values: list[str]
    all_output: list[str] = field(default_factory=list)

    def target(self, **overrides: Any) -> TargetConfig:
        overrides.setdefault("registry", REGISTRY)
        return paybox_target(
            edge_port=self.edge_port, app_port=self.app_port, project=self.project,
            database_url=self.database_url, ops_token=self.ops_token,
            admin_password=self.admin_password, root=ROOT, **overrides)

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
            "PAYBOX_REGISTRY": REGISTRY, "PAYBOX_APP_PORT": str(self.app_port),
            "PAYBOX_EDGE_PORT": str(self.edge_port), "PAYBOX_DATABASE_URL": self.database_url,
            "PAYBOX_OPS_TOKEN": self.ops_token, "PAYBOX_ADMIN_PASSWORD": self.admin_password,
            "PAYBOX_ADMIN_USER": "admin",
        }

    def compose(self, *args: str, tag: str = "v1", check: bool = True, timeout: float = 180
                ) -> subprocess.CompletedProcess[str]:
        argv = [*compose_cli(), "-f", str(PAYBOX / "compose.yaml"), "-p", self.project, *args]
        r = subprocess.run(argv, env={**self.env, "PAYBOX_APP_TAG": tag}, capture_output=True,
                           text=True, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed:\n{r.stderr[-2000:]}")
        return r

    def http(self, method: str, url: str, body: Any = None, token: bool = False
             ) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("X-Ops-Token", self.ops_token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def set_maintenance(self, enabled: bool) -> None:
        status, body = self.http("POST", f"http://127.0.0.1:{self.edge_port}/ops/maintenance",
                                 {"enabled": enabled}, token=True)
        assert status == 200, body

    def set_knobs(self, **knobs: Any) -> None:
        status, body = self.http("POST", f"http://127.0.0.1:{self.app_port}/ops/knobs",
                                 knobs, token=True)
        assert status == 200, body

    def alembic_revision(self) -> str | None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            try:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            except psycopg.errors.UndefinedTable:
                return None
        return row[0] if row else None

    def running_image(self, service: str = "app") -> dict[str, Any]:
        r = self.compose("ps", "--format", "json", service)
        rows = [json.loads(x) for x in r.stdout.splitlines() if x.strip().startswith("{")]
        assert rows, f"{service} is not running"
        cid = rows[0]["ID"]
        out = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True,
                             check=True)
        info = json.loads(out.stdout)[0]
        img = subprocess.run(["docker", "image", "inspect", info["Image"]], capture_output=True,
                             text=True, check=True)
        labels = json.loads(img.stdout)[0]["Config"].get("Labels") or {}
        return {"image": info["Config"]["Image"], "image_id": info["Image"],
                "revision": labels.get("org.opencontainers.image.revision"),
                "health": info["State"].get("Health", {}).get("Status")}

    def reset_v1(self) -> None:
        """App on v1, schema at 0001, maintenance off, knobs cleared."""
        self.compose("up", "-d", "--wait", "--no-build", tag="v1")
        if self.alembic_revision() != "0001_ledger":
            from runbook.adapters.migrations import AlembicApiMigrator
            from runbook.target import Migrations

            m = AlembicApiMigrator(
                Migrations(mode="alembic-api", script_location=PAYBOX / "app" / "migrations"),
                self.database_url, {})
            if self.alembic_revision() is None:
                m.upgrade("0001_ledger")
            else:
                m.downgrade("0001_ledger")
        self.set_knobs(health_red=False)
        self.set_maintenance(False)


def _registry_has(repo: str, tags: set[str]) -> set[str]:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/{repo}/tags/list", timeout=5) as r:
            return tags - set(json.load(r).get("tags") or [])
    except OSError:
        return tags


@pytest.fixture(scope="session")
def paybox() -> Iterator[Paybox]:
    docker = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                            capture_output=True, text=True, check=False)
    if docker.returncode != 0:
        pytest.fail(f"Docker Engine not reachable (run `bash .ci/docker-up.sh`): "
                    f"{docker.stderr.strip()[:300]}")
    missing = _registry_has("paybox/app", {"v1", "v2"}) | {
        f"edge:{t}" for t in _registry_has("paybox/edge", {"v1"})}
    if missing:
        pytest.fail(f"registry {REGISTRY} lacks paybox images {sorted(missing)} "
                    "(run `bash .ci/docker-up.sh`)")
    rev_file = PAYBOX / "build" / "revisions.json"
    if not rev_file.exists():
        pytest.fail(f"{rev_file} missing (run `bash .ci/docker-up.sh`)")
    revisions = json.loads(rev_file.read_text())

    suffix = f"{worker_tag()}_{pysecrets.token_hex(4)}"  # one stack per xdist worker
    db, role = f"golive_it_{suffix}", f"golive_it_{suffix}"
    db_password = "dbpw-" + pysecrets.token_hex(8)
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD \'{db_password}\'')
            conn.execute(f'CREATE DATABASE "{db}" OWNER "{role}"')
    except psycopg.Error as e:
        pytest.fail(f"host Postgres not usable at {PG_ADMIN_URL}: {e}")
    pb = Paybox(
        project=f"golive-it-{suffix}".replace("_", "-"),
        edge_port=free_port(),
        app_port=free_port(),
        database_url=f"postgresql://{role}:{db_password}@127.0.0.1:5432/{db}",
        ops_token="opstok-" + pysecrets.token_hex(8),
        admin_password="admpw-" + pysecrets.token_hex(8),
        revisions=revisions,
        secret_values=[],
    )
    pb.secret_values = [db_password, pb.ops_token, pb.admin_password, pb.database_url]
    t0 = time.monotonic()
    try:
        pb.reset_v1()
        print(f"\npaybox {pb.project} up on v1 in {time.monotonic() - t0:.1f}s "
              f"(edge :{pb.edge_port}, app :{pb.app_port})")
        yield pb
    finally:
        pb.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        leaked = [line for line in pb.all_output
                  if any(s in line for s in pb.secret_values)]
        assert not leaked, f"secrets leaked into step output: {leaked[:3]}"


@pytest.fixture
def stack(paybox: Paybox) -> Paybox:
    """The session stack reset to v1 / schema 0001 / maintenance off."""
    paybox.reset_v1()
    return paybox


@dataclass
class Outcome:
    result: StepResult | None
    error: StepFailed | None
    progress: list[str]

    @property
    def message(self) -> str:
        return self.error.message if self.error else ""


@pytest.fixture
def run_step(paybox: Paybox) -> Callable[..., Outcome]:
    """Run a step function with a real StepContext; scan everything it says for secrets."""

    def run(
        fn: Callable[[StepContext], StepResult],
        *,
        target: TargetConfig | None = None,
        params: Mapping[str, Any] | None = None,
        facts: Mapping[str, Any] | None = None,
        timeout: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        expect_failure: bool = False,
    ) -> Outcome:
        target = target or paybox.target()
        lines: list[str] = []
        ctx = StepContext(
            run_id=1, step_id="it", params=dict(params or {}), facts=dict(facts or {}),
            target=target, progress=lines.append, deadline=clock() + timeout, clock=clock,
            sleep=sleep, secrets=target.secrets(),
        )
        result, error = None, None
        try:
            result = fn(ctx)
        except StepFailed as e:
            error = e
        texts = list(lines)
        if result is not None:
            texts += [result.summary, result.detail, json.dumps(result.facts, default=str)]
        if error is not None:
            texts += [error.message, str(error), json.dumps(error.facts, default=str)]
        paybox.all_output.extend(texts)
        for text in texts:
            for s in paybox.secret_values:
                assert s not in text, f"secret leaked into step output: {text[:300]!r}"
        if os.environ.get("GOLIVE_IT_SHOW"):
            print("\n--- progress:\n" + "\n".join(lines))
            print("--- " + (f"FAILED: {error.message}" if error else f"OK: {result.summary}"))
        if expect_failure:
            assert error is not None, f"step should have failed; it said: {result}"
        else:
            assert error is None, f"step failed: {error.message if error else ''}\n" + "\n".join(
                lines[-15:])
        return Outcome(result, error, lines)

    return run


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def unused_port() -> int:
    return closed_port()


@pytest.fixture
def registry() -> str:
    return REGISTRY


@pytest.fixture
def paybox_dir() -> Path:
    return PAYBOX
