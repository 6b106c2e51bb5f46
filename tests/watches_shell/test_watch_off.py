"""A watch whose source the team did not configure is listed as *off* (what to set), never
run with the sample's query against the team's database, and never failing."""

from __future__ import annotations

from tests.support.harness import BASE_CONFIG, Bot, text_of
from tests.watches_shell.conftest import watch_message


def test_unconfigured_watches_are_off_and_run_nothing(clean_db, tmp_path, toy, health):
    # The team's stack: a health endpoint, and a database that has none of paybox's tables.
    target = toy.config().replace(f'internal_url = "{toy.url}"', f'internal_url = "{health.url}"')
    config = BASE_CONFIG + target + f"""
[target.migrations]
database_url = "{clean_db}"

[watches.health]
interval_s = 0.5
base = "internal"

[watches.payouts]
interval_s = 0.5

[watches.ledger]
interval_s = 0.5
"""
    bot = Bot(clean_db, tmp_path, config=config)
    try:
        bot.command("alice", "start v2")
        assert "starting" in bot.command("alice", "watch start")
        watch_message(bot, "Health", "*ok*")
        for title in ("Payout failure rate", "Ledger invariants", "Webhook signatures",
                      "Error budget (5xx burn rate)"):
            msg = text_of(watch_message(bot, title, "*off*"))
            assert "cannot run" not in msg and "⚠️" not in msg and "measurements" not in msg, msg
        listed = bot.command("bob", "watch list")
        assert "*Payout failure rate*: *off*: no query: set [watches.payouts] sql" in listed, \
            listed
        assert "*Ledger invariants*: *off*: no invariants: set [watches.ledger] invariants" \
            in listed, listed
        assert "*Webhook signatures*: *off*: no log source" in listed, listed
        status = bot.command("bob", "status")
        assert "*Payout failure rate*: *off*: no query" in status, status
        assert "*Health*: *ok*" in status, status
        said = "\n".join(text_of(m) for m in bot.workspace.messages("C_CUTOVER"))
        for sample in ("UndefinedTable", "does not exist", "relation", "cannot measure"):
            assert sample not in said, \
                f"an unconfigured watch queried the team's database ({sample!r}):\n{said}"
    finally:
        bot.stop()
