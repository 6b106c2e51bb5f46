"""Deadlines with the bot's injected clock (no sleeps), through the sandbox (issue 21 item 3):
an approval request expires at its deadline as a rejection, later by half when a backup group
is asked first, and its card says what happened and who was asked; a decision card reminds at
half time and pages the operators at its deadline, and nothing runs by itself."""

from __future__ import annotations

from bot.ids import Action
from tests.autopilot.test_autopilot_bot import started
from tests.decisions.test_decision_card import broken, click
from tests.scenario.test_who_may import rows, workspace
from tests.support.harness import BASE_CONFIG, Bot, text_of

TEN_MINUTES = BASE_CONFIG.replace("expiry_minutes = 15", "expiry_minutes = 15\ndeadline_minutes = 10")
WITH_BACKUP = TEN_MINUTES.replace(
    'groups = { approvers = "S_APPROVERS" }',
    'groups = { approvers = "S_APPROVERS", leads = "S_LEADS" }\nbackup_group = "leads"')


def bot_with(db: str, tmp_path, config: str) -> Bot:
    return Bot(db, tmp_path, workspace=workspace(), worker=False, config=config)


def states(db: str) -> list[tuple[str, str]]:
    return rows(db, "SELECT step_id, state FROM step_executions WHERE step_id <> 'preflight'"
                    " ORDER BY id")


def test_an_approval_expires_at_its_deadline_not_at_expiry_minutes(clean_db, tmp_path):
    bot = bot_with(clean_db, tmp_path, TEN_MINUTES)
    try:
        started(bot, clean_db)
        card = bot.request("alice", "maintenance on", contains="Maintenance mode on")
        bot.clock.advance(minutes=9, seconds=50)
        assert bot.engine.expire_approvals() == 0
        bot.clock.advance(seconds=15)
        assert bot.engine.expire_approvals() == 1, "deadline_minutes = 10, not expiry's 15"
        card = bot.card_showing(card, "Expired as a rejection")
        assert "Asked: <!subteam^S_APPROVERS>. Nothing ran." in text_of(card), text_of(card)
        assert states(clean_db) == [("maintenance-on", "cancelled")]
        assert Action.APPROVE not in [b.action_id for b in bot.sandbox.buttons(card)], \
            "the expired card has no Approve button left"
    finally:
        bot.stop()


def test_with_a_backup_group_the_backup_is_asked_first_then_it_expires(clean_db, tmp_path):
    bot = bot_with(clean_db, tmp_path, WITH_BACKUP)
    try:
        started(bot, clean_db)
        card = bot.request("alice", "maintenance on", contains="Maintenance mode on")
        watch = bot.runtime.autopilot.deadlines
        bot.clock.advance(minutes=10)
        assert watch.tick() == ["deadline:escalate:approval:1"], "the backup group, asked first"
        assert bot.engine.expire_approvals() == 0, "extended by half for the backup group"
        bot.clock.advance(minutes=4, seconds=50)
        assert bot.engine.expire_approvals() == 0
        bot.clock.advance(seconds=15)
        assert bot.engine.expire_approvals() == 1
        card = bot.card_showing(card, "Expired as a rejection")
        assert ("Asked: <!subteam^S_APPROVERS>, then the backup group <!subteam^S_LEADS>. "
                "Nothing ran.") in text_of(card), text_of(card)
        assert states(clean_db) == [("maintenance-on", "cancelled")], "nothing ran"
    finally:
        bot.stop()


DECISION_20 = BASE_CONFIG.replace("expiry_minutes = 15",
                                  "expiry_minutes = 15\ndecision_deadline_minutes = 20")


def test_a_decision_card_reminds_at_half_and_pages_the_operators_at_its_deadline(
        clean_db, tmp_path):
    bot = bot_with(clean_db, tmp_path, DECISION_20)
    try:
        exe, card = broken(bot, clean_db, "migrate", done=("maintenance-on", "deploy"))
        assert "Decide by" in text_of(card)
        watch = bot.runtime.autopilot.deadlines
        bot.clock.advance(minutes=9, seconds=50)
        assert watch.tick() == []
        mark = bot.seq()
        bot.clock.advance(seconds=15)
        assert watch.tick() == [f"deadline:remind:decision:{exe}"]
        reminder = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="waits for a decision", after_seq=mark,
            predicate=lambda m: m.thread_ts == card.ts)
        assert "nobody has taken it" in reminder.text and "<!subteam^S_APPROVERS>" in \
            reminder.text, reminder.text
        assert watch.tick() == [], "once"
        click(bot, "alice", card, Action.DECISION_TAKE)
        mark = bot.seq()
        bot.clock.advance(minutes=10)
        assert watch.tick() == [f"deadline:expire:decision:{exe}"]
        page = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="passed its deadline", after_seq=mark,
            predicate=lambda m: m.thread_ts == card.ts)
        assert "<@U_ALICE> owns it" in page.text and "nothing runs by itself" in page.text
        assert "<@U_ALICE>" in page.text.split("itself.")[1], "the operators are paged"
        bot.clock.advance(minutes=30)
        assert watch.tick() == [], "once"
        assert states(clean_db) == [("maintenance-on", "succeeded"), ("deploy", "succeeded"),
                                    ("migrate", "interrupted")], "nothing ran by itself"
        assert rows(clean_db, "SELECT chosen FROM decisions") == [(None,)]
    finally:
        bot.stop()


def test_no_deadline_notice_once_the_decision_is_taken(clean_db, tmp_path):
    bot = bot_with(clean_db, tmp_path, DECISION_20)
    try:
        _, card = broken(bot, clean_db, "health",
                           done=("maintenance-on", "deploy", "migrate"))
        click(bot, "alice", card, Action.DECISION_TAKE)
        card = bot.card_showing(card, "Owner:* <@U_ALICE>")
        assert "Queued" in click(bot, "alice", card, Action.DECISION_RETRY)
        bot.clock.advance(minutes=25)
        assert not [k for k in bot.runtime.autopilot.deadlines.tick() if "decision" in k]
        assert rows(clean_db, "SELECT count(*) FROM outbox WHERE key LIKE"
                              " 'deadline:%%:decision:%%'") == [(0,)]
        assert states(clean_db)[-2:] == [("health", "interrupted"), ("health", "queued")]
    finally:
        bot.stop()
