"""A full rehearsal cutover v1 -> v2 driven through the bot: signed commands and approvals in
the sandbox, real Docker, the local registry, alembic and HTTP probes."""

from __future__ import annotations

import subprocess

import pytest

from bot.ids import Action
from tests.support.harness import BASE_CONFIG, Bot, text_of
from tests.support.night import request_and_approve, run_ungated
from tests.support.toml_out import target_table

pytestmark = pytest.mark.docker


def config_for(paybox) -> str:
    # The target table must come first: BASE_CONFIG's tables would otherwise swallow it.
    return target_table(paybox.target()) + BASE_CONFIG


def test_full_cutover_v1_to_v2_through_the_bot(stack, clean_db, tmp_path):
    paybox = stack
    # A real pull: drop the local copy of v2 first.
    subprocess.run(["docker", "rmi", "-f", "127.0.0.1:5000/paybox/app:v2"],
                   capture_output=True, check=False)
    bot = Bot(clean_db, tmp_path, config=config_for(paybox))
    try:
        sha = paybox.revisions["v2"]
        assert "started cutover run" in bot.command("alice", f"start v2 {sha}")

        on = request_and_approve(bot, "alice",
                                 'maintenance on --override "preflight checks not built yet"',
                                 "bob", "Maintenance mode on")
        assert "maintenance on" in on
        status, body = paybox.http("GET", f"http://127.0.0.1:{paybox.edge_port}/")
        assert status == 503 and "Scheduled maintenance" in body

        deployed = request_and_approve(bot, "alice", "deploy v2", "carol", "Deploy")
        assert "v2" in deployed
        migrated = run_ungated(bot, "migrate", "Migrations")
        assert "0002" in migrated, migrated
        run_ungated(bot, "health", "Health")
        run_ungated(bot, "smoke", "Smoke")
        opened = request_and_approve(bot, "alice", "traffic open", "bob", "Open traffic")
        assert "open" in opened.lower()

        # the living run card (issue 21's quiet channel), updated in place, is what the channel
        # reads at T-0: every step's result; it becomes the summary once the night is done
        card = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="Cutover run #1", timeout=30,
            predicate=lambda m: m.ephemeral_to is None and not m.is_reply)
        summary = text_of(bot.card_showing(card, "✅ `traffic-open`", timeout=30))
    finally:
        bot.stop()

    running = paybox.running_image("app")
    assert running["image"].endswith("paybox/app:v2") and running["revision"] == sha
    assert paybox.alembic_revision() == "0002_payout_idempotency"
    status, _ = paybox.http("GET", f"http://127.0.0.1:{paybox.edge_port}/api/health")
    assert status == 200, "traffic must be open again"
    for line in ("✅ `maintenance-on`", "✅ `deploy`", "✅ `migrate`", "✅ `health`", "✅ `smoke`",
                 "✅ `traffic-open`"):
        assert line in summary, summary
    assert "<@U_CAROL>" in deployed and "<@U_BOB>" in opened, "each gated card names its approver"
    assert "v1" in summary and "v2" in summary, "versions before and after"
    assert "0001_ledger" in summary and "0002_payout_idempotency" in summary
    assert not bot.workspace.rate_limited
    for secret in paybox.secret_values:
        assert not bot.workspace.find_in_outgoing(secret)


def test_rollback_from_the_incident_channel_restores_v1_and_the_schema(stack, clean_db,
                                                                        tmp_path):
    paybox = stack
    bot = Bot(clean_db, tmp_path, config=config_for(paybox))
    try:
        assert "started cutover run" in bot.command("alice",
                                                    f"start v2 {paybox.revisions['v2']}")
        request_and_approve(bot, "alice", 'maintenance on --override "drill"', "bob",
                            "Maintenance mode on")
        request_and_approve(bot, "alice", "deploy v2", "carol", "Deploy")
        run_ungated(bot, "migrate", "Migrations")
        assert paybox.running_image("app")["image"].endswith(":v2")

        # Payout failures spike: the on-call asks for the rollback from #incident.
        after = bot.seq()
        reply = bot.command("alice", "rollback payout failure rate 22%", channel="C_INCIDENT")
        assert "Rollback requested" in reply, reply
        card = bot.workspace.wait_for_message(  # the card everyone sees, not the reply
            "C_INCIDENT", contains="Rollback requested", after_seq=after,
            predicate=lambda m: m.ephemeral_to is None and not m.via_response_url)
        assert "payout failure rate 22%" in text_of(card)
        mark = bot.seq()
        bot.sandbox.click("alice", card, action_id=Action.APPROVE)
        assert "someone else" in text_of(bot.replies_to("alice", after=mark,
                                                        channel="C_INCIDENT")).lower()
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        # the run card, posted at start and edited in place, becomes the summary when the
        # rollback is done
        summary = text_of(bot.workspace.wait_for_message("C_CUTOVER", contains="summary",
                                                         timeout=240))
        status = bot.command("carol", "status")
    finally:
        bot.stop()

    for step in ("rb-maintenance-on", "rb-revert-deploy", "rb-restore-or-downgrade",
                 "rb-verify", "rb-traffic-open"):
        assert f"`{step}` succeeded" in status or f"`{step}` 🔒 succeeded" in status, status
    running = paybox.running_image("app")
    assert running["image"].endswith("paybox/app:v1"), running
    assert running["revision"] == paybox.revisions["v1"]
    assert paybox.alembic_revision() == "0001_ledger"
    code, _ = paybox.http("GET", f"http://127.0.0.1:{paybox.edge_port}/api/health")
    assert code == 200, "traffic re-opened after the rollback"
    assert "Rollback" in summary or "Revert" in summary, summary
