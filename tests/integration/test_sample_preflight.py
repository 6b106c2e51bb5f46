"""`golive demo` runs a real preflight against the sample stack: the demo starts the fake
GitHub itself and points every check at the stack, its build's RC evidence and env files.
With the stack up the checklist is green (squawk's warnings allowed); with it down every
check is red and says what is missing. Both drive the demo as a user does: piped input.

The stack is the one `golive rehearse` brings up (bot/dev/rehearse/stack.py: up.sh with a unique
project, ports and ledger database); the demo finds it through up.sh's PAYBOX_* variables.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bot.dev.rehearse import stack as sample_stack
from bot.dev.rehearse.sample import revisions
from tests.support import pg
from tests.support.paybox_env import free_port

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("release_freeze", "prod_config", "backup_drill", "migration_check", "rc_evidence")


@pytest.fixture
def bot_database():
    name, url = pg.create_database("golive_demo_pf")
    yield url
    pg.drop_database(name)


def demo_status_after_preflight(paybox_env: dict[str, str], db_url: str,
                                then: str = "") -> tuple[str, str]:
    """Pipe the README's tour (start → maintenance on → preflight → status, then ``then``)
    into `golive demo`; (all output, what followed /golive status)."""
    sha = revisions().get("v2") or "0" * 40
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "GOLIVE_", "PAYBOX_", "DATABASE_URL"))}
    env.update(paybox_env, DATABASE_URL=db_url, GOLIVE_AUDIT_KEY=pg.TEST_AUDIT_KEY)
    with tempfile.TemporaryDirectory(prefix="golive-demo-pf-") as data:
        r = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--data-dir", data],
                           input=f"/golive start v2 {sha}\n/golive maintenance on\n"
                                 f"/golive preflight\n/golive status\n{then}/quit\n", env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=240, check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in out, out[-4000:]
    assert "stopped the fake GitHub" in out, "the demo must stop the fake GitHub it started"
    status = out.rpartition("> /golive status")[2]
    assert "Cutover run #1" in status, f"no status answer:\n{out[-3000:]}"
    return out, status


@pytest.mark.docker
def test_demo_preflight_is_green_against_the_sample_stack(bot_database):
    stack = sample_stack.new_stack()
    problems = sample_stack.missing(stack)
    assert not problems, "\n".join(problems)
    try:
        sample_stack.up(stack, lambda line: None)
        out, status = demo_status_after_preflight(stack.env(), bot_database,
                                                  then="/golive maintenance on\n")
    finally:
        sample_stack.down(stack, lambda line: None)
    assert "Preflight: a fake GitHub at http://127.0.0.1:" in out, out[:2000]
    assert "Preflight* — green" in status, status
    for check in CHECKS:
        assert f"✅ *{check}*" in status or f"⚠️ *{check}*" in status, \
            f"{check} is not green:\n{status}"
    assert "not configured" not in out, out[-3000:]
    assert "⚠️ *migration_check*" in status and "squawk" in status, \
        "squawk's findings on the v2 migration are warnings"
    # the README's tour: maintenance is refused before the preflight, asked for after it
    assert "no preflight result" in out.partition("> /golive preflight")[0], out[:4000]
    assert "5/5 checks green" in status and "Approve" in status, status[-2000:]


def test_demo_preflight_says_what_is_missing_when_the_stack_is_down(bot_database):
    down = {"PAYBOX_EDGE_PORT": str(free_port()), "PAYBOX_APP_PORT": str(free_port()),
            "PAYBOX_REGISTRY": f"127.0.0.1:{free_port()}",
            "PAYBOX_DATABASE_URL": pg.db_url("paybox_not_created_by_anyone")}
    out, status = demo_status_after_preflight(down, bot_database)
    assert "Sample stack: not answering" in out and "up.sh" in out, out[:2000]
    assert "Preflight* — red" in status, status
    lines = {c: next((ln for ln in status.splitlines() if f"*{c}*" in ln), "") for c in CHECKS}
    for check, line in lines.items():
        assert line.lstrip().startswith("❌"), f"{check} is not red: {line!r}\n{status}"
        assert "not configured" not in line, f"{check} has no configuration: {line}"
    assert "registry" in lines["release_freeze"], lines["release_freeze"]
    assert "snapshot failed" in lines["backup_drill"], lines["backup_drill"]
    assert "the database does not answer" in lines["prod_config"], lines["prod_config"]
    assert 'database "paybox_not_created_by_anyone" does not exist' in " ".join(status.split())
    assert "cannot reach the app" in lines["rc_evidence"], lines["rc_evidence"]
