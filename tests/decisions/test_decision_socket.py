"""Exactly once over Socket Mode: an Approve skip envelope Slack sends again (same envelope id)
is acked and takes no second decision (`golive socket` in its own process, the sandbox's
socket server). Its reaper marks the dead worker's step interrupted by itself."""

from __future__ import annotations

from bot.ids import Action, Block
from tests.scenario.test_socket_mode import socketbot  # noqa: F401  (fixture)
from tests.scenario.test_who_may import rows, succeeded
from tests.support.dead_worker import leave_running
from tests.support.harness import text_of


def test_an_approve_skip_envelope_sent_again_takes_one_decision(socketbot, clean_db):  # noqa: F811
    bot = socketbot
    assert "started cutover run #1" in bot.command("alice", "start v2")
    succeeded(clean_db, "maintenance-on", "deploy")
    after = bot.seq()
    exe = leave_running(clean_db, "migrate")
    card = bot.workspace.wait_for_message(  # the reaper in the bot's worker loop
        "C_CUTOVER", contains="Decision needed", after_seq=after, timeout=30,
        predicate=lambda m: m.ephemeral_to is None)
    bot.sandbox.click("alice", card, action_id=Action.DECISION_TAKE)
    card = bot.card_showing(card, "Owner:* <@U_ALICE>")
    bot.sandbox.click("alice", card, action_id=Action.DECISION_SKIP)
    view = bot.workspace.wait_for(lambda: bot.workspace.open_views("U_ALICE")[-1:])[0]
    bot.sandbox.submit_view("alice", view.id, {Block.REASON: {
        Block.REASON_INPUT: "the migration ran by hand, checked with alembic current"}})
    card = bot.card_showing(card, "Skip asked by")
    mark = bot.seq()
    bot.sandbox.click("bob", card, action_id=Action.DECISION_SKIP_APPROVE)
    bot.workspace.wait_for_message("C_CUTOVER", contains="recorded as a deviation",
                                   after_seq=mark, predicate=lambda m: m.ephemeral_to == "U_BOB")
    approve = bot.links.links[-1].envelopes[-1]
    mark = bot.seq()
    again = bot.links.redeliver(approve)
    assert again.status == 200 and again.error is None, f"the envelope was not acked: {again}"
    assert "run #1" in bot.command("carol", "status").lower()  # handled after the redelivery
    said = " ".join(text_of(m) for m in bot.workspace.messages("C_CUTOVER", after_seq=mark))
    assert "deviation" not in said and "already taken" not in said, \
        "the envelope sent again was not handled a second time"
    assert rows(clean_db, "SELECT count(*) FROM audit_log WHERE action = 'step.skip'") == [(1,)]
    assert rows(clean_db, "SELECT state FROM step_executions WHERE id = %s", exe) == [
        ("skipped",)]
