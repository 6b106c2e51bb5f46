"""What the channel can do with an interrupted step: mark it done with a reason, or retry it."""

from __future__ import annotations

import psycopg

from bot.ids import Action, Block
from tests.support import dead_worker
from tests.support.harness import text_of


def leave_running(db_url: str, step_id: str) -> int:
    """A dead worker's running row; its request overrode the preflight gate (not built here)."""
    return dead_worker.leave_running(db_url, step_id, override_reason="preflight not built")


def interrupted_notice(bot, after: int):
    bot.engine.wake()
    return bot.workspace.wait_for_message("C_CUTOVER", contains="was interrupted",
                                          after_seq=after, timeout=15)


def mark_done_as(bot, user: str, notice, reason: str):
    """Click Mark done… on the notice and submit the modal with ``reason``."""
    uid = bot.workspace.user(user).id
    bot.sandbox.click(user, notice, action_id=Action.MARK_DONE)
    view = bot.workspace.wait_for(lambda: (bot.workspace.open_views(uid) or [None])[0])
    return bot.sandbox.submit_view(user, view.id, {Block.REASON: {Block.REASON_INPUT: reason}})


def test_mark_done_of_a_gated_step_is_a_two_person_decision(toybot, clean_db):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    leave_running(clean_db, "maintenance-on")
    notice = interrupted_notice(toybot, after)
    assert "will not be re-run on its own" in text_of(notice)

    d = mark_done_as(toybot, "bob", notice, "  ")
    assert d.response_action == "errors", "an empty reason is refused in the modal"
    view = toybot.workspace.open_views("U_BOB")[0]
    mark = toybot.seq()
    toybot.sandbox.submit_view("bob", view.id, {Block.REASON: {Block.REASON_INPUT:
                                                                "page is up, checked by hand"}})
    card = toybot.workspace.wait_for_message(
        "C_CUTOVER", contains="as done", after_seq=mark, predicate=lambda m: m.ephemeral_to is None)
    shown = text_of(card)
    assert "treat `maintenance-on` as done" in shown.lower() and "page is up" in shown, shown
    assert "succeeded" not in toybot.command("carol", "status").split("maintenance-on")[1][:40], \
        "a gated step is not marked done before a second person approves"

    mark = toybot.seq()
    toybot.sandbox.click("bob", card, action_id=Action.APPROVE)
    assert "someone else" in text_of(toybot.replies_to("bob", after=mark)).lower()
    toybot.sandbox.click("carol", card, action_id=Action.APPROVE)
    toybot.card_showing(card, "recorded as done")

    def marked():
        text = toybot.command("carol", "status")
        return text if "marked done" in text else None
    status = toybot.workspace.wait_for(marked, 15)
    assert "`maintenance-on` 🔒 succeeded — marked done by <@U_BOB>: page is up" in status
    with psycopg.connect(clean_db) as conn:
        row = conn.execute("SELECT actor, detail->>'reason', detail->>'requested_by' FROM"
                           " audit_log WHERE action = 'step.mark_done'").fetchone()
    assert row == ("U_CAROL", "page is up, checked by hand", "U_BOB"), row


def test_a_guest_cannot_mark_an_interrupted_gated_step_done(toybot, clean_db):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    leave_running(clean_db, "maintenance-on")
    notice = interrupted_notice(toybot, after)
    mark = toybot.seq()
    toybot.sandbox.click("dave", notice, action_id=Action.MARK_DONE)
    assert "guest" in text_of(toybot.replies_to("dave", after=mark)).lower()
    assert toybot.workspace.open_views("U_DAVE") == [], "no modal for a refused click"
    status = toybot.command("carol", "status")
    assert "`maintenance-on` 🔒 interrupted" in status, status
    with psycopg.connect(clean_db) as conn:
        rows = conn.execute("SELECT outcome FROM audit_log WHERE actor = 'U_DAVE'"
                            " AND action = 'refused.button.mark_done'").fetchall()
    assert rows == [("guest_account",)], rows


def test_retry_of_a_gated_step_asks_for_approval_again(toybot, clean_db, toy):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    leave_running(clean_db, "maintenance-on")
    notice = interrupted_notice(toybot, after)
    mark = toybot.seq()
    toybot.sandbox.click("alice", notice, action_id=Action.RETRY)
    reply = text_of(toybot.replies_to("alice", after=mark))
    assert "Approval requested" in reply, reply
    card = toybot.workspace.wait_for_message("C_CUTOVER", contains="attempt 2", after_seq=mark,
                                             predicate=lambda m: m.ephemeral_to is None)
    assert "Approve" in text_of(card) and toy.executions() == []
