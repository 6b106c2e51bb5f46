"""`golive socket` end to end: the real process on Socket Mode, the sandbox as Slack."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.ids import Action
from bot.sandbox import SandboxServer, Workspace
from tests.support.harness import (
    APP_TOKEN,
    BASE_CONFIG,
    BOT_TOKEN,
    SIGNING_SECRET,
    SocketBot,
    bot_environ,
    text_of,
)

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
                                          predicate=lambda m: m.ephemeral_to is None)
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
