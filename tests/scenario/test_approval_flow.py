"""The two-person rule end to end: signed commands and clicks through the sandbox."""

from __future__ import annotations

from bot.ids import Action, Block
from tests.scenario.test_who_may import card_for  # never the living run card
from tests.support.harness import text_of

OVERRIDE = 'maintenance on --override "preflight checks are not built yet"'


def wait_card(bot, msg, contains: str, timeout: float = 15.0):
    return bot.card_showing(msg, contains, timeout=timeout)


def test_out_of_order_request_is_refused_with_the_reason(toybot):
    after = toybot.seq()
    toybot.slash("alice", "maintenance on")
    assert "No cutover run is active" in text_of(toybot.replies_to("alice", after=after))
    toybot.command("alice", "start v2")
    after = toybot.seq()
    toybot.slash("alice", "maintenance on")
    reply = text_of(toybot.replies_to("alice", after=after))
    assert "cannot start" in reply and "/golive preflight" in reply and "--override" in reply
    assert not [m for m in toybot.workspace.messages("C_CUTOVER", include_ephemeral=False)
                if "Maintenance mode on" in text_of(m)]


def test_approval_flow_requester_cannot_approve_second_person_runs_it_once(toybot, toy):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    toybot.command("alice", OVERRIDE)
    card = card_for(toybot, "Maintenance mode on", after)
    shown = text_of(card)
    assert "Requested by <@U_ALICE>" in shown and "Approve" in shown
    assert "preflight checks are not built yet" in shown

    # The requester can never approve their own request.
    mark = toybot.seq()
    toybot.sandbox.click("alice", card, action_id=Action.APPROVE)
    assert "someone else" in text_of(toybot.replies_to("alice", after=mark)).lower()
    # A guest cannot approve.
    mark = toybot.seq()
    toybot.sandbox.click("dave", card, action_id=Action.APPROVE)
    assert "guest" in text_of(toybot.replies_to("dave", after=mark)).lower()
    assert toy.executions() == []

    toybot.sandbox.click("bob", card, action_id=Action.APPROVE)
    done = wait_card(toybot, card, "succeeded")
    final = text_of(done)
    assert "Approved by <@U_BOB>" in final
    assert "maintenance on" in final
    assert toy.executions() == ["on"], "the switch must run exactly once"

    mark = toybot.seq()
    toybot.sandbox.click("carol", done, action_id=Action.APPROVE) if any(
        True for _ in toybot.sandbox.buttons(done)) else None
    # The card has no buttons left once decided: a late click has nothing to press.
    assert toybot.sandbox.buttons(done) == []
    assert toy.executions() == ["on"]
    assert not toybot.workspace.rate_limited, "more than one update per second per message"
    metrics = toybot.get("/metrics").text
    for method in ("chat.postMessage", "chat.update", "users.info", "usergroups.users.list"):
        assert f'golive_slack_api_calls_total{{method="{method}"}}' in metrics, method


def test_reject_with_a_reason_through_the_modal(toybot, toy):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    toybot.command("alice", OVERRIDE)
    card = card_for(toybot, "Maintenance mode on", after)
    toybot.sandbox.click("bob", card, action_id=Action.REJECT)
    view = toybot.workspace.wait_for(lambda: (toybot.workspace.open_views("U_BOB") or [None])[0])
    toybot.sandbox.submit_view("bob", view.id, {Block.REASON: {Block.REASON_INPUT:
                                                                "wrong window"}})
    final = text_of(wait_card(toybot, card, "Rejected"))
    assert "Rejected by <@U_BOB>" in final and "wrong window" in final
    assert toy.executions() == []


def test_requester_cancels_and_others_cannot(toybot, toy):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    toybot.command("alice", OVERRIDE)
    card = card_for(toybot, "Maintenance mode on", after)
    mark = toybot.seq()
    toybot.sandbox.click("bob", card, action_id=Action.CANCEL)
    assert "only <@u_alice>" in text_of(toybot.replies_to("bob", after=mark)).lower()
    toybot.sandbox.click("alice", card, action_id=Action.CANCEL)
    assert "Cancelled by <@U_ALICE>" in text_of(wait_card(toybot, card, "Cancelled"))
    assert toy.executions() == []


def test_expired_request_says_so_on_the_card_and_cannot_be_approved(toybot, toy):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    toybot.command("alice", OVERRIDE)
    card = card_for(toybot, "Maintenance mode on", after)
    toybot.clock.advance(minutes=16)  # the bot's injected clock
    assert toybot.engine.expire_approvals() == 1
    assert "Expired" in text_of(wait_card(toybot, card, "Expired"))
    mark = toybot.seq()
    toybot.sandbox.click("bob", card, action_id=Action.APPROVE) if toybot.sandbox.buttons(
        toybot.workspace.message("C_CUTOVER", card.ts)) else None
    assert toy.executions() == []
    toybot.slash("alice", "status")
    status = text_of(toybot.replies_to("alice", after=mark, contains="Cutover run"))
    assert "No pending approvals" in status


def test_status_shows_steps_phase_next_and_pending_approvals(toybot):
    after = toybot.seq()
    toybot.command("alice", "start v2 " + "ab" * 20)
    toybot.command("alice", OVERRIDE)
    card_for(toybot, "Maintenance mode on", after)
    mark = toybot.seq()
    toybot.slash("carol", "status")
    status = text_of(toybot.replies_to("carol", after=mark, contains="Cutover run"))
    assert "`preflight`" in status and "not started" in status
    assert "`maintenance-on`" in status and "awaiting approval" in status
    assert "Pending approvals" in status and "requested by <@U_ALICE>" in status
    # The preflight has not run, so the run is still in its first phase.
    assert "Phase:* Pre-cutover" in status
    assert "Next:* Release freeze" not in status


def test_two_of_n_gate_needs_two_distinct_approvers(clean_db, tmp_path, toy):
    from runbook.model import default_runbook_path
    from tests.support.harness import BASE_CONFIG, Bot

    rb = default_runbook_path().read_text().replace(
        'command = "maintenance on"', 'command = "maintenance on"\ngate = { approvals = 2 }', 1)
    rb = rb.replace('gated = true\ngate = { approvals = 1, groups = [] }\ncommand = "maintenance on"',
                    'command = "maintenance on"', 1)
    (tmp_path / "two.toml").write_text(rb)
    bot = Bot(clean_db, tmp_path, config=f'runbook = "{tmp_path / "two.toml"}"\n' + BASE_CONFIG
              + toy.config())
    try:
        bot.command("alice", "start v2")
        after = bot.seq()
        bot.command("alice", OVERRIDE)
        card = card_for(bot, "Maintenance mode on", after)
        assert "needs 2 approver(s)" in text_of(card)
        mark = bot.seq()
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        assert "1 of 2" in text_of(bot.replies_to("bob", after=mark))
        partial = wait_card(bot, card, "Approved by <@U_BOB>")
        assert "awaiting approval" in text_of(partial) and toy.executions() == []
        mark = bot.seq()
        bot.sandbox.click("bob", partial, action_id=Action.APPROVE)
        assert "already" in text_of(bot.replies_to("bob", after=mark)).lower()
        bot.sandbox.click("carol", partial, action_id=Action.APPROVE)
        done = wait_card(bot, card, "succeeded")
        assert "<@U_BOB>, <@U_CAROL>" in text_of(done)
        assert toy.executions() == ["on"]
    finally:
        bot.stop()


def test_a_new_request_with_other_arguments_voids_the_pending_one(toybot):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    assert "Approval requested" in toybot.command("alice", 'deploy v2 --override "drill"')
    first = card_for(toybot, "Deploy the release tag", after)
    after = toybot.seq()
    assert "Approval requested" in toybot.command("alice", 'deploy v3 --override "drill"')
    second = card_for(toybot, "Deploy the release tag", after)
    assert second.ts != first.ts and "`tag=v3`" in text_of(second)
    void = wait_card(toybot, first, "Void")
    assert "superseded by a new request" in text_of(void)
    assert toybot.sandbox.buttons(void) == []
    again = toybot.command("alice", 'deploy v3 --override "drill"')
    assert "already awaiting approval" in again


def test_group_membership_is_checked_at_click_time(toybot, toy):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    toybot.command("alice", OVERRIDE)
    card = card_for(toybot, "Maintenance mode on", after)
    toybot.workspace.usergroup("S_APPROVERS").users.remove("U_BOB")  # bob left the group
    mark = toybot.seq()
    toybot.sandbox.click("bob", card, action_id=Action.APPROVE)
    assert "not" in text_of(toybot.replies_to("bob", after=mark)).lower()
    assert toy.executions() == []
    toybot.sandbox.click("carol", card, action_id=Action.APPROVE)
    assert "Approved by <@U_CAROL>" in text_of(wait_card(toybot, card, "succeeded"))


def test_approval_is_void_when_preflight_changes_before_execution(clean_db, tmp_path, toy):
    import psycopg

    from tests.support.harness import BASE_CONFIG, Bot

    bot = Bot(clean_db, tmp_path, config=BASE_CONFIG + toy.config(), worker=False)
    try:
        bot.command("alice", "start v2")
        after = bot.seq()
        bot.command("alice", OVERRIDE)
        card = card_for(bot, "Maintenance mode on", after)
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        wait_card(bot, card, "Approved by <@U_BOB>")
        # Between approval and execution a preflight check records a red result.
        with psycopg.connect(clean_db) as conn:
            exe = conn.execute(
                "INSERT INTO step_executions (run_id, step_id, attempt, state, requested_by,"
                " channel) SELECT id, 'preflight', 1, 'failed', 'U_CAROL', 'C_CUTOVER'"
                " FROM runs WHERE status = 'active' RETURNING id, run_id").fetchone()
            conn.execute(
                "INSERT INTO preflight_results (run_id, execution_id, check_name, status,"
                " finding, finished_at) VALUES (%s, %s, 'rc_evidence', 'fail', 'E2E 1/2',"
                " now())", (exe[1], exe[0]))
        assert bot.engine.run_next() is False, "the void step must not run"
        void = wait_card(bot, card, "approval void")
        assert "cancelled" in text_of(void) and "preflight" in text_of(void)
        status = bot.command("carol", "status")
        assert "approval void" in status, status
        assert toy.executions() == []
    finally:
        bot.stop()


def test_text_from_people_and_steps_cannot_ping_or_link(toybot):
    from bot.dev.sandbox.workspace import message_text

    toybot.command("alice", "start v2")
    after = toybot.seq()
    toybot.command("alice", 'maintenance on --override "<!channel> see <https://evil.example|docs>"')
    card = card_for(toybot, "Maintenance mode on", after)
    raw = message_text(card)
    assert "<!channel>" not in raw and "<https://evil" not in raw, raw
    assert "&lt;!channel&gt;" in raw
    assert "<!channel> see <https://evil.example|docs>" in text_of(card), "shown literally"


def test_finish_posts_the_audit_chain_head_that_verify_accepts(toybot, clean_db):
    import psycopg

    toybot.command("alice", "start v2")
    reply = toybot.command("alice", "finish")
    assert "closed run #1: incomplete" in reply, "nothing ran, so the run is not completed"
    with psycopg.connect(clean_db) as conn:
        row = conn.execute("SELECT id, hash FROM audit_log WHERE action = 'run.finish'"
                           ).fetchone()
    assert f"after {row[0]} rows: `{row[1]}`" in reply, "the head as of the finish row"
