"""Who may do what, where, end to end: signed commands, clicks and modals through the sandbox.

frank is a plain workspace member (no operator, no approver); #general is neither the cutover
nor an incident channel. alice, bob and carol are operators; bob and carol approve.
"""

from __future__ import annotations

import json
import logging

import psycopg
import pytest

from bot.dev.sandbox.workspace import Workspace
from bot.ids import Action
from tests.support.dead_worker import leave_running
from tests.support.harness import Bot, is_run_card, text_of
from tests.support.poll import wait_until

OVERRIDE = 'maintenance on --override "preflight checks are not built yet"'


def workspace() -> Workspace:
    return Workspace({
        "users": [
            {"id": "U_ALICE", "name": "alice"}, {"id": "U_BOB", "name": "bob"},
            {"id": "U_CAROL", "name": "carol"},
            {"id": "U_DAVE", "name": "dave", "is_restricted": True},
            {"id": "U_FRANK", "name": "frank"},
        ],
        "usergroups": [{"id": "S_APPROVERS", "handle": "golive-approvers",
                        "users": ["U_BOB", "U_CAROL"]}],
        "channels": [{"id": "C_CUTOVER", "name": "cutover"},
                     {"id": "C_INCIDENT", "name": "incident"},
                     {"id": "C_GENERAL", "name": "general"}],
    })


@pytest.fixture
def pbot(clean_db, tmp_path):
    """The bot without a worker: nothing requested here ever runs, so no Docker is needed."""
    b = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    yield b
    b.stop()


def answer(bot: Bot, user: str, text: str, channel: str = "C_CUTOVER") -> str:
    return bot.command(user, text, channel=channel)


def rows(db: str, sql: str, *args) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def card_for(bot: Bot, contains: str, after: int, channel: str = "C_CUTOVER", *,
             run_card: bool = False):
    """The public card that names ``contains``: not the living run card (unless
    ``run_card``), which lists every step by its title too and is updated in place."""
    def card(m) -> bool:
        return m.ephemeral_to is None and is_run_card(m) == run_card
    return bot.workspace.wait_for_message(channel, contains=contains, after_seq=after,
                                          predicate=card)


def succeeded(db: str, *step_ids: str) -> None:
    for step_id in step_ids:
        rows(db, "INSERT INTO step_executions (run_id, step_id, attempt, state, params,"
             " requested_by, channel, finished_at) SELECT id, %s, 1, 'succeeded', '{}',"
             " 'U_ALICE', 'C_CUTOVER', now() FROM runs WHERE status = 'active' RETURNING id",
             step_id)


def interrupted_notice(bot: Bot, db: str, step_id: str):
    """Leave a step as a dead worker would; the reaper posts the notice; return it."""
    after = bot.seq()
    leave_running(db, step_id)
    bot.engine.reap_interrupted()
    return bot.workspace.wait_for_message("C_CUTOVER", contains="was interrupted",
                                          after_seq=after)


# ------------------------------------------------------------------ channels and operators

def test_start_from_the_incident_channel_is_refused_naming_the_cutover_channel(pbot, clean_db):
    reply = answer(pbot, "alice", "start v2", channel="C_INCIDENT")
    assert "only in the cutover channel <#C_CUTOVER>" in reply, reply
    assert rows(clean_db, "SELECT id FROM runs") == [], "no run was started"
    assert rows(clean_db, "SELECT outcome, detail->>'refusal' FROM audit_log") == [
        ("refused", "wrong_channel")], "the refusal is audited with its reason"
    reply = answer(pbot, "alice", OVERRIDE, channel="C_INCIDENT")
    assert "<#C_CUTOVER>" in reply and "Approval requested" not in reply


def test_status_and_help_work_in_the_incident_channel_for_anyone(pbot):
    answer(pbot, "alice", "start v2")
    assert "Cutover run #1" in answer(pbot, "frank", "status", channel="C_INCIDENT")
    assert "Subcommands" in answer(pbot, "dave", "help", channel="C_INCIDENT")
    refused = answer(pbot, "alice", "status", channel="C_GENERAL")
    assert "<#C_CUTOVER>" in refused and "<#C_INCIDENT>" in refused, refused


@pytest.mark.parametrize("where", ["C_GENERAL", "a DM with the bot"])
def test_help_answers_anywhere_only_the_asker_and_says_where_the_commands_work(pbot, clean_db,
                                                                               where):
    channel = pbot.workspace.dm_channel("U_FRANK").id if where.startswith("a DM") else where
    after = pbot.seq()
    reply = answer(pbot, "frank", "help", channel=channel)
    assert "Subcommands" in reply and "`/golive status`" in reply, reply
    assert ("Subcommands work in the cutover channel <#C_CUTOVER>; `/golive status`, "
            "`/golive rollback`, `/golive incident` also in an incident channel "
            "(<#C_INCIDENT>)") in reply, reply
    seen = pbot.workspace.messages(channel, after_seq=after)
    assert seen and all(m.ephemeral_to == "U_FRANK" for m in seen), \
        [(m.ephemeral_to, m.text[:40]) for m in seen]
    # help is recorded as a command like any other
    wait_until("the help is audited", lambda: rows(
        clean_db, "SELECT action, outcome FROM audit_log") == [("command", "ok")])
    # and nothing else works there
    refused = answer(pbot, "alice", "status", channel=channel)
    assert "works only in the cutover channel <#C_CUTOVER>" in refused, refused
    refused = answer(pbot, "alice", "start v2", channel=channel)
    assert "works only in the cutover channel <#C_CUTOVER>" in refused, refused
    assert rows(clean_db, "SELECT id FROM runs") == [], "no run was started"


def test_a_non_operator_cannot_start_finish_or_request_steps(pbot, clean_db):
    reply = answer(pbot, "frank", "start v2")
    assert "Only operators" in reply, reply
    assert rows(clean_db, "SELECT id FROM runs") == []
    answer(pbot, "alice", "start v2")
    assert "Only operators" in answer(pbot, "frank", OVERRIDE)
    assert "Only operators" in answer(pbot, "frank", "finish")
    assert "Guest accounts" in answer(pbot, "dave", "finish")
    assert rows(clean_db, "SELECT status FROM runs") == [("active",)]
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)]


# ------------------------------------------------------------------ interrupted steps

def test_retry_by_a_non_operator_is_refused(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    succeeded(clean_db, "maintenance-on")
    notice = interrupted_notice(pbot, clean_db, "deploy")
    mark = pbot.seq()
    pbot.sandbox.click("frank", notice, action_id=Action.RETRY)
    assert "Only operators" in text_of(pbot.replies_to("frank", after=mark))
    assert rows(clean_db, "SELECT count(*) FROM step_executions") == [(2,)], "nothing requested"
    assert rows(clean_db, "SELECT outcome FROM audit_log WHERE action = 'refused.button.retry'"
                ) == [("not_an_operator",)]
    mark = pbot.seq()
    pbot.sandbox.click("alice", notice, action_id=Action.RETRY)
    reply = text_of(pbot.replies_to("alice", after=mark))
    assert "Approval requested" in reply, "an operator's retry asks for a new approval"
    card = card_for(pbot, "attempt 2", mark)
    assert "needs its own approval" in text_of(card), text_of(card)


def test_start_rollback_button_obeys_the_rollback_command_rules(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    notice = interrupted_notice(pbot, clean_db, "deploy")
    mark = pbot.seq()
    pbot.sandbox.click("frank", notice, action_id=Action.START_ROLLBACK)
    by_button = text_of(pbot.replies_to("frank", after=mark))
    assert by_button == answer(pbot, "frank", "rollback now"), "the same refusal as the command"
    assert "Only operators" in by_button

    def elsewhere(payload: dict) -> None:  # the same button, clicked from #general
        payload["channel"] = {"id": "C_GENERAL", "name": "general"}
        payload["container"]["channel_id"] = "C_GENERAL"
    mark = pbot.seq()
    d = pbot.sandbox.click("alice", notice, action_id=Action.START_ROLLBACK, edit=elsewhere)
    assert d.status == 200
    by_button = text_of(pbot.workspace.wait_for_message(
        "C_CUTOVER", after_seq=mark, predicate=lambda m: m.ephemeral_to == "U_ALICE"))
    assert by_button == answer(pbot, "alice", "rollback now", channel="C_GENERAL")
    assert "only in the cutover channel <#C_CUTOVER> or an incident channel" in by_button
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)], "no rollback requested"


def test_rollback_from_the_incident_channel_needs_a_second_person(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    after = pbot.seq()
    reply = answer(pbot, "alice", "rollback payouts failing", channel="C_INCIDENT")
    assert "someone other than you must approve" in reply, reply
    card = card_for(pbot, "Rollback requested", after, channel="C_INCIDENT")
    queued = "SELECT count(*) FROM step_executions WHERE step_id LIKE 'rb-%%'"
    assert rows(clean_db, queued) == [(0,)], "nothing is queued before approval"
    mark = pbot.seq()
    pbot.sandbox.click("alice", card, action_id=Action.APPROVE)
    assert "someone else" in text_of(pbot.replies_to("alice", after=mark,
                                                     channel="C_INCIDENT")).lower()
    assert rows(clean_db, queued) == [(0,)]
    pbot.sandbox.click("bob", card, action_id=Action.APPROVE)
    pbot.card_showing(card, "Rollback approved", channel="C_INCIDENT")
    assert rows(clean_db, queued)[0][0] >= 1, "approved: the plan is queued"


# ------------------------------------------------------------------ finish

def test_finish_with_a_pending_approval_is_refused_listing_it(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    answer(pbot, "alice", OVERRIDE)
    reply = answer(pbot, "alice", "finish")
    assert "still has open work" in reply and "Maintenance mode on" in reply, reply
    assert "awaiting approval" in reply and "--abort" in reply
    assert rows(clean_db, "SELECT status FROM runs") == [("active",)]
    assert rows(clean_db, "SELECT status FROM approvals") == [("pending",)]


def test_finish_abort_voids_the_pending_approval_and_its_card_at_once(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    after = pbot.seq()
    answer(pbot, "alice", OVERRIDE)
    card = card_for(pbot, "Maintenance mode on", after)
    assert pbot.sandbox.buttons(card), "a pending card has its buttons"
    reply = answer(pbot, "alice", 'finish --abort "window closed"')
    assert "closed run #1: aborted — window closed" in reply, reply
    assert "Did not run" in reply and "`maintenance-on`" in reply
    void = pbot.card_showing(card, "Void")
    assert pbot.sandbox.buttons(void) == [], "the voided card lost its buttons"
    assert "run aborted" in text_of(void)
    assert rows(clean_db, "SELECT status FROM runs") == [("aborted",)]
    assert rows(clean_db, "SELECT status FROM approvals") == [("void",)]
    assert "Cutover run #1 — aborted" in answer(pbot, "carol", "status")


# ------------------------------------------------------------------ override and re-runs

def test_an_override_on_an_ungated_step_asks_for_approval_instead_of_running(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    succeeded(clean_db, "maintenance-on", "deploy", "migrate")
    after = pbot.seq()
    reply = answer(pbot, "alice", 'health --override "checking after a manual fix"')
    assert "Approval requested" in reply, reply
    card = card_for(pbot, "health", after)
    assert "checking after a manual fix" in text_of(card)
    assert rows(clean_db, "SELECT state FROM step_executions WHERE step_id = 'health'") == [
        ("awaiting_approval",)], "an override never runs without a second person"


def test_a_gated_step_that_succeeded_is_not_requested_again(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    succeeded(clean_db, "maintenance-on")
    reply = answer(pbot, "alice", "maintenance on")
    assert "already ran and succeeded" in reply, reply
    assert '/golive maintenance on --override "why"' in reply, "says what a re-run needs"
    assert rows(clean_db, "SELECT count(*) FROM step_executions") == [(1,)]
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)]


# ------------------------------------------------------------------ tampered and malformed

def test_a_click_naming_another_approval_than_its_card_decides_nothing(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    after = pbot.seq()
    answer(pbot, "alice", OVERRIDE)
    first = card_for(pbot, "Maintenance mode on", after)
    after = pbot.seq()
    answer(pbot, "alice", 'deploy v2 --override "drill"')
    card_for(pbot, "Deploy", after)
    other = str(rows(clean_db, "SELECT id FROM approvals WHERE step_id = 'deploy'")[0][0])

    def aim_elsewhere(payload: dict) -> None:
        payload["actions"][0]["value"] = other
    mark = pbot.seq()
    pbot.sandbox.click("bob", first, action_id=Action.APPROVE, edit=aim_elsewhere)
    assert "does not belong" in text_of(pbot.replies_to("bob", after=mark))
    assert rows(clean_db, "SELECT status FROM approvals ORDER BY id") == [("pending",),
                                                                       ("pending",)]
    assert rows(clean_db, "SELECT count(*) FROM approval_votes") == [(0,)]


def malformed(card_payload: dict) -> list:
    def changed(**kw):
        return {**card_payload, **kw}
    action = card_payload["actions"][0]
    return [
        [], None, "text", 42,  # (actions=[] is the first click's own)
        changed(actions=[{**action, "value": "not-a-number"}]),
        changed(actions=[{**action, "value": "1e9"}]),
        changed(actions=[{**action, "value": None}]),
        changed(actions="approve"),
        changed(user=None),
        changed(user={"name": "nobody"}),
        changed(channel=None, container={"type": "message"}),
        {"type": "view_submission", "user": {"id": "U_BOB"},
         "view": {"callback_id": "somebody.elses.modal", "private_metadata": "1|C_CUTOVER"}},
        {"type": "view_submission", "user": {"id": "U_BOB"},
         "view": {"callback_id": "golive.reject_reason", "private_metadata": "x|",
                  "state": {"values": {"golive.reason": {"golive.reason_input": {
                      "type": "plain_text_input", "value": "nope"}}}}}},
        {"type": "view_submission", "view": {"callback_id": "golive.mark_done_reason"}},
    ]


def test_malformed_interaction_payloads_change_nothing_and_log_no_traceback(pbot, clean_db,
                                                                            caplog):
    answer(pbot, "alice", "start v2")
    after = pbot.seq()
    answer(pbot, "alice", OVERRIDE)
    card = card_for(pbot, "Maintenance mode on", after)
    before = rows(clean_db, "SELECT count(*) FROM audit_log")
    seen: dict = {}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        # A real Cancel click by the requester, with its actions emptied on the way.
        first = pbot.sandbox.click("alice", card, action_id=Action.CANCEL,
                                   edit=lambda p: (seen.update(json.loads(json.dumps(p))),
                                                   p.update(actions=[])))
        statuses = [first.status] + [pbot.sandbox.send_payload(p).status
                                     for p in malformed(seen)]
        # A valid click afterwards is served: nothing above broke the listener.
        mark = pbot.seq()
        pbot.sandbox.click("alice", card, action_id=Action.APPROVE)
        pbot.replies_to("alice", after=mark)
    assert all(s in (200, 400) for s in statuses), statuses
    tracebacks = [r.getMessage() for r in caplog.records
                  if r.exc_info or "Traceback" in r.getMessage()]
    assert tracebacks == [], tracebacks
    assert rows(clean_db, "SELECT status FROM approvals") == [("pending",)]
    assert rows(clean_db, "SELECT count(*) FROM approval_votes") == [(0,)]
    after_rows = rows(clean_db, "SELECT count(*) FROM audit_log WHERE action NOT LIKE"
                      " 'approval.approve'")
    assert after_rows == before, "malformed payloads leave no trace in the state"
