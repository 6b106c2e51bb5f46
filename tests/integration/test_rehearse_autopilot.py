"""`golive rehearse --autopilot` next to the manual rehearsal, as a team runs them: two
subprocesses on their own sample stacks. The autopilot night is driven by `start`, `go` and
the three approvals (the canary and the sign-offs by people, as in the manual one); both packs
record their mode and counts, the counts match the channel's transcript a person reads, and
the autopilot's night takes strictly fewer human actions."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.integration.test_rehearse import golive
from tests.support import pg

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]
LINES = re.MULTILINE


def rehearse(tmp_path, name: str, *args: str) -> tuple[str, dict, dict]:
    """One rehearsal on its own database: its output, manifest and approvals."""
    db, url = pg.create_database("golive_rehearse")
    try:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLACK_", "GOLIVE_", "PAYBOX_", "DATABASE_URL"))}
        env.update(DATABASE_URL=url, GOLIVE_AUDIT_KEY=pg.TEST_AUDIT_KEY, COLUMNS="160")
        pack = tmp_path / name
        r = golive("rehearse", *args, "--data-dir", str(tmp_path / "data"), "--out", str(pack),
                   env=env, timeout=420)
    finally:
        pg.drop_database(db)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"the {name} rehearsal failed:\n{out[-6000:]}"
    assert "Traceback" not in out, out[-4000:]
    manifest = json.loads((pack / "manifest.json").read_text())
    assert manifest["passed"] is True, manifest
    assert json.loads((pack / "counts.json").read_text()) == manifest["counts"]
    # the counts are the channel as a person reads it (the pack's transcript of #cutover)
    cutover = (pack / "transcript.txt").read_text().split("=== #incident")[0]
    heads = re.findall(r"^golive.*$", cutover, flags=LINES)
    c = manifest["counts"]
    assert c["top_level"] == sum("only visible" not in h for h in heads), (c, heads)
    assert c["ephemeral"] + c["lookup_replies"] == sum("only visible" in h for h in heads)
    assert c["thread_replies"] == len(re.findall(r"^\s+↳ golive", cutover, flags=LINES))
    assert c["human_actions"] == c["commands"] + c["clicks"] + c["modal_submits"]
    assert c["top_level"] <= 12, ("a quiet channel (issue 21 item 4)", c)
    return out, manifest, json.loads((pack / "approvals.json").read_text())


def test_autopilot_rehearsal_needs_fewer_human_actions_than_the_manual_one(tmp_path):
    _, manual, _ = rehearse(tmp_path, "manual")
    out, auto, approvals = rehearse(tmp_path, "autopilot", "--autopilot")

    assert (manual["mode"], auto["mode"]) == ("manual", "autopilot")
    m, a = manual["counts"], auto["counts"]
    assert m["typed"] == ["start", "plan", "preflight", "maintenance on", "deploy", "migrate",
                          "health", "smoke", "traffic open", "canary", "finish"], m
    # start and go, the canary by people, finish: nothing else typed
    assert a["typed"] == ["start", "go", "canary", "finish"], a
    # 3 approvals + the canary's deposit and withdrawal + 2 sign-offs, each with its modal
    assert (a["clicks"], a["modal_submits"]) == (7, 4), a
    assert (m["clicks"], m["modal_submits"]) == (7, 4), m
    assert a["human_actions"] < m["human_actions"], (a, m)
    assert a["wall_s"] > 0 and a["night_s"] > 0

    # the three approvals: asked for by the autopilot on alice's behalf, approved by a second
    # person (the same approvers as the manual night)
    decided = [(x["step_id"], x["requester"], x["status"], [v["user"] for v in x["votes"]])
               for x in approvals]
    assert decided == [("maintenance-on", "U_ALICE", "approved", ["U_BOB"]),
                       ("deploy", "U_ALICE", "approved", ["U_CAROL"]),
                       ("traffic-open", "U_ALICE", "approved", ["U_BOB"])], decided
    for want in ("alice turned the autopilot on", "the card says requested by autopilot",
                 "Autopilot stopped", "Canary GO", "closed run #1: completed"):
        assert want in out, f"the timeline lacks {want!r}:\n{out[-4000:]}"
    # the summary shows this night's counts next to the manual one's
    assert "what people did and saw" in out and "last manual" in out, out[-3000:]
    assert re.search(rf"autopilot: {a['human_actions']} human actions", out), out[-2000:]
