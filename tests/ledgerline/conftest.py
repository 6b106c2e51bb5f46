"""The Ledgerline sample stack (examples/ledgerline) for one test module: its own compose
project, ports, database and role, gateway key, operator secret and session key, brought up
with the example's own up.sh and torn down with its down.sh.

Needs the Docker Engine, the local registry with the ledgerline images (`bash .ci/docker-up.sh`
builds them after paybox's) and the host PostgreSQL; a missing piece fails, never skips.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.paybox_env import PG_ADMIN_URL, REGISTRY, ROOT, free_port, worker_tag

LEDGERLINE = ROOT / "examples" / "ledgerline"
CONFIG = LEDGERLINE / "golive.toml"
ALEMBIC = ["python3", "-m", "alembic", "-c", "/srv/ledgerline/alembic.ini"]
V1_SCHEMA, V2_SCHEMA = "ll_0001_journal", "ll_0002_entry_reference"


@dataclass
class Ledgerline:
    project: str
    api_port: int
    gateway_port: int
    dsn: str
    gateway_key: str
    operator_secret: str
    session_key: str
    releases: dict[str, str]
    secret_values: list[str] = field(default_factory=list)

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        """What the team's bot holds: the variables its golive.toml and env_passthrough name."""
        return {"LEDGERLINE_DIR": str(LEDGERLINE), "LL_COMPOSE_PROJECT": self.project,
                "LL_REGISTRY": REGISTRY, "LL_DB_DSN": self.dsn,
                "LL_API_PORT": str(self.api_port), "LL_GATEWAY_PORT": str(self.gateway_port),
                "LL_GATEWAY_KEY": self.gateway_key, "LL_OPERATOR_SECRET": self.operator_secret,
                "LL_SESSION_KEY": self.session_key}

    def compose(self, *args: str, tag: str = "v1", check: bool = True, timeout: float = 180
                ) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
               **self.env(), "LL_API_TAG": tag}
        r = subprocess.run(["docker", "compose", "-p", self.project, "-f",
                            str(LEDGERLINE / "compose.yaml"), *args], env=env,
                           capture_output=True, text=True, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed:\n{r.stderr[-2000:]}")
        return r

    def script(self, name: str, *args: str, timeout: float = 300
               ) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
               **self.env()}
        return subprocess.run(["bash", str(LEDGERLINE / name), *args], env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def http(self, method: str, url: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def drain(self, on: bool) -> None:
        status, body = self.http("PUT", f"{self.public_url}/_gateway/drain", {"drain": on},
                                 {"Authorization": f"Bearer {self.gateway_key}"})
        assert status == 200, body

    def schema_revision(self) -> str | None:
        """The revision in the team's own version table (ll_schema_version)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            try:
                row = conn.execute("SELECT version_num FROM ll_schema_version").fetchone()
            except psycopg.errors.UndefinedTable:
                return None
        return row[0] if row else None

    def container(self, service: str) -> dict[str, Any]:
        """The service's running container: id, image, the image's revision label, health."""
        r = self.compose("ps", "-q", service)
        cid = r.stdout.strip()
        assert cid, f"{service} is not running"
        info = json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True,
                                         text=True, check=True).stdout)[0]
        img = json.loads(subprocess.run(["docker", "image", "inspect", info["Image"]],
                                        capture_output=True, text=True, check=True).stdout)[0]
        labels = img["Config"].get("Labels") or {}
        return {"id": info["Id"], "image": info["Config"]["Image"],
                "revision": labels.get("org.opencontainers.image.revision"),
                "env": info["Config"].get("Env") or [],
                "health": (info["State"].get("Health") or {}).get("Status")}

    def reset_v1(self) -> None:
        """api v1, the v1 schema, the gateway open (the gateway is only created if missing)."""
        self.compose("up", "-d", "--wait", "--no-recreate", "gateway")
        self.compose("up", "-d", "--wait", "--no-deps", "api", tag="v1")
        rev = self.schema_revision()
        if rev == V2_SCHEMA:  # the v2 image holds the downgrade
            self.compose("run", "--rm", "--no-deps", "-T", "api", *ALEMBIC, "downgrade",
                         V1_SCHEMA, tag="v2")
        elif rev != V1_SCHEMA:
            self.compose("run", "--rm", "--no-deps", "-T", "api", *ALEMBIC, "upgrade",
                         V1_SCHEMA, tag="v1")
        self.drain(False)


def _registry_lacks() -> list[str]:
    lacking = []
    for repo, tags in (("ledgerline/api", {"v1", "v2"}), ("ledgerline/gateway", {"v1"})):
        try:
            with urllib.request.urlopen(f"http://{REGISTRY}/v2/{repo}/tags/list",
                                        timeout=5) as r:
                have = set(json.load(r).get("tags") or [])
        except OSError:
            have = set()
        lacking += [f"{repo}:{t}" for t in sorted(tags - have)]
    return lacking


@pytest.fixture(scope="module")
def ledgerline() -> Iterator[Ledgerline]:
    docker = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                            capture_output=True, text=True, check=False)
    if docker.returncode != 0:
        pytest.fail("Docker Engine not reachable (run `bash .ci/docker-up.sh`): "
                    + docker.stderr.strip()[:300])
    lacking = _registry_lacks()
    releases_file = LEDGERLINE / "build" / "releases.json"
    if lacking or not releases_file.is_file():
        pytest.fail(f"ledgerline images {lacking} or {releases_file} missing (run "
                    "`bash .ci/docker-up.sh`, which runs examples/ledgerline/build.sh)")
    suffix = f"{worker_tag()}_{pysecrets.token_hex(4)}"
    name = f"golive_ll_{suffix}"
    password = "llpw-" + pysecrets.token_hex(10)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
    ll = Ledgerline(
        project=f"golive-ll-{suffix}".replace("_", "-"), api_port=free_port(),
        gateway_port=free_port(), dsn=f"postgresql://{name}:{password}@127.0.0.1:5432/{name}",
        gateway_key="gwk-" + pysecrets.token_hex(12),
        operator_secret="ops-" + pysecrets.token_hex(12),
        session_key="ssk-" + pysecrets.token_hex(16),
        releases=json.loads(releases_file.read_text()))
    ll.secret_values = [password, ll.dsn, ll.gateway_key, ll.operator_secret, ll.session_key]
    try:
        up = ll.script("up.sh", ll.project)
        assert up.returncode == 0, f"examples/ledgerline/up.sh failed:\n{up.stdout}\n{up.stderr}"
        yield ll
    finally:
        ll.script("down.sh", ll.project, timeout=120)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def config_text(folder: Path) -> str:
    """The team's golive.toml, exactly as committed; its runbook (``runbook = "cutover.toml"``,
    relative to the config's folder) is copied into ``folder``, where the test writes it."""
    (folder / "cutover.toml").write_text((LEDGERLINE / "cutover.toml").read_text("utf-8"),
                                         encoding="utf-8")
    return CONFIG.read_text(encoding="utf-8")


@pytest.fixture
def stack(ledgerline: Ledgerline) -> Ledgerline:
    ledgerline.reset_v1()
    return ledgerline


def ledgerline_path(*parts: str) -> Path:
    return LEDGERLINE.joinpath(*parts)
