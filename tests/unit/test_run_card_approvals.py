"""The living run card (bot/slack/run_card_blocks.py) says, on each step's line, who asked for
a gated step and who approved it, while the run is active; a long night's card stays within
Slack's limits (50 blocks, 3,000 characters a section) and no step's line is cut or dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import runbook.steps.catalog  # the registry complete
from bot.slack.run_card_blocks import run_card
from bot.slack.run_view import RunView
from bot.slack.status_blocks import run_summary
from runbook.model import load_runbook
from runbook.steps.base import REGISTRY

T0 = datetime(2026, 1, 1, 22, 0, tzinfo=UTC)
SECTION_LIMIT, BLOCK_LIMIT = 3000, 50


def runbook(n: int):
    steps = "".join(f"""
[[phases.steps]]
id = "step-{i:03d}"
title = "Step {i}"
kind = "maintenance"
params = {{ mode = "on" }}
gated = true
gate = {{ approvals = 2, groups = [] }}
""" for i in range(n))
    return load_runbook(f"""
[runbook]
name = "long night"
version = "1"

[[phases]]
id = "cutover"
title = "Cutover"
{steps}
[[phases]]
id = "after"
title = "After"

[[phases.steps]]
id = "last"
title = "The last step"
kind = "maintenance"
params = {{ mode = "off" }}
""", known_kinds=REGISTRY.keys())


def view(n: int, *, summary: str = "done", approved: bool = True) -> RunView:
    """A run of ``n`` gated steps, each asked for by its own person and approved by two."""
    rb = runbook(n)
    executions, approvals, votes = [], [], {}
    for i, step in enumerate(s for s in rb.all_steps() if s.gated):
        at = T0 + timedelta(minutes=i)
        approvals.append({"id": 100 + i, "step_id": step.id, "action": step.title,
                          "requester": f"U_ASK{i:03d}", "required": 2,
                          "status": "approved" if approved else "pending"})
        votes[100 + i] = ([{"user_id": f"U_OK{i:03d}", "vote": "approve", "at": at},
                           {"user_id": f"U_TWO{i:03d}", "vote": "approve", "at": at}]
                          if approved else [])
        executions.append({"id": i + 1, "run_id": 1, "step_id": step.id, "attempt": 1,
                           "state": "succeeded" if approved else "awaiting_approval",
                           "summary": summary if approved else None, "error": None,
                           "approval_id": 100 + i, "created_at": at, "started_at": at,
                           "finished_at": at if approved else None})
    run = {"id": 1, "status": "active", "rc_tag": "v2", "started_by": "U_ALICE", "facts": {}}
    return RunView(run=run, runbook=rb, executions=executions, approvals=approvals,
                   votes=votes, available={k: True for k in REGISTRY})


def texts(blocks: list[dict]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def card(v: RunView) -> list[dict]:
    _, blocks = run_card(v, autopilot=None, decisions=[], deadline=None)
    return blocks


def test_each_approved_step_says_who_asked_and_who_approved() -> None:
    shown = "\n".join(texts(card(view(2))))
    for i in range(2):
        want = (f"asked by <@U_ASK{i:03d}>, approved by <@U_OK{i:03d}>, <@U_TWO{i:03d}>")
        assert want in shown, f"step-{i:03d}'s line lacks {want!r}:\n{shown}"


def test_a_step_waiting_for_its_approval_says_who_asked_and_no_approver() -> None:
    shown = "\n".join(texts(card(view(1, approved=False))))
    assert "asked by <@U_ASK000>" in shown, shown
    assert "approved by" not in shown, f"nobody approved yet:\n{shown}"


def test_a_long_night_stays_within_slacks_limits_and_keeps_every_steps_line() -> None:
    long_summary = "migrated the ledger schema and checked every table " * 8  # ~400 chars
    blocks = card(view(150, summary=long_summary))
    assert len(blocks) <= BLOCK_LIMIT, f"{len(blocks)} blocks: Slack refuses more than 50"
    sections = texts(blocks)
    assert all(len(t) <= SECTION_LIMIT for t in sections), \
        [len(t) for t in sections if len(t) > SECTION_LIMIT]
    for i in range(150):  # each line whole, in one section: its approvers are not cut off
        want = f"asked by <@U_ASK{i:03d}>, approved by <@U_OK{i:03d}>, <@U_TWO{i:03d}>"
        assert any(f"`step-{i:03d}`" in t and want in t for t in sections), \
            f"step-{i:03d}'s line or its approvers are missing from the card"


def test_a_night_too_long_for_one_message_says_how_many_steps_it_leaves_to_status() -> None:
    long_summary = "migrated the ledger schema and checked every table " * 8
    blocks = card(view(400, summary=long_summary))
    sections = texts(blocks)
    assert len(blocks) <= BLOCK_LIMIT and all(len(t) <= SECTION_LIMIT for t in sections)
    shown = sum(t.count("\n") + 1 for t in sections[1:]) - 1  # step lines, less the note
    assert f"… and {400 - shown} more steps: `/golive status` lists every step." in \
        sections[-1], sections[-1][-200:]


def test_the_summary_names_the_same_approvers_as_the_card() -> None:
    v = view(1)
    _, blocks = run_summary(v)
    shown = "\n".join(texts(blocks))
    assert "approved by <@U_OK000>, <@U_TWO000>" in shown, shown
