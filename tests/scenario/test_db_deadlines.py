"""Every database call has a deadline: a silent partition (a middlebox that accepts and ACKs
but forwards nothing, which defeats TCP keepalives and statement_timeout) gets a clear reply
within 5 s instead of hanging the bot's listener threads."""

from __future__ import annotations

import time


def test_a_command_during_a_silent_partition_is_answered_within_5_seconds(proxied_bot):
    bot, proxy = proxied_bot
    assert "No cutover run" in bot.command("alice", "status")

    proxy.silence()
    for attempt in range(3):  # pooled connections and fresh ones alike
        started = time.monotonic()
        reply = bot.command("alice", "status", timeout=30)
        took = time.monotonic() - started
        assert "database is not answering" in reply, reply
        assert took < 5.0, f"attempt {attempt + 1}: the reply took {took:.1f}s in a partition"
    health = bot.get("/healthz")
    assert health.status_code == 503, "healthz must go red, not hang"

    proxy.restore()
    assert bot.workspace.wait_for(lambda: bot.get("/healthz").status_code == 200, 15)
    # The first command after the database's return is answered: no connection the partition
    # left behind is handed out, and no pool waits out a reconnection backoff (docs/NOTES.md,
    # "The connection a partition leaves behind").
    started = time.monotonic()
    reply = bot.command("alice", "status")
    assert "No cutover run" in reply, reply
    assert time.monotonic() - started < 5.0, "README: commands are back within 5 s"
