"""`golive socket` end to end: the real process on Socket Mode, the sandbox as Slack."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bot.dev.sandbox import SandboxServer, Workspace
from bot.ids import Action
from tests.support.harness import (
    APP_TOKEN,
    BASE_CONFIG,
    BOT_TOKEN,
    SIGNING_SECRET,
    SocketBot,
    bot_environ,
    is_run_card,
    text_of,
)
from tests.support.malformed import MALFORMED
from tests.support.pg import rows

pytestmark = pytest.mark.slow  # each test starts a `golive socket` process

OVERRIDE = 'maintenance on --override "preflight checks are not built yet"'


@pytest.fixture
def socketbot(clean_db, tmp_path, toy):
    b = SocketBot(clean_db, tmp_path, config=BASE_CONFIG + toy.config())
    yield b
    b.stop()


def test_approval_flow_over_socket_mode(socketbot, toy):
    bot = socketbot
    assert "started cutover run #1" in bot.command("alice", "start v2")
    after = bot.seq()
    assert "Approval requested" in bot.command("alice", OVERRIDE)
    card = bot.workspace.wait_for_message("C_CUTOVER", contains="Maintenance mode on",
                                          after_seq=after,
                                          predicate=lambda m: m.ephemeral_to is None and not is_run_card(m))
    assert "Requested by <@U_ALICE>" in text_of(card)

    mark = bot.seq()
    own = bot.sandbox.click("alice", card, action_id=Action.APPROVE)
    assert own.ok and own.via == "socket", f"alice's click was not acked on the link: {own}"
    assert "someone else" in text_of(bot.replies_to("alice", after=mark)).lower()
    assert toy.executions() == [], "the requester's own approval must not run the step"

    bot.sandbox.click("bob", card, action_id=Action.APPROVE)
    final = text_of(bot.card_showing(card, "succeeded", "failed"))
    assert "succeeded" in final and "Approved by <@U_BOB>" in final, final
    assert toy.executions() == ["on"], "the switch must run exactly once"

    deliveries = bot.workspace.deliveries
    assert deliveries and all(d.status == 200 and d.error is None for d in deliveries), \
        f"a command or click over the socket failed: {bot.workspace.delivery_failures}"
    assert not bot.workspace.find_in_outgoing(APP_TOKEN), "the app token reached Slack content"
    assert APP_TOKEN not in bot.output(), "the app token reached the bot's log"


def test_refresh_requested_makes_the_app_reconnect_and_commands_keep_working(socketbot):
    bot = socketbot
    assert "started cutover run #1" in bot.command("alice", "start v2")
    first = bot.link
    bot.links.disconnect("refresh_requested")
    second = bot.reconnected(after=1)
    assert second.id != first.id
    bot.links.wait_closed(first)  # the app drops the old link once the new one is up
    assert len(bot.workspace.calls("apps.connections.open")) == 2, "a new URL for the new link"

    status = bot.command("bob", "status")
    assert "Cutover run #1" in status, status
    assert second.envelopes, "the command after the refresh went over the new link"


def test_sigterm_closes_the_link_and_exits_cleanly(socketbot):
    bot = socketbot
    assert "started cutover run #1" in bot.command("alice", "start v2")
    code = bot.terminate()
    assert code == 0, f"golive socket exited {code} on SIGTERM: {bot.output()}"
    assert not bot.links.open_links(), "the link stays open after the process stopped"
    assert "Traceback" not in bot.output(), bot.output()


def test_a_wrong_app_token_stops_start_up_with_one_clear_line(clean_db, tmp_path):
    wrong = "xapp-1-A0GOLIVE-9999-revoked-token"
    with SandboxServer(Workspace.default_demo(), signing_secret=SIGNING_SECRET,
                       bot_token=BOT_TOKEN) as sandbox:
        sandbox.enable_socket_mode(APP_TOKEN)
        env = bot_environ(sandbox, clean_db, tmp_path, BASE_CONFIG, {"SLACK_APP_TOKEN": wrong})
        done = subprocess.run([sys.executable, "-m", "bot.cli", "socket"], check=False,
                              env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "cannot open the Socket Mode link: invalid_auth" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert wrong not in done.stderr + done.stdout, "the app token was printed"


# ------------------------------------------------------------------ the door over the socket
def test_an_envelope_slack_sends_again_is_acked_and_takes_effect_once(socketbot, clean_db):
    """Slack sends an envelope again when it thinks its ack was lost (same envelope id): the
    inbox knows the id, so it is acked and not handled twice (the HTTP door's replay guard)."""
    bot = socketbot
    assert "started cutover run #1" in bot.command("alice", "start v1")
    assert "closed run #1" in bot.command("alice", "finish")
    finish = bot.links.links[-1].envelopes[-1]
    assert "started cutover run #2" in bot.command("alice", "start v2")

    mark = bot.seq()
    again = bot.links.redeliver(finish)
    assert again.status == 200 and again.error is None, f"the envelope was not acked: {again}"
    status = bot.command("carol", "status")
    assert "run #2" in status.lower(), f"the envelope sent again closed run #2: {status}"
    said = " ".join(text_of(m) for m in bot.workspace.messages("C_CUTOVER", after_seq=mark))
    assert "closed run" not in said, said
    finishes = rows(clean_db, "SELECT 1 FROM audit_log WHERE action = 'command'"
                              " AND detail->>'text' = 'finish'")
    assert len(finishes) == 1, f"{len(finishes)} audit rows for one finish"


NOT_SERVED = [("events_api", {"type": "event_callback", "event": {"type": "app_mention"}}),
              ("interactive", {"type": "block_actions", "actions": "approve", "user": "U_BOB"}),
              ("slash_commands", {"command": "/golive", "text": "status"})]


def test_malformed_envelopes_are_acked_and_change_nothing(socketbot, clean_db):
    """What the HTTP door answers 400 (tests/scenario/test_ingress.py) is acked on the socket
    (Slack would send it again otherwise), logged in one line and never handled."""
    bot = socketbot
    payloads = [p for p in map(_json, MALFORMED) if isinstance(p, dict)]
    sent = [("interactive", p) for p in payloads] + NOT_SERVED
    for kind, payload in sent:
        ack = bot.links.deliver(kind, payload, accepts_response_payload=False)
        assert ack.status == 200, f"{kind} {str(payload)[:60]} was not acked: {ack}"
    assert "No cutover run" in bot.command("alice", "status"), "the bot still answers"
    assert "Traceback" not in bot.output(), bot.output()
    left = rows(clean_db, "SELECT id, kind FROM inbox WHERE state = 'new'")
    assert not left, f"malformed envelopes left requests to handle: {left}"


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None  # not JSON: the socket cannot carry it (Slack sends objects)
