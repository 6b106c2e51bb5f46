"""A step the team adds to its runbook is a /golive subcommand, end to end: its words, usage,
🔒 and policy come from the runbook, with no code change.

The runbook is the shipped one plus a gated `cache warm <key>` step (an existing kind).
frank is a plain member (no operator); the bot runs without a worker, so nothing executes.
"""

from __future__ import annotations

import psycopg
import pytest

from bot.dev.sandbox.workspace import Workspace
from runbook.model import default_runbook_path
from tests.support.harness import BASE_CONFIG, Bot

CACHE_STEP = """
[[phases.steps]]
id = "cache-warm"
title = "Warm the CDN cache"
kind = "smoke"
gated = true
args = ["key"]
command = "cache warm"
"""


def runbook_with_cache_step() -> str:
    shipped = default_runbook_path().read_text(encoding="utf-8")
    assert "\n[rollback]\n" in shipped, "the shipped runbook's layout changed; adapt this test"
    # Appended to the last phase (post-cutover), just before the rollback plan.
    return shipped.replace("\n[rollback]\n", CACHE_STEP + "\n[rollback]\n")


def workspace() -> Workspace:
    return Workspace({
        "users": [{"id": "U_ALICE", "name": "alice"}, {"id": "U_BOB", "name": "bob"},
                  {"id": "U_FRANK", "name": "frank"}],
        "usergroups": [{"id": "S_APPROVERS", "handle": "golive-approvers",
                        "users": ["U_BOB"]}],
        "channels": [{"id": "C_CUTOVER", "name": "cutover"},
                     {"id": "C_INCIDENT", "name": "incident"}],
    })


@pytest.fixture
def cbot(clean_db, tmp_path):
    (tmp_path / "cache.toml").write_text(runbook_with_cache_step(), encoding="utf-8")
    # A relative path: the setting is read relative to the config file.
    b = Bot(clean_db, tmp_path, config='runbook = "cache.toml"\n' + BASE_CONFIG,
            workspace=workspace(), worker=False)
    yield b
    b.stop()


def approvals(db: str) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT step_id, requester, params->'args'->>'key' FROM approvals"
                            " ORDER BY id").fetchall()


def test_the_new_step_command_is_accepted_and_requested(cbot, clean_db):
    cbot.command("alice", "start v2")
    reply = cbot.command("alice", "cache warm homepage")
    assert "Unknown subcommand" not in reply, reply
    assert "Approval requested" in reply, f"`/golive cache warm` was not requested: {reply}"
    assert approvals(clean_db) == [("cache-warm", "U_ALICE", "homepage")], \
        "the approval is for the runbook's step, with the argument the user gave"


def test_the_new_step_command_obeys_the_step_policy(cbot, clean_db):
    cbot.command("alice", "start v2")
    reply = cbot.command("alice", "cache warm homepage", channel="C_INCIDENT")
    assert "`/golive cache` works only in the cutover channel <#C_CUTOVER>" in reply, reply
    reply = cbot.command("frank", "cache warm homepage")
    assert "Only operators can use `/golive cache`" in reply, reply
    assert approvals(clean_db) == [], "a refused request asked nobody for approval"


def test_help_lists_the_new_step_command_with_its_usage_and_lock(cbot):
    reply = cbot.command("frank", "help")
    assert "• `/golive cache warm <key>` 🔒 — Warm the CDN cache" in reply, reply
    assert "• `/golive deploy <tag>` 🔒 — pull the images, compose up, wait healthy" in reply


@pytest.mark.parametrize("text", ["cache", "cache warm", "cache cool homepage",
                                  "cache warm a b"])
def test_wrong_words_for_the_new_command_get_its_usage_line(cbot, clean_db, text):
    reply = cbot.command("alice", text)
    assert reply.startswith("Usage: `/golive cache warm <key>`"), reply
    assert approvals(clean_db) == []
