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
    # Commands are back within seconds of the database's return (README: "back within 5 s");
    # a connection the partition left half-open may fail one more command first, with the
    # same clear reply (seen under load since the read-only batches; see docs/NOTES.md)
    back = time.monotonic() + 10
    reply = bot.command("alice", "status")
    while "No cutover run" not in reply and time.monotonic() < back:
        assert "database is not answering" in reply, reply
        reply = bot.command("alice", "status")
    assert "No cutover run" in reply, reply
