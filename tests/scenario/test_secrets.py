"""Secrets never reach Slack, the audit log or the logs: every outgoing payload is scanned."""

from __future__ import annotations

import json
import logging
import re

import httpx
import psycopg
import pytest

from bot.ids import Action, Block
from bot.server import build_asgi
from tests.support.harness import (
    BASE_CONFIG,
    BOT_TOKEN,
    SIGNING_SECRET,
    Bot,
    UvicornThread,
    free_socket,
    text_of,
)

ADMIN_PW = "Adm1n-pw-that-must-never-leak"
OPS_TOKEN = "ops-token-7d1f0c9e-secret"
# Values from `${VAR}` of variables the config lists under `secrets`: no token pattern, no
# secret-looking name, one of them only 6 characters long.
SIGNING_KEY = "Sg7k3yQ1xZ9v"
PIN = "q7Zk2w"


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
compose_file = "compose.yaml"
project = "secrets"
registry = "127.0.0.1:5000"
services = [{ service = "app", repository = "team/app", tag_variable = "APP_TAG" }]
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


# ------------------------------------------------------------------ secrets people type


def secret_config(toy) -> str:
    return ('secrets = ["PAYBOX_SIGNING_KEY", "PAYBOX_PIN"]\n' + BASE_CONFIG + toy.config()
            + """
[target.admin_login]
password = "${PAYBOX_ADMIN_PASSWORD}"

[target.deployer]
kind = "compose"
compose_file = "compose.yaml"
project = "secrets"
registry = "127.0.0.1:5000"
services = [{ service = "app", repository = "team/app", tag_variable = "APP_TAG" }]
env = { PAYBOX_SIGNING = "${PAYBOX_SIGNING_KEY}" }

[target.smoke]
path = "smoke.sh"
env = { GREETING = "${PAYBOX_PIN}" }
""")


SECRET_ENV = {"PAYBOX_SIGNING_KEY": SIGNING_KEY, "PAYBOX_PIN": PIN,
              "PAYBOX_ADMIN_PASSWORD": ADMIN_PW}


@pytest.fixture
def masked_logging():
    """The process's logging as `golive serve` sets it up; restored afterwards."""
    from bot.logs import configure

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogRecordFactory())
    yield configure
    root.handlers[:], level, factory = saved
    root.setLevel(level)
    logging.setLogRecordFactory(factory)


def test_secrets_typed_into_a_reason_or_an_rc_tag_reach_no_payload_and_no_log(
        clean_db, tmp_path, toy, capfd, masked_logging):
    bot = Bot(clean_db, tmp_path, config=secret_config(toy), env=SECRET_ENV)
    # DEBUG: Bolt and slack_sdk log every request and response body they handle.
    masked_logging("DEBUG", bot.settings.secrets())
    access = uvicorn_with_access_log(bot)
    try:
        started = bot.command("alice", f"start v2-{SIGNING_KEY}")
        assert "v2-****" in started, f"the RC tag must be shown masked: {started}"
        card = bot.request("alice", f'maintenance on --override "the pin is {PIN}"')
        assert "the pin is ****" in text_of(card), text_of(card)
        # A reason typed into the Reject modal, refused (the requester cannot reject) with an
        # ephemeral.
        mark = bot.seq()
        bot.sandbox.click("alice", card, action_id=Action.REJECT)
        view = bot.workspace.wait_for(lambda: (bot.workspace.open_views("U_ALICE") or [None])[0])
        bot.sandbox.submit_view("alice", view.id, {Block.REASON: {
            Block.REASON_INPUT: f"key {SIGNING_KEY} pin {PIN} pw {ADMIN_PW}"}})
        assert "use Cancel" in text_of(bot.replies_to("alice", after=mark))
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        bot.card_showing(card, "succeeded")
        assert "v2-****" in bot.command("carol", "status")
        # An access log line carrying secrets (uvicorn's own logger and handlers).
        probe = httpx.get(f"{access.url}/healthz?key={SIGNING_KEY}&pin={PIN}&pw={ADMIN_PW}")
        assert probe.status_code == 200
    finally:
        access.stop()
        bot.stop()

    ws = bot.workspace
    assert ws.calls("response_url") and ws.calls("views.open") and ws.calls(
        "chat.postEphemeral"), "the flow must have used respond, a modal and an ephemeral"
    for secret in (SIGNING_KEY, PIN, ADMIN_PW):
        leaks = ws.find_in_outgoing(secret)
        assert not leaks, f"a typed secret reached Slack via {[c.method for c in leaks]}"
        for m in ws.all_messages():
            assert secret not in text_of(m), f"secret shown in a message: {text_of(m)[:200]}"
        for d in ws.deliveries:
            assert secret not in (d.body or ""), f"secret in the bot's answer to a {d.kind}"
    with psycopg.connect(clean_db) as conn:
        audit = json.dumps([r[0] for r in conn.execute("SELECT detail FROM audit_log")])
    assert "v2-****" in audit, "the start command must have been audited"
    for secret in (SIGNING_KEY, PIN, ADMIN_PW):
        assert secret not in audit, "a typed secret was stored in the audit log"
    out, err = capfd.readouterr()
    logs = out + err
    assert "chat.postMessage" in logs, "DEBUG logs of the Web API calls must have been captured"
    assert re.search(r'"GET /healthz\?key=\*\*\*\*&pin=\*\*\*\*&pw=\*\*\*\* HTTP/1.1" 200', logs), (
        "uvicorn's access line must be in the captured logs, masked")
    for secret in (SIGNING_KEY, PIN, ADMIN_PW):
        where = [line for line in logs.splitlines() if secret in line]
        assert not where, f"secret printed in the logs: {where[0][:300]}"


def uvicorn_with_access_log(bot: Bot) -> UvicornThread:
    """The bot's ASGI app under a second uvicorn with uvicorn's default access log on."""
    return UvicornThread(build_asgi(bot.runtime, worker=False), free_socket(),
                         log_level="info", access_log=True, lifespan="off").start()


def test_a_short_secret_from_a_listed_variable_is_masked_in_step_output(clean_db, tmp_path,
                                                                          toy):
    # The maintenance switch prints the 6-character PIN; nothing in its name says "secret".
    chatty = tmp_path / "chatty-switch"
    chatty.write_text(f"#!/bin/sh\necho greeting is {PIN}\nexit 3\n")
    chatty.chmod(0o755)
    config = secret_config(toy).replace('on = ["sh", "-c", "echo on', f'on = ["{chatty}"]\n#')
    bot = Bot(clean_db, tmp_path, config=config, env=SECRET_ENV)
    try:
        bot.command("alice", "start v2")
        card = bot.request("alice", 'maintenance on --override "rehearsal"')
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        shown = text_of(bot.card_showing(card, "failed"))
        assert "greeting is ****" in shown, f"the PIN must show masked: {shown}"
    finally:
        bot.stop()
    leaks = bot.workspace.find_in_outgoing(PIN)
    assert not leaks, f"the PIN reached Slack via {[c.method for c in leaks]}"
