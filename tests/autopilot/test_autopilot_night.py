"""`/golive go` on the sample stack (examples/paybox): after `start` and a green preflight, the
autopilot runs the night to the canary with exactly three approvals and no other command.
Real Docker, the local registry, alembic and HTTP probes; Slack is the sandbox."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from bot.ids import Action
from tests.integration.test_full_cutover import config_for
from tests.scenario.test_guarded_protections import green_preflight
from tests.support.harness import Bot, text_of

pytestmark = pytest.mark.docker

GATED = (("Maintenance mode on", "bob"), ("Deploy the release tag", "carol"),
         ("Open traffic", "bob"))


def rows(db: str, sql: str) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_go_runs_the_night_to_the_canary_with_three_approvals_and_no_other_command(
        stack, clean_db, tmp_path):
    bot = Bot(clean_db, tmp_path, config=config_for(stack))
    try:
        sha = stack.revisions["v2"]
        assert "started cutover run" in bot.command("alice", f"start v2 {sha}")
        green_preflight(bot, clean_db, sha=sha, age=timedelta(minutes=1))
        after = bot.seq()
        assert "turned the autopilot on" in bot.command("alice", "go")
        for title, approver in GATED:
            card = bot.workspace.wait_for_message(
                "C_CUTOVER", contains=title, after_seq=after, timeout=300,
                predicate=lambda m: m.ephemeral_to is None and "awaiting approval" in text_of(m))
            assert "Requested by autopilot for <@U_ALICE>" in text_of(card) or \
                "autopilot for @alice" in text_of(card), text_of(card)
            bot.sandbox.click(approver, card, action_id=Action.APPROVE)
            done = text_of(bot.card_showing(card, "succeeded", "failed", "interrupted",
                                            timeout=300))
            assert "succeeded" in done, done
        stop = bot.workspace.wait_for_message(
            "C_CUTOVER", contains="Autopilot stopped", after_seq=after, timeout=300,
            predicate=lambda m: m.ephemeral_to is None
            and m.is_reply)  # the stop notice: in the run card's thread, not the card
        status = bot.command("carol", "status")
    finally:
        bot.stop()
    assert "*Canary: real-money $10 deposit" in stop.text and "`/golive canary`" in stop.text, \
        stop.text
    assert "*Autopilot*: off. Autopilot stopped:" in status, status
    assert rows(clean_db, "SELECT step_id, state, requested_by FROM step_executions"
                          " WHERE step_id <> 'preflight' ORDER BY id") == [
        (s, "succeeded", "U_ALICE") for s in ("maintenance-on", "deploy", "migrate", "health",
                                               "smoke", "traffic-open")]
    assert rows(clean_db, "SELECT status FROM approvals ORDER BY id") == [("approved",)] * 3
    # the people typed start and go (and carol asked for the status), nothing else
    typed = rows(clean_db, "SELECT detail->>'text' FROM audit_log WHERE action = 'command'"
                           " ORDER BY id")
    assert [t.split()[0] for (t,) in typed] == ["start", "go", "status"], typed
    running = stack.running_image("app")
    assert running["image"].endswith("paybox/app:v2") and running["revision"] == sha
    assert stack.alembic_revision() == "0002_payout_idempotency"
