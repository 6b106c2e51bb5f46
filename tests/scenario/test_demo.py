"""`golive demo` as a new user runs it: a scripted tour on piped input, twice in a row.

The demo owns what it starts: each run gets a fresh demo database (unless --keep), /quit ends
a piped tour, and the embedded PostgreSQL is stopped when the demo exits (or by --stop).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from bot.dev import demo_db
from bot.dev.demo import stack_line
from tests.support.harness import free_socket

ROOT = Path(__file__).resolve().parents[2]
TOUR = "/golive start v2\n/quit\n/golive status\n"


def demo(data_dir: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """`golive demo` with piped input, as `printf ... | golive demo` runs it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "GOLIVE_", "DATABASE_URL"))}
    r = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--data-dir", str(data_dir),
                        *args], input=script, env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=180, check=False)
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_postgres_stopped(r: subprocess.CompletedProcess, data_dir: Path) -> None:
    m = re.search(r"stopped the embedded PostgreSQL \(pid (\d+)\)", r.stdout)
    assert m, f"the demo did not say it stopped its PostgreSQL:\n{r.stdout[-800:]}"
    assert not alive(int(m.group(1))), "the embedded PostgreSQL still runs"
    assert demo_db.running_pid(data_dir) is None, "the embedded PostgreSQL still runs"


@pytest.fixture
def data_dir():
    # Not under tmp_path: concurrent pytest sessions prune each other's old basetemps, and a
    # server whose data directory vanished can no longer be stopped by pg_ctl.
    d = Path(tempfile.mkdtemp(prefix="golive-demo-test-"))
    yield d
    pid = demo_db.running_pid(d)
    if pid is not None:  # a failed test must not leave a server behind
        demo_db.stop_embedded(d)
    shutil.rmtree(d, ignore_errors=True)


def test_each_demo_starts_fresh_quits_on_quit_and_stops_its_database(data_dir):
    first = demo(data_dir, TOUR)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "started cutover run #1" in first.stdout, first.stdout
    assert "Cutover run #1 — active" not in first.stdout, \
        "the line after /quit was still run (piped input ignores /quit)"
    assert "Sample stack: " in first.stdout, "the banner does not say whether the stack answers"
    assert_postgres_stopped(first, data_dir)

    second = demo(data_dir, TOUR)
    assert "started cutover run #1" in second.stdout, \
        f"the second demo did not start on a fresh database:\n{second.stdout[-1500:]}"
    assert_postgres_stopped(second, data_dir)


def test_keep_keeps_the_earlier_runs(data_dir):
    demo(data_dir, TOUR)
    kept = demo(data_dir, "/golive status\n/quit\n", "--keep")
    assert "Cutover run #1 — active" in kept.stdout, \
        f"--keep lost the earlier run:\n{kept.stdout[-1500:]}"
    assert "earlier runs kept" in kept.stdout, kept.stdout
    assert_postgres_stopped(kept, data_dir)


def test_stop_stops_a_server_left_running(data_dir):
    demo_db.start_embedded(data_dir)  # as a demo killed with SIGKILL leaves it
    pid = demo_db.running_pid(data_dir)
    assert pid is not None
    r = demo(data_dir, "", "--stop")
    assert r.returncode == 0 and f"stopped the embedded PostgreSQL (pid {pid})" in r.stdout, \
        r.stdout + r.stderr
    assert not alive(pid) and demo_db.running_pid(data_dir) is None
    again = demo(data_dir, "", "--stop")
    assert "no embedded PostgreSQL is running" in again.stdout, again.stdout


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_the_banner_says_whether_the_sample_stack_answers():
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    down = stack_line(f"http://127.0.0.1:{port}")
    assert "not answering" in down and "bash examples/paybox/up.sh paybox-demo" in down, down

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        up = stack_line(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert "answering at" in up and "not answering" not in up, up


TEAM_CONFIG = """
environment = "staging"

[channels]
cutover = "C0123CUTOVER"
incident = ["C0456INCIDENT"]

[approvers]
users = ["U0AAAAAAA"]
groups = { sre = "S0SRETEAM" }
"""

OWN_TOUR = ('/users\n/golive start v2\n'
            '/golive maintenance on --override "no preflight for this stack yet"\n'
            '/as bob\n1\n/quit\n')


def test_demo_config_drives_your_own_stack_with_the_sandboxs_people(data_dir, tmp_path, toy):
    cfg = tmp_path / "team.toml"
    cfg.write_text(TEAM_CONFIG + toy.config(), encoding="utf-8")
    r = demo(data_dir, OWN_TOUR, "--config", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Config: {cfg.resolve()} (sha256 " in r.stdout, r.stdout[:2000]
    assert "Your config's channels (C0123CUTOVER, C0456INCIDENT)" in r.stdout and \
        "#cutover is C_CUTOVER" in r.stdout, f"the banner hides the channel mapping:\n{r.stdout}"
    assert "Your stack toy: answering at" in r.stdout, r.stdout[:2000]
    assert re.search(r"#cutover\s+channel\s+C_CUTOVER", r.stdout), \
        f"/users does not list the sandbox's channels:\n{r.stdout[:3000]}"
    # The team's own maintenance switch (a real command) ran once, approved by bob.
    assert toy.executions() == ["on"], f"the team's switch did not run:\n{r.stdout[-3000:]}"
    assert_postgres_stopped(r, data_dir)


def test_golive_config_is_not_silently_ignored(data_dir, tmp_path):
    env_cfg = tmp_path / "elsewhere.toml"
    r = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--data-dir", str(data_dir)],
                       input="/quit\n", cwd=ROOT, capture_output=True, text=True, timeout=180,
                       check=False, env={**{k: v for k, v in os.environ.items()
                                            if not k.startswith(("SLACK_", "DATABASE_URL"))},
                                         "GOLIVE_CONFIG": str(env_cfg)})
    assert f"GOLIVE_CONFIG ({env_cfg}) is not used" in r.stdout, r.stdout + r.stderr
    assert f"golive demo --config {env_cfg}" in r.stdout, r.stdout


def test_a_config_the_demo_cannot_use_is_one_clear_line(data_dir, tmp_path):
    missing = demo(data_dir, "", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "nope.toml: cannot read it" in missing.stderr, \
        missing.stdout + missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(TEAM_CONFIG + "[target]\nname = 'x'\nhealth_path = '/h'\n", encoding="utf-8")
    r = demo(data_dir, "/quit\n", "--config", str(bad))
    assert r.returncode == 2 and "target.health_path: Extra inputs are not permitted" in r.stderr, \
        r.stdout + r.stderr
