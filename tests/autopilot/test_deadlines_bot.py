"""Deadlines on the channel with the bot's injected clock (no sleeps): the reminder at half
time in the approval card's thread, the escalation to the backup group at the deadline, and
"overdue" once for a running step; each posted once. Through the sandbox, without Docker."""

from __future__ import annotations

import pytest

from bot.dev.sandbox.workspace import Usergroup
from bot.ids import Action
from tests.autopilot.test_autopilot_bot import approved_and_running, ended, started
from tests.scenario.test_who_may import answer, rows, workspace
from tests.support.harness import BASE_CONFIG, Bot

BACKUP_CONFIG = BASE_CONFIG.replace(
    'groups = { approvers = "S_APPROVERS" }',
    'groups = { approvers = "S_APPROVERS", leads = "S_LEADS" }\nbackup_group = "leads"')
"""Approvers with a backup group (``leads``) asked at the deadline."""


def bot_with(db: str, tmp_path, config: str = BASE_CONFIG) -> Bot:
    return Bot(db, tmp_path, workspace=workspace(), worker=False, config=config)


@pytest.fixture
def dbot(clean_db, tmp_path):
    b = bot_with(clean_db, tmp_path)
    yield b
    b.stop()


def thread_reply(bot: Bot, contains: str, after: int):
    return bot.workspace.wait_for_message(
        "C_CUTOVER", contains=contains, after_seq=after,
        predicate=lambda m: m.thread_ts is not None and m.ephemeral_to is None)


def test_a_reminder_at_half_time_in_the_cards_thread_once(dbot, clean_db):
    started(dbot, clean_db)
    answer(dbot, "alice", "go")
    pilot = dbot.runtime.autopilot
    assert pilot.tick() == ["maintenance-on"]
    watch = pilot.deadlines
    dbot.clock.advance(minutes=7)
    assert watch.tick() == [], "before half of the 15 minutes: nothing"
    after = dbot.seq()
    dbot.clock.advance(seconds=30)
    assert watch.tick() == ["deadline:remind:approval:1"]
    reply = thread_reply(dbot, "Reminder", after)
    assert "Maintenance mode on" in reply.text and "<!subteam^S_APPROVERS>" in reply.text, reply.text
    assert "7 min left" in reply.text, reply.text
    card = dbot.workspace.message("C_CUTOVER", reply.thread_ts)
    assert card is not None and "Maintenance mode on" in card.text, "in the card's thread"
    dbot.clock.advance(minutes=3)
    assert watch.tick() == [], "once"


def test_at_the_deadline_the_backup_group_is_asked_once(clean_db, tmp_path):
    config = BACKUP_CONFIG
    bot = bot_with(clean_db, tmp_path, config)
    try:
        started(bot, clean_db)
        answer(bot, "alice", "go")
        assert bot.runtime.autopilot.tick() == ["maintenance-on"]
        bot.clock.advance(minutes=8)
        assert bot.runtime.autopilot.deadlines.tick() == ["deadline:remind:approval:1"]
        after = bot.seq()
        bot.clock.advance(minutes=7)
        assert bot.runtime.autopilot.deadlines.tick() == ["deadline:escalate:approval:1"]
        reply = thread_reply(bot, "backup approvers", after)
        assert "<!subteam^S_LEADS>" in reply.text and "7 min unless" in reply.text, reply.text
        bot.clock.advance(minutes=1)
        assert bot.runtime.autopilot.deadlines.tick() == [], "once"
    finally:
        bot.stop()


def test_a_running_step_past_half_its_timeout_is_overdue_once(dbot, clean_db):
    started(dbot, clean_db)
    answer(dbot, "alice", "go")
    pilot = dbot.runtime.autopilot
    assert pilot.tick() == ["maintenance-on"]
    ended(clean_db, "maintenance-on")
    assert pilot.tick() == ["deploy"]
    approved_and_running(clean_db, "deploy")
    rows_before = dbot.seq()
    dbot.clock.advance(minutes=7)  # deploy's timeout is 900 s: expected 450 s without history
    keys = pilot.deadlines.tick()
    assert not [k for k in keys if "overdue" in k]
    dbot.clock.advance(minutes=1)
    assert [k for k in pilot.deadlines.tick() if "overdue" in k] == ["deadline:overdue:exe:3"]
    reply = thread_reply(dbot, "overdue", rows_before)
    assert "*Deploy the release tag* is overdue" in reply.text, reply.text
    assert "expected about 7 min (half its timeout)" in reply.text, reply.text
    dbot.clock.advance(minutes=5)
    assert not [k for k in pilot.deadlines.tick() if "overdue" in k], "once"


def test_no_deadline_notice_for_an_approval_already_decided(dbot, clean_db):
    started(dbot, clean_db)
    answer(dbot, "alice", "go")
    assert dbot.runtime.autopilot.tick() == ["maintenance-on"]
    ended(clean_db, "maintenance-on")
    rows(clean_db, "UPDATE approvals SET status = 'approved' RETURNING id")
    dbot.clock.advance(minutes=30)
    assert dbot.runtime.autopilot.deadlines.tick() == []


def test_a_rollback_request_lives_until_the_backup_group_had_its_time(clean_db, tmp_path):
    # Proves one deadline for every approval request: a rollback request gets the same
    # reminder, escalation and extended expiry as a step's (it used to expire at
    # expiry_minutes, the moment its backup group was asked, so nobody could answer that).
    config = BACKUP_CONFIG
    ws = workspace()
    ws.usergroups["S_LEADS"] = Usergroup(id="S_LEADS", handle="golive-leads", users=["U_CAROL"])
    bot = Bot(clean_db, tmp_path, workspace=ws, worker=False, config=config)
    try:
        answer(bot, "alice", "start v2")
        after = bot.seq()
        reply = answer(bot, "alice", "rollback payouts failing", channel="C_INCIDENT")
        assert "someone other than you must approve" in reply, reply
        card = bot.workspace.wait_for_message("C_INCIDENT", contains="Rollback requested",
                                              after_seq=after,
                                              predicate=lambda m: m.ephemeral_to is None)
        watch = bot.runtime.autopilot.deadlines
        bot.clock.advance(minutes=15)
        assert watch.tick() == ["deadline:escalate:approval:1"]
        bot.clock.advance(minutes=4)  # past expiry_minutes, inside the backup group's time
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        bot.card_showing(card, "Rollback approved", channel="C_INCIDENT")
    finally:
        bot.stop()
