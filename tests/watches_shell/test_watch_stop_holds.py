"""A person's `/golive watch stop` after traffic opened holds (issue 23): the leader, which
reconciles what runs with the database every second, starts the watches by itself only when
nobody decided yet; it never overrides a person. Through the real bot and the sandbox."""

from __future__ import annotations

import psycopg

from tests.watches_shell.conftest import watch_message
from tests.watches_shell.test_watch_messages import open_traffic


def test_watch_stop_after_traffic_opened_is_not_overridden_by_the_leader(watchbot, clean_db):
    bot = watchbot
    open_traffic(bot)  # the watches start by themselves: traffic is open
    watch_message(bot, "Health", "*ok*")
    room = bot.runtime.watches
    assert "running" in bot.command("bob", "watch list")

    assert "stopped by <@U_ALICE>" in bot.command("alice", "watch stop")
    # The leader's once-a-second pass, run here a few times rather than waited for.
    for _ in range(3):
        room.reconcile()
        assert room.running is None, "the watches were restarted over a person's stop"
    listed = bot.command("carol", "watch list")
    assert "*stopped* (by <@U_ALICE>)" in listed, listed
    watch_message(bot, "Health", "stopped by")
    with psycopg.connect(clean_db) as conn:
        ctl = conn.execute("SELECT desired, changed_by FROM watch_control").fetchall()
    assert ctl == [("stopped", "U_ALICE")], ctl


def test_watch_stop_and_start_are_audited_as_such(watchbot, clean_db):
    """A person's stop and start of the watches each leave their own audit row (who, which
    run, what it was before), beside the row of the command that asked for it."""
    bot = watchbot
    open_traffic(bot)
    watch_message(bot, "Health", "*ok*")
    assert "stopped by <@U_ALICE>" in bot.command("alice", "watch stop")
    assert "already stopped" in bot.command("bob", "watch stop")  # changes nothing
    assert "Watches starting" in bot.command("carol", "watch start")
    with psycopg.connect(clean_db) as conn:
        rows = conn.execute("SELECT actor, action, outcome, detail->>'was' FROM audit_log"
                            " WHERE action LIKE 'watch.%' ORDER BY id").fetchall()
    assert rows == [("U_ALICE", "watch.stop", "ok", "running"),
                    ("U_CAROL", "watch.start", "ok", "stopped")], rows
