"""The rehearsal's own sample stack: a unique compose project, free ports, a fresh ledger
database and fresh tokens, brought up with examples/paybox/up.sh and torn down with down.sh.
Before anything starts, ``missing`` says exactly what is not there (Docker, compose, the
images in the registry, the build's files, the ledger's PostgreSQL)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from bot.dev.rehearse.sample import REGISTRY, SampleStack, paybox_dir

LEDGER_SERVER = "postgresql://postgres@127.0.0.1:5432/paybox"
IMAGES = {"paybox/app": {"v1", "v2"}, "paybox/edge": {"v1"}}
SETUP = "bash .ci/docker-up.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_stack(registry: str | None = None) -> SampleStack:
    """A stack nobody else uses: its own project name, ports, ledger database and tokens."""
    suffix = secrets.token_hex(4)
    base = os.environ.get("PAYBOX_DATABASE_URL") or LEDGER_SERVER
    db_url = urlunsplit(urlsplit(base)._replace(path=f"/paybox_rh_{suffix}"))
    return SampleStack(project=f"golive-rehearse-{suffix}", edge_port=_free_port(),
                       app_port=_free_port(), database_url=db_url,
                       ops_token="ops-" + secrets.token_hex(10),
                       admin_password="adm-" + secrets.token_hex(10),
                       webhook_secret="whk-" + secrets.token_hex(12),
                       registry=registry or os.environ.get("PAYBOX_REGISTRY", REGISTRY))


def _registry_lacks(registry: str) -> list[str]:
    lacking = []
    for repo, tags in IMAGES.items():
        try:
            with urllib.request.urlopen(f"http://{registry}/v2/{repo}/tags/list",
                                        timeout=5) as r:
                have = set(json.load(r).get("tags") or [])
        except OSError as e:
            return [(f"the registry {registry} does not answer ({type(e).__name__}): start it "
                    f"with `{SETUP}`")]
        lacking += [f"{repo}:{t}" for t in sorted(tags - have)]
    return ([(f"the registry {registry} lacks the sample images {', '.join(lacking)}: build "
             f"them with `{SETUP}` (it runs examples/paybox/build.sh)")] if lacking else [])


def missing(stack: SampleStack) -> list[str]:
    """What the rehearsal needs and does not find, one line each with how to get it."""
    if shutil.which("docker") is None:
        return [("Docker is not installed: the rehearsal deploys the sample stack with Docker "
                f"Compose. Install Docker (on Debian/Ubuntu `{SETUP}` does it), then re-run.")]
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, check=False, timeout=30)
    if info.returncode != 0:
        return [(f"the Docker Engine does not answer ({info.stderr.strip()[:200]}): start it "
                f"(`{SETUP}` starts dockerd and the registry)")]
    problems = []
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                             check=False, timeout=30)
    if compose.returncode != 0:
        problems.append("`docker compose` (the Compose v2 plugin) is missing: install it "
                        f"(`{SETUP}` does)")
    problems += _registry_lacks(stack.registry)
    build = paybox_dir() / "build"
    for name in ("revisions.json", "fakegithub-state.json", "env/prod-live.env", "evidence"):
        if not (build / name).exists():
            problems.append(f"{build / name} is missing: examples/paybox/build.sh generates it "
                            f"(`{SETUP}` runs it)")
    try:
        import psycopg

        with psycopg.connect(stack.admin_url, connect_timeout=5):
            pass
    except Exception as e:  # noqa: BLE001 - any failure to connect is the same answer
        where = urlsplit(stack.admin_url)
        problems.append(f"the sample ledger's PostgreSQL at {where.hostname}:{where.port or 5432}"
                        f" does not answer ({type(e).__name__}): start it, or point "
                        "PAYBOX_DATABASE_URL at one (trust or password auth, may CREATE DATABASE)")
    return problems


def _run(argv: list[str], stack: SampleStack, say: Callable[[str], None],
         timeout: float, extra: dict[str, str] | None = None) -> int:
    env = {**os.environ, **stack.env(), **(extra or {})}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip():
            say(line.rstrip()[:200])
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def up(stack: SampleStack, say: Callable[[str], None]) -> None:
    """examples/paybox/up.sh: the ledger database, app v1 + edge, migration 0001."""
    code = _run(["bash", str(paybox_dir() / "up.sh"), stack.project], stack, say, 300)
    if code != 0:
        raise RuntimeError(f"examples/paybox/up.sh {stack.project} exited {code} (its output "
                           "is above)")


def down(stack: SampleStack, say: Callable[[str], None]) -> None:
    """Remove the project's containers and volumes, then its ledger database."""
    _run(["bash", str(paybox_dir() / "down.sh"), stack.project], stack, say, 120)
    try:
        import psycopg

        name = urlsplit(stack.database_url).path.lstrip("/")
        with psycopg.connect(stack.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as e:  # noqa: BLE001 - tear-down goes on; the line says what remains
        say(f"could not drop the ledger database: {type(e).__name__}: {e}"[:200])
