"""A private paybox stack for the sample-stack tests (examples/paybox).

Own compose project, ports, ledger DB and secrets per session; brought up with
examples/paybox/up.sh (v1 + migration 0001) and torn down with
``docker compose down -v`` plus a DROP DATABASE. Missing Docker / registry /
images fail the tests (never skip): run ``bash .ci/docker-up.sh`` first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.support.paybox_env import PAYBOX, PG_ADMIN_URL, REGISTRY, free_port, worker_tag


@dataclass
class Stack:
    project: str
    app_port: int
    edge_port: int
    db_name: str
    database_url: str
    ops_token: str
    admin_password: str
    webhook_secret: str
    revisions: dict[str, str]

    @property
    def app(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def edge(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYBOX_")}
        env.update({
            "PAYBOX_REGISTRY": REGISTRY, "PAYBOX_APP_PORT": str(self.app_port),
            "PAYBOX_EDGE_PORT": str(self.edge_port), "PAYBOX_DATABASE_URL": self.database_url,
            "PAYBOX_OPS_TOKEN": self.ops_token, "PAYBOX_ADMIN_USER": "admin",
            "PAYBOX_ADMIN_PASSWORD": self.admin_password,
            "PAYBOX_WEBHOOK_SECRET": self.webhook_secret,
        })
        env.update(extra)
        return env

    def compose(self, *args: str, check: bool = True, timeout: float = 180, **env: str
                ) -> subprocess.CompletedProcess[str]:
        argv = ["docker", "compose", "-p", self.project, "-f", str(PAYBOX / "compose.yaml"),
                *args]
        r = subprocess.run(argv, env=self.env(**env), capture_output=True, text=True,
                           timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed "
                                 f"({r.returncode}):\n{r.stdout[-1500:]}\n{r.stderr[-2500:]}")
        return r

    def http(self, method: str, url: str, body: Any = None, *, token: bool = False,
             headers: dict[str, str] | None = None, raw: bytes | None = None
             ) -> tuple[int, dict[str, str], str]:
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("X-Ops-Token", self.ops_token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=15) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def json(self, method: str, url: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, text = self.http(method, url, body, **kw)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def set_knobs(self, **knobs: Any) -> dict[str, Any]:
        status, body = self.json("POST", f"{self.app}/ops/knobs", knobs, token=True)
        assert status == 200, body
        return body

    def set_maintenance(self, enabled: bool) -> None:
        status, body = self.json("POST", f"{self.edge}/ops/maintenance", {"enabled": enabled},
                                 token=True)
        assert status == 200, body
        assert body["maintenance"] is enabled

    def sign(self, body: bytes) -> str:
        return hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url, autocommit=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def running_stack() -> Iterator[Stack]:
    """The generator behind the session fixture ``paybox_stack``, which tests/conftest.py
    defines once for tests/paybox and tests/watches: a fixture defined (or imported) in two
    conftests is two fixtures, and each brought up its own stack."""
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.fail("Docker Engine not reachable (run `bash .ci/docker-up.sh`): "
                    + info.stderr.strip()[:300])
    if subprocess.run(["docker", "compose", "version"], capture_output=True,
                      check=False).returncode != 0:
        pytest.fail("`docker compose` plugin missing (run `bash .ci/docker-up.sh`)")
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
    except OSError as e:
        pytest.fail(f"registry {REGISTRY} not answering (run `bash .ci/docker-up.sh`): {e}")
    rev_file = PAYBOX / "build" / "revisions.json"
    if not rev_file.exists():
        pytest.fail(f"{rev_file} missing (run `bash .ci/docker-up.sh`)")

    suffix = f"{worker_tag()}_{secrets.token_hex(4)}"  # one stack per xdist worker
    app_port, edge_port = free_port(), free_port()
    while edge_port == app_port:
        edge_port = free_port()
    db_name = f"paybox_t_{suffix}"
    st = Stack(
        project=f"paybox-t-{suffix}".replace("_", "-"), app_port=app_port, edge_port=edge_port,
        db_name=db_name,
        database_url=f"postgresql://postgres@127.0.0.1:5432/{db_name}",
        ops_token="ops-" + secrets.token_hex(8), admin_password="adm-" + secrets.token_hex(8),
        webhook_secret="whs-" + secrets.token_hex(8),
        revisions=json.loads(rev_file.read_text()),
    )
    try:
        r = subprocess.run(["bash", str(PAYBOX / "up.sh"), st.project], env=st.env(),
                           capture_output=True, text=True, timeout=240, check=False)
        assert r.returncode == 0, f"up.sh failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        assert st.admin_password not in r.stdout + r.stderr
        yield st
    finally:
        st.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        try:
            _pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        except psycopg.Error:
            pass


@pytest.fixture
def stack(paybox_stack: Stack) -> Any:
    """The session stack with knobs cleared and maintenance off after each test."""
    yield paybox_stack
    paybox_stack.set_knobs(health_red=False, error_5xx_rate=0, payout_fail_rate=0,
                           ledger_violation=False)
    paybox_stack.set_maintenance(False)
