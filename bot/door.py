"""The door's half of every transport: record the request in the inbox, then run its ack once.

HTTP (bot/server.py) and Socket Mode (bot/socket_door.py) differ only in how a request
arrives and how its ack leaves; what happens in between is here, once:

1. the request is read (``ingress.inspect``) and a malformed one is refused, nothing recorded;
2. it is recorded in the inbox (one autocommit INSERT + NOTIFY) under its transport's replay
   key: a signature seen before (HTTP) or an envelope id seen before (Socket Mode) collides
   and is not handled again;
3. the door's ack-only Bolt app runs the ack half (help and usage errors are answered in it);
4. the lazy half runs on the work side (bot/handoff.py), which trusts the inbox row: only the
   door writes one (docs/THREAT_MODEL.md), so nothing there verifies or re-signs.

``/golive help`` is not recorded before its ack (it never waits on the database); it is
recorded after, for its audit row.
"""

from __future__ import annotations

import contextlib
import logging
from itertools import count
from typing import Any

from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot import ingress
from bot.app import REQUEST
from bot.store import repo
from bot.store.db import DatabaseUnavailable
from commands import build_commands

log = logging.getLogger(__name__)

PURGE_EVERY = 200  # requests between purges of remembered replay keys
ACK_DB_BUDGET_S = 1.0


class Door:
    """Record and ack; shared by the transports. ``runtime`` is a ``bot.runtime.Runtime``."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.app = runtime.door_app
        self.commands = build_commands(runtime.engine.runbook)
        self._seen = count()

    def read(self, inbound: ingress.Inbound) -> ingress.CommandRequest | None:
        """A command parsed, once, for its ack and its lazy half; None for anything else."""
        if inbound.kind != "command":
            return None
        return ingress.parse_command(inbound.text, self.commands)

    def record(self, inbound: ingress.Inbound, key: str, body: bytes,
               request: ingress.CommandRequest | None = None) -> int | None:
        """The request's inbox row (unclaimed), with its parsed form; None when its key was
        seen before (a replay or a redelivery). DatabaseUnavailable when it cannot be
        recorded."""
        purge = ingress.REPLAY_WINDOW_S * 2 if next(self._seen) % PURGE_EVERY == 0 else None
        # The ack must come within Slack's 3 s even when the database is silent.
        # One statement, its own transaction: one round trip (and the commit's WAL flush).
        door_db = self.runtime.door_database  # as the door role: only it writes inbox rows
        with door_db.connection(timeout=ACK_DB_BUDGET_S, autocommit=True) as conn:
            return repo.inbox_insert(conn, sig_key=key, kind=inbound.kind,
                                     channel=inbound.channel, body=body,
                                     owner="", purge_older_than_s=purge,  # unclaimed
                                     request=request.to_json() if request else None)

    def record_after_ack(self, inbound: ingress.Inbound, key: str, body: bytes) -> None:
        """Help: answered in its ack, recorded after it (for its audit row)."""
        try:
            self.record(inbound, key, body, self.read(inbound))
        except DatabaseUnavailable:
            log.warning("help answered but not recorded: the database is not answering")

    def record_and_ack(self, inbound: ingress.Inbound, key: str, body: bytes,
                       bolt_req: BoltRequest) -> tuple[int | None, BoltResponse | None]:
        """The inbox row (DatabaseUnavailable: none), then the ack half, once; (None, None)
        for a request recorded before. Help is not recorded before its ack."""
        inbox_id: int | None = None
        request = self.read(inbound)
        if inbound.needs_database:
            inbox_id = self.record(inbound, key, body, request)
            if inbox_id is None:
                return None, None
        bolt_req.context["inbox_id"] = inbox_id
        bolt_req.context[REQUEST] = request  # the ack reads it (bot/app.py ack_command)
        return inbox_id, self.app.dispatch(bolt_req)

    def nothing_to_do(self, inbox_id: int | None) -> None:
        """The ack found no listener (or its ack failed): the row is done as it is."""
        if inbox_id is not None:
            with contextlib.suppress(DatabaseUnavailable):
                self.runtime.inbox.nothing_to_do(inbox_id)


def unhandled(resp: BoltResponse) -> bool:
    """Bolt's answer when no listener acked: a 404 (none) or a 5xx (its ack failed)."""
    return resp.status == 404 or resp.status >= 500
