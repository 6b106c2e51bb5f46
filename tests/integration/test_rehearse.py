"""`golive rehearse --with-rollback` as a team runs it the day before: a subprocess that brings
up its own sample stack (unique compose project, ports and ledger database), drives the real
bot through the sandbox with scripted people through every phase, rolls back, writes the
evidence pack and tears everything down. One run covers the rollback and the plain path's
phases, because the phases before the rollback are the same and the stack is the slow part.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import pg

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
PHASES = ("0. Setup", "1. Preflight", "2. Cutover", "3. Watches", "4. Canary", "5. Sign-off",
          "6. Rollback", "7. Finish")


def golive(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def bot_database():
    name, url = pg.create_database("golive_rehearse")
    yield url
    pg.drop_database(name)


def project_containers(project: str) -> str:
    return subprocess.run(["docker", "ps", "-a", "--filter",
                           f"label=com.docker.compose.project={project}", "--format",
                           "{{.Names}}"], capture_output=True, text=True, check=True).stdout


def test_rehearsal_with_rollback_passes_and_leaves_a_pack_that_verifies(bot_database,
                                                                         tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "GOLIVE_", "PAYBOX_", "DATABASE_URL"))}
    env.update(DATABASE_URL=bot_database, GOLIVE_AUDIT_KEY=pg.TEST_AUDIT_KEY,
               COLUMNS="160")
    pack = tmp_path / "pack"
    r = golive("rehearse", "--with-rollback", "--data-dir", str(tmp_path / "data"),
               "--out", str(pack), env=env, timeout=840)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"the rehearsal failed:\n{out[-6000:]}"
    assert "Traceback" not in out, out[-4000:]
    assert re.search(r"PASS in \d+ s", out), out[-2000:]

    # the timeline shows every phase, in order, and what happened in each
    positions = [out.find(p) for p in PHASES]
    assert -1 not in positions and positions == sorted(positions), \
        f"phases missing or out of order {dict(zip(PHASES, positions))}:\n{out[-5000:]}"
    for want in ("✅ release_freeze", "✅ prod_config", "✅ backup_drill", "✅ rc_evidence",
                 "bob approved", "carol approved", "Open traffic", "✅ Deposit:",
                 "✅ Withdraw:", "✅ Ledger check:", "erin signed", "finn signed", "Canary GO",
                 "payout_fail_rate", "Rollback trigger", "rb-traffic-open: succeeded",
                 "version v1", "closed run #1", "removed the sample stack"):
        assert want in out, f"the timeline lacks {want!r}:\n{out[-5000:]}"
    assert f"Evidence pack: {pack}" in out, out[-1500:]

    # the evidence pack: audit export, canary report, timings, approvals; it verifies
    manifest = json.loads((pack / "manifest.json").read_text())
    assert manifest["passed"] is True and manifest["with_rollback"] is True, manifest
    # a quiet channel (issue 21 item 4): the night with its rollback, as a person reads
    # #cutover (the sandbox's history in the transcript), has at most 12 top-level messages
    cutover = (pack / "transcript.txt").read_text().split("=== #incident")[0]
    top = [h for h in re.findall(r"^golive.*$", cutover, flags=re.MULTILINE)
           if "only visible" not in h]
    assert len(top) == manifest["counts"]["top_level"] <= 12, (len(top), manifest["counts"])
    for name in (manifest["audit_export"], "canary-report.md", "timings.json",
                 "approvals.json", "transcript.txt"):
        assert (pack / name).stat().st_size > 0, f"the pack lacks {name}"
    assert "GO" in (pack / "canary-report.md").read_text()
    # the night's plan, asked once after the start, with the digest its audit row recorded
    (plan,) = manifest["plans"]
    assert plan["digest"] in (pack / plan["file"]).read_text(), plan
    timings = json.loads((pack / "timings.json").read_text())
    assert [p["name"] for p in timings["phases"]] == [
        "setup", "preflight", "cutover", "watches", "canary", "signoff", "rollback", "finish"]
    approvals = json.loads((pack / "approvals.json").read_text())
    decided = {(a["step_id"], a["requester"], v["user"]) for a in approvals
               for v in a["votes"] if v["vote"] == "approve"}
    for step, approver in (("maintenance-on", "U_BOB"), ("deploy", "U_CAROL"),
                           ("traffic-open", "U_BOB"), ("rollback", "U_BOB")):
        assert (step, "U_ALICE", approver) in decided, f"{step}: {approvals}"

    verify = golive("audit", "verify", "--file", str(pack), env=env, timeout=60)
    assert verify.returncode == 0 and "verifies" in verify.stdout, verify.stdout + verify.stderr
    verify = golive("audit", "verify", "--file", str(pack / manifest["audit_export"]), env=env,
                    timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # a pack someone edited afterwards no longer verifies
    report = pack / "canary-report.md"
    report.write_text(report.read_text().replace("GO", "G0"))
    verify = golive("audit", "verify", "--file", str(pack), env=env, timeout=60)
    assert verify.returncode == 1 and "canary-report.md: changed" in verify.stdout, \
        verify.stdout

    # none of the stack's secrets reached the timeline or the pack
    import tomllib

    cfg = tomllib.loads((tmp_path / "data" / "rehearse" / "golive-golive_rehearse.toml")
                        .read_text())
    target = cfg["target"]
    secrets = {"ops token": target["maintenance"]["token"],
               "admin password": target["admin_login"]["password"],
               "webhook secret": target["deployer"]["env"]["PAYBOX_WEBHOOK_SECRET"]}
    texts = {"the timeline": out, **{p.name: p.read_text(errors="replace")
                                     for p in pack.iterdir() if p.suffix != ".png"}}
    for name, value in secrets.items():
        for where, text in texts.items():
            assert value not in text, f"the {name} leaked into {where}"

    # it tore down what it started
    assert project_containers(manifest["stack_project"]).strip() == "", \
        f"{manifest['stack_project']} still has containers"
