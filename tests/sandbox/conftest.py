"""Fixtures: a sandbox workspace/server on port 0 and a tiny real bolt app served over HTTP."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from bot.dev.sandbox import ManualClock, SandboxServer, Workspace

SIGNING_SECRET = "sandbox-signing-secret-0123456789"
BOT_TOKEN = "xoxb-sandbox-test-token"


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def approval_blocks(what: str) -> list[dict[str, Any]]:
    """The approval message the fake bot posts."""
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Approval needed"}},
        {
            "type": "section",
            "block_id": "summary",
            "text": {"type": "mrkdwn", "text": f"<@U_ALICE> wants to *{what}*"},
        },
        {
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "value": what,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                },
                {
                    "type": "button",
                    "action_id": "reject",
                    "value": what,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Reject"},
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Reject?"},
                        "text": {"type": "plain_text", "text": "This stops the cutover."},
                        "confirm": {"type": "plain_text", "text": "Reject"},
                        "deny": {"type": "plain_text", "text": "Cancel"},
                    },
                },
            ],
        },
    ]


DEPLOY_MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "deploy_form",
    "title": {"type": "plain_text", "text": "Deploy"},
    "submit": {"type": "plain_text", "text": "Run"},
    "blocks": [
        {
            "type": "input",
            "block_id": "version",
            "label": {"type": "plain_text", "text": "Version"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        }
    ],
}


class FakeBot:
    """A real slack_bolt App (signature verification on) served over HTTP on port 0."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.client = WebClient(base_url=sandbox.api_url, token=BOT_TOKEN)
        self.app = App(
            signing_secret=SIGNING_SECRET,
            client=self.client,
            token_verification_enabled=False,
            request_verification_enabled=True,
            logger=logging.getLogger("fake-bot"),
        )
        self.commands: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.submissions: list[dict[str, Any]] = []
        self._register()
        self.httpd = make_server(
            "127.0.0.1",
            0,
            SlackRequestHandler(self.app),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/slack/events"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def _register(self) -> None:
        app = self.app

        @app.command("/golive")
        def golive(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
            self.commands.append(body)
            verb, _, arg = body["text"].partition(" ")
            if verb == "ping":
                ack("pong")
            elif verb == "public":
                ack(response_type="in_channel", text="hello channel")
            elif verb == "request":
                ack()
                client.chat_postMessage(
                    channel=body["channel_id"],
                    text=f"Approval needed: {arg}",
                    blocks=approval_blocks(arg),
                )
            elif verb == "modal":
                ack()
                client.views_open(trigger_id=body["trigger_id"], view=DEPLOY_MODAL)
            elif verb == "respond":
                ack()
                respond("via response_url")
            elif verb == "later":
                ack()  # the test uses the trigger_id itself
            else:
                ack(f"unknown: {verb}")

        @app.action("approve")
        def approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
            ack()
            self.actions.append(body)
            client.chat_update(
                channel=body["container"]["channel_id"],
                ts=body["container"]["message_ts"],
                text=f"Approved by <@{body['user']['id']}>",
                blocks=[
                    {
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": f"Approved by <@{body['user']['id']}>"},
                    }
                ],
            )

        @app.action("reject")
        def reject(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
            ack()
            self.actions.append(body)
            respond(replace_original=True, text="Rejected")

        @app.view("deploy_form")
        def submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
            self.submissions.append(body)
            version = view["state"]["values"]["version"]["value"]["value"]
            if not version.startswith("v"):
                ack(response_action="errors", errors={"version": "must start with v"})
            else:
                ack()

    def stop(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def workspace(clock: ManualClock) -> Workspace:
    return Workspace.default_demo(clock=clock)


@pytest.fixture
def sandbox(workspace: Workspace) -> Iterator[SandboxServer]:
    with SandboxServer(workspace, signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN) as server:
        yield server


@pytest.fixture
def bot(sandbox: SandboxServer) -> Iterator[FakeBot]:
    fake = FakeBot(sandbox)
    sandbox.bot_url = fake.url
    yield fake
    fake.stop()


@pytest.fixture
def client(sandbox: SandboxServer) -> WebClient:
    return WebClient(base_url=sandbox.api_url, token=BOT_TOKEN)
