"""What a new user meets first in the channel: a short usage error, and a refused click that
leaves the card alone."""

from __future__ import annotations

import psycopg

from bot.ids import Action
from tests.support.harness import text_of

OVERRIDE = 'maintenance on --override "preflight checks are not built yet"'


def test_a_bad_tag_is_one_short_message_pointing_at_help(toybot):
    toybot.command("alice", "start v2")
    reply = toybot.command("alice", "deploy v2!!")
    assert "`v2!!` is not a valid image tag" in reply, reply
    assert "`/golive help`" in reply, f"no pointer to /golive help: {reply}"
    assert "Subcommands" not in reply and len(reply.splitlines()) <= 2, \
        f"the usage error is followed by the whole help:\n{reply}"


def _card_version(db: str) -> int:
    """How many times the maintenance-on card was touched (every touch bumps its version)."""
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT o.version FROM outbox o JOIN step_executions e"
            " ON o.key = 'card:exe:' || e.id WHERE e.step_id = 'maintenance-on'").fetchone()
    assert row is not None, "the maintenance-on card has no outbox row"
    return row[0]


def test_a_refused_click_makes_no_chat_update(toybot, clean_db):
    toybot.command("alice", "start v2")
    card = toybot.request("alice", OVERRIDE, reply="Approval requested")
    version = _card_version(clean_db)
    updates = [c for c in toybot.workspace.calls("chat.update") if c.params.get("ts") == card.ts]

    mark = toybot.seq()
    toybot.sandbox.click("alice", card, action_id=Action.APPROVE)  # the requester: refused
    assert "someone else" in text_of(toybot.replies_to("alice", after=mark)).lower()

    # A change to the card would commit with the refusal, before the reply goes out.
    assert _card_version(clean_db) == version, "a refused click queued a card update"
    now = [c for c in toybot.workspace.calls("chat.update") if c.params.get("ts") == card.ts]
    assert now == updates, "a refused click re-rendered the card"
