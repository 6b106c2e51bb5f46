"""The rollback's shell end to end, without Docker: the filled plan on the card, the database
strategy, break-glass and the final timeline, through signed commands and clicks.

The plan's values come from run facts inserted as the deploy, migrate and backup-drill steps
record them. The timeline tests run a rollback plan of toy-target steps (maintenance on and
off by a real command; the revert in between fails clearly: no image was recorded).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from bot.ids import Action
from runbook.model import default_runbook_path
from tests.scenario.test_who_may import answer, card_for, rows, workspace
from tests.support.harness import BASE_CONFIG, Bot, text_of

DEPLOYED = {"deployed_tag": "v2", "previous_images": {
    "app": {"image": "paybox:v1", "tag": "v1", "revision": "abc1234def"},
    "worker": {"image": "paybox-worker:v1", "tag": "v1"}},
    "alembic_before": "0001_ledger", "alembic_after": "0002_payout_idempotency"}
LONG_REASON = "card data leaked in the payout logs, stop everything"


def snapshot(age: timedelta) -> dict:
    taken = datetime.now(UTC) - age
    return {"snapshot_path": "/var/backups/paybox-20261202.dump", "snapshot_sha256": "9f" * 32,
            "snapshot_taken_at": taken.isoformat(timespec="seconds"),
            "snapshot_source_rows": {"accounts": 3, "payouts": 40}}


def set_facts(db: str, facts: dict) -> None:
    with psycopg.connect(db) as conn:
        conn.execute("UPDATE runs SET facts = facts || %s::jsonb", (json.dumps(facts),))


# The sample's migration scripts: the plan reads their revision chain (no default of golive's).
MIGRATIONS = f"""
[target.migrations]
script_location = "{Path(__file__).resolve().parents[2] / 'examples/paybox/app/migrations'}"
"""


@pytest.fixture
def pbot(clean_db, tmp_path):
    """The bot without a worker: nothing requested here runs."""
    b = Bot(clean_db, tmp_path, workspace=workspace(), worker=False,
            config=BASE_CONFIG + MIGRATIONS)
    yield b
    b.stop()


# ------------------------------------------------------------------ the plan on the card

def test_the_card_shows_the_plan_with_this_runs_values_and_which_run(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    set_facts(clean_db, DEPLOYED)
    after = pbot.seq()
    reply = answer(pbot, "alice", "rollback payouts failing", channel="C_INCIDENT")
    assert "run #1 (the active run, RC v2)" in reply, reply
    card = text_of(card_for(pbot, "Rollback requested", after, channel="C_INCIDENT"))
    for shown in ("Rolls back run #1 (the active run, RC v2)",
                  "app: v2 -> v1 (sha abc1234)", "worker: v2 -> v1",
                  "chosen: alembic downgrade to 0001_ledger",
                  "reverts 1 migration", "0002_payout_idempotency: payout idempotency key",
                  "restore the preflight snapshot", "not offered: no preflight snapshot",
                  "Re-open traffic"):
        assert shown in card, f"the rollback card should show {shown!r}:\n{card}"


def test_restore_is_refused_without_a_snapshot_saying_why(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    set_facts(clean_db, DEPLOYED)
    reply = answer(pbot, "alice", "rollback --restore ledger looks corrupt",
                   channel="C_INCIDENT")
    assert "`--restore` is not offered for run #1" in reply, reply
    assert "no preflight snapshot recorded" in reply, reply
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)], "nothing requested"


def test_restore_with_a_snapshot_shows_its_age_and_what_is_lost_and_binds_it(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    set_facts(clean_db, {**DEPLOYED, **snapshot(timedelta(hours=3, seconds=30))})
    after = pbot.seq()
    answer(pbot, "alice", "rollback --restore ledger looks corrupt", channel="C_INCIDENT")
    card_msg = card_for(pbot, "Rollback requested", after, channel="C_INCIDENT")
    card = text_of(card_msg)
    assert "chosen: restore the preflight snapshot" in card, card
    assert "3 h 00 min ago" in card and "is lost" in card, card
    args = rows(clean_db, "SELECT params->'args'->>'strategy' FROM approvals")
    assert args == [("restore",)], "the chosen strategy is bound into the approval"
    pbot.sandbox.click("bob", card_msg, action_id=Action.APPROVE)
    pbot.card_showing(card_msg, "Rollback approved", channel="C_INCIDENT")
    assert rows(clean_db, "SELECT params->>'strategy' FROM step_executions "
                          "WHERE step_id = 'rb-restore-or-downgrade'") == [("restore",)], \
        "the data step runs with the chosen strategy"


# ------------------------------------------------------------------ break-glass

def test_break_glass_is_refused_without_a_reason_or_for_a_trigger_not_allowed(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    set_facts(clean_db, DEPLOYED)
    reply = answer(pbot, "alice", "rollback --break-glass --trigger security",
                   channel="C_INCIDENT")
    assert "Break-glass refused" in reply and "needs a reason" in reply, reply
    reply = answer(pbot, "alice", f'rollback --break-glass "{LONG_REASON}" --trigger payout',
                   channel="C_INCIDENT")
    assert "Break-glass refused" in reply and "not allowed for payout-failure-rate" in reply, \
        reply
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)]
    assert rows(clean_db, "SELECT count(*) FROM step_executions") == [(0,)], "nothing queued"


def test_break_glass_for_security_queues_alone_and_is_announced_in_both_channels(
        pbot, clean_db):
    answer(pbot, "alice", "start v2")
    set_facts(clean_db, DEPLOYED)
    after = pbot.seq()
    reply = answer(pbot, "alice", f'rollback --break-glass "{LONG_REASON}" --trigger security',
                   channel="C_INCIDENT")
    assert "Break-glass rollback of run #1" in reply, reply
    for channel in ("C_CUTOVER", "C_INCIDENT"):
        notice = text_of(card_for(pbot, "BREAK-GLASS ROLLBACK", after, channel=channel))
        assert LONG_REASON in notice and "security-incident" in notice, notice
    assert rows(clean_db, "SELECT kind, status, decided_by FROM approvals") == [
        ("break_glass", "approved", "U_ALICE")], "one person's approval, marked break-glass"
    queued = rows(clean_db, "SELECT count(*) FROM step_executions WHERE state = 'queued'")
    assert queued == [(5,)], "the whole plan is queued without a second person"
    audit = rows(clean_db, "SELECT actor FROM audit_log WHERE action = 'rollback.break_glass'")
    assert audit == [("U_ALICE",)], "the break-glass is audited"


# ------------------------------------------------------------------ the timeline

ROLLBACK_OK = """
[rollback]
title = "Rollback"
gated = true
approvals = 1
groups = []

[[rollback.steps]]
id = "rb-maintenance-on"
title = "Maintenance mode on"
kind = "maintenance"
params = { mode = "on" }
command = "rollback"
{middle}
[[rollback.steps]]
id = "rb-maintenance-off"
title = "Maintenance mode off"
kind = "maintenance"
params = { mode = "off" }
requires = ["{last_requires}"]
command = "rollback"
"""
REVERT = """
[[rollback.steps]]
id = "rb-revert-deploy"
title = "Revert to the previous image tag"
kind = "rollback.revert_deploy"
requires = ["rb-maintenance-on"]
command = "rollback"
"""


def toy_runbook(with_revert: bool) -> str:
    shipped = default_runbook_path().read_text(encoding="utf-8")
    assert "\n[rollback]\n" in shipped, "the shipped runbook's layout changed; adapt this test"
    plan = ROLLBACK_OK.replace("{middle}", REVERT if with_revert else "").replace(
        "{last_requires}", "rb-revert-deploy" if with_revert else "rb-maintenance-on")
    return shipped.split("\n[rollback]\n")[0] + plan


def run_rollback(clean_db, tmp_path, toy, *, with_revert: bool) -> Bot:
    (tmp_path / "rb.toml").write_text(toy_runbook(with_revert), encoding="utf-8")
    bot = Bot(clean_db, tmp_path, workspace=workspace(),
              config='runbook = "rb.toml"\n' + BASE_CONFIG + toy.config())
    answer(bot, "alice", "start v2")
    after = bot.seq()
    answer(bot, "alice", "rollback payouts failing", channel="C_INCIDENT")
    card = card_for(bot, "Rollback requested", after, channel="C_INCIDENT")
    bot.sandbox.click("bob", card, action_id=Action.APPROVE)
    return bot


def test_the_timeline_is_posted_in_both_channels_and_stored_after_the_last_step(
        clean_db, tmp_path, toy):
    bot = run_rollback(clean_db, tmp_path, toy, with_revert=False)
    try:
        for channel in ("C_CUTOVER", "C_INCIDENT"):
            msg = text_of(card_for(bot, "Rollback of run #1: completed", 0, channel=channel))
            assert "Maintenance mode on: succeeded" in msg, msg
            assert "Maintenance mode off: succeeded" in msg, msg
            assert "approved by U_BOB" in msg and "payouts failing" in msg, msg
        stored = rows(clean_db, "SELECT facts->'rollback_timeline'->>'outcome' FROM runs")
        assert stored == [("completed",)], "the timeline is stored with the run"
        assert not toy.flag.exists(), "traffic is open again"
    finally:
        bot.stop()


def test_a_failed_rollback_step_says_what_ran_and_what_did_not(clean_db, tmp_path, toy):
    bot = run_rollback(clean_db, tmp_path, toy, with_revert=True)
    try:
        for channel in ("C_CUTOVER", "C_INCIDENT"):
            msg = text_of(card_for(bot, "Rollback of run #1: stopped at Revert", 0,
                                   channel=channel))
            assert "nothing to revert" in msg, msg
            assert "done: Maintenance mode on." in msg, msg
            assert "Not done: Revert to the previous image tag (failed), Maintenance mode off " \
                   "(cancelled)" in msg, msg
        assert toy.flag.exists(), "maintenance stays on: the rollback stopped, it never guesses"
    finally:
        bot.stop()
