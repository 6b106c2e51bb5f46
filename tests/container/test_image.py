"""golive as teams run it: deploy/compose.yaml with the bot's image, its PostgreSQL and the
release phase, talking to the sandbox Slack over signed HTTP.

The stack runs with host networking (an override written per test session) so the bot in its
container reaches the sandbox bound on 127.0.0.1. The images come from deploy/build-image.sh,
which rebuilds only when the source changed. Missing Docker fails, never skips.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from bot.dev.sandbox import SandboxServer, Workspace
from tests.support.harness import BASE_CONFIG, BOT_TOKEN, SIGNING_SECRET, text_of
from tests.support.paybox_env import ROOT, free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1200)]

DEPLOY = ROOT / "deploy"
DOCKER_SOCK = "/var/run/docker.sock"


def run(argv: list[str], *, timeout: float = 120, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          env=env)


def wait_until(what: str, probe, timeout: float):
    """Poll ``probe`` until it returns something truthy; AssertionError names ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        threading.Event().wait(0.25)  # docker has no change notification to wait on here
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


class Stack:
    """deploy/compose.yaml up under its own project name, bot and database on host ports."""

    def __init__(self, tmp: Path):
        self.project = f"golive-ct-{uuid.uuid4().hex[:8]}"
        self.bot_port, self.pg_port = free_port(), free_port()
        self.workspace = Workspace.default_demo()
        self.sandbox = SandboxServer(self.workspace, signing_secret=SIGNING_SECRET,
                                     bot_token=BOT_TOKEN, host="127.0.0.1").start()
        self.sandbox.bot_url = f"{self.url}/slack/events"
        config = tmp / "golive.toml"
        config.write_text(BASE_CONFIG, encoding="utf-8")
        config.chmod(0o644)  # read by the bot's non-root user
        self.owner_pw, runtime_pw = secrets.token_hex(12), secrets.token_hex(12)
        self.super_pw = secrets.token_hex(12)
        self.env_file = tmp / "compose.env"
        self.env_file.write_text("\n".join(f"{k}={v}" for k, v in {
            "POSTGRES_PASSWORD": self.super_pw, "GOLIVE_OWNER_PASSWORD": self.owner_pw,
            "GOLIVE_RUNTIME_PASSWORD": runtime_pw,
            "GOLIVE_DOOR_PASSWORD": secrets.token_hex(12), "GOLIVE_AUDIT_KEY": secrets.token_hex(32),
            "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.sandbox.api_url, "DOCKER_GID": str(os.stat(DOCKER_SOCK).st_gid),
            "GOLIVE_CONFIG_FILE": str(config),
            # compose.yaml's own database URLs, pointed at the host-network database
            "GOLIVE_DB_HOST": "127.0.0.1", "GOLIVE_DB_PORT": str(self.pg_port)}.items()) + "\n")
        self.override = tmp / "compose.hostnet.yaml"
        self.override.write_text(f"""
services:
  db:
    network_mode: host
    environment: {{PGPORT: "{self.pg_port}"}}
    command: ["postgres", "-c", "listen_addresses=127.0.0.1"]
    healthcheck: {{interval: 1s}}
  release:
    network_mode: host
  bot:
    network_mode: host
    ports: !reset []
    environment: {{PORT: "{self.bot_port}"}}
    healthcheck: {{interval: 1s}}
""", encoding="utf-8")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.bot_port}"

    def compose(self, *args: str, timeout: float = 240, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        r = run(["docker", "compose", "-p", self.project, "--env-file", str(self.env_file),
                 "-f", str(DEPLOY / "compose.yaml"), "-f", str(self.override), *args],
                timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stderr[-2500:]}\n--- logs ---\n{self.logs()}")
        return r

    def logs(self) -> str:
        r = run(["docker", "compose", "-p", self.project, "--env-file", str(self.env_file),
                 "-f", str(DEPLOY / "compose.yaml"), "-f", str(self.override), "logs",
                 "--no-color", "--tail", "40"])
        return (r.stdout + r.stderr)[-4000:]

    def container(self, service: str) -> str:
        r = self.compose("ps", "-a", "-q", service)
        assert r.stdout.strip(), f"no container for service {service}"
        return r.stdout.split()[0]

    def inspect(self, service: str) -> dict:
        r = run(["docker", "inspect", self.container(service)])
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)[0]

    def command(self, user: str, text: str, timeout: float = 20.0) -> str:
        """`/golive text` as ``user`` in the cutover channel; the answer as they see it."""
        uid = self.workspace.user(user).id
        after = self.workspace.seq
        d = self.sandbox.slash(user, text, channel="C_CUTOVER")
        assert d.status == 200, f"/golive {text} answered HTTP {d.status}: {d.body[:300]}"
        msg = self.workspace.wait_for_message(
            "C_CUTOVER", after_seq=after, timeout=timeout,
            predicate=lambda m: (m.via_response_url or m.source == "ack")
            and m.ephemeral_to in (None, uid))
        return text_of(msg)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=120)
        self.sandbox.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if run(["docker", "info"], timeout=30).returncode != 0:
        pytest.fail("Docker Engine not reachable (run `bash .ci/docker-up.sh`)")
    built = run(["bash", str(DEPLOY / "build-image.sh")], timeout=1100)
    assert built.returncode == 0, f"deploy/build-image.sh failed:\n{built.stderr[-3000:]}"
    s = Stack(tmp_path_factory.mktemp("golive-container"))
    try:
        s.compose("up", "-d")
        try:
            wait_until("the bot container's HEALTHCHECK to report healthy",
                       lambda: s.inspect("bot")["State"].get("Health", {}).get("Status")
                       == "healthy", timeout=90)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- logs ---\n{s.logs()}") from None
        yield s
    finally:
        s.down()


def test_release_phase_ran_as_the_owner_before_the_bot_started(stack):
    release = stack.inspect("release")["State"]
    logs = run(["docker", "logs", stack.container("release")]).stdout
    assert release["Status"] == "exited" and release["ExitCode"] == 0, \
        f"release phase (golive db upgrade) did not succeed: {release}\n{logs}"
    assert "bot schema at" in logs, f"golive db upgrade printed no schema revision:\n{logs}"


def test_the_bot_connects_as_the_runtime_role_not_the_owner(stack):
    admin = f"postgresql://postgres:{stack.super_pw}@127.0.0.1:{stack.pg_port}/postgres"
    with psycopg.connect(admin, connect_timeout=10) as conn:
        roles = {r[0] for r in conn.execute(
            "SELECT usename FROM pg_stat_activity WHERE datname = 'golive'"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()")}
    # the work side as the runtime role, the door (the inbox's only writer) as the door role
    assert roles == {"golive_runtime", "golive_door"}, \
        f"the bot's database sessions run as {roles}"
    logs = run(["docker", "logs", stack.container("bot")])
    assert "audit log:" not in logs.stdout + logs.stderr, \
        f"the bot warns that its role could rewrite the audit log:\n{logs.stderr[-1500:]}"


def test_healthz_answers_and_the_image_healthcheck_is_healthy(stack):
    r = httpx.get(f"{stack.url}/healthz", timeout=10)
    assert r.status_code == 200 and r.json() == {"ok": True, "database": "up", "work": "up"}, \
        f"/healthz from the container: {r.status_code} {r.text}"
    health = stack.inspect("bot")["State"]["Health"]
    assert health["Status"] == "healthy", f"HEALTHCHECK: {health}"
    assert health["Log"] and health["Log"][-1]["ExitCode"] == 0, f"last probe: {health['Log']}"


def test_the_bot_runs_as_a_non_root_user(stack):
    cfg = stack.inspect("bot")["Config"]
    assert cfg["User"] and cfg["User"].split(":")[0] not in ("", "0", "root"), \
        f"image user is {cfg['User']!r}"
    r = run(["docker", "top", stack.container("bot"), "-eo", "pid,uid,args"])
    assert r.returncode == 0, r.stderr
    rows = [line.split(None, 2) for line in r.stdout.splitlines()[1:] if line.strip()]
    assert any("golive serve" in args for _, _, args in rows), f"no `golive serve` in:\n{r.stdout}"
    assert all(uid != "0" for _, uid, _ in rows), f"a process in the bot runs as root:\n{r.stdout}"


def test_the_bot_user_can_use_the_docker_socket_deploys_need(stack):
    r = stack.compose("exec", "-T", "bot", "python3", "-c",
                      "import docker; print(docker.from_env().version()['ApiVersion'])",
                      check=False, timeout=60)
    assert r.returncode == 0 and r.stdout.strip(), \
        f"the bot's user cannot talk to dockerd through the mounted socket:\n{r.stderr[-1500:]}"


def test_a_cutover_run_started_in_slack_shows_in_status(stack):
    started = stack.command("alice", "start v1")
    assert "started cutover run" in started and "v1" in started, started
    assert any("started cutover run" in text_of(m)
               for m in stack.workspace.messages("C_CUTOVER", include_ephemeral=False)), \
        "the start was not announced in the cutover channel"
    status = stack.command("bob", "status")
    assert "v1" in status and "#1" in status, f"status does not show the run:\n{status}"
    assert BOT_TOKEN not in status and SIGNING_SECRET not in status


def test_healthcheck_turns_unhealthy_when_the_database_goes_away(stack):
    # last in this module: it stops the stack's database
    stack.compose("stop", "-t", "5", "db")
    r = httpx.get(f"{stack.url}/healthz", timeout=15)
    assert r.status_code == 503 and r.json()["database"] == "down", \
        f"/healthz with the database stopped: {r.status_code} {r.text}"
    wait_until("the HEALTHCHECK to report unhealthy with the database stopped",
               lambda: stack.inspect("bot")["State"]["Health"]["Status"] == "unhealthy",
               timeout=60)
