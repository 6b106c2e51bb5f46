"""A database outage: /healthz goes red, commands get a clear message, and the bot recovers."""

from __future__ import annotations


def test_healthz_red_while_db_down_and_bot_recovers(proxied_bot):
    bot, proxy = proxied_bot
    assert bot.get("/healthz").status_code == 200
    assert "No cutover run" in bot.command("alice", "status")

    proxy.cut()
    health = bot.get("/healthz")
    assert health.status_code == 503 and health.json()["database"] == "down"
    reply = bot.command("alice", "status")
    assert "database is not answering" in reply and "nothing was changed" in reply
    assert "Traceback" not in reply and "psycopg" not in reply
    assert not bot.workspace.delivery_failures, "the ack must stay 200 during an outage"

    proxy.restore()
    assert bot.workspace.wait_for(lambda: bot.get("/healthz").status_code == 200, 15)
    assert "No cutover run" in bot.command("alice", "status")
