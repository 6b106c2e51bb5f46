"""The watches in the channel, through the real bot and the sandbox: they start when traffic
opens, each has one message updated in place, every state change is a thread reply, and a
rollback trigger posts an alert whose Start rollback button enters the rollback flow."""

from __future__ import annotations

from bot.ids import Action
from tests.support import pg
from tests.support.harness import text_of
from tests.watches_shell.conftest import is_watch_card, watch_message, watch_replies


def open_traffic(bot) -> None:
    """`/golive traffic open` approved by a second person, as in a real cutover."""
    bot.command("alice", "start v2")
    card = bot.request("alice", 'traffic open --override "watch test"')
    bot.sandbox.click("bob", card, action_id=Action.APPROVE)
    bot.card_showing(card, "succeeded", "failed")


def ticks(bot) -> list[tuple[str, int]]:
    """How many times each watch has measured, as the database has it."""
    return [(r["name"], r["ticks"]) for r in pg.rows(
        bot.settings.migrations_database_url, "SELECT name, ticks FROM watch_states ORDER BY name")]


def test_health_watch_starts_with_traffic_goes_red_and_back(watchbot, health):
    bot = watchbot
    open_traffic(bot)
    msg = watch_message(bot, "Health", "*ok*")
    assert "threshold 1000 ms" in text_of(msg), "the message must show the value vs threshold"

    health.red = True
    red = watch_message(bot, "Health", "*breach*")
    assert red.ts == msg.ts, "the watch's message must be updated in place, not posted anew"
    assert "HTTP 503" in text_of(red)

    health.red = False
    back = watch_message(bot, "Health", "*ok*")
    assert back.ts == msg.ts

    def replies() -> list[str]:
        return [text_of(m) for m in watch_replies(bot, msg)]
    bot.workspace.wait_for(lambda: any("breach → ok" in r for r in replies()), 10)
    said = "\n".join(replies())
    assert "ok → breach" in said and "breach → ok" in said, \
        f"every state change must be a reply in the watch's thread; got: {said}"
    # Only one message per watch in the channel, whatever happened.
    tops = [m for m in bot.workspace.messages("C_CUTOVER", include_ephemeral=False)
            if is_watch_card(m, "Health")]
    assert len(tops) == 1, f"one message per watch, got {len(tops)}"


def test_watch_start_stop_list_by_hand(watchbot):
    bot = watchbot
    bot.command("alice", "start v2")
    assert "have not started" in bot.command("alice", "watch list")
    # Not an operator (dave is a guest): refused by the policy, nothing starts.
    assert "guest" in bot.command("dave", "watch start").lower()
    assert "cutover channel" in bot.command("alice", "watch start", channel="C_INCIDENT")
    assert "starting" in bot.command("alice", "watch start")
    watch_message(bot, "Health", "*ok*")
    listed = bot.command("bob", "watch list")
    assert "running" in listed and "*Health*" in listed, listed
    assert "stopped" in bot.command("alice", "watch stop")
    stopped = watch_message(bot, "Health", "stopped by")
    count = text_of(stopped)
    room = bot.runtime.watches
    measured = ticks(bot)
    room.reconcile()  # the leader's next tick, driven here: it must not start them again
    assert room.running is None, "a stopped watch must not be scheduled any more"
    assert ticks(bot) == measured, "a stopped watch must not measure any more"
    assert text_of(bot.workspace.message("C_CUTOVER", stopped.ts)) == count, \
        "a stopped watch's message must stay as it was"


def test_5xx_burst_posts_alert_in_both_channels_and_button_requests_rollback(
        watchbot, access_log, clean_db):
    bot = watchbot
    bot.command("alice", "start v2")
    bot.command("alice", "watch start")
    watch_message(bot, "Error budget (5xx burn rate)", "*ok*", "*pending*")
    # The file tail starts at the file's end: write once it is there.
    bot.workspace.wait_for(lambda: bot.runtime.watches.streams_connected() or None, 10)
    with access_log.open("a") as f:
        for i in range(60):
            f.write(f"2026-01-01T00:00:00Z access GET /api/x{i} {500 if i % 4 else 200} 3ms\n")
    watch_message(bot, "Error budget (5xx burn rate)", "*breach*")

    def alert_in(channel: str):
        return bot.workspace.wait_for(lambda: next(
            (m for m in bot.workspace.messages(channel, include_ephemeral=False)
             if not m.is_reply and "Rollback trigger" in text_of(m)), None), 15)
    in_cutover, in_incident = alert_in("C_CUTOVER"), alert_in("C_INCIDENT")
    shown = text_of(in_incident)
    assert "Evidence" in shown and "short_burn" in shown, f"the alert must carry evidence: {shown}"
    assert "Start rollback" in text_of(in_cutover)

    # A guest's click is refused by the same policy as /golive rollback.
    mark = bot.seq()
    bot.sandbox.click("dave", in_incident, action_id=Action.ALERT_ROLLBACK)
    assert "guest" in text_of(bot.replies_to("dave", after=mark, channel="C_INCIDENT")).lower()
    mark = bot.seq()
    bot.sandbox.click("alice", in_incident, action_id=Action.ALERT_ROLLBACK)
    answer = text_of(bot.replies_to("alice", after=mark, channel="C_INCIDENT"))
    assert "Rollback requested" in answer, answer
    rows = pg.wait_for_rows(clean_db, "SELECT reason FROM approvals WHERE kind = 'rollback'")
    assert "alert #" in rows[0][0], "the rollback request must name the alert"


def test_security_incident_posts_alert_with_start_rollback(watchbot):
    bot = watchbot
    bot.command("alice", "start v2")
    answer = bot.command("alice", "incident security leaked API key <!channel>",
                         channel="C_INCIDENT")
    assert "Security incident declared" in answer, answer
    for channel in ("C_CUTOVER", "C_INCIDENT"):
        alert = bot.workspace.wait_for(lambda c=channel: next(
            (m for m in bot.workspace.messages(c, include_ephemeral=False)
             if "Security incident declared" in text_of(m)), None), 10)
        shown = text_of(alert)
        assert "leaked API key" in shown and "Start rollback" in shown
        assert "<!channel>" not in alert.text, "typed text must not ping the channel"
    assert "Usage" in bot.command("alice", "incident security")
