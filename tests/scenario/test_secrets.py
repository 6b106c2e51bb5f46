"""Secrets never reach Slack or the audit log: every outgoing payload is scanned."""

from __future__ import annotations

import json

import psycopg

from bot.ids import Action
from tests.support.harness import BASE_CONFIG, BOT_TOKEN, SIGNING_SECRET, Bot, text_of

ADMIN_PW = "Adm1n-pw-that-must-never-leak"
OPS_TOKEN = "ops-token-7d1f0c9e-secret"


def test_no_secret_in_any_outgoing_payload_or_audit_row(clean_db, tmp_path, toy):
    # A maintenance switch that prints secrets and fails: its output tail goes to the channel.
    leaky = tmp_path / "leaky-switch"
    leaky.write_text("#!/bin/sh\n"
                     f"echo admin password is {ADMIN_PW}\n"
                     f"echo token={OPS_TOKEN}; echo url={clean_db.replace('//', '//u:' + ADMIN_PW + '@', 1)}\n"
                     f"echo slack {BOT_TOKEN}\nexit 3\n")
    leaky.chmod(0o755)
    config = BASE_CONFIG + toy.config().replace(
        'on = ["sh", "-c", "echo on', f'on = ["{leaky}"]\n#') + """
[target.admin_login]
username = "admin"
password = "${PAYBOX_ADMIN_PASSWORD}"

[target.deployer]
kind = "compose"
env = { PAYBOX_OPS_TOKEN = "${PAYBOX_OPS_TOKEN}" }
"""
    bot = Bot(clean_db, tmp_path, config=config,
              env={"PAYBOX_ADMIN_PASSWORD": ADMIN_PW, "PAYBOX_OPS_TOKEN": OPS_TOKEN})
    try:
        bot.command("alice", "start v2")
        card = bot.request("alice", 'maintenance on --override "rehearsal"')
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        failed = bot.card_showing(card, "failed")
        shown = text_of(failed)
        assert "exited 3" in shown and "admin password is ****" in shown, shown
        bot.command("alice", "status")
    finally:
        bot.stop()

    ws = bot.workspace
    for secret in (ADMIN_PW, OPS_TOKEN, BOT_TOKEN, SIGNING_SECRET):
        leaks = ws.find_in_outgoing(secret)
        assert not leaks, f"secret reached Slack via {[c.method for c in leaks]}"
        for m in ws.all_messages():
            assert secret not in text_of(m), f"secret shown in a message: {text_of(m)[:200]}"
        for d in ws.deliveries:
            assert secret not in (d.body or ""), "secret in an ack body"
    assert len(ws.api_calls) > 5, "the scan must have had payloads to look at"
    with psycopg.connect(clean_db) as conn:
        rows = conn.execute("SELECT detail FROM audit_log").fetchall()
        steps = conn.execute("SELECT coalesce(error,'') || coalesce(progress,'') || "
                             "coalesce(detail,'') FROM step_executions").fetchall()
    blob = json.dumps([r[0] for r in rows]) + "".join(r[0] for r in steps)
    assert "exited 3" in blob
    for secret in (ADMIN_PW, OPS_TOKEN, BOT_TOKEN):
        assert secret not in blob, "secret stored in the audit log or step records"
