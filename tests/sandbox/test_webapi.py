"""The Web API subset, called through slack_sdk's real WebClient."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.dev.sandbox import ManualClock, SandboxServer, Workspace
from tests.sandbox.conftest import BOT_TOKEN


def error_of(call: Any, **kwargs: Any) -> str:
    with pytest.raises(SlackApiError) as exc:
        call(**kwargs)
    return str(exc.value.response["error"])


def button(text: str, action_id: str = "a") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}}


def test_auth(sandbox: SandboxServer, client: WebClient, workspace: Workspace) -> None:
    me = client.auth_test()
    assert (me["user_id"], me["bot_id"], me["team_id"]) == ("U_GOLIVE", "B_GOLIVE", "T0SANDBOX")
    wrong = WebClient(base_url=sandbox.api_url, token="xoxb-wrong")
    assert error_of(wrong.auth_test) == "invalid_auth"
    assert error_of(WebClient(base_url=sandbox.api_url).auth_test) == "not_authed"
    assert error_of(client.api_call, api_method="no.such.method") == "unknown_method"
    assert [c.error for c in workspace.calls() if not c.ok] == [
        "invalid_auth",
        "not_authed",
        "unknown_method",
    ]


def test_post_update_delete_and_history(
    client: WebClient, workspace: Workspace, clock: ManualClock
) -> None:
    posted = client.chat_postMessage(channel="#cutover", text="first")
    reply = client.chat_postMessage(channel="C_CUTOVER", text="reply", thread_ts=posted["ts"])
    client.chat_postMessage(channel="C_CUTOVER", text="second")
    client.chat_update(channel="C_CUTOVER", ts=posted["ts"], text="first, edited")

    msg = workspace.message("C_CUTOVER", posted["ts"])
    assert msg is not None and msg.text == "first, edited"
    assert [v.text for v in msg.history] == ["first"]
    history = client.conversations_history(channel="C_CUTOVER")["messages"]
    assert [m["text"] for m in history] == ["second", "first, edited"]
    assert history[1]["reply_count"] == 1
    replies = client.conversations_replies(channel="C_CUTOVER", ts=posted["ts"])["messages"]
    assert [m["text"] for m in replies] == ["first, edited", "reply"]
    assert reply["message"]["thread_ts"] == posted["ts"]

    client.chat_delete(channel="C_CUTOVER", ts=reply["ts"])
    assert workspace.deleted_messages[0].text == "reply"
    assert float(posted["ts"]) < float(reply["ts"])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        (
            {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]},
            "invalid_blocks",
        ),
        (
            {"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]},
            "invalid_blocks",
        ),
        ({"blocks": [{"type": "actions", "elements": [button("x" * 76)]}]}, "invalid_blocks"),
        (
            {"blocks": [{"type": "actions", "elements": [button("ok", "a" * 256)]}]},
            "invalid_blocks",
        ),
        ({"blocks": [{"type": "divider", "block_id": "b" * 256}]}, "invalid_blocks"),
        (
            {"blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "x" * 3001}]}]},
            "invalid_blocks",
        ),
        (
            {
                "blocks": [
                    {"type": "divider", "block_id": "d"},
                    {"type": "divider", "block_id": "d"},
                ]
            },
            "invalid_blocks",
        ),
        (
            {"blocks": [{"type": "actions", "elements": [button("A"), button("B")]}]},
            "invalid_blocks",
        ),
        ({"blocks": [{"type": "carousel"}]}, "invalid_blocks"),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"text": ""}, "no_text"),
    ],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
def test_slack_limits_are_enforced(
    client: WebClient, workspace: Workspace, kwargs: dict[str, Any], error: str
) -> None:
    kwargs.setdefault("text", "fallback")
    assert error_of(client.chat_postMessage, channel="C_CUTOVER", **kwargs) == error
    rejected = workspace.calls("chat.postMessage")[-1]
    assert (rejected.ok, rejected.error) == (False, error)
    assert workspace.messages("C_CUTOVER") == []


def test_limits_at_the_boundary_are_accepted(client: WebClient) -> None:
    blocks: list[dict[str, Any]] = [{"type": "divider"}] * 47 + [
        {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3000}},
        {"type": "header", "text": {"type": "plain_text", "text": "x" * 150}},
        {"type": "actions", "elements": [button("x" * 75, "a" * 255)]},
    ]
    assert client.chat_postMessage(channel="C_CUTOVER", text="x" * 40_000, blocks=blocks)["ok"]


def test_invalid_blocks_reports_the_json_pointer(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel="C_CUTOVER", text="t", blocks=[{"type": "divider"}] * 51)
    assert exc.value.response["errors"] == ["must be less than 51 items [json-pointer:/blocks]"]


def test_two_updates_within_a_second_are_rate_limited(
    client: WebClient, workspace: Workspace, clock: ManualClock
) -> None:
    ts = client.chat_postMessage(channel="C_CUTOVER", text="v1")["ts"]
    client.chat_update(channel="C_CUTOVER", ts=ts, text="v2")
    clock.advance(0.5)
    with pytest.raises(SlackApiError) as exc:
        client.chat_update(channel="C_CUTOVER", ts=ts, text="v3")
    assert exc.value.response.status_code == 429
    assert exc.value.response.headers["Retry-After"] == "1"
    assert exc.value.response["error"] == "ratelimited"
    assert [(e.method, e.ts) for e in workspace.rate_limited] == [("chat.update", ts)]
    clock.advance(0.5)
    client.chat_update(channel="C_CUTOVER", ts=ts, text="v3")
    msg = workspace.message("C_CUTOVER", ts)
    assert msg is not None and [v.text for v in msg.history] == ["v1", "v2"]


def test_update_and_lookup_errors(client: WebClient, workspace: Workspace) -> None:
    human = workspace.post_message("C_CUTOVER", "U_ALICE", "hi from alice", source="user")
    assert (
        error_of(client.chat_update, channel="C_CUTOVER", ts=human.ts, text="x")
        == "cant_update_message"
    )
    assert (
        error_of(client.chat_update, channel="C_CUTOVER", ts="1.000001", text="x")
        == "message_not_found"
    )
    assert error_of(client.chat_postMessage, channel="C_NOPE", text="x") == "channel_not_found"
    assert (
        error_of(client.chat_postEphemeral, channel="C_CUTOVER", user="U_NOPE", text="x")
        == "user_not_found"
    )
    assert error_of(client.conversations_info, channel="C_NOPE") == "channel_not_found"
    assert client.conversations_info(channel="C_INCIDENT")["channel"]["name"] == "incident"


def test_ephemeral_and_reactions(client: WebClient, workspace: Workspace) -> None:
    ts = client.chat_postEphemeral(channel="C_CUTOVER", user="U_BOB", text="psst")["message_ts"]
    assert workspace.messages("C_CUTOVER", visible_to="U_ALICE") == []
    assert workspace.messages("C_CUTOVER", visible_to="U_BOB")[0].ts == ts
    posted = client.chat_postMessage(channel="C_CUTOVER", text="react to me")["ts"]
    client.reactions_add(channel="C_CUTOVER", timestamp=posted, name="eyes")
    assert (
        error_of(client.reactions_add, channel="C_CUTOVER", timestamp=posted, name="eyes")
        == "already_reacted"
    )
    msg = workspace.message("C_CUTOVER", posted)
    assert msg is not None and msg.reactions == {"eyes": ["U_GOLIVE"]}


def test_users_and_usergroups_come_from_config(client: WebClient) -> None:
    dave = client.users_info(user="U_DAVE")["user"]
    assert (dave["name"], dave["is_restricted"], dave["deleted"], dave["is_bot"]) == (
        "dave",
        True,
        False,
        False,
    )
    assert dave["profile"]["real_name"] == "Dave Guest"
    assert client.users_info(user="U_EVE")["user"]["deleted"] is True
    assert client.users_info(user="U_GOLIVE")["user"]["is_bot"] is True
    assert error_of(client.users_info, user="U_NOBODY") == "user_not_found"
    assert client.usergroups_users_list(usergroup="S_APPROVERS")["users"] == ["U_BOB", "U_CAROL"]
    assert error_of(client.usergroups_users_list, usergroup="S_NOPE") == "no_such_subteam"


def test_three_call_file_upload(
    sandbox: SandboxServer, client: WebClient, workspace: Workspace
) -> None:
    parent = client.chat_postMessage(channel="C_CUTOVER", text="evidence thread")["ts"]
    result = client.files_upload_v2(
        channel="C_CUTOVER",
        content="hello",
        filename="report.txt",
        title="Report",
        initial_comment="cutover report",
        thread_ts=parent,
    )
    file_id = result["file"]["id"]
    stored = workspace.files[file_id]
    assert (stored.content, stored.name, stored.title, stored.completed) == (
        b"hello",
        "report.txt",
        "Report",
        True,
    )
    msg = workspace.latest("C_CUTOVER")
    assert msg is not None
    assert (msg.text, msg.files, msg.thread_ts) == ("cutover report", [file_id], parent)
    assert [c.method for c in workspace.calls()][-3:] == [
        "files.getUploadURLExternal",
        "files.upload_url",
        "files.completeUploadExternal",
    ]
    download = httpx.get(stored.url_private, headers={"Authorization": f"Bearer {BOT_TOKEN}"})
    assert download.content == b"hello"


def test_upload_url_accepts_multipart_and_put(
    sandbox: SandboxServer, client: WebClient, workspace: Workspace
) -> None:
    first = client.files_getUploadURLExternal(filename="a.bin", length=3)
    httpx.post(first["upload_url"], files={"file": ("a.bin", b"abc")})
    second = client.files_getUploadURLExternal(filename="b.bin", length=2)
    httpx.put(second["upload_url"], content=b"xy")
    assert workspace.files[first["file_id"]].content == b"abc"
    assert workspace.files[second["file_id"]].content == b"xy"
    missing = client.files_getUploadURLExternal(filename="c.bin", length=1)["file_id"]
    assert (
        error_of(
            client.files_completeUploadExternal, files=[{"id": missing}], channel_id="C_CUTOVER"
        )
        == "file_not_found"
    )


def test_every_payload_is_logged_for_secret_scanning(
    client: WebClient, workspace: Workspace
) -> None:
    client.chat_postMessage(channel="C_CUTOVER", text="db password is hunter2")
    leaked = workspace.find_in_outgoing("hunter2")
    assert [c.method for c in leaked] == ["chat.postMessage"]
    assert BOT_TOKEN not in "".join(c.raw for c in workspace.calls())


def test_form_encoded_blocks_are_parsed(client: WebClient, workspace: Workspace) -> None:
    """Some callers send blocks as a JSON string in a form body; Slack accepts both."""
    client.api_call(
        "chat.postMessage",
        params={
            "channel": "C_CUTOVER",
            "text": "t",
            "blocks": '[{"type": "divider"}]',
        },
    )
    msg = workspace.latest("C_CUTOVER")
    assert msg is not None and msg.blocks == [{"type": "divider"}]


def test_wait_for_timeout_shows_the_channel(workspace: Workspace) -> None:
    workspace.post_message("C_CUTOVER", "U_GOLIVE", "still waiting")
    with pytest.raises(TimeoutError, match="(?s)=== #cutover ===.*still waiting"):
        workspace.wait_for(lambda: False, timeout=0.01, channel="C_CUTOVER")
