"""The health watch during the run's planned maintenance: the page is down on purpose, so the
watch shows *paused* (why, in its message and thread), never *breach*, and resumes by itself
when traffic opens."""

from __future__ import annotations

from bot.ids import Action
from tests.support.harness import text_of
from tests.watches_shell.conftest import watch_message, watch_replies


def approve(bot, text: str) -> None:
    card = bot.request("alice", text)
    bot.sandbox.click("bob", card, action_id=Action.APPROVE)
    assert "succeeded" in text_of(bot.card_showing(card, "succeeded", "failed"))


def test_health_watch_is_paused_not_breached_during_planned_maintenance(watchbot, health):
    bot = watchbot
    bot.command("alice", "start v2")
    assert "starting" in bot.command("alice", "watch start")
    msg = watch_message(bot, "Health", "*ok*")

    approve(bot, 'maintenance on --override "watch test"')
    health.red = True  # the maintenance page: the health endpoint answers 503
    paused = watch_message(bot, "Health", "*paused*")
    assert paused.ts == msg.ts, "the same message, updated in place"
    assert "planned maintenance" in text_of(paused), text_of(paused)
    listed = bot.command("bob", "watch list")
    assert "*paused*" in listed and "breach" not in listed, listed

    health.red = False  # traffic open turns the maintenance page off
    approve(bot, 'traffic open --override "watch test"')
    back = watch_message(bot, "Health", "*ok*")
    assert back.ts == msg.ts

    replies = [text_of(m) for m in watch_replies(bot, msg)]
    said = "\n".join(replies)
    assert "ok → paused" in said, said
    assert "breach" not in said and "Rollback trigger" not in said, \
        f"a planned maintenance is not a breach:\n{said}"
