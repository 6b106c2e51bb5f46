"""The foundation as a user meets it: signed requests, help, status, garbage, audit, health."""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

import psycopg
import pytest

from bot.dev.sandbox.workspace import message_text
from tests.support.harness import SIGNING_SECRET, text_of

GARBAGE = [
    "", "   ", "foo", "DEPLOY", "deploy", "deploy ; rm -rf /", "deploy $(reboot)",
    "deploy `id`", "deploy v1 && curl evil", "deploy ../../etc/passwd", "deploy 'unterminated",
    'deploy "also unterminated', "maintenance sideways", "traffic close please",
    "status extra words", "start", "start not a tag!", "start v2 nothex",
    "🚀🚀🚀", "déployer v2", "x" * 5000, "\x00\x01\x02", "help " * 300,
    "deploy v2 --override", "--override", "rollbackk now", "%00%0a", "<@U_BOB> approve",
    "deploy " + "a" * 200,
]


def test_help_lists_every_subcommand_with_usage(bot):
    after = bot.seq()
    d = bot.slash("alice", "help")
    assert d.status == 200
    msg = bot.replies_to("alice", after=after, contains="Subcommands")
    raw = message_text(msg)
    # Slack reads <...> as a link or mention: literal angle brackets must arrive escaped.
    assert not re.search(r"<(?![@#!]|https?:)", raw), f"unescaped '<' in mrkdwn: {raw[:300]}"
    reply = text_of(msg)
    for usage in ("/golive preflight", "/golive maintenance on|off", "/golive deploy <tag>",
                  "/golive migrate", "/golive health", "/golive traffic open",
                  "/golive canary", "/golive rollback", "/golive status", "/golive help"):
        assert usage in reply, f"help does not mention {usage!r}:\n{reply}"


def test_status_without_a_run_says_so(bot):
    after = bot.seq()
    assert bot.slash("alice", "status").status == 200
    reply = text_of(bot.replies_to("alice", after=after, contains="No cutover run"))
    assert "/golive start" in reply


@pytest.mark.parametrize("text", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_gets_200_and_help_never_a_5xx(bot, text):
    after = bot.seq()
    d = bot.slash("alice", text)
    assert d.status == 200, f"{text[:40]!r} answered {d.status}: {d.body[:200]}"
    reply = text_of(bot.replies_to("alice", after=after))
    assert "Traceback" not in reply and "Exception" not in reply
    if text.strip() and text.split()[0] not in ("help",):
        assert "/golive help" in reply or "Subcommands" in reply, reply[:300]
    assert not bot.workspace.delivery_failures


def test_forged_and_stale_requests_are_refused_401(bot):
    body = urlencode({"command": "/golive", "text": "status", "user_id": "U_ALICE",
                      "channel_id": "C_CUTOVER", "response_url": "http://127.0.0.1:9/x"}).encode()
    forged = bot.sandbox.deliver(body, {"Content-Type": "application/x-www-form-urlencoded",
                                        **bot.sandbox.sign(body)} | {
        "X-Slack-Signature": "v0=" + "0" * 64})
    assert forged.status == 401
    stale = bot.sandbox.deliver(body, {"Content-Type": "application/x-www-form-urlencoded",
                                       **bot.sandbox.sign(body, time.time() - 6 * 60)})
    assert stale.status == 401
    fresh = bot.sandbox.deliver(body, {"Content-Type": "application/x-www-form-urlencoded",
                                       **bot.sandbox.sign(body)})
    assert fresh.status == 200
    assert SIGNING_SECRET not in forged.body + stale.body


def test_every_command_is_audited_with_who_where_what_and_outcome(bot, clean_db):
    bot.slash("alice", "status")
    bot.slash("bob", "nonsense words")
    deadline = time.monotonic() + 10
    rows = []
    while time.monotonic() < deadline:
        with psycopg.connect(clean_db) as conn:
            rows = conn.execute("SELECT actor, channel, action, detail->>'text', outcome"
                                " FROM audit_log ORDER BY id").fetchall()
        if len(rows) >= 2:
            break
        time.sleep(0.05)  # polling the DB for an async write; not used as synchronisation
    assert ("U_ALICE", "C_CUTOVER", "command", "status", "ok") in rows, rows
    assert ("U_BOB", "C_CUTOVER", "command", "nonsense words", "usage_error") in rows, rows


def test_healthz_and_metrics(bot):
    assert bot.get("/healthz").status_code == 200
    bot.slash("alice", "status")
    metrics = bot.get("/metrics").text
    assert 'golive_requests_total{kind="command",status="200"}' in metrics
    assert "golive_ack_seconds_bucket" in metrics
