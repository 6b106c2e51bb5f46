"""Outside review: the buttons of a stopped rollback's timeline, pressed after the world moved
on (the run was finished and a new one started), through signed clicks and modals."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bot.ids import Action
from tests.scenario.test_interrupted import interrupted_notice, leave_running, mark_done_as
from tests.scenario.test_rollback_resume import stopped_timeline
from tests.scenario.test_rollback_shell import run_rollback
from tests.scenario.test_who_may import answer, card_for, rows


def finish_and_start_again(bot) -> None:
    """The stopped rollback's run is closed and the next cutover run opened."""
    assert "closed run #1" in answer(bot, "alice", "finish")
    assert "run #2" in answer(bot, "alice", "start v3")


@contextmanager
def stopped_rollback(clean_db, tmp_path, toy, *, move_on: bool = False) -> Iterator:
    """A bot whose rollback stopped at the failed revert, and that rollback's timeline (with
    ``move_on``, after run #1 was closed and run #2 opened); the bot stops on the way out."""
    bot = run_rollback(clean_db, tmp_path, toy, with_revert=True)
    try:
        timeline = stopped_timeline(bot)
        if move_on:
            finish_and_start_again(bot)
        yield bot, timeline
    finally:
        bot.stop()


def test_mark_done_on_an_old_runs_timeline_does_not_continue_its_rollback(
        clean_db, tmp_path, toy):
    with stopped_rollback(clean_db, tmp_path, toy, move_on=True) as (bot, timeline):
        after = bot.seq()
        mark_done_as(bot, "alice", timeline, "reverted by hand")
        reply = bot.replies_to("alice", after=after, timeout=10)
        if "two-person decision" in reply.text:  # asked: a second person approving the
            # card must still not continue the old run's plan
            card = card_for(bot, "as done", after)
            mark = bot.seq()
            bot.sandbox.click("bob", card, action_id=Action.APPROVE)
            bot.replies_to("bob", after=mark, timeout=10)
            bot.workspace.wait_for(lambda: rows(
                clean_db, "SELECT 1 FROM audit_log WHERE action = 'approval.approve'"), 10)
            bot.workspace.wait_for(lambda: not rows(
                clean_db, "SELECT 1 FROM step_executions WHERE state IN ('queued', 'running')"),
                20)
    queued = rows(clean_db, "SELECT step_id, state FROM step_executions WHERE run_id = 1 "
                            "AND state IN ('queued', 'running', 'succeeded') "
                            "AND step_id = 'rb-maintenance-off'")
    assert queued == [], (f"an old run's rollback continued while run #2 is active: {queued}; "
                          f"the reply was {reply.text!r}")
    assert toy.flag.exists(), "maintenance was switched off by the old run's rollback"


def test_retry_on_an_old_runs_timeline_does_not_ask_to_roll_back_the_new_run(
        clean_db, tmp_path, toy):
    with stopped_rollback(clean_db, tmp_path, toy, move_on=True) as (bot, timeline):
        after = bot.seq()
        bot.sandbox.click("alice", timeline, action_id=Action.RETRY)
        reply = bot.replies_to("alice", after=after, timeout=10).text
    asked = rows(clean_db, "SELECT run_id, action FROM approvals WHERE run_id = 2")
    assert asked == [], f"Retry on run #1's timeline asked for {asked} ({reply!r})"


def test_an_interrupted_notice_of_a_closed_run_changes_nothing(toybot, clean_db):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    leave_running(clean_db, "health")
    notice = interrupted_notice(toybot, after)
    assert "closed run #1" in answer(toybot, "alice", "finish")
    assert "run #2" in answer(toybot, "alice", "start v3")
    after = toybot.seq()
    toybot.sandbox.click("alice", notice, action_id=Action.RETRY)
    retried = toybot.replies_to("alice", after=after).text
    after = toybot.seq()
    mark_done_as(toybot, "alice", notice, "checked by hand")
    marked = toybot.replies_to("alice", after=after).text
    assert rows(clean_db, "SELECT run_id, state FROM step_executions WHERE step_id = 'health' "
                          "ORDER BY id") == [(1, "interrupted")], \
        f"an old run's notice acted on a closed run or the new one: {retried!r} / {marked!r}"


def test_a_run_whose_rollback_stopped_part_way_is_not_closed_as_rolled_back(
        clean_db, tmp_path, toy):
    with stopped_rollback(clean_db, tmp_path, toy) as (bot, _):
        closed = answer(bot, "alice", "finish")
    assert "rolled back" not in closed, f"the revert failed, maintenance is on: {closed}"
    assert rows(clean_db, "SELECT status FROM runs") != [("rolled_back",)]


def test_double_retry_and_two_approvers_at_once_resume_the_rollback_once(
        clean_db, tmp_path, toy):
    with stopped_rollback(clean_db, tmp_path, toy) as (bot, timeline):
        after = bot.seq()
        clicks = [threading.Thread(target=bot.sandbox.click, args=("alice", timeline),
                                   kwargs={"action_id": Action.RETRY}) for _ in range(2)]
        for t in clicks:
            t.start()
            time.sleep(0.005)  # a double click, 5 ms apart (not synchronisation)
        for t in clicks:
            t.join()
        card = card_for(bot, "Rollback requested", after)
        votes = [threading.Thread(target=bot.sandbox.click, args=(who, card),
                                  kwargs={"action_id": Action.APPROVE})
                 for who in ("bob", "carol")]
        for t in votes:
            t.start()
        for t in votes:
            t.join()
        bot.workspace.wait_for(lambda: rows(
            clean_db, "SELECT 1 FROM step_executions WHERE step_id = 'rb-revert-deploy' "
                      "AND attempt = 2 AND state = 'failed'"), 20)
    assert rows(clean_db, "SELECT count(*) FROM approvals WHERE action = 'Resume rollback'") \
        == [(1,)], "a double click asked twice"
    assert rows(clean_db, "SELECT count(*) FROM step_executions WHERE step_id = "
                          "'rb-revert-deploy'") == [(2,)], "the resume ran more than once"
    assert rows(clean_db, "SELECT count(*) FROM step_executions WHERE step_id = "
                          "'rb-maintenance-on'") == [(1,)], "a done step was re-run"
