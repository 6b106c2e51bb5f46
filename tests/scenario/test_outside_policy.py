"""Outside review: who may do what, where, on the new parts (break-glass, incident, watches,
alerts), and payloads of odd shapes, through signed commands and clicks."""

from __future__ import annotations

import json

from bot.ids import Action, Block
from tests.scenario.test_rollback_shell import pbot  # noqa: F401 - the worker-less bot
from tests.scenario.test_who_may import answer, card_for, rows
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET

GLASS = 'rollback --break-glass "card data leaked in the payout logs" --trigger security'


def test_break_glass_incident_and_watches_refuse_the_wrong_channel_and_non_operators(
        pbot, clean_db):  # noqa: F811
    answer(pbot, "alice", "start v2")
    said = [answer(pbot, "alice", GLASS, channel="C_GENERAL"),
            answer(pbot, "frank", GLASS, channel="C_INCIDENT"),
            answer(pbot, "dave", GLASS, channel="C_CUTOVER"),
            answer(pbot, "frank", "incident security someone is in", channel="C_CUTOVER"),
            answer(pbot, "alice", "incident security someone is in", channel="C_GENERAL"),
            answer(pbot, "frank", "watch stop"),
            answer(pbot, "alice", "watch stop", channel="C_INCIDENT")]
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)], said
    assert rows(clean_db, "SELECT count(*) FROM step_executions") == [(0,)], said
    assert rows(clean_db, "SELECT count(*) FROM watch_control") == [(0,)], said
    assert rows(clean_db, "SELECT count(*) FROM watch_alerts") == [(0,)], said


def test_start_rollback_on_an_alert_needs_an_operator_and_a_second_person(pbot, clean_db):  # noqa: F811
    answer(pbot, "alice", "start v2")
    after = pbot.seq()
    answer(pbot, "alice", "incident security <!channel> leaked " + BOT_TOKEN)
    alert = card_for(pbot, "Start rollback", after)
    for who in ("frank", "dave"):
        pbot.sandbox.click(who, alert, action_id=Action.ALERT_ROLLBACK)
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)]
    mark = pbot.seq()
    pbot.sandbox.click("alice", alert, action_id=Action.ALERT_ROLLBACK)
    card = card_for(pbot, "Rollback requested", mark)
    pbot.sandbox.click("alice", card, action_id=Action.APPROVE)
    assert rows(clean_db, "SELECT status FROM approvals") == [("pending",)], \
        "the requester approved their own rollback"
    raw = "\n".join(json.dumps([m.text, m.blocks]) for m in pbot.workspace.all_messages())
    assert "<!channel>" not in raw and BOT_TOKEN not in raw and SIGNING_SECRET not in raw


def test_forged_and_odd_clicks_change_nothing(pbot, clean_db):  # noqa: F811
    answer(pbot, "alice", "start v2")
    after = pbot.seq()
    answer(pbot, "alice", "rollback payouts failing", channel="C_INCIDENT")
    card = card_for(pbot, "Rollback requested", after, channel="C_INCIDENT")

    def value(v):
        return lambda p: p["actions"][0].update(value=v)
    for v in ("9" * 40, "-1", "1e3", "١", "{\"id\": 1}", "1" + "\u200b", "x" * 1_000_000):
        d = pbot.sandbox.click("bob", card, action_id=Action.APPROVE, edit=value(v))
        assert d.status < 500, (v[:20], d.status)
    for shape in ({"type": "block_actions", "actions": [{"action_id": Action.APPROVE,
                                                         "value": "1"}]},
                  {"type": "block_actions", "user": {"id": "U_BOB"}, "actions": {"a": 1}},
                  {"type": "block_actions", "user": ["U_BOB"], "channel": "C_INCIDENT",
                   "actions": [{"action_id": Action.APPROVE, "value": "1"}]},
                  {"type": "view_submission", "user": {"id": "U_BOB"},
                   "view": {"callback_id": "golive.mark_done_reason", "private_metadata": "{}"}},
                  {"type": "view_submission", "user": {"id": "U_BOB"},
                   "view": {"callback_id": "golive.reject_reason",
                            "private_metadata": "1|C_INCIDENT|" + card.ts}}):
        d = pbot.sandbox.send_payload(shape, user="U_BOB")
        assert d.status < 500, (shape, d.status)
    assert rows(clean_db, "SELECT status FROM approvals") == [("pending",)], \
        "a forged or malformed click decided the request"


def test_break_glass_needs_a_reason_a_person_can_read(pbot, clean_db):  # noqa: F811
    answer(pbot, "alice", "start v2")
    for invisible in ("\u200b" * 25, "\u200e\u200f" * 12, "\u2060\ufeff" * 12,
                      "\u00a0" * 25, "\u3164\u2800" * 12):
        reply = answer(pbot, "alice", f'rollback --break-glass "{invisible}" --trigger security',
                       channel="C_INCIDENT")
        assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)], \
            f"break-glass accepted a reason nobody can read ({invisible[:2]!r}…): {reply}"


def test_typed_mentions_in_abort_and_rollback_reasons_never_ping(pbot, clean_db):  # noqa: F811
    answer(pbot, "alice", "start v2")
    after = pbot.seq()
    answer(pbot, "alice", "rollback <!here> payouts <!channel> failing <@U_FRANK>",
           channel="C_INCIDENT")
    card = card_for(pbot, "Rollback requested", after, channel="C_INCIDENT")
    pbot.sandbox.click("bob", card, action_id=Action.REJECT)
    view = pbot.workspace.wait_for(lambda: (pbot.workspace.open_views("U_BOB") or [None])[0])
    pbot.sandbox.submit_view("bob", view.id, {Block.REASON: {Block.REASON_INPUT: "<!everyone> no"}})
    pbot.card_showing(card, "Rejected", "rejected", channel="C_INCIDENT")
    answer(pbot, "alice", "rollback second try <!channel>", channel="C_INCIDENT")
    assert "aborted" in answer(pbot, "alice", 'finish --abort "<!channel> called off <!here>"')
    answer(pbot, "alice", "status")
    pbot.workspace.wait_for(lambda: rows(clean_db, "SELECT 1 FROM approvals WHERE status = "
                                                   "'void'"), 10)
    raw = "\n".join(json.dumps([m.text, m.blocks]) for m in pbot.workspace.all_messages()
                    if m.ephemeral_to is None)  # what the channel sees (and is pinged by)
    for ping in ("<!channel>", "<!here>", "<!everyone>", "<@U_FRANK>"):
        assert ping not in raw, f"typed {ping} reached Slack unescaped"
