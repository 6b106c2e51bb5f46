"""Who may decide is asked of Slack at every click: no cache, and a failed lookup decides
nothing (fail closed), so a retry after Slack recovers works."""

from __future__ import annotations

import pytest

from bot.ids import Action, Block
from tests.support.harness import BASE_CONFIG, Bot, text_of

OVERRIDE = 'maintenance on --override "preflight checks are not built yet"'
GROUPS_DOWN = "could not check group membership, try again"
ACCOUNT_DOWN = "could not check your account, try again"


@pytest.fixture
def bot(clean_db, tmp_path, toy):
    """The bot with the default approver settings (no test-only cache setting)."""
    config = BASE_CONFIG.replace("group_cache_seconds = 0\n", "") + toy.config()
    b = Bot(clean_db, tmp_path, config=config)
    yield b
    b.stop()


def pending_card(bot):
    bot.command("alice", "start v2")
    return bot.request("alice", OVERRIDE)


def approve(bot, user: str, card) -> str:
    """Click Approve as ``user``; the ephemeral answer only they see."""
    mark = bot.seq()
    bot.sandbox.click(user, card, action_id=Action.APPROVE)
    return text_of(bot.replies_to(user, after=mark))


def assert_undecided(bot, card, toy) -> None:
    now = bot.workspace.message("C_CUTOVER", card.ts)
    assert [b.action_id for b in bot.sandbox.buttons(now)][:1] == [Action.APPROVE], (
        "the card must still offer Approve: nothing may have been decided")
    assert "Approved by" not in text_of(now) and toy.executions() == []


@pytest.mark.parametrize("status,error", [(500, "internal_error"), (200, "fatal_error")])
def test_a_failed_group_lookup_refuses_the_approval_and_is_not_remembered(bot, toy, status,
                                                                          error):
    card = pending_card(bot)
    bot.sandbox.api.fail_next("usergroups.users.list", status=status, error=error)
    answer = approve(bot, "bob", card)
    assert GROUPS_DOWN in answer.lower(), f"bob must be told to try again, got: {answer}"
    assert_undecided(bot, card, toy)

    answer = approve(bot, "bob", card)  # Slack answers again: the failure was not cached
    assert "Approved" in text_of(bot.card_showing(card, "succeeded")), answer


def test_a_failed_group_lookup_refuses_a_rejection_from_the_modal(bot, toy):
    card = pending_card(bot)
    bot.sandbox.click("bob", card, action_id=Action.REJECT)
    view = bot.workspace.wait_for(lambda: (bot.workspace.open_views("U_BOB") or [None])[0])
    bot.sandbox.api.fail_next("usergroups.users.list", status=500)
    mark = bot.seq()
    bot.sandbox.submit_view("bob", view.id, {Block.REASON: {Block.REASON_INPUT: "not today"}})
    answer = text_of(bot.replies_to("bob", after=mark))
    assert GROUPS_DOWN in answer.lower(), f"bob must be told to try again, got: {answer}"
    assert_undecided(bot, card, toy)


@pytest.mark.parametrize("status,error,times", [(500, "internal_error", 1),
                                                (429, "ratelimited", 4)])
def test_a_failed_account_lookup_refuses_the_click_instead_of_guessing(bot, toy, status, error,
                                                                       times):
    card = pending_card(bot)
    # 429: more answers than the client's three retries, each with Retry-After: 0.
    bot.sandbox.api.fail_next("users.info", status=status, error=error, times=times,
                              headers={"Retry-After": "0"} if status == 429 else None)
    answer = approve(bot, "bob", card)
    assert ACCOUNT_DOWN in answer.lower(), f"bob must be told to try again, got: {answer}"
    assert_undecided(bot, card, toy)

    approve(bot, "bob", card)
    bot.card_showing(card, "succeeded")


def test_a_membership_change_counts_on_the_very_next_click(bot, toy):
    card = pending_card(bot)
    approvers = bot.workspace.usergroup("S_APPROVERS").users
    approvers.remove("U_BOB")
    assert "not an approver" in approve(bot, "bob", card)
    approvers.append("U_BOB")  # added back a moment later: no 60 s wait for a cache
    approve(bot, "bob", card)
    assert "Approved by <@U_BOB>" in text_of(bot.card_showing(card, "succeeded"))
