"""The door every Slack request passes before Bolt sees it: shape, signature, replay.

Bolt verifies signatures too, but a captured request stays correctly signed for Slack's
five-minute window, and Bolt answers a malformed payload with a traceback and HTTP 500.
So, before dispatch:

1. ``inspect`` (pure) reads what kind of request this is and refuses a payload that is not a
   JSON object with a ``type``: HTTP 400, one log line, nothing dispatched.
2. A request whose signature verifies is remembered by the hash of its signature in the
   database (every replica sees the same table); the same signature a second time is a
   replay and gets HTTP 401. Forged or stale requests are left to Bolt, which answers 401.
3. ``/golive help`` (and an empty ``/golive``) is answered in the ack and recorded after it:
   help never waits on the database, and replaying help changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from bot.audit.chain import storable
from commands import parse
from commands.base import Command, Invocation, UsageError

READ_ONLY = ("help", "status")  # subcommands that change nothing
REPLAY_WINDOW_S = 5 * 60
"""Slack's own window: Bolt refuses a request older than this, so remembering longer is moot."""


@dataclass(frozen=True)
class Inbound:
    """What the door knows about one request body."""

    kind: str
    """``command``, ``interaction`` or ``other``."""
    problem: str | None = None
    """Why the body is malformed (HTTP 400), or None."""
    payload: Mapping | None = None
    """An interaction's parsed payload."""
    text: str = ""
    """A command's text."""
    channel: str | None = None
    """The channel it came from, when the body names one."""

    @property
    def is_help(self) -> bool:
        """``/golive help`` or a bare ``/golive``: answered in the ack itself, never waiting
        on the database; recorded (for its audit row) after the ack."""
        if self.kind != "command":
            return False
        words = self.text.split()
        return not words or words[0].lower() == READ_ONLY[0]

    @property
    def needs_database(self) -> bool:
        """Whether the request goes into the inbox before its ack: everything but help. The
        work process handles what the inbox holds (bot/handoff.py), status included, so the
        acking process never renders a view."""
        return not self.is_help


def inspect(body: bytes, content_type: str = "") -> Inbound:
    """Classify a request body; pure, never raises."""
    if "json" in content_type.lower():
        return Inbound("other")
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return Inbound("other", problem="body is not UTF-8")
    if "payload" in form:
        raw = form["payload"][0]
        try:
            payload = json.loads(raw)
        except ValueError:
            return Inbound("interaction", problem="payload is not JSON")
        if not isinstance(payload, dict):
            return Inbound("interaction", problem=f"payload is a JSON {type(payload).__name__}, "
                                                  "not an object")
        if not isinstance(payload.get("type"), str):
            return Inbound("interaction", problem="payload has no type")
        problem = _shape_problem(payload)
        if problem:
            return Inbound("interaction", problem=problem)
        return Inbound("interaction", payload=payload, channel=_payload_channel(payload))
    if "command" in form:
        channel = form.get("channel_id") or [""]
        return Inbound("command", text=(form.get("text") or [""])[0],
                       channel=channel[0] or None)
    return Inbound("other")


def _shape_problem(payload: Mapping) -> str | None:
    """What Bolt's own matchers would index into and find missing (they raise, not refuse)."""
    kind = payload["type"]
    for key in ("user", "channel", "container", "team", "enterprise", "view", "message",
                "state", "function_data"):
        if key in payload and payload[key] is not None and not isinstance(payload[key], dict):
            return f"{key} is not an object"
    if "response_url" in payload and not isinstance(payload["response_url"], str):
        return "response_url is not a string"
    urls = payload.get("response_urls")
    if "response_urls" in payload and not (
            isinstance(urls, list) and all(isinstance(u, dict) for u in urls)):
        return "response_urls is not a list of objects"
    if kind in ("block_actions", "block_suggestion", "interactive_message"):
        actions = payload.get("actions")
        if kind != "block_suggestion" and (
                not isinstance(actions, list) or not actions
                or not all(isinstance(a, dict) and isinstance(a.get("action_id"), str)
                           for a in actions)):
            return "actions is not a list of actions"
        if kind == "block_suggestion" and not isinstance(payload.get("action_id"), str):
            return "action_id is not a string"
    if kind in ("view_submission", "view_closed"):
        view = payload.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("callback_id"), str) \
                or not isinstance(view.get("type"), str):
            return "view has no callback_id or type"
        if view["type"] == "workflow_step" and not isinstance(payload.get("workflow_step"), dict):
            return "workflow_step is not an object"
    if kind == "workflow_step_edit" and not isinstance(payload.get("workflow_step"), dict):
        return "workflow_step is not an object"
    if kind in ("shortcut", "message_action", "dialog_submission") and not isinstance(
            payload.get("callback_id"), str):
        return "callback_id is not a string"
    return None


def _payload_channel(payload: Mapping) -> str | None:
    chan = payload.get("channel")
    if isinstance(chan, dict) and isinstance(chan.get("id"), str):
        return chan["id"]
    container = payload.get("container")
    if isinstance(container, dict) and isinstance(container.get("channel_id"), str):
        return container["channel_id"]
    return None


def signature_key(headers: Mapping[str, str]) -> str:
    """The replay key of a signed request: sha256 of its timestamp and signature."""
    ts = headers.get("x-slack-request-timestamp", "")
    sig = headers.get("x-slack-signature", "")
    return hashlib.sha256(f"{ts}:{sig}".encode()).hexdigest()


def response_url_of(inbound: Inbound) -> str | None:
    """Where a refusal can still be said to the user of an interaction."""
    url = (inbound.payload or {}).get("response_url")
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def first_input_block(inbound: Inbound) -> str | None:
    """A view submission's first input block id, to attach an error message to."""
    view = (inbound.payload or {}).get("view")
    blocks = view.get("blocks") if isinstance(view, dict) else None
    for b in blocks if isinstance(blocks, list) else ():
        if isinstance(b, dict) and b.get("type") == "input" and isinstance(b.get("block_id"), str):
            return b["block_id"]
    return None


@dataclass(frozen=True)
class CommandRequest:
    """A ``/golive`` command as the door parsed it, once: the invocation, or why it is not one
    (the usage error the ack showed). It travels with the inbox row (``inbox.request``) to the
    work side, which never parses the text again."""

    text: str
    invocation: Invocation | None = None
    problem: str | None = None

    def to_json(self) -> str:
        inv = self.invocation
        # jsonb holds no NUL (nor lone surrogates): kept escaped, as the audit row keeps them.
        return json.dumps(storable({"text": self.text, "problem": self.problem, "invocation": None
                           if inv is None else {"name": inv.name, "words": list(inv.words),
                                                "override": inv.override, "raw": inv.raw}}))

    @classmethod
    def from_json(cls, raw: object) -> CommandRequest | None:
        """The request a row holds (psycopg hands jsonb over parsed); None for none."""
        data = json.loads(raw) if isinstance(raw, str | bytes) else raw
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return None
        inv = data.get("invocation")
        return cls(data["text"], None if not isinstance(inv, dict) else Invocation(
            name=inv["name"], words=tuple(inv["words"]), override=inv.get("override"),
            raw=inv.get("raw", "")), data.get("problem"))


def parse_command(text: str, commands: Mapping[str, Command]) -> CommandRequest:
    """Parse a command's text once (pure)."""
    try:
        _, inv = parse(text, commands)
    except UsageError as e:
        return CommandRequest(text, problem=e.message)
    return CommandRequest(text, invocation=inv)
