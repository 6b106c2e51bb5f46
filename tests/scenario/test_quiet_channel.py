"""A quiet channel (issue 21 item 4), through the sandbox as people read #cutover: one living
run card posted at `start` and updated in place (the autopilot's state, who owns an open
decision, the next deadline), the step cards that need nobody in its thread, the approval cards
and decision cards top-level with working buttons. The full night's count (at most 12
top-level messages, with a rollback) is asserted on the sample stack by
tests/integration/test_rehearse.py and test_rehearse_autopilot.py."""

from __future__ import annotations

from bot.ids import Action
from tests.scenario.test_who_may import rows
from tests.support.harness import Bot, text_of

OVERRIDE = 'maintenance on --override "the freeze API is down, checked by hand"'


def run_card(bot: Bot, db: str):
    """The run card as the channel shows it (where its outbox row says it landed)."""
    got = bot.workspace.wait_for(lambda: rows(
        db, "SELECT ts FROM outbox WHERE key = 'summary:run:1' AND ts IS NOT NULL"))
    return bot.workspace.message("C_CUTOVER", got[0][0])


def top_level(bot: Bot) -> list:
    """The bot's public top-level messages in #cutover (not replies, not ephemeral)."""
    return [m for m in bot.workspace.messages("C_CUTOVER", include_replies=False,
                                              include_ephemeral=False) if m.source != "user"]


def test_the_run_card_is_posted_at_start_and_ungated_steps_report_in_its_thread(
        toybot, clean_db):
    toybot.command("alice", "start v2")
    card = run_card(toybot, clean_db)
    assert not card.is_reply and "Cutover run #1" in text_of(card)
    assert "*Autopilot*: off" in text_of(card)

    # the preflight needs nobody: its card is a reply in the run card's thread
    after = toybot.seq()
    toybot.command("alice", "preflight")
    pre = toybot.workspace.wait_for_message(
        "C_CUTOVER", contains="step `preflight`", after_seq=after,
        predicate=lambda m: m.ephemeral_to is None)
    assert pre.thread_ts == card.ts, "the preflight's card is in the run card's thread"
    toybot.card_showing(pre, "succeeded", "failed")
    assert not [m for m in top_level(toybot) if "step `preflight`" in text_of(m)
                and "Decision needed" not in text_of(m)], "no step card of it top-level"

    # a gated step's card is its approval card: top-level, and its buttons work there
    after = toybot.seq()
    toybot.command("alice", OVERRIDE)
    approval = toybot.workspace.wait_for_message(
        "C_CUTOVER", contains="Maintenance mode on", after_seq=after,
        predicate=lambda m: m.ephemeral_to is None and "Approve" in text_of(m))
    assert not approval.is_reply
    toybot.sandbox.click("bob", approval, action_id=Action.APPROVE)
    toybot.card_showing(approval, "succeeded")
    # the run card, updated in place, says what moved last
    card = toybot.card_showing(card, "*Now:* ✅ Maintenance mode on")
    assert card.edited and not card.is_reply


def test_the_run_card_shows_the_autopilot_and_an_open_decisions_owner(toybot, clean_db):
    toybot.command("alice", "start v2")
    card = run_card(toybot, clean_db)
    after = toybot.seq()
    toybot.command("alice", "go")
    card = toybot.card_showing(card, "*Autopilot*: on, started by <@U_ALICE>",
                               "Autopilot stopped")
    # the autopilot requests the preflight, which fails here (no check is configured): its
    # decision card is top-level, its own card stays in the run card's thread
    decision = toybot.workspace.wait_for_message(
        "C_CUTOVER", contains="Decision needed", after_seq=after,
        predicate=lambda m: m.ephemeral_to is None)
    assert not decision.is_reply, "a decision card is where people act: top-level"
    card = toybot.card_showing(card, "*Autopilot*: off. Autopilot stopped:")
    shown = text_of(card)
    assert "nobody has taken it yet" in shown, shown
    assert "*Next deadline:* the decision on Preflight" in shown, shown
    stop = toybot.workspace.wait_for_message(
        "C_CUTOVER", contains="Autopilot stopped", after_seq=after,
        predicate=lambda m: m.ephemeral_to is None and m.is_reply)
    assert stop.thread_ts == card.ts, "the stop notice is in the run card's thread"

    mark = toybot.seq()
    toybot.sandbox.click("bob", decision, action_id=Action.DECISION_TAKE)
    assert "You own the decision" in text_of(toybot.replies_to("bob", after=mark))
    card = toybot.card_showing(card, "owned by <@U_BOB>")
    assert "*Decision:* Preflight: the pre-cutover checks — owned by <@U_BOB>" in text_of(card)
    assert rows(clean_db, "SELECT owner FROM decisions") == [("U_BOB",)]
    # start's answer, go's answer, the run card and the decision card: nothing else top-level
    assert len(top_level(toybot)) == 4, [text_of(m)[:60] for m in top_level(toybot)]


def test_the_run_card_says_who_asked_for_a_gated_step_and_who_approved_it(toybot, clean_db):
    toybot.command("alice", "start v2")
    card = run_card(toybot, clean_db)
    after = toybot.seq()
    toybot.command("alice", OVERRIDE)
    approval = toybot.workspace.wait_for_message(
        "C_CUTOVER", contains="Maintenance mode on", after_seq=after,
        predicate=lambda m: m.ephemeral_to is None and "Approve" in text_of(m))
    card = toybot.card_showing(card, "`maintenance-on` 🔒 awaiting approval · asked by "
                                     "<@U_ALICE>")
    assert "approved by" not in text_of(card), "nobody has approved yet"
    toybot.sandbox.click("bob", approval, action_id=Action.APPROVE)
    # while the run is active (the card, not yet the summary), on the step's own line
    card = toybot.card_showing(card, "asked by <@U_ALICE>, approved by <@U_BOB>")
    line = next(ln for ln in text_of(card).splitlines() if "`maintenance-on`" in ln)
    assert "asked by <@U_ALICE>, approved by <@U_BOB>" in line, text_of(card)
    assert "Cutover run #1 —" in text_of(card) and "summary" not in text_of(card)
