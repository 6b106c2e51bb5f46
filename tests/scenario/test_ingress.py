"""The door: replayed signatures, malformed payloads and help during an outage, over the wire."""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import urlencode

import pytest

from bot import ingress
from tests.support.harness import Bot, text_of
from tests.support.malformed import MALFORMED
from tests.support.pg import rows

FORM = "application/x-www-form-urlencoded"


def signed_command(bot: Bot, user_id: str, text: str, channel: str = "C_CUTOVER"
                   ) -> tuple[bytes, dict[str, str]]:
    """A correctly signed /golive request, as an attacker who captured one would hold it."""
    url = bot.sandbox.api.issue_response_url(user_id, channel, None)
    body = urlencode({"command": "/golive", "text": text, "user_id": user_id,
                      "channel_id": channel, "response_url": url,
                      "trigger_id": bot.sandbox.api.issue_trigger(user_id)}).encode()
    return body, {"Content-Type": FORM, **bot.sandbox.sign(body)}


def active_run(bot: Bot) -> str:
    return bot.command("carol", "status")


def test_a_replayed_finish_cannot_close_the_next_run(bot):
    assert "started cutover run #1" in bot.command("alice", "start v1")
    body, headers = signed_command(bot, "U_ALICE", "finish")
    first = bot.sandbox.deliver(body, headers)
    assert first.status == 200
    bot.workspace.wait_for(lambda: "closed run #1" in text_of(
        bot.workspace.messages("C_CUTOVER")[-1]) or None, 10)
    assert "started cutover run #2" in bot.command("alice", "start v2")

    replay = bot.sandbox.deliver(body, headers)  # same bytes, same signature, inside 5 minutes
    assert replay.status == 401, f"a replay must be refused, got {replay.status}"
    assert "Run #2" in active_run(bot) or "run #2" in active_run(bot)
    assert "closed run #2" not in " ".join(text_of(m) for m in
                                          bot.workspace.messages("C_CUTOVER"))


def test_a_replay_to_another_replica_is_refused_too(bot, clean_db, tmp_path):
    (tmp_path / "replica-b").mkdir()
    other = Bot(clean_db, tmp_path / "replica-b", sandbox=bot.sandbox)
    try:
        body, headers = signed_command(bot, "U_ALICE", "start v1")
        a_url = f"{bot.http.url}/slack/events"
        bot.sandbox.bot_url = a_url
        assert bot.sandbox.deliver(body, headers).status == 200
        bot.sandbox.bot_url = f"{other.http.url}/slack/events"
        assert bot.sandbox.deliver(body, headers).status == 401, \
            "replica B must know the signature replica A already saw"
    finally:
        bot.sandbox.bot_url = f"{bot.http.url}/slack/events"
        other.stop()


def test_help_replayed_still_answers_and_never_touches_the_database(bot):
    body, headers = signed_command(bot, "U_ALICE", "help")
    for _ in range(2):
        d = bot.sandbox.deliver(body, headers)
        assert d.status == 200, "help is harmless to replay; it must not be refused"




@pytest.mark.parametrize("payload", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_interactions_get_no_5xx_and_no_traceback(bot, payload, caplog):
    body = urlencode({"payload": payload}).encode()
    with caplog.at_level(logging.INFO):
        d = bot.sandbox.deliver(body, {"Content-Type": FORM, **bot.sandbox.sign(body)})
        assert d.status in (200, 400), f"{payload[:60]} answered {d.status}: {d.body[:200]}"
        assert "No cutover run" in bot.command("alice", "status"), "the bot still answers"
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, [r.getMessage()[:200] for r in tracebacks]


def test_inspect_reads_shapes_without_raising():
    assert ingress.inspect(b"payload=%5B%5D").problem == "payload is a JSON list, not an object"
    assert ingress.inspect(b"payload=null").problem == "payload is a JSON NoneType, not an object"
    assert ingress.inspect(b"\xff\xfe").problem == "body is not UTF-8"
    bare = ingress.inspect(b"payload=" + json.dumps({"type": "block_actions"}).encode())
    assert bare.problem == "actions is not a list of actions", "Bolt would index into it"
    ok = ingress.inspect(b"payload=" + json.dumps(
        {"type": "block_actions", "actions": [{"action_id": "approve"}]}).encode())
    assert ok.problem is None and ok.kind == "interaction"
    assert ingress.inspect(b"command=%2Fgolive&text=help").needs_database is False
    assert ingress.inspect(b"command=%2Fgolive&text=").needs_database is False
    assert ingress.inspect(b"command=%2Fgolive&text=status").needs_database is True
    assert ingress.inspect(b"command=%2Fgolive&text=HELP").is_help is True
    assert ingress.inspect(b"command=%2Fgolive&text=finish").needs_database is True


@pytest.mark.parametrize("outage", ["cut", "silence"])
def test_help_answers_at_once_while_the_database_is_down(proxied_bot, outage):
    bot, proxy = proxied_bot
    getattr(proxy, outage)()  # refused connections, or a partition that answers nothing
    started = time.monotonic()
    reply = bot.command("alice", "help")
    assert "Subcommands" in reply
    assert time.monotonic() - started < 1.0, "help must not wait on the database"
    body, headers = signed_command(bot, "U_ALICE", "start v1")
    d = bot.sandbox.deliver(body, headers)
    assert d.status == 200 and "database is not answering" in d.body, d.body


def test_a_command_is_parsed_once_and_its_parse_travels_with_the_inbox_row(bot, clean_db,
                                                                            monkeypatch):
    from bot import app as bolt_app

    calls: list[str] = []

    def counted(real):
        def parse(text, commands):
            calls.append(text)
            return real(text, commands)
        return parse
    for module in (bolt_app, ingress):
        monkeypatch.setattr(module, "parse", counted(module.parse))
    assert "started cutover run #1" in bot.command("alice", "start v1")
    assert "Unknown subcommand" in bot.command("alice", "nosuchthing v1")
    assert calls == ["start v1", "nosuchthing v1"], \
        f"each command must be parsed once, at the door: {calls}"
    stored = rows(clean_db, "SELECT request FROM inbox ORDER BY id")
    assert stored[0]["request"]["invocation"]["name"] == "start", stored[0]
    assert "Unknown subcommand" in stored[1]["request"]["problem"], stored[1]
