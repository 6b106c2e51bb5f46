"""Socket Mode in the sandbox: apps.connections.open, hello, envelopes, acks, disconnect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from bot.dev.sandbox import SandboxServer, Workspace
from bot.dev.sandbox.server import SLACK_ACK_LIMIT
from tests.sandbox.conftest import BOT_TOKEN, FakeBot

APP_TOKEN = "xapp-1-A0SANDBOX-0123-socket-test-token"


def open_url(sandbox: SandboxServer) -> str:
    return WebClient(base_url=sandbox.api_url).apps_connections_open(app_token=APP_TOKEN)["url"]


@contextmanager
def open_link(sandbox: SandboxServer) -> Iterator[tuple[ClientConnection, dict]]:
    """Connect the way an app does; yields the socket and its hello."""
    with connect(open_url(sandbox), compression=None) as conn:
        yield conn, json.loads(conn.recv(timeout=5))


@pytest.fixture
def socket_sandbox(sandbox: SandboxServer) -> SandboxServer:
    sandbox.enable_socket_mode(APP_TOKEN)
    return sandbox


@pytest.fixture
def socket_bot(socket_sandbox: SandboxServer, bot: FakeBot) -> Iterator[FakeBot]:
    """The fake Bolt app on Slack's built-in Socket Mode client instead of HTTP."""
    handler = SocketModeHandler(bot.app, APP_TOKEN,
                                web_client=WebClient(base_url=socket_sandbox.api_url))
    handler.connect()
    socket_sandbox.socket.wait_for_link()
    yield bot
    handler.close()


def test_connections_open_takes_only_the_app_token_and_hands_out_one_use_urls(
        socket_sandbox: SandboxServer, workspace: Workspace) -> None:
    errors = {}
    for name, token in (("bot token", BOT_TOKEN), ("other app token", "xapp-1-other")):
        with pytest.raises(SlackApiError) as e:
            WebClient(base_url=socket_sandbox.api_url).apps_connections_open(app_token=token)
        errors[name] = e.value.response["error"]
    assert errors == {"bot token": "not_allowed_token_type", "other app token": "invalid_auth"}
    with pytest.raises(SlackApiError) as e:
        WebClient(base_url=socket_sandbox.api_url, token=APP_TOKEN).chat_postMessage(
            channel="C_CUTOVER", text="hi")
    assert e.value.response["error"] == "not_allowed_token_type", "xapp- posted a message"

    url = open_url(socket_sandbox)
    assert url.startswith("ws://127.0.0.1:")
    with connect(url, compression=None) as conn:
        hello = json.loads(conn.recv(timeout=5))
    assert hello["type"] == "hello" and hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": "A_GOLIVE"}
    assert {"host", "build_number", "approximate_connection_time"} <= set(hello["debug_info"])
    with pytest.raises(InvalidStatus) as refused:
        connect(url, compression=None)
    assert refused.value.response.status_code == 401, "a URL opened a second link"
    assert not workspace.find_in_outgoing(APP_TOKEN), "the app token was recorded"


def test_without_socket_mode_there_is_no_app_token(sandbox: SandboxServer) -> None:
    with pytest.raises(SlackApiError) as e:
        open_url(sandbox)
    assert e.value.response["error"] == "invalid_auth"


def test_a_bolt_app_on_the_socket_gets_the_same_results_as_over_http(
        socket_sandbox: SandboxServer, socket_bot: FakeBot, workspace: Workspace) -> None:
    ping = socket_sandbox.slash("alice", "ping")
    assert (ping.ok, ping.via) == (True, "socket"), ping
    pong = workspace.latest("C_CUTOVER")
    assert pong is not None and (pong.text, pong.ephemeral_to, pong.source) == \
        ("pong", "U_ALICE", "ack"), "the ack's text was not shown to the user only"
    assert socket_bot.commands[0]["user_id"] == "U_ALICE"

    socket_sandbox.slash("alice", "request cutover")
    card = workspace.wait_for_message("C_CUTOVER", contains="Approval needed")
    click = socket_sandbox.click("bob", card, action_id="approve")
    assert (click.ok, click.via) == (True, "socket"), click
    assert workspace.wait_for_message("C_CUTOVER", contains="Approved by <@U_BOB>").edited

    socket_sandbox.slash("alice", "modal")
    view = workspace.wait_for(lambda: (workspace.open_views("U_ALICE") or [None])[0])
    refused = socket_sandbox.submit_view("alice", view.id, {"version": {"value": "2.0"}})
    assert refused.response_action == "errors", "the ack's response_action was not applied"
    assert workspace.views[view.id].errors == {"version": "must start with v"}
    assert socket_sandbox.submit_view("alice", view.id, {"version": {"value": "v2"}}).ok
    assert workspace.views[view.id].closed
    assert workspace.delivery_failures == []


def test_an_envelope_not_acked_on_its_own_link_within_3s_fails_like_an_http_timeout(
        socket_sandbox: SandboxServer, workspace: Workspace) -> None:
    with open_link(socket_sandbox) as (first, _), open_link(socket_sandbox) as (second, hello):
        assert hello["num_connections"] == 2
        acker = _AckOn(first, source=second)
        delivery = socket_sandbox.slash("alice", "ping")
        acker.join()
    envelope = acker.envelope
    assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"]
    assert envelope["payload"]["text"] == "ping" and envelope["payload"]["user_id"] == "U_ALICE"
    assert delivery.status == 0 and not delivery.ok, "an ack on another link counted"
    assert delivery.error and delivery.error.startswith("operation_timeout"), delivery.error
    assert delivery.elapsed >= SLACK_ACK_LIMIT == 3.0
    assert workspace.delivery_failures and workspace.slow_acks, "not reported as a failure"
    assert workspace.messages("C_CUTOVER") == [], "a failed delivery showed an answer"


def test_after_refresh_requested_envelopes_go_to_the_next_link(
        socket_sandbox: SandboxServer, workspace: Workspace) -> None:
    with open_link(socket_sandbox) as (old, _):
        socket_sandbox.socket.disconnect("refresh_requested")
        notice = json.loads(old.recv(timeout=5))
        assert (notice["type"], notice["reason"]) == ("disconnect", "refresh_requested")
        nowhere = socket_sandbox.slash("alice", "ping")
        assert nowhere.error and nowhere.error.startswith("dispatch_failed"), nowhere
        with open_link(socket_sandbox) as (new, _):
            acker = _AckOn(new, source=new, payload={"text": "pong"})
            delivery = socket_sandbox.slash("alice", "ping")
            acker.join()
    assert delivery.ok and delivery.json() == {"text": "pong"}, delivery
    assert workspace.latest("C_CUTOVER").text == "pong"


class _AckOn:
    """Read one envelope from ``source`` and ack it on ``target`` (in a thread)."""

    def __init__(self, target: ClientConnection, *, source: ClientConnection,
                 payload: dict | None = None) -> None:
        import threading

        self.envelope: dict = {}

        def run() -> None:
            self.envelope = json.loads(source.recv(timeout=5))
            ack = {"envelope_id": self.envelope["envelope_id"]}
            target.send(json.dumps({**ack, "payload": payload} if payload else ack))

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(10)
