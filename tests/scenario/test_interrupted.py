"""What the channel can do with an interrupted step: mark it done with a reason, or retry it."""

from __future__ import annotations

import psycopg

from bot.ids import Action, Block
from tests.support.harness import text_of


def leave_running(db_url: str, step_id: str) -> None:
    """What a worker that died mid-step leaves behind: a running row and no lock holder."""
    with psycopg.connect(db_url) as conn:
        run_id = conn.execute("SELECT id FROM runs WHERE status = 'active'").fetchone()[0]
        conn.execute(
            "INSERT INTO step_executions (run_id, step_id, attempt, state, params, requested_by,"
            " channel, started_at, claimed_by, override_reason) VALUES (%s, %s, 1, 'running',"
            " '{}', 'U_ALICE', 'C_CUTOVER', now(), 'dead-host:1', 'preflight not built')",
            (run_id, step_id))


def interrupted_notice(bot, after: int):
    bot.engine.wake()
    return bot.workspace.wait_for_message("C_CUTOVER", contains="was interrupted",
                                          after_seq=after, timeout=15)


def test_mark_done_needs_a_reason_and_is_recorded(toybot, clean_db):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    leave_running(clean_db, "maintenance-on")
    notice = interrupted_notice(toybot, after)
    assert "will not be re-run on its own" in text_of(notice)

    toybot.sandbox.click("bob", notice, action_id=Action.MARK_DONE)
    view = toybot.workspace.wait_for(lambda: (toybot.workspace.open_views("U_BOB") or [None])[0])
    d = toybot.sandbox.submit_view("bob", view.id, {Block.REASON: {Block.REASON_INPUT: "  "}})
    assert d.response_action == "errors", "an empty reason is refused in the modal"
    toybot.sandbox.submit_view("bob", view.id, {Block.REASON: {Block.REASON_INPUT:
                                                                "page is up, checked by hand"}})
    def marked():
        text = toybot.command("carol", "status")
        return text if "marked done" in text else None
    status = toybot.workspace.wait_for(marked, 15)
    assert "`maintenance-on` 🔒 succeeded — marked done by <@U_BOB>: page is up" in status
    with psycopg.connect(clean_db) as conn:
        row = conn.execute("SELECT actor, detail->>'reason' FROM audit_log"
                           " WHERE action = 'step.mark_done'").fetchone()
    assert row == ("U_BOB", "page is up, checked by hand")


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
