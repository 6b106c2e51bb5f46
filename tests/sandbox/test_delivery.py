"""Slash commands, clicks, view submissions and response_url, delivered to a real bolt app."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.dev.sandbox import ManualClock, SandboxServer, Workspace
from bot.dev.sandbox import server as server_module
from tests.sandbox.conftest import FakeBot

SLASH_FIELDS = {
    "token",
    "team_id",
    "team_domain",
    "channel_id",
    "channel_name",
    "user_id",
    "user_name",
    "command",
    "text",
    "api_app_id",
    "is_enterprise_install",
    "response_url",
    "trigger_id",
}


def test_slash_command_is_signed_and_the_ack_is_shown_ephemerally(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace
) -> None:
    delivery = sandbox.slash("alice", "ping")

    assert delivery.status == 200 and delivery.ok
    assert set(bot.commands[0]) == SLASH_FIELDS
    assert bot.commands[0]["user_id"] == "U_ALICE"
    assert bot.commands[0]["channel_name"] == "cutover"
    assert delivery.response_url and delivery.response_url.startswith(sandbox.base_url)
    pong = workspace.latest("C_CUTOVER")
    assert pong is not None
    assert (pong.text, pong.ephemeral_to, pong.source) == ("pong", "U_ALICE", "ack")
    assert workspace.messages("C_CUTOVER", visible_to="U_BOB") == []
    assert workspace.delivery_failures == []


def test_in_channel_ack_is_posted_to_the_channel(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace
) -> None:
    sandbox.slash("alice", "public")
    msg = workspace.latest("C_CUTOVER")
    assert msg is not None and (msg.text, msg.ephemeral_to) == ("hello channel", None)


@pytest.mark.parametrize("forgery", ["bad_signature", "stale_timestamp"])
def test_forged_requests_are_rejected_by_bolt_and_recorded(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace, forgery: str
) -> None:
    body = urlencode({"command": "/golive", "text": "ping", "user_id": "U_ALICE"}).encode()
    if forgery == "bad_signature":
        headers = server_module.sign("not-the-secret", body)
    else:
        headers = sandbox.sign(body, timestamp=time.time() - 600)
    headers["Content-Type"] = "application/x-www-form-urlencoded"

    delivery = sandbox.deliver(body, headers)

    assert delivery.status == 401
    assert not delivery.ok
    assert workspace.delivery_failures[-1].status == 401
    assert bot.commands == []


def test_click_by_index_routes_block_actions_and_update_keeps_history(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace, clock: ManualClock
) -> None:
    sandbox.slash("alice", "request deploy")
    msg = workspace.wait_for_message("C_CUTOVER", contains="Approval needed")
    posted_at = msg.at
    clock.advance(5)

    delivery = sandbox.click("bob", msg, index=1)

    assert delivery.ok
    updated = workspace.wait_for(lambda: msg.edited and msg, channel="C_CUTOVER")
    assert updated.text == "Approved by <@U_BOB>"
    assert [v.text for v in updated.history] == ["Approval needed: deploy"]
    assert updated.history[0].at == posted_at
    assert updated.update_times == [posted_at + 5]
    payload = bot.actions[0]
    assert payload["type"] == "block_actions"
    assert payload["user"] == {
        "id": "U_BOB",
        "username": "bob",
        "name": "bob",
        "team_id": "T0SANDBOX",
    }
    assert payload["container"] == {
        "type": "message",
        "message_ts": msg.ts,
        "channel_id": "C_CUTOVER",
        "is_ephemeral": False,
    }
    assert payload["channel"] == {"id": "C_CUTOVER", "name": "cutover"}
    assert payload["message"]["blocks"][2]["block_id"] == "decision"
    assert payload["message"]["bot_id"] == "B_GOLIVE"
    assert payload["state"] == {"values": {}}
    assert payload["enterprise"] is None and payload["is_enterprise_install"] is False
    action = payload["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve",
        "decision",
        "deploy",
        "button",
    )
    assert action["text"]["text"] == "Approve"
    assert payload["trigger_id"] == delivery.trigger_id
    assert [c.method for c in workspace.calls() if c.ok][:3] == [
        "auth.test",
        "chat.postMessage",
        "chat.update",
    ]


def test_click_with_confirm_records_dialog_and_response_url_replaces_original(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace
) -> None:
    sandbox.slash("alice", "request deploy")
    msg = workspace.wait_for_message("C_CUTOVER", contains="Approval needed")

    sandbox.click("carol", msg, action_id="reject")

    workspace.wait_for(lambda: msg.text == "Rejected")
    assert msg.blocks is None and msg.edited
    assert workspace.confirms_shown[0]["action_id"] == "reject"
    assert workspace.calls("response_url")[0].params["replace_original"] is True


def test_click_unknown_button_lists_the_buttons(
    sandbox: SandboxServer, workspace: Workspace
) -> None:
    msg = workspace.post_message(
        "C_CUTOVER",
        "U_GOLIVE",
        "x",
        [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "a",
                        "text": {"type": "plain_text", "text": "A"},
                    },
                ],
            },
        ],
    )
    with pytest.raises(LookupError, match=r"\[1\] A"):
        sandbox.click("alice", msg, index=2)


def test_respond_lands_as_ephemeral_from_response_url(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace
) -> None:
    sandbox.slash("bob", "respond")
    msg = workspace.wait_for_message("C_CUTOVER", contains="via response_url")
    assert (msg.ephemeral_to, msg.via_response_url, msg.user) == ("U_BOB", True, "U_GOLIVE")


def test_response_url_in_channel_thread_uses_and_expiry(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace, clock: ManualClock
) -> None:
    parent = workspace.post_message("C_CUTOVER", "U_GOLIVE", "parent")
    url = sandbox.slash("alice", "later").response_url
    assert url is not None

    first = httpx.post(
        url, json={"response_type": "in_channel", "text": "hi", "thread_ts": parent.ts}
    )
    assert first.status_code == 200 and first.json() == {"ok": True}
    reply = workspace.latest("C_CUTOVER")
    assert reply is not None
    assert (reply.text, reply.thread_ts, reply.ephemeral_to) == ("hi", parent.ts, None)
    for _ in range(4):
        assert httpx.post(url, json={"text": "again"}).status_code == 200
    used = httpx.post(url, json={"text": "sixth"})
    assert (used.status_code, used.json()["error"]) == (404, "used_url")

    url2 = sandbox.slash("alice", "later").response_url
    assert url2 is not None
    clock.advance(30 * 60 + 1)
    expired = httpx.post(url2, json={"text": "late"})
    assert (expired.status_code, expired.json()["error"]) == (404, "expired_url")


def test_views_open_submission_errors_and_close(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace
) -> None:
    sandbox.slash("alice", "modal")
    view = workspace.wait_for(lambda: workspace.open_views("U_ALICE")[-1:])[0]

    bad = sandbox.submit_view("alice", view.id, {"version": {"value": "1.2"}})
    assert bad.response_action == "errors"
    assert view.errors == {"version": "must start with v"} and not view.closed
    state = bot.submissions[0]["view"]["state"]["values"]
    assert state == {"version": {"value": {"type": "plain_text_input", "value": "1.2"}}}

    good = sandbox.submit_view("alice", view.id, {"version": {"value": "v1.2"}})
    assert good.ok and good.response_action is None and view.closed


def test_trigger_ids_expire_after_three_seconds_and_are_single_use(
    sandbox: SandboxServer, bot: FakeBot, client: WebClient, clock: ManualClock
) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": []}
    with pytest.raises(SlackApiError) as bogus:
        client.views_open(trigger_id="123.456.abc", view=view)
    assert bogus.value.response["error"] == "invalid_trigger_id"

    trigger = sandbox.slash("alice", "later").trigger_id
    clock.advance(3.01)
    with pytest.raises(SlackApiError) as expired:
        client.views_open(trigger_id=trigger, view=view)
    assert expired.value.response["error"] == "expired_trigger_id"

    fresh = sandbox.slash("alice", "later").trigger_id
    clock.advance(2.9)
    assert client.views_open(trigger_id=fresh, view=view)["view"]["id"].startswith("V")
    with pytest.raises(SlackApiError) as reused:
        client.views_open(trigger_id=fresh, view=view)
    assert reused.value.response["error"] == "exchanged_trigger_id"


def test_bot_down_is_a_recorded_failure(sandbox: SandboxServer, workspace: Workspace) -> None:
    sandbox.bot_url = "http://127.0.0.1:9/slack/events"  # discard port: nothing listens
    delivery = sandbox.slash("alice", "ping")
    assert delivery.status == 0 and delivery.error and "dispatch_failed" in delivery.error
    assert workspace.delivery_failures[-1].kind == "slash"


def test_non_200_ack_is_recorded_like_slack_shows_it(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace
) -> None:
    delivery = sandbox.deliver(b"{}", {"Content-Type": "application/json"}, path="/nowhere")
    assert delivery.status == 404 and delivery.error == "http_service_error"
    assert workspace.delivery_failures[-1].status == 404


def test_slow_acks_are_recorded(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "SLACK_ACK_LIMIT", 0.0)  # every ack counts as slow
    sandbox.slash("alice", "ping")
    assert workspace.slow_acks and workspace.slow_acks[0].kind == "slash"


def test_deliveries_are_form_encoded_with_payload_json(
    sandbox: SandboxServer, workspace: Workspace
) -> None:
    """Check the raw wire format by pointing the sandbox at a recording HTTP server."""
    seen: list[tuple[dict[str, str], bytes]] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append((dict(request.headers), request.content))
        return httpx.Response(200)

    sandbox.bot_url = "http://bot.invalid/slack/events"
    assert sandbox._client is not None
    sandbox._client.close()
    sandbox._client = httpx.Client(transport=httpx.MockTransport(app))
    msg = workspace.post_message(
        "C_CUTOVER",
        "U_GOLIVE",
        "x",
        [
            {
                "type": "section",
                "text": {"type": "plain_text", "text": "go"},
                "accessory": {
                    "type": "button",
                    "action_id": "go",
                    "text": {"type": "plain_text", "text": "Go"},
                },
            },
        ],
    )
    sandbox.click("alice", msg, index=1)
    headers, body = seen[0]
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert headers["x-slack-signature"].startswith("v0=")
    form = parse_qs(body.decode())
    payload = json.loads(form["payload"][0])
    assert payload["actions"][0]["block_id"] == "b0"
    expected = sandbox.sign(body, timestamp=headers["x-slack-request-timestamp"])
    assert headers["x-slack-signature"] == expected["X-Slack-Signature"]
