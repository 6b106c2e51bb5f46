"""Socket Mode for the sandbox: the WebSocket end of Slack's app links.

``apps.connections.open`` (called with the app-level ``xapp-`` token) hands out a one-use
``ws://`` URL. On connect the sandbox sends ``hello``; each command or click then goes out as
an envelope (``envelope_id``, ``type``, ``payload``, ``accepts_response_payload``) and counts
as delivered only when the app acks that envelope id *on the same socket* within the ack
limit. ``disconnect`` sends Slack's ``disconnect`` message; after ``refresh_requested`` the
link gets no new envelopes, as Slack routes to the app's next connection.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

log = logging.getLogger(__name__)

DRAINING = ("refresh_requested", "link_disabled")
"""Disconnect reasons after which Slack sends the link no new envelopes."""


@dataclass
class Link:
    """One WebSocket connection of the app, as the sandbox saw it."""

    id: str
    opened_at: float
    closed_at: float | None = None
    disconnect_reason: str | None = None
    envelopes: list[str] = field(default_factory=list)
    stray_acks: list[dict[str, Any]] = field(default_factory=list)
    """Acks for envelopes this link was not sent (or that were already given up on)."""
    _conn: ServerConnection | None = field(default=None, repr=False)
    _pending: dict[str, _Pending] = field(default_factory=dict, repr=False)

    @property
    def open(self) -> bool:
        """True until the socket closes."""
        return self.closed_at is None

    @property
    def routable(self) -> bool:
        """Whether new envelopes may go to this link."""
        return self.open and self.disconnect_reason not in DRAINING


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    ack: dict[str, Any] | None = None


@dataclass
class SocketAck:
    """The outcome of one envelope: the app's ack payload, or why there was none."""

    status: int  # 200 when acked, 0 when not (like an unreachable HTTP endpoint)
    body: str  # the ack's payload as JSON text ("" when it had none)
    elapsed: float
    error: str | None = None
    link: str | None = None


class SocketModeServer:
    """The app links of one sandbox: a WebSocket server on ``host``, port 0 by default."""

    def __init__(self, *, app_id: str, host: str = "127.0.0.1", port: int = 0,
                 ack_limit: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.app_id = app_id
        self.host = host
        self.port = port
        self.ack_limit = ack_limit
        self.clock = clock
        self.links: list[Link] = []
        self._tickets: set[str] = set()
        self._sent: dict[str, dict[str, Any]] = {}  # every envelope, by id (for redeliver)
        self._cond = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> SocketModeServer:
        """Listen and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        # Slack does not ping the app (the app pings Slack), and compression is not offered.
        self._server = serve(self._handle, self.host, self.port, process_request=self._admit,
                             ping_interval=None, compression=None, logger=log)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="slack-sandbox-socket", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every link and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    # ----------------------------------------------------------------- apps.connections.open

    def issue_url(self) -> str:
        """A fresh one-use WebSocket URL, as apps.connections.open returns."""
        ticket = secrets.token_hex(16)
        with self._cond:
            self._tickets.add(ticket)
        return f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    def _admit(self, conn: ServerConnection, request: Any) -> Any:
        ticket = _ticket(request.path)
        with self._cond:
            if ticket in self._tickets:
                self._tickets.discard(ticket)  # a ticket opens one link only
                return None
        return conn.respond(401, "invalid or used ticket: call apps.connections.open\n")

    # ----------------------------------------------------------------- links

    def _handle(self, conn: ServerConnection) -> None:
        with self._cond:
            link = Link(id=f"L{len(self.links) + 1}", opened_at=self.clock(), _conn=conn)
            self.links.append(link)
            hello = {"type": "hello", "num_connections": sum(x.open for x in self.links),
                     "debug_info": {"host": f"applink-sandbox-{link.id}", "build_number": 1,
                                    "approximate_connection_time": 18060},
                     "connection_info": {"app_id": self.app_id}}
            self._cond.notify_all()
        try:
            conn.send(json.dumps(hello))
            for raw in conn:
                self._on_message(link, raw)
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                link.closed_at = self.clock()
                link._conn = None
                self._cond.notify_all()

    def _on_message(self, link: Link, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("envelope_id"), str):
            log.debug("sandbox socket %s: ignored a message that is not an ack", link.id)
            return
        with self._cond:
            pending = link._pending.get(message["envelope_id"])
            if pending is None or pending.done.is_set():
                link.stray_acks.append(message)
            else:
                pending.ack = message
                pending.done.set()
            self._cond.notify_all()

    def open_links(self) -> list[Link]:
        """The links that are still connected."""
        with self._cond:
            return [x for x in self.links if x.open]

    def wait_for_link(self, *, after: int = 0, timeout: float = 10.0,
                      alive: Callable[[], bool] | None = None) -> Link:
        """Wait until the app has opened more than ``after`` links; return the newest open one.

        ``alive`` is asked between waits: when it says False (the app died), stop waiting."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if len(self.links) > after and self.links[-1].open:
                    return self.links[-1]
                left = deadline - time.monotonic()
                if left <= 0 or (alive is not None and not alive()):
                    raise TimeoutError(f"the app opened no new Socket Mode link (links so far: "
                                       f"{[(x.id, x.open) for x in self.links]})")
                self._cond.wait(min(left, 0.25))

    def wait_closed(self, link: Link, timeout: float = 10.0) -> None:
        """Wait until ``link`` is closed (by the app or the sandbox)."""
        with self._cond:
            if not self._cond.wait_for(lambda: not link.open, timeout):
                raise TimeoutError(f"Socket Mode link {link.id} is still open")

    def disconnect(self, reason: str = "refresh_requested", link: Link | None = None) -> None:
        """Send Slack's ``disconnect`` message (to ``link``, or to every open link)."""
        message = json.dumps({"type": "disconnect", "reason": reason,
                              "debug_info": {"host": "applink-sandbox"}})
        with self._cond:
            targets = [link] if link is not None else [x for x in self.links if x.open]
            for x in targets:
                x.disconnect_reason = reason
        for x in targets:
            conn = x._conn
            if conn is not None:
                conn.send(message)

    # ----------------------------------------------------------------- delivery

    def deliver(self, kind: str, payload: Mapping[str, Any], *,
                accepts_response_payload: bool, envelope_id: str | None = None,
                retry_attempt: int = 0) -> SocketAck:
        """Send one envelope on the newest routable link and wait for its ack there."""
        started = time.perf_counter()
        envelope_id = envelope_id or secrets.token_hex(12)
        pending = _Pending()
        with self._cond:
            link = next((x for x in reversed(self.links) if x.routable), None)
            if link is not None:
                link._pending[envelope_id] = pending
                link.envelopes.append(envelope_id)
                conn = link._conn
        if link is None or conn is None:
            return SocketAck(0, "", time.perf_counter() - started,
                             "dispatch_failed (no Socket Mode connection is open)")
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": dict(payload),
                    "accepts_response_payload": accepts_response_payload}
        if retry_attempt:
            envelope.update(retry_attempt=retry_attempt, retry_reason="timeout")
        with self._cond:
            self._sent[envelope_id] = envelope
        try:
            conn.send(json.dumps(envelope))
            acked = pending.done.wait(self.ack_limit)
        except ConnectionClosed as exc:
            acked, closed = False, exc
        else:
            closed = None
        with self._cond:
            link._pending.pop(envelope_id, None)
            pending.done.set()  # a later ack is a stray one
        elapsed = time.perf_counter() - started
        if acked and pending.ack is not None:
            body = pending.ack.get("payload")
            return SocketAck(200, json.dumps(body) if body else "", elapsed, None, link.id)
        if closed is not None:
            return SocketAck(0, "", elapsed, f"dispatch_failed (link {link.id} closed: {closed})",
                             link.id)
        return SocketAck(0, "", elapsed, f"operation_timeout (no ack on link {link.id} within "
                                         f"{self.ack_limit:g} s)", link.id)

    def redeliver(self, envelope_id: str) -> SocketAck:
        """Send an envelope again, as Slack does when it saw no ack in time (or thinks so):
        the same envelope id, ``retry_attempt`` one more, ``retry_reason`` ``timeout``."""
        with self._cond:
            sent = self._sent[envelope_id]
        return self.deliver(sent["type"], sent["payload"],
                            accepts_response_payload=sent["accepts_response_payload"],
                            envelope_id=envelope_id,
                            retry_attempt=sent.get("retry_attempt", 0) + 1)

    def deliver_form(self, fields: Mapping[str, str]) -> SocketAck:
        """Deliver what HTTP mode would POST as a form: a slash command or an interaction."""
        if "payload" in fields:
            try:
                payload = json.loads(fields["payload"])
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                # Slack never sends a payload that is not an object; nor can the socket.
                return SocketAck(0, "", 0.0, "invalid_payload (Socket Mode carries objects)")
            # Slack takes a response payload in the ack for view submissions, not for clicks.
            accepts = payload.get("type") in ("view_submission", "block_suggestion")
            return self.deliver("interactive", payload, accepts_response_payload=accepts)
        return self.deliver("slash_commands", dict(fields), accepts_response_payload=True)


def _ticket(path: str) -> str:
    values = parse_qs(urlsplit(path).query).get("ticket") or [""]
    return values[0]
