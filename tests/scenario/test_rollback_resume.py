"""A rollback that stops part-way, without Docker: it says where it stopped and what state the
system is in, offers Retry and Mark done, and resumes at the stopped step instead of queuing
the whole plan again. The plan is the toy one of ``test_rollback_shell``: maintenance on, a
revert that fails clearly (no image was recorded), maintenance off."""

from __future__ import annotations

from bot.ids import Action
from tests.scenario.test_interrupted import mark_done_as
from tests.scenario.test_rollback_shell import LONG_REASON, run_rollback, toy_runbook
from tests.scenario.test_who_may import answer, card_for, rows, workspace
from tests.support.harness import BASE_CONFIG, Bot, text_of

ATTEMPTS = "SELECT step_id, count(*), max(state) FROM step_executions GROUP BY step_id " \
           "ORDER BY step_id"


def stopped_timeline(bot: Bot, channel: str = "C_CUTOVER"):
    return card_for(bot, "Rollback of run #1: stopped at Revert", 0, channel=channel)


def test_a_failed_step_stops_the_rollback_and_mark_done_by_two_people_continues_it(
        clean_db, tmp_path, toy):
    bot = run_rollback(clean_db, tmp_path, toy, with_revert=True)
    try:
        timeline = stopped_timeline(bot)
        shown = text_of(timeline)
        assert "nothing to revert" in shown and "done: Maintenance mode on." in shown, shown
        assert "nothing else runs until someone decides" in shown, shown
        assert "Decide in <#C_CUTOVER>" in text_of(stopped_timeline(bot, "C_INCIDENT"))
        assert toy.flag.exists(), "maintenance stays on while the rollback is stopped"

        mark = bot.seq()
        mark_done_as(bot, "alice", timeline, "reverted by hand: compose up on v1")
        card = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="as done", after_seq=mark,
            predicate=lambda m: m.ephemeral_to is None)
        assert "It failed; approving records it as succeeded" in text_of(card), text_of(card)
        assert rows(clean_db, "SELECT state FROM step_executions WHERE step_id = "
                              "'rb-maintenance-off'") == [("cancelled",)], \
            "nothing continues before a second person approves"
        mark = bot.seq()
        bot.sandbox.click("alice", card, action_id=Action.APPROVE)
        assert "someone else" in text_of(bot.replies_to("alice", after=mark)).lower()
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)

        done = bot.card_showing(timeline, "Rollback of run #1: completed")
        shown = text_of(done)
        assert "Maintenance mode off (attempt 2): succeeded" in shown, shown
        assert "Revert to the previous image tag: succeeded" in shown and "marked done" in \
            shown.lower(), shown
        assert "Mark done" not in str(done.blocks), "a finished rollback offers no buttons"
    finally:
        bot.stop()
    assert not toy.flag.exists(), "the rest of the plan ran: maintenance off"
    assert rows(clean_db, ATTEMPTS) == [
        ("rb-maintenance-off", 2, "succeeded"), ("rb-maintenance-on", 1, "succeeded"),
        ("rb-revert-deploy", 1, "succeeded")], "nothing done before was re-run"
    audit = rows(clean_db, "SELECT actor, detail->>'reason', detail->>'requested_by' FROM "
                           "audit_log WHERE action = 'step.mark_done'")
    assert audit == [("U_BOB", "reverted by hand: compose up on v1", "U_ALICE")], audit


def test_retry_resumes_at_the_failed_step_after_approval_without_rerunning_the_done_ones(
        clean_db, tmp_path, toy):
    bot = run_rollback(clean_db, tmp_path, toy, with_revert=True)
    try:
        timeline = stopped_timeline(bot)
        after = bot.seq()
        bot.sandbox.click("alice", timeline, action_id=Action.RETRY)
        reply = text_of(bot.replies_to("alice", after=after, contains="Resuming"))
        assert "at `rb-revert-deploy` (not re-run: rb-maintenance-on)" in reply, reply
        card = card_for(bot, "Rollback requested", after)
        shown = text_of(card)
        assert "Resumes the stopped rollback at rb-revert-deploy" in shown, shown
        assert "Not re-run (done in this rollback): rb-maintenance-on" in shown, shown
        assert rows(clean_db, "SELECT count(*) FROM step_executions WHERE step_id = "
                              "'rb-revert-deploy'") == [(1,)], "not re-run before approval"

        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        bot.workspace.wait_for(lambda: rows(
            clean_db, "SELECT 1 FROM step_executions WHERE step_id = 'rb-revert-deploy' "
                      "AND attempt = 2 AND state = 'failed'"), 20)
        # Still stopped at the revert: the command, too, resumes rather than re-queues.
        reply = answer(bot, "carol", "rollback try again", channel="C_INCIDENT")
        assert "Resuming the stopped rollback of run #1" in reply, reply
    finally:
        bot.stop()
    assert rows(clean_db, ATTEMPTS) == [
        ("rb-maintenance-off", 2, "cancelled"), ("rb-maintenance-on", 1, "succeeded"),
        ("rb-revert-deploy", 2, "failed")], "maintenance on ran once; the revert twice"
    resumed = rows(clean_db, "SELECT detail->>'from', detail->'not_rerun' FROM audit_log "
                             "WHERE action = 'rollback.resumed'")
    assert resumed == [("rb-revert-deploy", ["rb-maintenance-on"])], resumed


def test_a_rollback_when_no_cutover_has_run_is_refused_clearly(clean_db, tmp_path):
    bot = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    try:
        reply = answer(bot, "alice", "rollback payouts failing", channel="C_INCIDENT")
    finally:
        bot.stop()
    assert "There is no cutover run to roll back" in reply, reply
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)]
    assert rows(clean_db, "SELECT count(*) FROM step_executions") == [(0,)]


def test_a_break_glass_rollback_runs_to_the_end_on_one_persons_approval(clean_db, tmp_path,
                                                                        toy):
    plan = toy_runbook(False).replace("groups = []\n", "groups = []\ntriggers = [{ id = "
                                      '"security-incident", title = "Security", manual = true }]'
                                      "\n", 1)
    (tmp_path / "rb.toml").write_text(plan, encoding="utf-8")
    bot = Bot(clean_db, tmp_path, workspace=workspace(),
              config='runbook = "rb.toml"\n' + BASE_CONFIG + toy.config())
    try:
        answer(bot, "alice", "start v2")
        reply = answer(bot, "alice", f'rollback --break-glass "{LONG_REASON}" --trigger security',
                       channel="C_INCIDENT")
        assert "Break-glass rollback of run #1" in reply, reply
        done = text_of(card_for(bot, "Rollback of run #1: completed", 0, channel="C_INCIDENT"))
        assert "Maintenance mode off: succeeded" in done, done
    finally:
        bot.stop()
    assert not toy.flag.exists(), "the plan ran to its end: traffic open again"


def test_a_resume_approved_after_the_stopped_step_was_marked_done_is_void(clean_db, tmp_path,
                                                                          toy):
    bot = run_rollback(clean_db, tmp_path, toy, with_revert=True)
    try:
        timeline = stopped_timeline(bot)
        after = bot.seq()
        bot.sandbox.click("alice", timeline, action_id=Action.RETRY)
        assert "at `rb-revert-deploy`" in text_of(
            bot.replies_to("alice", after=after, contains="Resuming"))
        resume = card_for(bot, "Rollback requested", after)

        # Before anyone approves the resume, the revert is marked done (two people) instead:
        # the rollback goes on after it and completes, so it no longer stops at the revert.
        mark = bot.seq()
        mark_done_as(bot, "alice", timeline, "reverted by hand: compose up on v1")
        card = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="as done", after_seq=mark,
            predicate=lambda m: m.ephemeral_to is None)
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        bot.card_showing(timeline, "Rollback of run #1: completed")

        mark = bot.seq()
        bot.sandbox.click("carol", resume, action_id=Action.APPROVE)
        reply = text_of(bot.replies_to("carol", after=mark))
        assert "changed since it was requested; this request is void" in reply, reply
        assert rows(clean_db, ATTEMPTS) == [
            ("rb-maintenance-off", 2, "succeeded"), ("rb-maintenance-on", 1, "succeeded"),
            ("rb-revert-deploy", 1, "succeeded")], "the old resume queued nothing"
        closed = bot.card_showing(resume, "Rollback requested — void")
        assert "Approve" not in str(closed.blocks), "a void request offers no buttons"
    finally:
        bot.stop()
    assert not toy.flag.exists(), "traffic is open: the plan ran on after the revert"
    assert rows(clean_db, "SELECT status FROM approvals WHERE step_id = 'rollback' "
                          "ORDER BY id") == [("approved",), ("void",)]
    assert rows(clean_db, "SELECT count(*) FROM audit_log WHERE action = 'rollback.resumed'"
                ) == [(0,)]
