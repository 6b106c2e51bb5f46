"""The rehearsal's counts (bot/dev/rehearse/counts.py) as a user reads the channel: actions are
the requests the sandbox delivered (a failed one is not an action), look-ups are apart, and
each bot message is counted once as top-level, thread reply or ephemeral."""

from __future__ import annotations

from bot.dev.rehearse.counts import count
from bot.dev.rehearse.people import CUTOVER, INCIDENT, workspace
from bot.dev.sandbox.workspace import DeliveryRecord


def test_counts_what_people_did_and_what_the_channel_shows():
    ws = workspace()
    bot = ws.bot_user_id
    for kind, status in (("slash", 200), ("slash", 200), ("slash", 200), ("slash", 500),
                         ("block_actions", 200), ("block_actions", 200),
                         ("view_submission", 200), ("raw_payload", 200)):
        ws.record_delivery(DeliveryRecord(kind, "U_ALICE", status, 0.01, ""), failed=False,
                           slow=False)
    card = ws.post_message(CUTOVER, bot, "Deploy: awaiting approval")
    ws.post_message(CUTOVER, bot, "Deploy: log", thread_ts=card.ts)
    ws.post_message(CUTOVER, bot, "Deploy: done", thread_ts=card.ts)
    ws.post_message(CUTOVER, bot, "Autopilot stopped: canary next", source="ack")
    ws.post_message(CUTOVER, bot, "Queued", ephemeral_to="U_ALICE", source="ack")
    look = ws.post_message(CUTOVER, bot, "Run #1 ...", ephemeral_to="U_ALICE", source="ack")
    ws.post_message(CUTOVER, "U_ALICE", "thanks", source="user")
    ws.post_message(INCIDENT, bot, "elsewhere")

    c = count(ws, "autopilot", typed=["start v2 abc", "status", "go"],
              lookup_answers={look.ts}, wall_s=70.04, night_s=52.0)

    assert (c.commands, c.clicks, c.modal_submits, c.human_actions) == (2, 2, 1, 5)
    assert c.lookups == 1 and c.typed == ["start", "go"]
    assert (c.top_level, c.thread_replies, c.ephemeral, c.lookup_replies) == (2, 2, 1, 1)
    assert c.as_json()["human_actions"] == 5 and c.wall_s == 70.0
