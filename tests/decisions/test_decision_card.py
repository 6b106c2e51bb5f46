"""Guided failure through the sandbox (issue 21), without Docker: a step left as a dead worker
leaves it (the reaper marks it interrupted) gets a decision card; operators click as they
would, the rows are read from PostgreSQL. The failing migration under the autopilot on the
sample stack is test_decision_night.py."""

from __future__ import annotations

import threading

import pytest

from bot.ids import Action, Block
from tests.autopilot.test_autopilot_bot import started
from tests.scenario.test_who_may import answer, rows, succeeded, workspace
from tests.support.dead_worker import leave_running
from tests.support.harness import Bot, text_of

REASON = "the migration ran by hand, checked with alembic current"


@pytest.fixture
def dbot(clean_db, tmp_path):
    b = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    yield b
    b.stop()


def broken(bot: Bot, db: str, step_id: str, *, done: tuple[str, ...] = ()):
    """The run started, ``done`` succeeded, ``step_id`` interrupted: its decision card."""
    started(bot, db)
    succeeded(db, *done)
    after = bot.seq()
    exe = leave_running(db, step_id)
    bot.engine.reap_interrupted()
    card = bot.workspace.wait_for_message(
        "C_CUTOVER", contains="Decision needed", after_seq=after,
        predicate=lambda m: m.ephemeral_to is None)
    return exe, card


def buttons(bot: Bot, card) -> list[str]:
    return [b.text for b in bot.sandbox.buttons(card)]


def click(bot: Bot, user: str, card, action: str) -> str:
    mark = bot.seq()
    bot.sandbox.click(user, card, action_id=action)
    return text_of(bot.replies_to(user, after=mark))


def modal(bot: Bot, user: str, card, action: str):
    bot.sandbox.click(user, card, action_id=action)
    uid = bot.workspace.user(user).id
    return bot.workspace.wait_for(lambda: bot.workspace.open_views(uid)[-1:])[0]


def submit(bot: Bot, user: str, view, values: dict) -> str:
    mark = bot.seq()
    bot.sandbox.submit_view(user, view.id, values)
    return text_of(bot.replies_to(user, after=mark))


def refusals(db: str, action: str) -> list[str]:
    return [o for (o,) in rows(db, "SELECT outcome FROM audit_log WHERE action = %s ORDER BY id",
                               f"refused.{action}")]


MIGRATE = ("maintenance-on", "deploy")


def test_the_card_offers_what_the_runbook_allows_retry_only_when_idempotent(dbot, clean_db):
    _, card = broken(dbot, clean_db, "migrate", done=MIGRATE)
    assert buttons(dbot, card) == ["Take it", "Skip…", "Roll back", "Hold", "Abort the run…"], \
        "migrate is not idempotent: no Retry"
    assert "Owner:* nobody yet" in text_of(card)
    assert "Decide by" in text_of(card)
    answer(dbot, "alice", "finish --abort \"next test\"")


def test_an_idempotent_step_offers_retry_and_a_retry_requests_it_once(dbot, clean_db):
    exe, card = broken(dbot, clean_db, "health", done=(*MIGRATE, "migrate"))
    assert buttons(dbot, card)[:2] == ["Take it", "Retry"]
    assert "Click *Take it* first" in click(dbot, "alice", card, Action.DECISION_RETRY)
    assert "You own the decision" in click(dbot, "alice", card, Action.DECISION_TAKE)
    card = dbot.card_showing(card, "Owner:* <@U_ALICE>")
    assert "Take it" not in buttons(dbot, card)
    # a double click: two deliveries at once, one decision
    mark = dbot.seq()
    gate = threading.Barrier(2)

    def press() -> None:
        gate.wait()
        dbot.sandbox.click("alice", card, action_id=Action.DECISION_RETRY)
    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dbot.replies_to("alice", after=mark, contains="already taken")
    assert rows(clean_db, "SELECT attempt, state FROM step_executions WHERE step_id = 'health'"
                          " ORDER BY attempt") == [(1, "interrupted"), (2, "queued")], \
        "one retry, whatever the clicks"
    assert rows(clean_db, "SELECT chosen, chosen_by FROM decisions WHERE execution_id = %s",
                exe) == [("retry", "U_ALICE")]
    assert rows(clean_db, "SELECT count(*) FROM audit_log WHERE action = 'decision.retry'"
                ) == [(1,)]
    dbot.card_showing(card, "Decided by <@U_ALICE>")


def test_take_it_then_another_operators_clicks_are_refused_and_audited(dbot, clean_db):
    exe, card = broken(dbot, clean_db, "migrate", done=MIGRATE)
    click(dbot, "alice", card, Action.DECISION_TAKE)
    card = dbot.card_showing(card, "Owner:* <@U_ALICE>")
    # bob is an operator too, but alice owns the decision
    assert "<@U_ALICE> owns this decision" in click(dbot, "bob", card, Action.DECISION_HOLD)
    assert "<@U_ALICE> owns this decision" in click(dbot, "bob", card, Action.DECISION_ROLLBACK)
    assert refusals(clean_db, "button.decision_hold") == ["engine"]
    assert refusals(clean_db, "button.decision_rollback") == ["engine"]
    assert rows(clean_db, "SELECT owner, chosen FROM decisions") == [("U_ALICE", None)]
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)], "no rollback asked"
    # the owner's Hold pages the operators in the card's thread; nothing runs
    mark = dbot.seq()
    assert "Holding at" in click(dbot, "alice", card, Action.DECISION_HOLD)
    page = dbot.workspace.wait_for_message(
        "C_CUTOVER", contains="holds the run", after_seq=mark,
        predicate=lambda m: m.thread_ts == card.ts and m.ephemeral_to is None)
    assert "<!subteam^S_APPROVERS>" in page.text and "<@U_ALICE>" in page.text, page.text
    assert rows(clean_db, "SELECT state FROM step_executions WHERE id = %s", exe) == [
        ("interrupted",)]


def test_skip_needs_a_reason_and_a_second_person_and_is_a_deviation(dbot, clean_db):
    exe, card = broken(dbot, clean_db, "migrate", done=MIGRATE)
    click(dbot, "alice", card, Action.DECISION_TAKE)
    card = dbot.card_showing(card, "Owner:* <@U_ALICE>")
    view = modal(dbot, "alice", card, Action.DECISION_SKIP)
    assert "Write a reason" in submit(dbot, "alice", view,
                                      {Block.REASON: {Block.REASON_INPUT: "ok"}})
    view = modal(dbot, "alice", card, Action.DECISION_SKIP)
    assert "someone other than you approves it" in submit(
        dbot, "alice", view, {Block.REASON: {Block.REASON_INPUT: REASON}})
    card = dbot.card_showing(card, "Skip asked by <@U_ALICE>")
    assert "Approve skip" in buttons(dbot, card)
    assert "needs a second person" in click(dbot, "alice", card, Action.DECISION_SKIP_APPROVE)
    assert "Only an approver" in click(dbot, "frank", card, Action.DECISION_SKIP_APPROVE), \
        "frank is an active account but not an approver"
    assert rows(clean_db, "SELECT state FROM step_executions WHERE id = %s", exe) == [
        ("interrupted",)], "not skipped by one person"
    assert "recorded as a deviation" in click(dbot, "bob", card, Action.DECISION_SKIP_APPROVE)
    assert rows(clean_db, "SELECT state FROM step_executions WHERE id = %s", exe) == [
        ("skipped",)]
    assert "already taken" in click(dbot, "carol", card, Action.DECISION_SKIP_APPROVE), \
        "a second approval takes no second decision"
    audit = rows(clean_db, "SELECT actor, outcome, detail->>'reason', detail->>'requested_by'"
                           " FROM audit_log WHERE action = 'step.skip'")
    assert audit == [("U_BOB", "deviation", REASON, "U_ALICE")]
    dbot.card_showing(card, "Decided by <@U_BOB>")
    # the run card (issue 21 item 4) becomes the summary, with its deviations, at the run's end
    (ts,), = rows(clean_db, "SELECT ts FROM outbox WHERE key LIKE 'summary:%%'")
    run_card = dbot.workspace.message("C_CUTOVER", ts)
    assert run_card.thread_ts is None or run_card.thread_ts == run_card.ts, "top-level"
    assert "Deviations" not in text_of(run_card), "the summary waits for the end of the run"
    # health then breaks too; its owner aborts the run: the summary lists the deviation
    mark = dbot.seq()
    leave_running(clean_db, "health")
    dbot.engine.reap_interrupted()
    health = dbot.workspace.wait_for_message(
        "C_CUTOVER", contains="Decision needed", after_seq=mark,
        predicate=lambda m: m.ephemeral_to is None and "Health" in m.text)
    click(dbot, "carol", health, Action.DECISION_TAKE)
    health = dbot.card_showing(health, "Owner:* <@U_CAROL>")
    mark = dbot.seq()
    submit(dbot, "carol", modal(dbot, "carol", health, Action.DECISION_ABORT), {
        Block.DECISION_TAG: {Block.DECISION_TAG_INPUT: "v2"},
        Block.REASON: {Block.REASON_INPUT: "health fails after a skipped migration"}})
    summary = dbot.card_showing(run_card, "Deviations")
    assert "`migrate` skipped by <@U_ALICE>, approved by <@U_BOB>" in text_of(summary), \
        text_of(summary)


def skip_asked_by_alice(bot: Bot, card, reason: str = REASON):
    """alice takes the decision and asks to skip: the card with Approve skip."""
    click(bot, "alice", card, Action.DECISION_TAKE)
    card = bot.card_showing(card, "Owner:* <@U_ALICE>")
    submit(bot, "alice", modal(bot, "alice", card, Action.DECISION_SKIP),
           {Block.REASON: {Block.REASON_INPUT: reason}})
    return bot.card_showing(card, "Skip asked by")


def skip(bot: Bot, card, reason: str = REASON) -> None:
    """alice takes the decision and asks to skip; bob approves."""
    card = skip_asked_by_alice(bot, card, reason)
    assert "recorded as a deviation" in click(bot, "bob", card, Action.DECISION_SKIP_APPROVE)


def test_a_step_requiring_a_skipped_one_says_so_on_its_card(dbot, clean_db):
    _, card = broken(dbot, clean_db, "maintenance-on")
    skip(dbot, card, "maintenance set by hand on the edge")
    card = dbot.request("alice", "deploy v2", contains="Deploy the release tag")
    card = dbot.card_showing(card, "which was skipped")
    assert "Requires `maintenance-on` (_maintenance set by hand on the edge_), which was " \
        "skipped: met with a deviation" in text_of(card), text_of(card)


def test_abort_needs_the_typed_rc_tag_and_ends_the_run(dbot, clean_db):
    _, card = broken(dbot, clean_db, "migrate", done=MIGRATE)
    click(dbot, "alice", card, Action.DECISION_TAKE)
    card = dbot.card_showing(card, "Owner:* <@U_ALICE>")
    view = modal(dbot, "alice", card, Action.DECISION_ABORT)
    assert "Type the run's RC tag `v2` exactly" in submit(dbot, "alice", view, {
        Block.DECISION_TAG: {Block.DECISION_TAG_INPUT: "v1"},
        Block.REASON: {Block.REASON_INPUT: "the schema is half migrated"}})
    assert rows(clean_db, "SELECT status FROM runs") == [("active",)], "a wrong tag is refused"
    view = modal(dbot, "alice", card, Action.DECISION_ABORT)
    reply = submit(dbot, "alice", view, {
        Block.DECISION_TAG: {Block.DECISION_TAG_INPUT: "v2"},
        Block.REASON: {Block.REASON_INPUT: "the schema is half migrated"}})
    assert "Run #1 is aborted" in reply, reply
    assert rows(clean_db, "SELECT status FROM runs") == [("aborted",)]
    assert rows(clean_db, "SELECT chosen, chosen_by FROM decisions") == [("abort", "U_ALICE")]
    assert rows(clean_db, "SELECT outcome FROM audit_log WHERE action = 'run.finish'") == [
        ("aborted",)]


def test_roll_back_asks_for_the_rollback_under_its_usual_rule(dbot, clean_db):
    _, card = broken(dbot, clean_db, "migrate", done=MIGRATE)
    click(dbot, "alice", card, Action.DECISION_TAKE)
    card = dbot.card_showing(card, "Owner:* <@U_ALICE>")
    reply = click(dbot, "alice", card, Action.DECISION_ROLLBACK)
    assert "approv" in reply.lower(), reply
    assert rows(clean_db, "SELECT kind, status, requester FROM approvals") == [
        ("rollback", "pending", "U_ALICE")], "the rollback's two-person rule, as the command"
    assert rows(clean_db, "SELECT chosen FROM decisions") == [("rollback",)]


ENTRY_POINTS = [Action.DECISION_TAKE, Action.DECISION_SKIP, Action.DECISION_ROLLBACK,
                Action.DECISION_HOLD, Action.DECISION_ABORT]


def test_every_decision_button_asks_the_policy(dbot, clean_db):
    """A test per entry point: a non-operator, a guest, the wrong channel; each audited."""
    _, card = broken(dbot, clean_db, "health", done=(*MIGRATE, "migrate"))
    for action in (*ENTRY_POINTS, Action.DECISION_RETRY):
        assert "Only operators" in click(dbot, "frank", card, action), action

    def elsewhere(payload: dict) -> None:
        payload["channel"] = {"id": "C_GENERAL", "name": "general"}
        payload["container"]["channel_id"] = "C_GENERAL"
    mark = dbot.seq()
    dbot.sandbox.click("alice", card, action_id=Action.DECISION_TAKE, edit=elsewhere)
    got = dbot.workspace.wait_for_message("C_CUTOVER", after_seq=mark,
                                          predicate=lambda m: m.ephemeral_to == "U_ALICE")
    assert "Take it works only in the cutover channel" in text_of(got)
    skip_asked = skip_asked_by_alice(dbot, card)
    assert "Guest accounts cannot use Approve skip" in click(
        dbot, "dave", skip_asked, Action.DECISION_SKIP_APPROVE)
    got = rows(clean_db, "SELECT action, outcome FROM audit_log WHERE starts_with(action,"
                         " 'refused.button.decision') ORDER BY id")
    assert got == [
        ("refused.button.decision_take", "not_an_operator"),
        ("refused.button.decision_skip", "not_an_operator"),
        ("refused.button.decision_rollback", "not_an_operator"),
        ("refused.button.decision_hold", "not_an_operator"),
        ("refused.button.decision_abort", "not_an_operator"),
        ("refused.button.decision_retry", "not_an_operator"),
        ("refused.button.decision_take", "wrong_channel"),
        ("refused.button.decision_skip_approve", "guest_account")]
    assert rows(clean_db, "SELECT owner, chosen FROM decisions") == [("U_ALICE", None)], \
        "nobody but alice took it, nothing was decided"


def test_the_modals_ask_the_policy_at_submission(dbot, clean_db):
    _, card = broken(dbot, clean_db, "migrate", done=MIGRATE)
    click(dbot, "alice", card, Action.DECISION_TAKE)
    card = dbot.card_showing(card, "Owner:* <@U_ALICE>")
    view = modal(dbot, "alice", card, Action.DECISION_SKIP)
    assert "Only operators" in submit(dbot, "frank", view,
                                      {Block.REASON: {Block.REASON_INPUT: REASON}})
    view = modal(dbot, "alice", card, Action.DECISION_ABORT)
    assert "Only operators" in submit(dbot, "frank", view, {
        Block.DECISION_TAG: {Block.DECISION_TAG_INPUT: "v2"},
        Block.REASON: {Block.REASON_INPUT: "the schema is half migrated"}})
    assert refusals(clean_db, "modal.decision_skip") == ["not_an_operator"]
    assert refusals(clean_db, "modal.decision_abort") == ["not_an_operator"]
    assert rows(clean_db, "SELECT status FROM runs") == [("active",)]
    assert rows(clean_db, "SELECT skip_reason FROM decisions") == [(None,)]


def test_two_approvers_at_once_take_one_skip(dbot, clean_db):
    exe, card = broken(dbot, clean_db, "migrate", done=MIGRATE)
    card = skip_asked_by_alice(dbot, card)
    mark = dbot.seq()
    gate = threading.Barrier(2)

    def press(user: str) -> None:
        gate.wait()
        dbot.sandbox.click(user, card, action_id=Action.DECISION_SKIP_APPROVE)
    threads = [threading.Thread(target=press, args=(u,)) for u in ("bob", "carol")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for user in ("bob", "carol"):
        dbot.replies_to(user, after=mark)
    assert rows(clean_db, "SELECT count(*) FROM audit_log WHERE action = 'step.skip'") == [(1,)]
    assert rows(clean_db, "SELECT state FROM step_executions WHERE id = %s", exe) == [
        ("skipped",)]
    (chosen_by,), = rows(clean_db, "SELECT chosen_by FROM decisions")
    loser = "carol" if chosen_by == "U_BOB" else "bob"
    assert "already taken" in text_of(dbot.replies_to(loser, after=mark)), \
        "the other approver is told, nothing more is done"


def test_under_the_autopilot_a_retry_lets_go_resume(dbot, clean_db):
    _, card = broken(dbot, clean_db, "health", done=(*MIGRATE, "migrate"))
    pilot = dbot.runtime.autopilot
    mark = dbot.seq()
    answer(dbot, "alice", "go")
    assert pilot.tick() == []
    stop = dbot.workspace.wait_for_message("C_CUTOVER", contains="Autopilot stopped",
                                           after_seq=mark,
                                           predicate=lambda m: m.ephemeral_to is None
                                           and m.is_reply)  # the notice, not the run card
    assert "decide on the decision card of *Health: /api/health and admin login* (`health`, " \
        "attempt 1" in text_of(stop), text_of(stop)
    click(dbot, "bob", card, Action.DECISION_TAKE)
    card = dbot.card_showing(card, "Owner:* <@U_BOB>")
    assert "Queued" in click(dbot, "bob", card, Action.DECISION_RETRY)
    assert "turned the autopilot on" in answer(dbot, "bob", "go")
    assert pilot.tick() == [], "health is queued again: the autopilot waits for it"
    assert "waiting for health" in answer(dbot, "carol", "status")
    assert rows(clean_db, "SELECT \"on\" FROM autopilot") == [(True,)]


def test_retry_of_a_gated_step_asks_for_a_new_approval(dbot, clean_db):
    _, card = broken(dbot, clean_db, "deploy", done=("maintenance-on",))
    click(dbot, "alice", card, Action.DECISION_TAKE)
    card = dbot.card_showing(card, "Owner:* <@U_ALICE>")
    assert "Retry (asks for approval again)" in buttons(dbot, card)
    mark = dbot.seq()
    assert "Approval requested" in click(dbot, "alice", card, Action.DECISION_RETRY)
    again = dbot.workspace.wait_for_message("C_CUTOVER", contains="attempt 2", after_seq=mark,
                                            predicate=lambda m: m.ephemeral_to is None)
    assert "needs its own approval" in text_of(again)
    assert rows(clean_db, "SELECT attempt, state FROM step_executions WHERE step_id = 'deploy'"
                          " ORDER BY attempt") == [(1, "interrupted"), (2, "awaiting_approval")]


def test_the_interrupted_notices_retry_counts_only_for_the_decisions_owner(dbot, clean_db):
    """The notice's Retry / Mark done in the decision card's thread is the same choice as the
    card's: once an operator has taken the decision, another operator's click there is refused
    and nothing is requested; the owner's click retries."""
    _, card = broken(dbot, clean_db, "health", done=(*MIGRATE, "migrate"))
    notice = dbot.workspace.wait_for_message(
        "C_CUTOVER", predicate=lambda m: m.ephemeral_to is None and any(
            b.action_id == Action.RETRY for b in dbot.sandbox.buttons(m)))
    click(dbot, "alice", card, Action.DECISION_TAKE)
    dbot.card_showing(card, "Owner:* <@U_ALICE>")
    assert "<@U_ALICE> owns the decision" in click(dbot, "bob", notice, Action.RETRY)
    assert rows(clean_db, "SELECT attempt, state FROM step_executions WHERE step_id = 'health'"
                          " ORDER BY attempt") == [(1, "interrupted")], "bob's click ran nothing"
    assert "owns the decision" not in click(dbot, "alice", notice, Action.RETRY)
    assert rows(clean_db, "SELECT attempt, state FROM step_executions WHERE step_id = 'health'"
                          " ORDER BY attempt") == [(1, "interrupted"), (2, "queued")]


def test_a_retry_of_a_gated_step_binds_a_plan_part_computed_before_its_transaction(
        dbot, clean_db):
    # Proves the Retry click prepares the step's plan part before the inbox transaction
    # opens (as a typed request does), instead of computing it inside, against a 5 s budget.
    _, card = broken(dbot, clean_db, "maintenance-on")
    assert "Retry (asks for approval again)" in buttons(dbot, card), "idempotent and gated"
    click(dbot, "alice", card, Action.DECISION_TAKE)
    card = dbot.card_showing(card, "Owner:* <@U_ALICE>")
    binding = dbot.engine.plan_binding
    assert binding.binds(dbot.engine.runbook.step("maintenance-on")), "the step binds a part"
    taken: list = []
    prepared = binding.prepared

    def spy(**kw):
        taken.append(prepared(**kw))
        return taken[-1]
    binding.prepared = spy  # what the retry's request bound: the part computed before
    reply = click(dbot, "alice", card, Action.DECISION_RETRY)
    assert "approv" in reply.lower(), reply
    assert len(taken) == 1 and taken[0] is not None, f"computed inside the transaction: {taken}"
    answer(dbot, "alice", "finish --abort \"next test\"")
