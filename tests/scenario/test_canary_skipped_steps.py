"""The canary report lists the steps the night skipped (a two-person decision, a deviation):
which step, who asked, who approved the skip, why and when, as the uploaded report file reads,
with no secret in it. A real bot behind the sandbox and paybox on the host
(tests/canary/conftest.py); the skip goes through the decision card's buttons."""

from __future__ import annotations

from bot.ids import Action, Block
from tests.canary.conftest import (
    PayboxApp,
    paybox_app,  # noqa: F401  (fixture)
)
from tests.canary.test_canary_slack import (  # noqa: F401  (fixtures: account, canary_bot)
    CH,
    account,
    canary_bot,
    in_thread,
    modal,
    public,
    traffic_opened,
)
from tests.support.dead_worker import leave_running
from tests.support.harness import Bot, text_of


def click(bot: Bot, user: str, card, action: str) -> str:
    mark = bot.seq()
    bot.sandbox.click(user, card, action_id=action)
    return text_of(bot.replies_to(user, after=mark))


def skip_smoke(bot: Bot, db: str, reason: str) -> None:
    """The smoke test's worker died; alice takes its decision and asks to skip, bob approves."""
    after = bot.seq()
    leave_running(db, "smoke")
    bot.engine.reap_interrupted()
    card = bot.workspace.wait_for_message(CH, contains="Decision needed", after_seq=after,
                                          predicate=public)
    click(bot, "alice", card, Action.DECISION_TAKE)
    card = bot.card_showing(card, "Owner:* <@U_ALICE>")
    bot.sandbox.click("alice", card, action_id=Action.DECISION_SKIP)
    view = modal(bot, "U_ALICE")
    bot.sandbox.submit_view("alice", view.id, {Block.REASON: {Block.REASON_INPUT: reason}})
    card = bot.card_showing(card, "Skip asked by")
    assert "recorded as a deviation" in click(bot, "bob", card, Action.DECISION_SKIP_APPROVE)


def test_the_canary_report_lists_a_skipped_step_with_who_asked_who_approved_and_why(
        canary_bot: Bot, clean_db: str, paybox_app: PayboxApp):  # noqa: F811
    bot, ws = canary_bot, canary_bot.workspace
    assert "v2" in bot.command("alice", "start v2")
    secret = paybox_app.database_url  # a configured secret, pasted into the reason
    skip_smoke(bot, clean_db, f"smoke run by hand against {secret}, all green")
    traffic_opened(clean_db)
    after = bot.seq()
    assert "Canary opened" in bot.command("alice", "canary")
    msg = ws.wait_for_message(CH, contains="Report deposit", after_seq=after, predicate=public)
    signoff = in_thread(bot, msg, "Sign-off", after=after)
    # carol rejects: the canary ends NO-GO and its report is uploaded
    bot.sandbox.click("carol", signoff, action_id=Action.CANARY_REJECT)
    view = modal(bot, "U_CAROL")
    bot.sandbox.submit_view("carol", view.id, {Block.REASON: {Block.REASON_INPUT: "no money"}})
    in_thread(bot, msg, "*NO-GO*", after=after)
    report = ws.wait_for(lambda: next((f for f in ws.files.values()
                                       if f.name.endswith(".md") and f.content), None), 20)
    text = report.content.decode()
    assert "## Skipped steps" in text, f"the report has no skipped steps section:\n{text}"
    row = next((ln for ln in text.splitlines() if "`smoke`" in ln and ln.startswith("|")), "")
    for want in ("@alice (U_ALICE)", "@bob (U_BOB)", "smoke run by hand against ****",
                 "all green", " UTC"):
        assert want in row, f"the skipped step's row lacks {want!r}: {row!r}\n{text}"
    assert secret not in text, "a secret from the skip's reason reached the report"
