"""Outside review: the canary sign-off driven as attackers and careless users would, over the
sandbox's wire protocol (signed clicks and modal submissions)."""

from __future__ import annotations

import json

import psycopg

from bot.ids import Action, Block
from tests.canary.conftest import paybox_app  # noqa: F401 - the module's ledger fixture
from tests.canary.test_canary_slack import (  # noqa: F401 - fixtures
    account,
    canary_bot,
    in_thread,
    modal,
    open_canary,
    sign,
)
from tests.support.harness import Bot

PINGS = ("<!channel>", "<!here>", "<!everyone>", "<@U_FRANK>")


def raw_messages(bot: Bot) -> str:
    """Every message the channel holds, as Slack received it (text and blocks, unrendered)."""
    return "\n".join(json.dumps([m.text, m.blocks]) for m in bot.workspace.all_messages())


def test_a_no_go_reason_never_pings_the_channel(canary_bot: Bot, clean_db: str):  # noqa: F811
    bot = canary_bot
    msg, signoff = open_canary(bot, clean_db)
    assert bot.sandbox.click("carol", signoff, action_id=Action.CANARY_REJECT).status == 200
    view = modal(bot, "U_CAROL")
    after = bot.seq()
    bot.sandbox.submit_view("carol", view.id, {Block.REASON: {
        Block.REASON_INPUT: "<!channel> <!here> wake up <@U_FRANK>"}})
    in_thread(bot, msg, "*NO-GO*", after=after)
    in_thread(bot, msg, "rejected by", after=after)  # the thread's reply, too
    raw = raw_messages(bot)
    for ping in PINGS:
        assert ping not in raw, f"a typed NO-GO reason reached Slack unescaped ({ping}): {raw}"


def test_a_signers_note_never_pings_the_channel(canary_bot: Bot, clean_db: str):  # noqa: F811
    bot = canary_bot
    msg, signoff = open_canary(bot, clean_db)
    after = sign(bot, signoff, "bob", "U_BOB", note="<!channel> signed <@U_FRANK>")
    in_thread(bot, msg, "U_BOB", after=after)
    raw = raw_messages(bot)
    for ping in PINGS:
        assert ping not in raw, f"a typed sign-off note reached Slack unescaped ({ping}): {raw}"


def test_a_stale_no_go_after_the_run_was_aborted_changes_nothing(canary_bot: Bot,  # noqa: F811
                                                                 clean_db: str):
    bot = canary_bot
    _, signoff = open_canary(bot, clean_db)
    assert bot.sandbox.click("carol", signoff, action_id=Action.CANARY_REJECT).status == 200
    view = modal(bot, "U_CAROL")  # carol's form is open while the run is ended
    assert "aborted" in bot.command("alice", 'finish --abort "called off"')
    bot.sandbox.submit_view("carol", view.id, {Block.REASON: {Block.REASON_INPUT: "late"}})
    def carol_handled():
        with psycopg.connect(clean_db) as conn:
            return conn.execute("SELECT 1 FROM audit_log WHERE actor = 'U_CAROL'").fetchone()
    bot.workspace.wait_for(carol_handled, 30)
    with psycopg.connect(clean_db) as conn:
        canary_steps = conn.execute("SELECT state FROM step_executions "
                                    "WHERE step_id = 'canary'").fetchall()
    assert canary_steps == [], f"a closed run's record changed after it ended: {canary_steps}"
