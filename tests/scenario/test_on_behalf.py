"""A request made on someone's behalf (the autopilot's way in, issue 21): the same policy,
gates, binding and claim as the person's own request; the audit and the card say who made it."""

from __future__ import annotations

import psycopg

from bot.engine import Requester
from bot.ids import Action
from tests.support.harness import BASE_CONFIG, Bot, text_of


def test_a_request_on_alices_behalf_is_hers_and_says_who_made_it(clean_db, tmp_path, toy):
    bot = Bot(clean_db, tmp_path, config=BASE_CONFIG + toy.config())
    try:
        bot.command("alice", "start v2")
        after = bot.seq()
        lines = bot.engine.request(actor=Requester("U_ALICE", "C_CUTOVER"),
                                   command="maintenance on", override="drill",
                                   on_behalf_of="U_ALICE", via="autopilot")
        assert "Approval requested" in lines[0] and "requested by autopilot for <@U_ALICE>" \
            in lines[0], lines
        card = bot.workspace.wait_for_message("C_CUTOVER", contains="step `maintenance-on`",
                                              after_seq=after,  # its card, not the run card
                                              predicate=lambda m: m.ephemeral_to is None)
        shown = text_of(bot.card_showing(card, "autopilot"))
        assert "Requested by autopilot for <@U_ALICE>" in shown, shown
        # Still Alice's request: she cannot approve it herself; Bob can, and the step runs.
        mark = bot.seq()
        bot.sandbox.click("alice", card, action_id=Action.APPROVE)
        assert "someone else must approve" in text_of(bot.replies_to("alice", after=mark))
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        assert "succeeded" in text_of(bot.card_showing(card, "succeeded", timeout=30))
        assert toy.executions() == ["on"], "the step ran once, bound as approved"
    finally:
        bot.stop()
    with psycopg.connect(clean_db) as conn:
        actor, detail = conn.execute(
            "SELECT actor, detail FROM audit_log WHERE action = 'approval.requested'").fetchone()
    assert actor == "U_ALICE" and detail["via"] == "autopilot"
    assert detail["requested"] == "requested by autopilot for <@U_ALICE>", detail
