"""Text as Slack shows it: what people type is escaped exactly once, the bot's own mentions are
live mentions, and every Web API call the bot makes is counted in /metrics."""

from __future__ import annotations

import re
import threading
import time

from bot.dev.sandbox.workspace import message_text
from bot.ids import Action, Block
from tests.scenario.test_interrupted import interrupted_notice, leave_running, mark_done_as
from tests.support.harness import text_of


def test_what_a_user_types_reaches_the_channel_as_typed(toybot):
    toybot.command("alice", "start v2")
    typed = "a &lt; b, a < b & c > d"  # the sandbox escapes & < > before sending, as Slack does
    card = toybot.request("alice", f'maintenance on --override "{typed}"')
    assert f"_{typed}_" in text_of(card), f"the reason must read as typed: {text_of(card)}"
    raw = message_text(card)
    assert "a &amp;lt; b, a &lt; b &amp; c &gt; d" in raw, f"escaped exactly once: {raw}"


def test_the_bots_mention_of_who_marked_a_step_done_is_a_mention(toybot, clean_db):
    toybot.command("alice", "start v2")
    after = toybot.seq()
    leave_running(clean_db, "maintenance-on")
    notice = interrupted_notice(toybot, after)
    mark = toybot.seq()
    mark_done_as(toybot, "bob", notice, "<!channel> page is up, see <https://evil.example|docs>")
    card = toybot.workspace.wait_for_message(  # gated: carol approves treating it as done
        "C_CUTOVER", contains="as done", after_seq=mark, predicate=lambda m: m.ephemeral_to is None)
    toybot.sandbox.click("carol", card, action_id=Action.APPROVE)

    def status_reply():
        mark = toybot.seq()
        toybot.slash("carol", "status")
        msg = toybot.workspace.wait_for_message(
            "C_CUTOVER", after_seq=mark, predicate=lambda m: m.via_response_url)
        return msg if "marked done" in text_of(msg) else None
    raw = message_text(toybot.workspace.wait_for(status_reply, 15))
    assert "marked done by <@U_BOB>: " in raw, f"bob must show as a mention, not text: {raw}"
    assert ("&lt;!channel&gt; page is up, see &lt;https://evil.example|docs&gt;" in raw
            and "<!channel>" not in raw), f"the reason must stay escaped: {raw}"


def slack_call_counts(bot) -> dict[str, float]:
    text = bot.get("/metrics").text
    return {m: float(v) for m, v in re.findall(
        r'^golive_slack_api_calls_total\{method="([^"]+)"\} (\S+)$', text, re.MULTILINE)}


def eventually(probe, timeout: float = 10.0):
    """Poll ``probe`` until it returns something truthy (metrics change without an event)."""
    deadline, tick = time.monotonic() + timeout, threading.Event()
    while not (value := probe()) and time.monotonic() < deadline:
        tick.wait(0.05)
    return value


def test_metrics_count_every_web_api_method_the_bot_called(toybot):
    toybot.command("alice", "start v2")
    card = toybot.request("alice", 'maintenance on --override "rehearsal"')
    mark = toybot.seq()
    # The requester may not reject their own request: a modal, then an ephemeral refusal.
    toybot.sandbox.click("alice", card, action_id=Action.REJECT)
    view = toybot.workspace.wait_for(lambda: (toybot.workspace.open_views("U_ALICE") or [None])[0])
    toybot.sandbox.submit_view("alice", view.id, {Block.REASON: {Block.REASON_INPUT: "no"}})
    refusal = text_of(toybot.replies_to("alice", after=mark))
    assert "use Cancel" in refusal, f"an ephemeral refusal: {refusal}"

    def missing() -> set[str]:
        received = {c.method for c in toybot.workspace.api_calls}
        return received - set(slack_call_counts(toybot))
    assert {"views.open", "chat.postEphemeral", "response_url"} <= {
        c.method for c in toybot.workspace.api_calls}
    eventually(lambda: not missing())
    gap = missing()
    assert not gap, f"/metrics never counted calls the sandbox received: {sorted(gap)}"
