"""The door over Socket Mode (``golive socket``): the same inbox, handoff and recovery as HTTP.

Each envelope Slack sends on the app's link is recorded in the inbox before it is acked on
the socket (bot/door.py): once acked, it is durable, handled once, in its channel's order,
and recovered if the process dies before handling it. Its replay key is its envelope id, so
an envelope Slack sends again (it thought the ack was lost) collides with the first and is
acked without a second effect. The body recorded is what HTTP would have posted (the form
of a slash command, ``payload=`` of an interaction), so the work side cannot tell the
transports apart. Socket Mode has no signature: the link itself, opened with the app-level
token, is the proof that the envelope came from Slack.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlencode

from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot import ingress
from bot.app import REQUEST
from bot.door import Door, unhandled
from bot.store.db import DatabaseUnavailable

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
KINDS = ("slash_commands", "interactive")
"""The envelopes the bot serves (it subscribes to no events)."""


def envelope_key(envelope_id: str) -> str:
    """The replay key of an envelope: a redelivery carries the same envelope id."""
    return hashlib.sha256(f"socket:{envelope_id}".encode()).hexdigest()


def as_form(req: SocketModeRequest) -> bytes | None:
    """What HTTP mode would have posted for this envelope; None for one the bot does not
    serve (an event, a malformed envelope)."""
    payload = req.payload
    if req.type not in KINDS or not isinstance(payload, dict):
        return None
    if req.type == "slash_commands":
        return urlencode({k: v if isinstance(v, str) else json.dumps(v)
                          for k, v in payload.items()}).encode()
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


class SocketDoor:
    """A Socket Mode client's request listener: record, then ack (see the module docstring).
    ``metrics`` counts acks as the HTTP door does."""

    def __init__(self, runtime: Any) -> None:
        self.door = Door(runtime)
        self.metrics = runtime.metrics

    def handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:
        started = time.perf_counter()
        body = as_form(req)
        inbound = ingress.inspect(body) if body is not None else ingress.Inbound(
            "other", problem=f"an envelope of type {req.type!r}")
        if inbound.problem:  # acked, so Slack does not send it again; nothing else
            log.warning("refused a malformed %s envelope: %s", inbound.kind, inbound.problem)
            self._ack(client, req, inbound.kind, started, None)
            return
        assert body is not None
        key = envelope_key(req.envelope_id)
        bolt_req = BoltRequest(body=body.decode("utf-8"), headers={"content-type": FORM})
        if inbound.is_help:  # answered in the ack; recorded after it, for its audit row
            bolt_req.context["inbox_id"] = None
            bolt_req.context[REQUEST] = self.door.read(inbound)
            resp = self.door.app.dispatch(bolt_req)
            self._ack(client, req, inbound.kind, started, _payload(resp))
            self.door.record_after_ack(inbound, key, body)
            return
        try:
            inbox_id, resp = self.door.record_and_ack(inbound, key, body, bolt_req)
        except DatabaseUnavailable:
            self._ack(client, req, inbound.kind, started, database_down(inbound))
            return
        except Exception as e:  # noqa: BLE001 - the boundary: never a traceback to Slack
            log.error("envelope %s failed before its ack: %s", inbound.kind, type(e).__name__)
            self._ack(client, req, inbound.kind, started, None)
            return
        if resp is None:  # sent again: acked, never handled twice
            log.info("acked a %s envelope sent again (retry %s)", inbound.kind,
                     req.retry_attempt)
            self._ack(client, req, inbound.kind, started, None)
            return
        if unhandled(resp):
            log.warning("acked a %s envelope Bolt answered %s", inbound.kind, resp.status)
            self.door.nothing_to_do(inbox_id)
            self._ack(client, req, inbound.kind, started, None)
            return
        self._ack(client, req, inbound.kind, started, _payload(resp))

    def _ack(self, client: BaseSocketModeClient, req: SocketModeRequest, kind: str,
             started: float, payload: dict | None) -> None:
        client.send_socket_mode_response(SocketModeResponse(
            envelope_id=req.envelope_id, payload=payload or None))
        self.metrics.ack_seconds.labels(kind).observe(time.perf_counter() - started)
        self.metrics.requests.labels(kind, "200").inc()


def _payload(resp: BoltResponse) -> dict | None:
    """The ack's response payload (help, a usage error, a modal's errors), if any."""
    if resp.status != 200 or not resp.body:
        return None
    ctype = (resp.headers.get("content-type") or [""])[0]
    if ctype.startswith("application/json"):
        return json.loads(resp.body)
    return {"text": resp.body}


def database_down(inbound: ingress.Inbound) -> dict | None:
    """The ack's payload when the envelope cannot even be recorded: say so, change nothing."""
    from bot.listeners import DB_DOWN
    from bot.server import _say

    if inbound.kind == "command":
        return {"response_type": "ephemeral", "text": DB_DOWN}
    if (inbound.payload or {}).get("type") == "view_submission":
        block = ingress.first_input_block(inbound)
        if block:
            return {"response_action": "errors", "errors": {block: DB_DOWN}}
    url = ingress.response_url_of(inbound)
    if url:  # a click: tell the clicker through its response_url, off the ack path
        threading.Thread(target=_say, args=(url, DB_DOWN), daemon=True).start()
    return None
