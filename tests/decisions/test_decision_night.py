"""A failing migration under the autopilot on the sample stack (examples/paybox): the autopilot
stops and names the decision card; the migrate card offers no Retry (not idempotent); a Skip
(two people) is a deviation, and `/golive go` resumes from it. Real Docker, the local
registry, alembic (a broken 0003 revision next to the app's migrations); Slack is the sandbox."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from bot.ids import Action, Block
from tests.decisions.test_decision_card import buttons, click, modal, submit
from tests.scenario.test_guarded_protections import green_preflight
from tests.scenario.test_who_may import rows
from tests.support.harness import BASE_CONFIG, Bot, text_of
from tests.support.toml_out import target_table

pytestmark = pytest.mark.docker

BROKEN = ('revision = "0003_broken"\ndown_revision = "0002_payout_idempotency"\n'
          "branch_labels = None\ndepends_on = None\n"
          "from alembic import op\n\n"
          "def upgrade():\n    op.execute('ALTER TABLE no_such_table ADD COLUMN x int')\n\n"
          "def downgrade():\n    pass\n")


def test_a_failing_migration_stops_the_autopilot_at_a_decision_card(stack, clean_db, tmp_path,
                                                                    paybox_dir):
    scripts = tmp_path / "migrations"
    shutil.copytree(paybox_dir / "app" / "migrations", scripts,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0003_broken.py").write_text(BROKEN)
    target = stack.target(migrations={"mode": "alembic-api", "script_location": str(scripts)})
    bot = Bot(clean_db, tmp_path, config=target_table(target) + BASE_CONFIG)
    try:
        sha = stack.revisions["v2"]
        assert "started cutover run" in bot.command("alice", f"start v2 {sha}")
        green_preflight(bot, clean_db, sha=sha, age=timedelta(minutes=1))
        after = bot.seq()
        assert "turned the autopilot on" in bot.command("alice", "go")
        for title, approver in (("Maintenance mode on", "bob"), ("Deploy the release tag",
                                                                  "carol")):
            card = bot.workspace.wait_for_message(
                "C_CUTOVER", contains=title, after_seq=after, timeout=300,
                predicate=lambda m: m.ephemeral_to is None and "awaiting approval" in text_of(m))
            bot.sandbox.click(approver, card, action_id=Action.APPROVE)
            assert "succeeded" in text_of(bot.card_showing(card, "succeeded", "failed",
                                                           timeout=300))
        stop = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="Autopilot stopped", after_seq=after, timeout=300,
            predicate=lambda m: m.ephemeral_to is None
            and m.is_reply)  # the stop notice: in the run card's thread, not the card
        assert "*Migrations: alembic upgrade head* failed" in stop.text, stop.text
        assert "decide on the decision card of *Migrations: alembic upgrade head*" in stop.text
        card = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="Decision needed", after_seq=after, timeout=60,
            predicate=lambda m: m.ephemeral_to is None)
        assert "no_such_table" in text_of(card), "the card says why it failed"
        assert buttons(bot, card) == ["Take it", "Skip…", "Roll back", "Hold",
                                      "Abort the run…"], "migrate is not idempotent: no Retry"
        # alice owns it; bob cannot choose; a skip needs bob's approval
        click(bot, "alice", card, Action.DECISION_TAKE)
        card = bot.card_showing(card, "Owner:* <@U_ALICE>")
        assert "owns this decision" in click(bot, "bob", card, Action.DECISION_HOLD)
        submit(bot, "alice", modal(bot, "alice", card, Action.DECISION_SKIP),
               {Block.REASON: {Block.REASON_INPUT: "0002 is applied; 0003 is a no-op for v2"}})
        card = bot.card_showing(card, "Skip asked by")
        assert "recorded as a deviation" in click(bot, "bob", card,
                                                  Action.DECISION_SKIP_APPROVE)
        mark = bot.seq()
        assert "turned the autopilot on" in bot.command("carol", "go"), "go resumes"
        health = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="Health", after_seq=mark, timeout=300,
            # health needs nobody: its card is in the run card's thread (issue 21 item 4)
            predicate=lambda m: m.ephemeral_to is None and "step `health`" in text_of(m))
        health = bot.card_showing(health, "which was skipped", timeout=300)
        assert "Requires `migrate`" in text_of(health)
    finally:
        bot.stop()
    assert rows(clean_db, "SELECT attempt, state FROM step_executions"
                          " WHERE step_id = 'migrate'") == [(1, "skipped")], "never re-run"
    assert rows(clean_db, "SELECT requested_by FROM step_executions WHERE step_id = 'health'"
                ) == [("U_CAROL",)], "the autopilot requested it for who typed go"
    assert rows(clean_db, "SELECT outcome, detail->>'requested_by' FROM audit_log"
                          " WHERE action = 'step.skip'") == [("deviation", "U_ALICE")]
    assert stack.alembic_revision() == "0002_payout_idempotency", "0003 rolled back"
